"""The one prediction path: records -> per-sequence probabilities or values -> a table.

In: a loaded `Run` and `SequenceRecords` (or raw strings). Out: a DataFrame with ``id``,
``prob_<class>`` columns (classification) or ``prediction`` values (regression), and
``prediction``. `biolm predict`, `biolm evaluate`, the test metrics written by `finetune`,
the service and the variant scorer all come through `predict_records`, so they never disagree.
Sequence-level objectives get their values here (`predict_values`) and tabulate them
(`SequenceObjective.to_frame`); per-base objectives (`biolm.tasks.token_classification`) make
their own segment table from the same run (``predict_table``).

Long inputs: when the run was trained with ``data.window_bp`` (bases), each sequence is cut
into windows (`biolm.data.windows`), every window is scored, and the per-window probabilities
(or values) are aggregated per sequence by the run's ``predict.aggregate`` (mean, max or
length-weighted mean). With ``predict.rc_average`` the reverse complement of every sequence is
scored too and the two are averaged.

Batching: token ids are sorted by length and cut into batches of ``batch_size`` sequences or, with
``batch_tokens``, of as many as keep ``sequences x padded length`` within that budget; outputs come back in
input order and do not depend on the batching (to float rounding, ~1e-7). ``bf16`` autocasts the forward
passes to bfloat16 (faster on CPUs with bf16 units; probabilities move by ~1e-3, so it is opt-in).

Sequences shorter than the tokenizer's ``min_length_bp`` (k for k-mers; 1, i.e. empty, otherwise)
are refused with a `BiolmError` naming them: a k-mer model would see each as the same lone ``[UNK]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolm.data.datasets import Collator, check_lengths, tokenize_records
from biolm.data.io import SequenceRecords
from biolm.data.windows import aggregate_windows, check_window, split_into_windows
from biolm.errors import BiolmError
from biolm.runs import Run, load_run


@torch.inference_mode()
def batch_logits(run: Run, tokens: Sequence[np.ndarray], batch_size: int, batch_tokens: int | None = None, bf16: bool = False) -> torch.Tensor:
    """Forward passes in length-sorted batches (little padding); output ``(N, num_outputs)`` in input order.

    Args:
        run: the trained run (its model on any device).
        tokens: ``N`` token-id arrays of any lengths.
        batch_size: sequences per forward pass (when ``batch_tokens`` is None).
        batch_tokens: instead, as many sequences per pass as keep ``sequences x padded length``
            within this many tokens (at least one): short inputs go in large batches, long ones in small.
        bf16: run the matrix products in bfloat16 (``torch.autocast``): faster where the hardware has
            bf16 units, but probabilities move by ~1e-3, so it is off unless asked for.
    """
    collate = Collator(run.tokenizer.pad_id)
    device = next(run.model.parameters()).device  # CPU unless the caller moved the model (e.g. to a GPU)
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    out = torch.empty((len(tokens), run.labels.num_outputs), dtype=torch.float32)
    for start, stop in batch_bounds(lengths[order], batch_size, batch_tokens):
        pick = order[start:stop]
        batch = collate([(tokens[i], None, int(i)) for i in pick])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = run.model(batch["input_ids"].to(device), batch["attention_mask"].to(device), logits_only=True).logits.cpu()
        out[torch.from_numpy(pick)] = logits.float()
    return out


def batch_bounds(sorted_lengths: np.ndarray, batch_size: int, batch_tokens: int | None = None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` batches over ascending lengths: ``batch_size`` each, or by the token budget."""
    total = len(sorted_lengths)
    if batch_tokens is None:
        return [(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]
    if batch_tokens < 1:
        raise BiolmError(f"batch_tokens={batch_tokens}: accepted: a positive number of tokens per batch, or null for batch_size")
    bounds, start = [], 0
    while start < total:
        # lengths ascend, so the padded length of [start, stop) is sorted_lengths[stop - 1];
        # a batch holds at most batch_tokens sequences (each has a token or more)
        ahead = sorted_lengths[start : start + batch_tokens]
        fits = np.flatnonzero(ahead * np.arange(1, len(ahead) + 1) <= batch_tokens)
        stop = start + (int(fits[-1]) + 1 if len(fits) else 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def _setting(run: Run, key: str, override):
    """``predict.<key>`` of the run's config unless overridden."""
    if override is not None:
        return override
    return (run.cfg.get("predict") or {}).get(key)


def window_setting(data_cfg) -> tuple[int | None, int | None]:
    """``(data.window_bp, data.window_stride_bp)`` of a run's ``data`` config; ``(None, None)``: windowing off."""
    window_bp, stride_bp = data_cfg.get("window_bp"), data_cfg.get("window_stride_bp")
    # Run folders saved before the rename hold data.window.size / data.window.stride; reading them
    # here keeps an old run predicting exactly as it did (the CLI refuses the old keys as overrides).
    old = data_cfg.get("window") or {}
    return (window_bp if window_bp is not None else old.get("size"), stride_bp if stride_bp is not None else old.get("stride"))


def predict_values(
    run: Run,
    records: SequenceRecords,
    batch_size: int = 64,
    tokens: Sequence[np.ndarray] | None = None,
    aggregate: str | None = None,
    rc_average: bool | None = None,
    batch_tokens: int | None = None,
    bf16: bool = False,
) -> np.ndarray:
    """Per-sequence probabilities ``(N,)`` (binary: of the positive class), ``(N, C)``, or values ``(N,)``.

    Args:
        run: the trained run.
        records: the sequences (errors name their file and line).
        batch_size: sequences (windows) per forward pass.
        tokens: pre-tokenised records (only used without windowing and RC averaging).
        aggregate: window aggregation (default: the run's ``predict.aggregate``).
        rc_average: also score reverse complements and average (default: the run's ``predict.rc_average``).
        batch_tokens: batch by a token budget instead of ``batch_size`` (see `batch_logits`).
        bf16: bfloat16 autocast (see `batch_logits`).
    """
    window = check_window(*window_setting(run.cfg.data), run.tokenizer)
    how = _setting(run, "aggregate", aggregate) or "mean"
    check_lengths(run.tokenizer, records)  # before windowing, so messages name whole records
    strands = [records]
    if _setting(run, "rc_average", rc_average):
        alphabet = run.tokenizer.alphabet
        if alphabet.complement is None:
            raise BiolmError(f"predict.rc_average: {alphabet.name} sequences have no reverse complement; set it to false")
        reverse = [alphabet.reverse_complement(s) for s in records.sequences]
        strands.append(SequenceRecords(records.source, records.ids, reverse, None, records.lines, records.line_word))
    per_strand = []
    for strand in strands:
        if window is None:
            strand_tokens = tokens if (tokens is not None and len(strands) == 1) else tokenize_records(run.tokenizer, strand, run.max_tokens)
            per_strand.append(run.objective.activation(batch_logits(run, strand_tokens, batch_size, batch_tokens, bf16)).numpy())
            continue
        windows = split_into_windows(strand, *window)
        window_tokens = tokenize_records(run.tokenizer, windows.records, run.max_tokens)
        values = run.objective.activation(batch_logits(run, window_tokens, batch_size, batch_tokens, bf16)).numpy()
        per_strand.append(aggregate_windows(values, windows.owner, windows.length_bp, windows.n_sequences, how))
    return np.mean(per_strand, axis=0).astype(np.float32)


def predict_records(
    run: Run,
    records: SequenceRecords,
    batch_size: int = 64,
    tokens: Sequence[np.ndarray] | None = None,
    aggregate: str | None = None,
    rc_average: bool | None = None,
    batch_tokens: int | None = None,
    bf16: bool = False,
) -> pd.DataFrame:
    """Predict every record of a file-backed table (see `predict_values` for the options).

    Per-base objectives make their own table, batched by ``batch_size`` in float32 (``batch_tokens``
    and ``bf16`` are for sequence-level outputs).
    """
    objective = run.objective
    if not objective.per_sequence:  # per-base objectives make their own table from the same run
        return objective.predict_table(run, records, batch_size, tokens, aggregate, rc_average)
    return objective.to_frame(records.ids, predict_values(run, records, batch_size, tokens, aggregate, rc_average, batch_tokens, bf16))


def predict(
    run: Run | str | Path,
    sequences: Sequence[str],
    ids: Sequence[str] | None = None,
    batch_size: int = 64,
    aggregate: str | None = None,
    rc_average: bool | None = None,
    batch_tokens: int | None = None,
) -> pd.DataFrame:
    """Predict raw sequences with a trained run.

    Args:
        run: a loaded `Run` or a run folder.
        sequences: nucleotide strings (any case; the run's tokenizer policy applies to other letters).
        ids: optional ids (default ``seq0``, ``seq1``, ...).
        batch_size: sequences per forward pass.
        aggregate: window aggregation for long inputs (default: the run's).
        rc_average: average with the reverse complement (default: the run's).
        batch_tokens: batch by a token budget instead of ``batch_size`` (see `batch_logits`).

    Returns:
        One row per sequence: ``id``, ``prob_<class>`` columns (classification) and ``prediction`` (binary runs: the
        positive class at or above the run's decision threshold), and ``call`` for binary runs with risk bands
        (`biolm.tasks.decision`).
    """
    if not isinstance(run, Run):
        run = load_run(run)
    ids = list(ids) if ids is not None else [f"seq{i}" for i in range(len(sequences))]
    if len(ids) != len(sequences):
        raise BiolmError(f"ids: {len(ids)} ids for {len(sequences)} sequences")
    records = SequenceRecords("sequences", ids, list(sequences), None, list(range(len(sequences))), "index")
    return predict_records(run, records, batch_size, aggregate=aggregate, rc_average=rc_average, batch_tokens=batch_tokens)
