"""Variant effect scores: zero-shot from language models, or from a fine-tuned classifier.

In: a run folder (pretraining run: ``mlm``/``clm``; fine-tuned run: binary or regression) or a public
checkpoint loaded with `biolm.runs.load_pretrained_language_model` (zero-shot, no run), variants
(``chrom, pos`` 1-based, ``ref, alt``) and a `Reference`. Windows of ``window_bp`` bases are
built around each variant (`variant_windows`), tokenized as ``(batch, tokens)`` ids and scored
in batches of ``batch_size`` windows. Out: one score per variant (``float``, NaN when a method
cannot score it, with the reason in ``note``):

- ``clm_llr`` (causal LM): ``log P(alt window) - log P(ref window)``, each the sum over tokens of
  ``log_softmax(logits[:, t - 1])[ids[:, t]]``. Negative: the alternative is less likely.
- ``mlm_masked_marginal`` (masked LM, substitutions only): the tokens overlapping the variant's
  bases are masked (one k-mer span for overlapping k-mers, one token per base for characters),
  and the score is ``sum log p(alt tokens) - sum log p(ref tokens)`` over those masked tokens.
  With char and k-mer tokens the masked ref and alt windows are the same input, so one forward
  pass gives both; BPE tokens (DNABERT-2) may be cut differently around the two alleles, so each
  window is masked over its own tokens and scored in its own pass. ``alt == ref`` scores 0.
- ``supervised_diff`` (fine-tuned run): ``f(alt window) - f(ref window)``, ``f`` the positive
  class probability (binary) or the value (regression), from `biolm.prediction.predict`.

``rc_average`` averages each score over the plus-strand and the reverse-complement windows.

Short contigs: a variant on a contig (FASTA record) shorter than ``window_bp`` is scored with the
longest window the contig holds; the ``window_bp`` column gives the window used per variant and
``note`` says it was shortened. A contig too short even for the variant's alleles gives NaN and a
note. The other variants are scored as without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolm.errors import BiolmError
from biolm.runs import LanguageModelRun, Run, load_language_model_run, load_run
from biolm.variants.reference import Reference
from biolm.variants.sequences import variant_windows, window_width

log = logging.getLogger(__name__)

METHODS = {"clm": "clm_llr", "mlm": "mlm_masked_marginal", "supervised": "supervised_diff"}


def load_scoring_run(run: Run | LanguageModelRun | str | Path) -> Run | LanguageModelRun:
    """A fine-tuned run (it has ``labels.json``) or a pretraining run, loaded."""
    if isinstance(run, (Run, LanguageModelRun)):
        return run
    return load_run(run) if (Path(run) / "labels.json").exists() else load_language_model_run(run)


def method_of(run: Run | LanguageModelRun) -> str:
    """``clm_llr``, ``mlm_masked_marginal`` or ``supervised_diff``."""
    return METHODS[run.objective] if isinstance(run, LanguageModelRun) else METHODS["supervised"]


def as_variant_table(variants) -> pd.DataFrame:
    """A DataFrame with ``chrom, pos, ref, alt`` from a DataFrame, a list of tuples/dicts."""
    if isinstance(variants, pd.DataFrame):
        frame = variants.copy()
    else:
        rows = list(variants)
        if rows and isinstance(rows[0], dict):
            frame = pd.DataFrame(rows)
        else:
            frame = pd.DataFrame([tuple(r)[:4] for r in rows], columns=["chrom", "pos", "ref", "alt"])
    missing = [c for c in ("chrom", "pos", "ref", "alt") if c not in frame.columns]
    if missing:
        raise BiolmError(f"variants: missing column(s) {', '.join(missing)} (need chrom, pos (1-based), ref, alt)")
    frame["chrom"] = frame["chrom"].astype(str)
    try:
        frame["pos"] = frame["pos"].astype(np.int64)
    except (TypeError, ValueError):
        raise BiolmError("variants: pos must be integers (1-based positions)") from None
    frame["ref"] = frame["ref"].astype(str).str.upper()
    frame["alt"] = frame["alt"].astype(str).str.upper()
    bad = ~(frame["ref"].str.fullmatch("[ACGTN]+") & frame["alt"].str.fullmatch("[ACGTN]+"))
    if bad.any():
        row = frame[bad].iloc[0]
        raise BiolmError(f"variants: row {int(np.flatnonzero(bad)[0]) + 1}: alleles {row.ref}>{row.alt} are not A/C/G/T/N strings")
    return frame.reset_index(drop=True)


def _padded(ids: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """list of (tokens,) -> (batch, max_tokens) ids and bool mask."""
    width = max(len(x) for x in ids)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.int64))
    return out, out != pad_id


@torch.inference_mode()
def clm_log_likelihood(run: LanguageModelRun, sequences: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """``(n,)`` summed next-token log-likelihoods (natural log) of each sequence under a causal LM."""
    ids = run.tokenizer.encode_batch(list(sequences))
    _check_length(run, ids)
    out = np.empty(len(ids), dtype=np.float64)
    for start in range(0, len(ids), batch_size):
        input_ids, mask = _padded(ids[start : start + batch_size], run.tokenizer.pad_id)
        logp = torch.log_softmax(run.model(input_ids, mask).logits.float(), dim=-1)  # (B, T, V)
        target = input_ids[:, 1:]
        token_lp = logp[:, :-1].gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        out[start : start + len(input_ids)] = (token_lp * mask[:, 1:]).sum(dim=1).double().numpy()
    return out


def _token_span(tokenizer, offset: int, length: int, window: str | int) -> tuple[int, int]:
    """Token indices ``[lo, hi)`` (specials included) whose bases overlap ``[offset, offset+length)`` of ``window``.

    ``window`` is the window sequence (or, for char and k-mer tokenizers, its length in bases); the
    tokenizer's geometry decides which tokens hold those bases (`DnaTokenizer.tokens_covering`).
    """
    return tokenizer.tokens_covering(window, offset, offset + length)


def _masked_inputs(tokenizer, ids: Sequence[np.ndarray], windows: Sequence[str], offsets: np.ndarray, lengths: np.ndarray):
    """``(B, T)`` ids, their ``(B, T)`` attention mask and the ``(B, T)`` bool mask of the tokens over each variant's bases."""
    input_ids, mask = _padded(ids, tokenizer.pad_id)
    picked = torch.zeros_like(mask)
    for row, (window, offset, length) in enumerate(zip(windows, offsets, lengths)):
        lo, hi = _token_span(tokenizer, int(offset), int(length), window)
        picked[row, lo:hi] = True
    return input_ids, mask, picked


