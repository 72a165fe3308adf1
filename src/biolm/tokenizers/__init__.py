"""DNA tokenizers behind one interface: nucleotide strings -> 1-D int64 id arrays, and back.

`CharTokenizer` (one token per base), `KmerTokenizer` (DNABERT k-mers, overlapping or strided),
`BpeTokenizer` (a Hugging Face ``tokenizers`` BPE, e.g. DNABERT-2), `NtTokenizer` (Nucleotide
Transformer 6-mers over a checkpoint's ``vocab.txt``) and `LetterTokenizer` (one token per letter
with a checkpoint's ids and framing: HyenaDNA, ESM-2 protein) all implement `DnaTokenizer`:
``encode_batch(seqs) -> list[(n_tokens,) int64]``, ``decode(ids) -> str``, ``save(dir)``, and
`load_tokenizer(dir)` restores any of them. Each owns its `Alphabet` (`DNA` or `PROTEIN`: letters, the invalid
policy, `reverse_complement`), its `SpecialTokens` by role, and its geometry (``token_spans``,
``tokens_covering``, ``token_labels``; see `biolm.tokenizers.geometry`).
"""

from biolm.tokenizers.alphabet import DNA, PROTEIN, SPECIAL_TOKENS, Alphabet, SpecialTokens, normalize_sequences, reverse_complement
from biolm.tokenizers.base import DnaTokenizer, load_tokenizer
from biolm.tokenizers.bpe import BpeTokenizer
from biolm.tokenizers.char import CharTokenizer
from biolm.tokenizers.kmer import KmerTokenizer
from biolm.tokenizers.letters import LetterTokenizer
from biolm.tokenizers.nt import NtTokenizer

__all__ = [
    "DNA",
    "PROTEIN",
    "SPECIAL_TOKENS",
    "Alphabet",
    "BpeTokenizer",
    "CharTokenizer",
    "DnaTokenizer",
    "KmerTokenizer",
    "LetterTokenizer",
    "NtTokenizer",
    "SpecialTokens",
    "load_tokenizer",
    "normalize_sequences",
    "reverse_complement",
]
