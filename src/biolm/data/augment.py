"""Training-time sequence augmentation: random reverse complement and random substitutions.

In: training sequences (strings, already validated), their targets, the tokenizer.
Out: items ``(token ids, target, index)`` like `TokenDataset`, tokenised on the fly from a
sequence that was, with probability ``rc_prob``, reverse-complemented and had each A/C/G/T
replaced by one of the three other bases with probability ``substitution_rate``. Labels are
kept (a promoter is a promoter on either strand). The draws come from a generator seeded by
``(seed, epoch, index)``, so a run is reproducible and every epoch sees new variants.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from biolm.data.datasets import truncate_tokens
from biolm.errors import BiolmError

MAX_SUBSTITUTION_RATE = 0.05
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_BASE_INDEX = np.full(256, -1, dtype=np.int64)
for _i, _b in enumerate(b"ACGT"):
    _BASE_INDEX[_b] = _BASE_INDEX[_b | 0x20] = _i


def check_augment(rc_prob: float, substitution_rate: float) -> None:
    """Validate ``data.augment``."""
    if not 0 <= rc_prob <= 1:
        raise BiolmError(f"data.augment.rc_prob={rc_prob}: accepted: a probability from 0 to 1")
    if not 0 <= substitution_rate <= MAX_SUBSTITUTION_RATE:
        raise BiolmError(f"data.augment.substitution_rate={substitution_rate}: accepted: 0 to {MAX_SUBSTITUTION_RATE} (a few percent at most)")


def substitute(seq: str, rate: float, rng: np.random.Generator) -> str:
    """Replace each A/C/G/T (any case) by another base with probability ``rate``; other letters stay."""
    raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8).copy()
    base = _BASE_INDEX[raw]  # (L,) 0..3, -1 for N and other letters
    hit = (base >= 0) & (rng.random(len(raw)) < rate)
    shift = rng.integers(1, 4, size=int(hit.sum()))  # another base, uniformly
    raw[hit] = _BASES[(base[hit] + shift) % 4]
    return raw.tobytes().decode("ascii")


class AugmentedSequenceDataset(Dataset):
    """Training sequences augmented per item and epoch (see the module docstring).

    Args:
        sequences: the training sequences.
        targets: their encoded targets.
        tokenizer: the run's tokenizer.
        max_tokens: the model's token limit (None: none).
        seed: the run's seed.
        rc_prob: probability of reverse-complementing an item.
        substitution_rate: per-base substitution probability (at most 5%).
    """

    def __init__(self, sequences: Sequence[str], targets: np.ndarray, tokenizer, max_tokens: int | None, seed: int, rc_prob: float, substitution_rate: float):
        check_augment(rc_prob, substitution_rate)
        alphabet = tokenizer.alphabet
        if (rc_prob or substitution_rate) and alphabet.complement is None:
            raise BiolmError(f"data.augment: reverse complements and base substitutions apply to nucleotides, not to {alphabet.name} sequences; set rc_prob and substitution_rate to 0")
        self.sequences = list(sequences)
        self.targets = targets
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.seed = int(seed)
        self.rc_prob = float(rc_prob)
        self.substitution_rate = float(substitution_rate)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of ``epoch`` for plain integer indices from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.sequences)

    def augmented(self, index: int, epoch: int | None = None) -> str:
        """The sequence of item ``index`` as epoch ``epoch`` (default: the current one) serves it."""
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch if epoch is None else int(epoch), index]))
        seq = self.sequences[index]
        if self.substitution_rate:
            seq = substitute(seq, self.substitution_rate, rng)
        if rng.random() < self.rc_prob:
            seq = self.tokenizer.alphabet.reverse_complement(seq)
        return seq

    def __getitem__(self, index: int | tuple[int, int]):
        """Item ``index``, or ``(epoch, index)`` as `EpochShuffle` passes it."""
        epoch, index = index if isinstance(index, tuple) else (None, index)
        ids = self.tokenizer.encode_batch([self.augmented(index, epoch)])[0]
        return truncate_tokens(self.tokenizer, ids, self.max_tokens), self.targets[index], index
