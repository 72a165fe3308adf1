"""DNA tokenizers behind one interface: nucleotide strings -> 1-D int64 id arrays, and back.

`CharTokenizer` (one token per base), `KmerTokenizer` (DNABERT k-mers, overlapping or strided) and
`BpeTokenizer` (a Hugging Face ``tokenizers`` BPE, e.g. DNABERT-2) all implement `DnaTokenizer`:
``encode_batch(seqs) -> list[(n_tokens,) int64]``, ``decode(ids) -> str``, ``save(dir)``, and
`load_tokenizer(dir)` restores any of them. `normalize_sequences` is the shared input check.
"""

from biolm.tokenizers.alphabet import SPECIAL_TOKENS, normalize_sequences
from biolm.tokenizers.base import DnaTokenizer, load_tokenizer
from biolm.tokenizers.bpe import BpeTokenizer
from biolm.tokenizers.char import CharTokenizer
from biolm.tokenizers.kmer import KmerTokenizer

__all__ = [
    "SPECIAL_TOKENS",
    "BpeTokenizer",
    "CharTokenizer",
    "DnaTokenizer",
    "KmerTokenizer",
    "load_tokenizer",
    "normalize_sequences",
]
