"""Random windows from FASTA genomes, for language-model pretraining.

In: FASTA genome files (``.fa``/``.fasta``/``.fna``, optionally gzip- or bgzip-compressed).
Out: `load_genome` gives ``{contig: (length,) uint8 array}`` of upper-case ASCII over ``ACGTN``;
`split_genome` cuts it into training and validation `GenomeRegion` lists; `GenomeWindowDataset`
serves windows of ``window_bp`` bases from those regions as ``str``.

Loading: every contig is read fully into memory (a bacterial genome is a few MB; a human one
about 3 GB). One byte-level parser serves plain, gzip and bgzip files alike; pyfaidx is not
used because its value is random access on disk, which in-memory windows do not need, its
bgzip support needs Biopython, and it writes a ``.fai`` beside the input.

Determinism: training item ``i`` of epoch ``e`` is drawn from its own generator seeded by
``(seed, e, i)``, so the data order does not depend on worker count or on what ran before: a
run resumed at an epoch boundary sees the same windows as an uninterrupted one, and DDP ranks
(a distributed sampler over indices) draw different windows.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biolm.data.io import FASTA_SUFFIXES
from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import reverse_complement as reverse_complement  # its home is the DNA alphabet; re-exported

HOLDOUT_FORMS = "'tail:F' (last fraction F of every contig, 0 < F < 1), 'contigs:NAME1,NAME2' or 'none'"
MAX_DRAWS = 100  # redraws of an N-rich window before giving up

_N = ord("N")
_LETTERS = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))
_WHITESPACE = b" \t\r\n\v\f"
_HEADER = re.compile(rb"^>([^\n]*)", re.MULTILINE)

# Letters -> upper-case ACGT, every other letter (IUPAC ambiguity codes, X) -> N.
_TO_ACGTN = bytes.maketrans(_LETTERS, bytes(c & 0xDF if chr(c) in "ACGTacgt" else _N for c in _LETTERS))

_COMPLEMENT_BYTES = np.arange(256, dtype=np.uint8)
_COMPLEMENT_BYTES[np.frombuffer(b"ACGTN", dtype=np.uint8)] = np.frombuffer(b"TGCAN", dtype=np.uint8)


@dataclass(frozen=True)
class GenomeRegion:
    """A stretch of one contig, 0-based half-open ``[start, end)``."""

    contig: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def load_genome(paths: Sequence[str | Path], field_name: str = "data.fasta") -> dict[str, np.ndarray]:
    """Read FASTA genomes into memory.

    Args:
        paths: FASTA files (``.fa``, ``.fasta``, ``.fna``, ``.fas``, ``.ffn``, each optionally ``.gz``
            or ``.bgz``); one path alone is accepted too.
        field_name: the config key that named the files, for messages.

    Returns:
        Contig name (first word of its header) -> read-only ``(length,)`` uint8 array of
        upper-case ASCII bases; lower case (soft-masking) is upper-cased and every letter other
        than A, C, G, T (IUPAC ambiguity codes) becomes N.

    Raises:
        BiolmError: a missing, empty or non-FASTA file (naming the file and line), a record
            without sequence, or a contig name seen twice (in one file or across files).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise BiolmError(f"{field_name}: no genome given; pass one FASTA path or a list of them")
    genome: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for path in map(str, paths):
        for name, seq in _read_fasta(path, field_name):
            if name in genome:
                raise BiolmError(f"{path}: contig {name!r} is also in {origin[name]}; contig names must be unique across {field_name}")
            genome[name] = seq
            origin[name] = path
    return genome


