"""The tokenizer a Hugging Face checkpoint folder was trained with (``tokenizer=pretrained``).

Read from the folder's files, never named by hand:

- ``tokenizer.json`` with a BPE model (DNABERT-2) -> `BpeTokenizer`;
- ``vocab.txt`` with ``<cls>``/``<unk>`` and 6-mers (Nucleotide Transformer v1/v2) -> `NtTokenizer`;
- ``vocab.txt`` with ``[CLS]`` and k-mers of one length k (DNABERT 3..6) -> `KmerTokenizer(k, stride=1)`,
  accepted only when its ids equal the file's line order;
- ``vocab.txt`` with ``<cls>``, ``<eos>`` and the amino-acid letters (ESM-2) -> the protein
  `LetterTokenizer` (``<cls> residues <eos>``);
- a HyenaDNA folder (``model_type: hyenadna`` in config.json, or the ``CharacterTokenizer`` of its
  tokenizer_config.json; its vocabulary lives in remote code, not in a file) -> `hyenadna_tokenizer`.

Anything else is one `BiolmError` naming the folder and asking for ``tokenizer=<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

from biolm.checkpoints import resolve_pretrained
from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import PROTEIN
from biolm.tokenizers.base import DnaTokenizer, read_vocab_txt
from biolm.tokenizers.bpe import BpeTokenizer
from biolm.tokenizers.kmer import KmerTokenizer
from biolm.tokenizers.letters import esm_protein_tokenizer, hyenadna_tokenizer
from biolm.tokenizers.nt import NtTokenizer


def from_checkpoint(path: str | Path, invalid: str = "error") -> DnaTokenizer:
    """The tokenizer of the checkpoint ``path`` (a folder or a Hub id, see `biolm.checkpoints`).

    Raises:
        BiolmError: no tokenizer file biolm can read there, or a vocabulary in an order biolm does not reproduce.
    """
    if not path:
        raise BiolmError("tokenizer=pretrained: set model.pretrained=<checkpoint folder> (the tokenizer is read from it)")
    folder = resolve_pretrained(path)
    spec = folder / "tokenizer.json"
    if spec.is_file():
        try:
            model_type = json.loads(spec.read_text()).get("model", {}).get("type")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BiolmError(f"{spec}: not readable as JSON ({err})") from None
        if model_type == "BPE":
            return BpeTokenizer.from_file(spec, invalid=invalid)
    vocab_file = folder / "vocab.txt"
    if vocab_file.is_file():
        vocab = read_vocab_txt(vocab_file)
        tokens = list(vocab)
        if "<cls>" in vocab and "AAAAAA" in vocab:
            return NtTokenizer(folder, invalid=invalid)
        if {"<cls>", "<eos>", *PROTEIN.letters} <= vocab.keys():
            return esm_protein_tokenizer(folder, invalid=invalid)
        kmers = {len(t) for t in tokens if t and set(t) <= set("ACGT")}
        if "[CLS]" in vocab and len(kmers) == 1:
            (k,) = kmers
            tokenizer = KmerTokenizer(k=k, stride=1, invalid=invalid)
            if tokenizer.vocab != vocab:
                raise BiolmError(f"{vocab_file}: a {k}-mer vocabulary in another order than biolm's KmerTokenizer(k={k}); ids would not match the weights")
            return tokenizer
    if _is_hyenadna(folder):
        return hyenadna_tokenizer(invalid=invalid)
    raise BiolmError(
        f"tokenizer=pretrained: {folder} has no tokenizer biolm can read (tokenizer.json with BPE, a k-mer, "
        "Nucleotide Transformer or ESM vocab.txt, or a HyenaDNA config.json); choose it with tokenizer=<name>"
    )


def _is_hyenadna(folder: Path) -> bool:
    """A HyenaDNA ``-hf`` folder: config.json's ``model_type`` or tokenizer_config.json's class says so."""
    found = []
    for name, key in (("config.json", "model_type"), ("tokenizer_config.json", "tokenizer_class")):
        try:
            found.append(str(json.loads((folder / name).read_text()).get(key) or ""))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
    return any(value.lower() == "hyenadna" or value == "CharacterTokenizer" for value in found)
