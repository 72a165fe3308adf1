"""Labelled variants -> a supervised dataset of variant-centred windows, split by position.

In: a table of variants with a label (``chrom, pos, ref, alt, label``: pathogenic/benign or 1/0,
e.g. ClinVar) and a `Reference`. Out: train/val/test tables ``id, chrom, pos, ref, alt, sequence,
label`` (``sequence``: ``window_bp`` bases centred on the variant, carrying the alternative
allele; ``label``: 1 pathogenic, 0 benign), ready for ``biolm finetune data.train=... data.val=...
data.test=...``.

The split is by genome position, not by row: variants are grouped in ``block_bp`` blocks, the
blocks shuffled (seeded) into train/val/test, and test variants closer than ``window_bp`` to a
train or val variant are dropped, so no test window shares a base with a training window.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import write_table
from biolm.errors import BiolmError
from biolm.variants.dataset import read_labels_table
from biolm.variants.evaluation import parse_label
from biolm.variants.reference import Reference, parse_region
from biolm.variants.report import check_variant_labels
from biolm.variants.scoring import as_variant_table
from biolm.variants.sequences import variant_windows

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def position_split(positions: np.ndarray, val: float, test: float, block_bp: int, seed: int) -> np.ndarray:
    """``(n,)`` split names for 1-based ``positions``: ``block_bp`` blocks shuffled into train/val/test shares."""
    if not (0 < val and 0 < test and val + test < 1):
        raise BiolmError(f"split: val={val}, test={test}; both must be > 0 and add up to less than 1")
    blocks = np.unique(positions // block_bp)
    np.random.default_rng(seed).shuffle(blocks)
    cut_train, cut_val = int(round((1 - val - test) * len(blocks))), int(round((1 - test) * len(blocks)))
    part = {block: SPLITS[0] if i < cut_train else SPLITS[1] if i < cut_val else SPLITS[2] for i, block in enumerate(blocks)}
    return np.array([part[block] for block in positions // block_bp], dtype=object)


def variant_window_dataset(
    labels: str | Path,
    reference: Reference | str | Path,
    output: str | Path | None = None,
    window_bp: int = 256,
    region: str | None = None,
    snvs_only: bool = True,
    label_column: str = "label",
    val: float = 0.15,
    test: float = 0.25,
    block_bp: int = 2000,
    seed: int = 0,
    strand: str = "+",
    on_ref_mismatch: str = "error",
    aliases: dict[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Variant-centred windows with the alternative allele, labelled and split by position (module docstring).

    Args:
        labels: table with ``chrom, pos, ref, alt`` and ``label_column`` (pathogenic/benign or 1/0), one row per variant.
        reference: `Reference` or FASTA path.
        output: a folder to write ``train.csv``, ``val.csv`` and ``test.csv`` into (atomically each).
        window_bp: bases per window.
        region: only variants inside ``CONTIG:START-END``.
        snvs_only: only single-base substitutions.
        val: share of the position blocks held out for validation.
        test: share of the position blocks held out for testing.
        block_bp: block size of the position split.
        seed: seed of the block shuffle.
        strand: ``+`` or ``-`` (reverse-complemented windows).
        on_ref_mismatch: ``error`` or ``skip`` (variants whose REF differs from the reference are left out).

    Returns:
        ``{"train": frame, "val": frame, "test": frame}``.

    Raises:
        BiolmError: a missing column, a repeated variant, an unreadable label, no variant left, or an empty split.
    """
    check_variant_labels(labels, label_column)
    table = read_labels_table(labels)
    missing = [column for column in ("chrom", "pos", "ref", "alt", label_column) if column not in table.columns]
    if missing:
        hint = "; set label_column=" if label_column in missing else ""
        raise BiolmError(f"labels: {labels} has no column {', '.join(map(repr, missing))} (has {', '.join(map(str, table.columns))}){hint}")
    frame = table[["chrom", "pos", "ref", "alt", label_column]].rename(columns={label_column: "label"})
    reference = reference if isinstance(reference, Reference) else Reference(reference, aliases)
    if region:  # before the allele checks: rows elsewhere (another gene, a symbolic allele) are not this dataset's
        contig, start, end = parse_region(region)
        pos = pd.to_numeric(frame["pos"], errors="coerce")
        frame = frame[(frame["chrom"].map(reference.canonical) == reference.canonical(contig)) & (pos > start) & (pos <= end)]
    if snvs_only:
        frame = frame[(frame["ref"].str.len() == 1) & (frame["alt"].str.len() == 1) & (frame["alt"] != ".")]
    frame = as_variant_table(frame)
    frame = frame[reference.check_alleles(frame, on_ref_mismatch, where="labels")].reset_index(drop=True)
    if frame.empty:
        raise BiolmError(f"labels: no variant of {labels} left (region={region}, snvs_only={snvs_only}) inside {reference.path}")
    frame["label"] = [parse_label(value, f"labels: {labels}") for value in frame["label"]]
    # one coordinate line: contigs far apart, so variants on different contigs never share a block or count as near
    contig = pd.factorize(frame["chrom"].map(reference.canonical))[0].astype(np.int64)
    where = contig * 10**12 + frame["pos"].to_numpy().astype(np.int64)
    frame["split"] = position_split(where, val, test, int(block_bp), int(seed))
    seen = np.sort(where[(frame["split"] != "test").to_numpy()])
    in_test = np.flatnonzero(frame["split"] == "test")
    if len(seen) and len(in_test):
        near = np.abs(where[in_test, None] - seen[None, :]).min(axis=1) < int(window_bp)
        frame = frame.drop(index=in_test[near]).reset_index(drop=True)
        log.info("%d test variants closer than %d bp to a train/val variant left out", int(near.sum()), window_bp)
    frame["sequence"] = variant_windows(frame, reference, int(window_bp), strand).alt
    frame["id"] = frame["chrom"] + ":" + frame["pos"].astype(str) + ":" + frame["ref"] + ">" + frame["alt"]
    columns = ["id", "chrom", "pos", "ref", "alt", "sequence", "label"]
    splits = {name: frame.loc[frame["split"] == name, columns].reset_index(drop=True) for name in SPLITS}
    empty = [name for name, part in splits.items() if part.empty]
    if empty:
        raise BiolmError(f"split: no variant in {', '.join(empty)} ({len(frame)} variants in {frame['pos'].floordiv(block_bp).nunique()} blocks of {block_bp} bp); lower block_bp=")
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        for name, part in splits.items():
            write_table(part, str(Path(output) / f"{name}.csv"))
        log.info("%s windows of %d bp written to %s", ", ".join(f"{name} {len(part)}" for name, part in splits.items()), window_bp, output)
    return splits