def _read_fasta(path: str, field_name: str) -> list[tuple[str, np.ndarray]]:
    """(name, sequence) of each record of one FASTA file; fast path over whole bytes, line search only to report errors."""
    stem = path.lower().removesuffix(".gz").removesuffix(".bgz")
    if not stem.endswith(FASTA_SUFFIXES):
        raise BiolmError(f"{field_name}: {path} is not a FASTA file name (accepted: {', '.join(FASTA_SUFFIXES)}, optionally .gz)")
    file = Path(path)
    if not file.is_file():
        raise BiolmError(f"{field_name}: file not found: {path}")
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)  # bgzip output is multi-member gzip: read whole here too
        except (OSError, EOFError) as err:
            raise BiolmError(f"{path}: not a valid gzip file ({err})") from None
    if not raw.strip():
        raise BiolmError(f"{path}: file is empty; expected FASTA ('>name' lines followed by sequence)")
    headers = list(_HEADER.finditer(raw))
    first = headers[0].start() if headers else len(raw)
    prefix = raw[:first]
    if prefix.strip():
        line = raw.count(b"\n", 0, len(prefix) - len(prefix.lstrip())) + 1
        raise BiolmError(f"{path} line {line}: not FASTA: text before the first header; each record must start with a '>name' line")
    records, names = [], set()
    line, counted_to = 1, 0
    for j, header in enumerate(headers):
        line += raw.count(b"\n", counted_to, header.start())
        counted_to = header.start()
        words = header.group(1).split()
        if not words:
            raise BiolmError(f"{path} line {line}: FASTA header has no name")
        name = words[0].decode("utf-8", errors="replace")
        body = raw[header.end() : headers[j + 1].start() if j + 1 < len(headers) else len(raw)]
        seq = body.translate(None, _WHITESPACE)
        if not seq:
            raise BiolmError(f"{path} line {line}: FASTA record {name!r} has no sequence")
        if seq.translate(None, _LETTERS):
            raise BiolmError(_bad_line_message(path, body, line, name))
        if name in names:
            raise BiolmError(f"{path} line {line}: contig name {name!r} appears twice; contig names must be unique")
        names.add(name)
        records.append((name, np.frombuffer(seq.translate(_TO_ACGTN), dtype=np.uint8)))
    return records


def _bad_line_message(path: str, body: bytes, header_line: int, name: str) -> str:
    """Message naming the first sequence line of a record that holds a non-letter."""
    for offset, text in enumerate(body.split(b"\n")):
        bad = text.translate(None, _WHITESPACE + _LETTERS)
        if bad:
            char = chr(bad[0]) if bad[0] < 128 else f"byte 0x{bad[0]:02x}"
            return (
                f"{path} line {header_line + offset}: not FASTA sequence: {char!r} in record {name!r} "
                "(accepted: letters, i.e. A, C, G, T, N and IUPAC codes, in any case)"
            )
    return f"{path} line {header_line}: not FASTA sequence in record {name!r}"


def split_genome(genome: dict[str, np.ndarray], holdout: str = "tail:0.1") -> tuple[list[GenomeRegion], list[GenomeRegion]]:
    """Split a genome into training and validation regions that do not overlap.

    Args:
        genome: contig -> sequence, as from `load_genome`.
        holdout: ``tail:F`` holds out the last ``round(F * length)`` bases of every contig;
            ``contigs:NAME1,NAME2`` holds out whole contigs; ``none`` holds out nothing.

    Returns:
        ``(train, validation)`` regions in contig order; together they cover every contig exactly.

    Raises:
        BiolmError: an unknown form, a fraction outside (0, 1), unknown contig names, or no
            training sequence left; the message names ``data.holdout``.
    """
    if not isinstance(holdout, str):
        raise BiolmError(f"data.holdout={holdout!r} is not a holdout (accepted: {HOLDOUT_FORMS})")
    whole = [GenomeRegion(name, 0, len(seq)) for name, seq in genome.items() if len(seq)]
    if holdout.strip() == "none":
        return whole, []
    kind, _, arg = holdout.strip().partition(":")
    if kind == "tail":
        try:
            fraction = float(arg)
        except ValueError:
            fraction = math.nan
        if not 0 < fraction < 1:
            raise BiolmError(f"data.holdout={holdout!r}: the fraction must be a number between 0 and 1 (accepted: {HOLDOUT_FORMS})")
        train, val = [], []
        for region in whole:
            cut = region.end - round(fraction * region.end)
            if cut > 0:
                train.append(GenomeRegion(region.contig, 0, cut))
            if cut < region.end:
                val.append(GenomeRegion(region.contig, cut, region.end))
    elif kind == "contigs":
        names = [name.strip() for name in arg.split(",") if name.strip()]
        unknown = [name for name in names if name not in genome]
        if not names or unknown:
            known = list(genome)
            shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
            what = f"unknown contigs {unknown}" if unknown else "no contig names"
            raise BiolmError(f"data.holdout={holdout!r}: {what} (contigs in the genome: {shown}; accepted: {HOLDOUT_FORMS})")
        train = [region for region in whole if region.contig not in names]
        val = [region for region in whole if region.contig in names]
    else:
        raise BiolmError(f"data.holdout={holdout!r} is not a holdout (accepted: {HOLDOUT_FORMS})")
    if not train:
        raise BiolmError(f"data.holdout={holdout!r} leaves no training sequence; hold out fewer contigs or a smaller tail")
    return train, val