def _masked_log_probs(run: LanguageModelRun, input_ids: torch.Tensor, mask: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """``(N, V)`` log-probabilities at the N True cells of ``picked`` (row-major), those tokens masked."""
    masked = input_ids.masked_fill(picked, run.tokenizer.mask_id)
    return torch.log_softmax(run.model(masked, mask, positions=picked).logits.float(), dim=-1)


def _row_sums(values: torch.Tensor, picked: torch.Tensor) -> np.ndarray:
    """``(N,)`` values at the True cells of ``(B, T)`` ``picked`` -> ``(B,)`` per-row float64 sums."""
    return torch.zeros(picked.shape[0], dtype=torch.float64).index_add_(0, picked.nonzero()[:, 0], values.double()).numpy()


@torch.inference_mode()
def mlm_masked_marginal(run: LanguageModelRun, ref: Sequence[str], alt: Sequence[str], offsets: np.ndarray, lengths: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``(n,)`` masked-marginal scores of equal-length substitutions (see module docstring)."""
    tokenizer = run.tokenizer
    ref_ids = tokenizer.encode_batch(list(ref))
    alt_ids = tokenizer.encode_batch(list(alt))
    _check_length(run, ref_ids + alt_ids)
    out = np.empty(len(ref_ids), dtype=np.float64)
    for start in range(0, len(ref_ids), batch_size):
        stop = min(start + batch_size, len(ref_ids))
        ref_in, ref_mask, ref_picked = _masked_inputs(tokenizer, ref_ids[start:stop], ref[start:stop], offsets[start:stop], lengths[start:stop])
        alt_in, alt_mask, alt_picked = _masked_inputs(tokenizer, alt_ids[start:stop], alt[start:stop], offsets[start:stop], lengths[start:stop])
        same_input = (
            ref_in.shape == alt_in.shape
            and torch.equal(ref_picked, alt_picked)
            and torch.equal(ref_in.masked_fill(ref_picked, 0), alt_in.masked_fill(alt_picked, 0))
        )
        if same_input:
            # the alleles change only the masked tokens (always for char and k-mer tokens): one forward pass serves both
            logp = _masked_log_probs(run, ref_in, ref_mask, ref_picked)
            cells = torch.arange(logp.shape[0])
            out[start:stop] = _row_sums(logp[cells, alt_in[ref_picked]] - logp[cells, ref_in[ref_picked]], ref_picked)
        else:
            # BPE: the allele re-segments the window, so each window is masked and scored on its own tokens
            sums = []
            for input_ids, mask, picked in ((alt_in, alt_mask, alt_picked), (ref_in, ref_mask, ref_picked)):
                logp = _masked_log_probs(run, input_ids, mask, picked)
                sums.append(_row_sums(logp[torch.arange(logp.shape[0]), input_ids[picked]], picked))
            out[start:stop] = sums[0] - sums[1]
    return out


def _check_length(run, ids) -> None:
    limit = getattr(run.model, "max_tokens", None)
    longest = max((len(x) for x in ids), default=0)
    if limit and longest > limit:
        raise BiolmError(f"window_bp: {longest} tokens per window exceed the model's limit of {limit}; lower window_bp=")


def _strand_scores(run, windows, method: str, batch_size: int) -> tuple[np.ndarray, list[str]]:
    n = len(windows.ref)
    notes = [""] * n
    if method == "clm_llr":
        ll = clm_log_likelihood(run, windows.alt + windows.ref, batch_size)
        return ll[:n] - ll[n:], notes
    if method == "mlm_masked_marginal":
        scores = np.full(n, np.nan)
        subst = np.flatnonzero(windows.ref_len == windows.alt_len)
        for i in set(range(n)) - set(subst.tolist()):
            notes[i] = "indel: masked-marginal scores substitutions only"
        if len(subst):
            scores[subst] = mlm_masked_marginal(
                run, [windows.ref[i] for i in subst], [windows.alt[i] for i in subst], windows.offset[subst], windows.ref_len[subst], batch_size
            )
        return scores, notes
    from biolm.prediction import predict

    objective = run.objective
    if not objective.scores_variant_effects:
        raise BiolmError(f"run: {run.path} is a {objective.name} model; supervised variant scores need a binary or regression run")
    frame = predict(run, windows.alt + windows.ref, batch_size=batch_size)
    values = objective.effect_values(frame)
    return values[:n] - values[n:], notes


def score_variants(
    run: Run | LanguageModelRun | str | Path,
    variants: pd.DataFrame | list[tuple[str, int, str, str]],
    reference: Reference | str | Path,
    window_bp: int = 512,
    batch_size: int = 32,
    strand: str = "+",
    rc_average: bool = False,
    on_ref_mismatch: str = "error",
    aliases: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Score variants with a language model (zero-shot) or a fine-tuned run (supervised).

    Args:
        run: a run folder or a loaded run (pretraining -> zero-shot, fine-tuned -> supervised).
        variants: DataFrame or list of ``(chrom, pos, ref, alt)`` (1-based pos); extra columns are kept.
        reference: `Reference` or a FASTA path.
        window_bp: bases per window, centred on each variant (fewer on a contig shorter than that).
        batch_size: windows per forward pass.
        strand: ``+`` or ``-`` (reverse-complemented windows).
        rc_average: average the score over both strands (``strand`` is then ignored).
        on_ref_mismatch: ``error`` or ``skip`` (NaN score, ``note`` says why).
        aliases: contig aliases when ``reference`` is a path.

    Returns:
        The variants with ``score``, ``method``, ``model``, ``window_bp`` (the window used: less than
        requested on a contig shorter than it), ``strand``, ``note`` columns.
    """
    loaded = load_scoring_run(run)
    method = method_of(loaded)
    reference = reference if isinstance(reference, Reference) else Reference(reference, aliases)
    frame = as_variant_table(variants)
    window_bp = int(window_bp)
    usable = reference.check_alleles(frame, on_ref_mismatch)
    widths = np.array(
        [window_width(reference, c, p, r, a, window_bp) if ok else window_bp for c, p, r, a, ok in zip(frame.chrom, frame.pos, frame.ref, frame.alt, usable)],
        dtype=np.int64,
    )
    notes = np.array(["" if ok else "ref_mismatch_or_outside_reference" for ok in usable], dtype=object)
    too_short = usable & (widths == 0)
    notes[too_short] = "contig_too_short: its contig cannot hold the variant's windows"
    widths[too_short] = window_bp
    usable &= ~too_short
    shortened = usable & (widths < window_bp)
    notes[shortened] = [f"contig_shorter_than_window: scored with a {w} bp window" for w in widths[shortened]]
    scores = np.full(len(frame), np.nan)
    picked = frame[usable]
    if len(picked):
        strands = ["+", "-"] if rc_average else [strand]
        per_strand = []
        for one in strands:
            windows = variant_windows(picked, reference, window_bp, one)
            values, reasons = _strand_scores(loaded, windows, method, int(batch_size))
            per_strand.append(values)
        scores[usable] = np.mean(per_strand, axis=0)
        rows = np.flatnonzero(usable)
        notes[rows] = [reason or note for reason, note in zip(reasons, notes[rows])]
    frame["score"] = scores
    frame["method"] = method
    frame["model"] = str(loaded.path)
    frame["window_bp"] = widths
    frame["strand"] = "both" if rc_average else strand
    frame["note"] = notes
    log.info("%s: %d of %d variants scored (%s, window %d bp)", loaded.path, int(np.isfinite(scores).sum()), len(frame), method, window_bp)
    if shortened.any():
        log.warning("%d variant(s) on contigs shorter than the %d bp window scored with a shorter window (window_bp column)", int(shortened.sum()), window_bp)
    if too_short.any():
        log.warning("%d variant(s) not scored: their contig is too short for their ref and alt windows (note column)", int(too_short.sum()))
    return frame