def length_warmup_schedule(max_bp: int, min_bp: int, warmup_epochs: int) -> Callable[[int], int]:
    """HyenaDNA's sequence-length warm-up: epoch -> window length.

    The lengths ``min_bp, 2 * min_bp, 4 * min_bp, ...`` (those below ``max_bp``) are spread
    evenly over the first ``warmup_epochs`` epochs, from epoch ``warmup_epochs`` on it is
    ``max_bp``. E.g. ``(1024, 64, 8)``: epochs 0-7 -> 64, 64, 128, 128, 256, 256, 512, 512.

    Args:
        max_bp: the final window length.
        min_bp: the first window length (at most ``max_bp``).
        warmup_epochs: epochs before ``max_bp`` is reached; 0 turns the warm-up off.

    Returns:
        A function of the 0-based epoch.
    """
    if min(max_bp, min_bp) < 1 or warmup_epochs < 0 or min_bp > max_bp:
        raise BiolmError(
            f"data.length_warmup: min_bp={min_bp}, window_bp={max_bp}, epochs={warmup_epochs} "
            "(accepted: 1 <= min_bp <= window_bp, epochs >= 0)"
        )
    stages, bp = [], int(min_bp)
    while bp < max_bp:
        stages.append(bp)
        bp *= 2

    def window_bp(epoch: int) -> int:
        if epoch >= warmup_epochs or not stages:
            return max_bp
        return stages[epoch * len(stages) // warmup_epochs]

    return window_bp


class GenomeWindowDataset(torch.utils.data.Dataset):
    """Windows of ``window_bp`` bases from genome regions, as upper-case ``ACGTN`` strings.

    Random mode (training): item ``i`` of the current epoch is a window start drawn uniformly
    over every valid start in every region (so regions weigh by length), from a generator seeded
    by ``(seed, epoch, i)``; windows never cross a region's end, so no held-out base reaches a
    training window. A window with more than ``max_n_fraction`` N is redrawn (up to
    ``MAX_DRAWS`` times), and the accepted one is reverse-complemented with probability
    ``rc_prob``. ``len`` is ``windows_per_epoch``.

    Tiled mode (``deterministic_positions=True``, for validation): the regions are cut into
    consecutive non-overlapping windows, in order; those with more than ``max_n_fraction`` N are
    dropped, and when ``windows_per_epoch > 0`` and there are more, that many evenly spaced tiles
    are kept (so a capped set still spans the whole held-out part). No reverse complement; the
    epoch plays no part.

    With ``num_workers > 0`` and persistent workers, the workers hold copies made when they
    started: call `set_epoch` / `set_window_bp` before the loader's iterator is created.

    Args:
        genome: contig -> sequence, as from `load_genome`.
        regions: where windows may come from (contigs must be in ``genome``).
        window_bp: bases per window.
        windows_per_epoch: items per epoch (random mode, > 0); cap on tiles (tiled mode, 0: all).
        seed: non-negative base seed.
        rc_prob: probability of reverse-complementing a training window.
        max_n_fraction: the largest share of N a window may hold.
        deterministic_positions: tiled mode instead of random draws.
    """

    def __init__(
        self,
        genome: dict[str, np.ndarray],
        regions: Sequence[GenomeRegion],
        window_bp: int,
        windows_per_epoch: int,
        seed: int = 0,
        rc_prob: float = 0.5,
        max_n_fraction: float = 0.1,
        deterministic_positions: bool = False,
    ):
        if windows_per_epoch < 0 or (windows_per_epoch == 0 and not deterministic_positions):
            raise BiolmError(f"data.windows_per_epoch={windows_per_epoch}: accepted: a positive number of windows")
        if not 0 <= rc_prob <= 1:
            raise BiolmError(f"data.rc_prob={rc_prob}: accepted: a probability from 0 to 1")
        if not 0 <= max_n_fraction <= 1:
            raise BiolmError(f"data.max_n_fraction={max_n_fraction}: accepted: a fraction from 0 to 1")
        if seed < 0:
            raise BiolmError(f"seed={seed}: accepted: a non-negative integer")
        for region in regions:
            if region.contig not in genome or not 0 <= region.start <= region.end <= len(genome[region.contig]):
                raise BiolmError(f"region {region} is not inside the genome (contigs: {', '.join(list(genome)[:10])})")
        self.genome = genome
        self.regions = list(regions)
        self.windows_per_epoch = int(windows_per_epoch)
        self.seed = int(seed)
        self.rc_prob = float(rc_prob)
        self.max_n_fraction = float(max_n_fraction)
        self.deterministic_positions = bool(deterministic_positions)
        self.epoch = 0
        self.set_window_bp(window_bp)

    def set_epoch(self, epoch: int) -> None:
        """Draw the windows of ``epoch`` (0-based) from now on."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def set_window_bp(self, window_bp: int) -> None:
        """Serve windows of ``window_bp`` bases from now on (the length warm-up calls this between epochs)."""
        if window_bp < 1:
            raise BiolmError(f"data.window_bp={window_bp}: accepted: a positive number of bases")
        fitting = [region for region in self.regions if len(region) >= window_bp]
        if not fitting:
            longest = max((len(region) for region in self.regions), default=0)
            raise BiolmError(
                f"data.window_bp={window_bp}: no region is that long (longest: {longest} bp of "
                f"{len(self.regions)} regions); lower data.window_bp or hold out less"
            )
        self.window_bp = int(window_bp)
        self._max_n = math.floor(self.max_n_fraction * window_bp + 1e-9)
        self._contigs = [region.contig for region in fitting]
        if self.deterministic_positions:
            self._tile(fitting)
        else:
            self._region_starts = np.array([region.start for region in fitting], dtype=np.int64)
            self._cum_starts = np.cumsum([len(region) - window_bp + 1 for region in fitting])  # valid starts up to each region

    def _tile(self, fitting: list[GenomeRegion]) -> None:
        """Fixed non-overlapping windows over ``fitting`` with few enough N, evenly thinned to the cap."""
        bp = self.window_bp
        which, starts = [], []
        for r, region in enumerate(fitting):
            n_tiles = len(region) // bp
            seq = self.genome[region.contig][region.start : region.start + n_tiles * bp]
            n_count = np.count_nonzero(seq.reshape(n_tiles, bp) == _N, axis=1)  # (n_tiles,)
            keep = np.flatnonzero(n_count <= self._max_n)
            which.append(np.full(len(keep), r, dtype=np.int64))
            starts.append(region.start + keep * bp)
        which, starts = np.concatenate(which), np.concatenate(starts)
        if not len(starts):
            raise BiolmError(
                f"no {bp} bp window of the validation regions has at most {self.max_n_fraction:.0%} N: "
                "the regions are mostly N; raise data.max_n_fraction or hold out other contigs"
            )
        if 0 < self.windows_per_epoch < len(starts):
            pick = np.linspace(0, len(starts) - 1, self.windows_per_epoch).round().astype(np.int64)
            which, starts = which[pick], starts[pick]
        self._tile_region, self._tile_start = which, starts

    def __len__(self) -> int:
        return len(self._tile_start) if self.deterministic_positions else self.windows_per_epoch

    def locate(self, index: int) -> tuple[GenomeRegion, bool]:
        """Where item ``index`` comes from: ``(window region, reverse-complemented?)``."""
        if not 0 <= index < len(self):
            raise IndexError(f"window index {index} out of range 0..{len(self) - 1}")
        bp = self.window_bp
        if self.deterministic_positions:
            start = int(self._tile_start[index])
            return GenomeRegion(self._contigs[self._tile_region[index]], start, start + bp), False
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch, index]))
        for _ in range(MAX_DRAWS):
            pos = int(rng.integers(self._cum_starts[-1]))
            r = int(np.searchsorted(self._cum_starts, pos, side="right"))
            start = int(self._region_starts[r] + pos - (self._cum_starts[r - 1] if r else 0))
            contig = self._contigs[r]
            if np.count_nonzero(self.genome[contig][start : start + bp] == _N) <= self._max_n:
                return GenomeRegion(contig, start, start + bp), bool(rng.random() < self.rc_prob)
        raise BiolmError(
            f"no {bp} bp window with at most {self.max_n_fraction:.0%} N in {MAX_DRAWS} draws "
            f"(item {index}, epoch {self.epoch}): the regions are mostly N; raise data.max_n_fraction or choose other contigs"
        )

    def __getitem__(self, index: int) -> str:
        """The window of item ``index`` as an upper-case ``ACGTN`` string."""
        region, rc = self.locate(index)
        window = self.genome[region.contig][region.start : region.end]
        if rc:
            window = _COMPLEMENT_BYTES[window[::-1]]
        return window.tobytes().decode("ascii")
