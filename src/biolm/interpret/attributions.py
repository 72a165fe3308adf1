"""Per-base attributions of a sequence-level run: which bases a prediction rests on.

In: a loaded `Run` (any trunk, any tokenizer, a sequence-level task) and `SequenceRecords`.
Out: `Attributions`, one ``(L_i,)`` float32 score per base of each normalised sequence (positive
where the base pushes the explained output up), saved as ``attributions.npz`` + ``attributions.json``
+ ``summary.csv`` (`write_attributions` adds logos and ``report.md``).

The explained output is chosen by the run's objective (`SequenceObjective.explained`): binary, the
positive class's logit; multiclass and multilabel, the logit of ``target`` (a class name) or, with
``target=None``, of each sequence's highest-scoring class; regression, the predicted value on the
label scale (``logit * std + mean``, as ``biolm predict`` reports it; scores are scaled by ``std``).

Windows and strands, so the explained number is the one ``biolm predict`` computes:

- A run trained with ``data.window_bp`` predicts long inputs window by window; attributions explain
  one window at a time, so a sequence longer than ``window_bp`` is refused (cut the input into
  windows of that size first). Every sequence must also fit the model whole (``run.max_tokens``).
- With ``predict.rc_average`` the reverse complement is attributed too: the explained output is the
  mean of the two strands' outputs, and the scores (and ISM's hypothetical matrix) are the mean of
  the forward scores and the reverse complement's scores read back onto the forward strand (reversed;
  hypothetical columns also complemented). For regression this is exactly predict's value; for
  classification predict averages the two strands' probabilities, so it is the mean logit.

Methods:

- ``ism``: in-silico mutagenesis through the model. Every base is replaced by each other letter of the
  alphabet (its letters without the unknown one: A, C, G, T for DNA), mutants are built and scored
  ``batch_size`` at a time, and ``delta[i, b]`` is the output change (0 at the reference letter).
  ``hypothetical = delta - delta.mean(axis=1)`` (``(L, A)``, what TF-MoDISco calls hypothetical
  contributions) and a base's score is its reference letter's entry, ``-mean_b delta[i, b]``. For DNA
  that is 3 L forward passes per sequence (A - 1 per base for an alphabet of A letters; A at an
  unknown letter); exact for any model, no baseline.
- ``saliency``: gradient x input at the token-embedding layer (Captum ``LayerGradientXActivation``;
  Shrikumar et al. 2016, arXiv:1605.01713), summed over the embedding dimension.
- ``integrated_gradients``: Captum ``LayerIntegratedGradients`` at the token-embedding layer,
  ``steps`` Riemann steps from the baseline (Sundararajan et al. 2017, ICML), summed over the
  embedding dimension; with ``baseline="shuffle"`` averaged over ``n_baselines`` shuffles. The mean
  absolute convergence delta (scores' sum minus the output difference) is recorded
  (``convergence_delta``).
- ``deeplift_shap``: Captum ``DeepLiftShap`` over ``n_baselines`` baselines (Lundberg & Lee 2017,
  NeurIPS; Shrikumar et al. 2017, ICML), applied to the token-embedding layer's output (Captum's
  ``LayerDeepLiftShap`` needs float model inputs, and biolm's models read token ids). Captum applies
  the DeepLIFT rescale rule to non-linearities that are modules (``nn.ReLU``, ``nn.Sigmoid``, ...);
  functional ones (the GELU and softmax inside attention, max pooling in heads) get plain gradients,
  so the scores sum to the output difference only approximately; the mean absolute convergence delta
  is recorded (``convergence_delta``). The one-hot CNN's blocks use module ReLU and max pooling.

The token-embedding layer is the trunk's ``token_embedding`` module when it declares one (the
one-hot CNN), else its first ``nn.Embedding``; when LoRA (peft) wraps that embedding, the wrapper,
whose output includes the adapter's delta. Token scores become base scores through the tokenizer's
geometry (`biolm.tokenizers.geometry.base_scores`: a token's score is shared evenly among its
bases, so overlapping k-mers each give a share to a base, and a BPE token's score is spread over its
run of bases); special tokens' scores are dropped (their share is reported).

Baselines (recorded in the output): ``shuffle``, each sequence's letters shuffled (seeded;
mononucleotide composition kept) and encoded again; when that changes the token count (BPE, where
letters that move can merge differently), the non-special token ids are shuffled instead. ``N``: every non-special
token replaced by the unknown token (the ``N`` token of a char tokenizer, ``[UNK]`` otherwise; one
baseline, recorded as ``n_baselines=1``). On the one-hot CNN, ``N`` is the one-hot of the N channel,
not an all-zero input.

Captum rather than tangermeme: tangermeme's attribution functions take a one-hot ``(N, 4, L)`` input,
while biolm's transformer and Hyena trunks read token ids through an embedding; Captum's layer
methods attribute at that embedding for any ``nn.Module``, which covers every trunk and tokenizer.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from biolm.data.datasets import Collator, tokenize_records
from biolm.data.io import SequenceRecords
from biolm.errors import BiolmError, require_extra
from biolm.interpret.outputs import Attributions
from biolm.prediction import batch_logits, window_setting
from biolm.tokenizers.geometry import base_scores

if TYPE_CHECKING:
    from biolm.runs import Run

log = logging.getLogger(__name__)

METHODS = ("ism", "saliency", "integrated_gradients", "deeplift_shap")
BASELINES = ("shuffle", "N")


def token_embedding_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the per-token input representation ``(B, L, D)`` (see the module docstring).

    Raises:
        BiolmError: the model declares no ``token_embedding`` and has no ``nn.Embedding``.
    """
    for module in model.modules():
        declared = getattr(module, "token_embedding", None)
        if isinstance(declared, nn.Module):
            return declared
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            if name.endswith(".base_layer"):  # a peft (LoRA) wrapper: its output includes the adapter's delta
                return model.get_submodule(name.rsplit(".", 1)[0])
            return module
    raise BiolmError(f"{type(model).__name__} has no token embedding to attribute at (declare a token_embedding module)")


def _shuffled(tokenizer, sequence: str, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shuffled baseline of one sequence with the same token count (see the module docstring)."""
    letters = np.array(list(sequence))
    candidate = tokenizer.encode("".join(rng.permutation(letters)))
    if len(candidate) == len(ids):
        return candidate
    special = np.isin(ids, tokenizer.special_ids)  # BPE: shuffle the token ids, keep the specials in place
    out = ids.copy()
    out[~special] = rng.permutation(ids[~special])
    return out


def _unknown_baseline(tokenizer, ids: np.ndarray) -> np.ndarray:
    """Every non-special token replaced by the unknown letter's token (char) or ``[UNK]``."""
    unknown = tokenizer.vocab.get(tokenizer.alphabet.unknown, tokenizer.unk_id)
    if unknown is None:
        raise BiolmError(f"baseline=N: the {tokenizer.kind} tokenizer has neither an N token nor [UNK]; use baseline=shuffle")
    out = ids.copy()
    out[~np.isin(ids, tokenizer.special_ids)] = unknown
    return out


def _baseline_batch(tokenizer, collate, sequences, tokens, pick, baseline: str, rng) -> torch.Tensor:
    """``(B, L)`` baseline ids of the sequences ``pick``, padded like their batch."""
    rows = [_shuffled(tokenizer, sequences[i], tokens[i], rng) if baseline == "shuffle" else _unknown_baseline(tokenizer, tokens[i]) for i in pick]
    return collate([(row, None, 0) for row in rows])["input_ids"]


def _gradient_scores(run, tokens, columns, method, baseline, n_baselines, steps, seed, batch_size, sequences) -> tuple[list[np.ndarray], list[float]]:
    """Token-level scores ``(n_tokens,)`` per sequence from a Captum layer method, and the per-sequence |convergence delta|."""
    require_extra("analysis", "captum")
    from captum.attr import DeepLiftShap, LayerGradientXActivation, LayerIntegratedGradients

    model = run.model
    layer = token_embedding_layer(model)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L) ids -> (B, C) logits
        return model(ids, mask).logits

    tokenizer, rng = run.tokenizer, np.random.default_rng(seed)
    collate = Collator(tokenizer.pad_id)
    device = next(model.parameters()).device
    out: list[np.ndarray] = [np.zeros(0)] * len(tokens)
    deltas: list[float] = []
    draws = n_baselines if baseline == "shuffle" else 1
    # integrated gradients runs `steps` forwards per sequence in internal batches of batch_size
    per_batch = {"saliency": batch_size, "integrated_gradients": max(1, batch_size // max(1, steps // 8)), "deeplift_shap": 1}[method]
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for start in range(0, len(order), per_batch):
        pick = order[start : start + per_batch]
        batch = collate([(tokens[i], None, int(i)) for i in pick])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        target = [columns[i] for i in pick]

        def baselines_for(draw_rng: np.random.Generator, pick: np.ndarray = pick) -> torch.Tensor:
            return _baseline_batch(tokenizer, collate, sequences, tokens, pick, baseline, draw_rng).to(device)

        if method == "saliency":
            attr = LayerGradientXActivation(forward, layer).attribute(ids, additional_forward_args=(mask,), target=target)
        elif method == "integrated_gradients":
            explainer, attr = LayerIntegratedGradients(forward, layer), 0
            for _ in range(draws):
                one, delta = explainer.attribute(ids, baselines=baselines_for(rng), additional_forward_args=(mask,), target=target, n_steps=steps,
                                                 internal_batch_size=max(batch_size, len(pick)), return_convergence_delta=True)
                attr = attr + one / draws
                deltas.extend(delta.detach().abs().cpu().tolist())
        else:  # deeplift_shap: one sequence against a distribution of its baselines, at the embedding's output
            refs = torch.cat([baselines_for(rng) for _ in range(max(2, draws))])  # (n_b, L); Captum needs >= 2 (N: two equal ones)
            embedded = _layer_output(model, layer, ids, mask)  # (1, L, D)
            reference = _layer_output(model, layer, refs, mask.expand(len(refs), -1))  # (n_b, L, D)
            with warnings.catch_warnings():  # Captum announces its temporary hooks on every call
                warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
                attr, delta = DeepLiftShap(_FromEmbedding(model, layer)).attribute(
                    embedded, baselines=reference, additional_forward_args=(ids, mask), target=target, return_convergence_delta=True
                )
            deltas.append(float(delta.detach().abs().mean()))
        summed = attr.detach().float().sum(dim=-1).cpu().numpy()  # (B, L, D) -> (B, L)
        for row, i in enumerate(pick):
            out[i] = summed[row, : len(tokens[i])]
    return out, deltas


@torch.no_grad()
def _layer_output(model: nn.Module, layer: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What ``layer`` outputs when ``model`` reads ``ids``: ``(B, L, D)``."""
    seen = []

    def keep(module, args, output):
        seen.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        model(ids, mask)
    finally:
        handle.remove()
    return seen[0].detach()


class _FromEmbedding(nn.Module):
    """``(B, L, D)`` token-embedding output (+ ids and mask) -> ``(B, C)`` logits.

    DeepLIFT needs a float input; the ids still run through the model (positions, masks), but the
    embedding layer's output is replaced by ``embedded``.
    """

    def __init__(self, model: nn.Module, layer: nn.Module):
        super().__init__()
        self.model, self.layer = model, layer

    def forward(self, embedded: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        def replace(module, args, output):
            return embedded

        handle = self.layer.register_forward_hook(replace)
        try:
            return self.model(input_ids, attention_mask).logits
        finally:
            handle.remove()


def _ism(run, names: list[str], sequences: list[str], reference: np.ndarray, columns: list[int], batch_size: int
         ) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Per-base scores and ``(L, A)`` hypothetical contributions by in-silico mutagenesis (``reference``: ``(N,)`` unmutated outputs)."""
    alphabet, tokenizer, limit = run.tokenizer.alphabet, run.tokenizer, run.max_tokens
    letters = alphabet.letters.replace(alphabet.unknown, "")
    letter_array = np.array(list(letters))
    scores, hypothetical = [], []
    for name, sequence, ref_value, column in zip(names, sequences, reference, columns):
        bases = np.array(list(sequence))
        rows = np.repeat(np.arange(len(sequence)), len(letters))  # (L * A,) position of each candidate mutant
        cols = np.tile(np.arange(len(letters)), len(sequence))  # (L * A,) its new letter
        keep = letter_array[cols] != bases[rows]
        rows, cols = rows[keep], cols[keep]
        values = np.empty(len(rows))
        for start in range(0, len(rows), batch_size):  # mutants are built and scored a batch at a time
            chunk = range(start, min(start + batch_size, len(rows)))
            mutants = [sequence[: rows[k]] + letters[cols[k]] + sequence[rows[k] + 1 :] for k in chunk]
            tokens = tokenizer.encode_batch(mutants)
            over = [k for k, t in zip(chunk, tokens) if limit is not None and len(t) > limit]
            if over:
                k = over[0]
                raise BiolmError(f"{name}: the mutant {sequence[rows[k]]}>{letters[cols[k]]} at 0-based position {rows[k]} is "
                                 f"{len(tokens[k - start])} tokens, the model reads at most {limit}; method=ism needs every single-letter "
                                 "mutant to fit: shorten the sequence")
            values[start : start + len(mutants)] = batch_logits(run, tokens, batch_size)[:, column].double().numpy()
        delta = np.zeros((len(sequence), len(letters)))  # (L, A), 0 at the reference letter
        delta[rows, cols] = values - float(ref_value)
        hypothetical.append((delta - delta.mean(axis=1, keepdims=True)).astype(np.float32))
        scores.append((-delta.mean(axis=1)).astype(np.float32))
    return scores, hypothetical, letters


def _token_to_base(tokenizer, sequences: list[str], token_scores: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """Token scores -> per-base scores, and each sequence's share of |score| on special tokens."""
    scores, special = [], []
    for sequence, ts in zip(sequences, token_scores):
        spans = tokenizer.token_spans(sequence)
        scores.append(base_scores(spans, ts, len(sequence)).astype(np.float64))
        real = spans[:, 1] > spans[:, 0]
        total = np.abs(ts).sum()
        special.append(float(np.abs(ts[~real]).sum() / total) if total > 0 else 0.0)
    return scores, special


def _check_fits(run, records: SequenceRecords, sequences: list[str], tokens: list[np.ndarray], strand: str) -> None:
    """Refuse sequences longer than the run's window or than the model reads (naming the record)."""
    window_bp, _ = window_setting(run.cfg.get("data") or {})
    for i, sequence in enumerate(sequences):
        if window_bp is not None and len(sequence) > window_bp:
            raise BiolmError(
                f"{records.where(i)} ({records.ids[i]}) is {len(sequence)} bp; this run predicts windows of data.window_bp={window_bp} bp"
                f" and attributions explain one window: cut the input into windows of {window_bp} bp first"
            )
        limit = run.max_tokens
        if limit is not None and len(tokens[i]) > limit:
            raise BiolmError(
                f"{records.where(i)} ({records.ids[i]}){strand} is {len(tokens[i])} tokens, the model reads at most {limit};"
                " attributions explain whole sequences: cut long inputs into windows first"
            )


def attribute(
    run: Run,
    records: SequenceRecords,
    method: str = "integrated_gradients",
    baseline: str = "shuffle",
    n_baselines: int = 8,
    steps: int = 32,
    target: str | None = None,
    batch_size: int = 128,
    seed: int = 0,
) -> Attributions:
    """Per-base attributions of a sequence-level run (see the module docstring for each method).

    Args:
        run: a loaded `Run` of a sequence-level task.
        records: the sequences; each must fit the model whole (at most ``run.max_tokens`` tokens) and,
            for a windowed run, be at most ``data.window_bp`` bases.
        method: one of `METHODS`.
        baseline: ``shuffle`` or ``N`` (gradient methods; ``ism`` and ``saliency`` need none).
        n_baselines: shuffled baselines averaged (integrated_gradients) or used as the reference
            distribution (deeplift_shap, at least 2); ``N`` is one baseline.
        steps: integration steps of integrated_gradients.
        target: the class to explain (None: positive class / each sequence's top class).
        batch_size: sequences (or mutants) per forward pass.
        seed: seeds the shuffles.

    Returns:
        `Attributions` in input order.

    Raises:
        BiolmError: an unknown method or baseline, a parameter out of range, a per-base (token
            classification) run, a sequence longer than the model or the run's window reads, or a
            bad letter (naming the record).
    """
    if method not in METHODS:
        raise BiolmError(f"method={method!r}: unknown (accepted: {', '.join(METHODS)})")
    if baseline not in BASELINES:
        raise BiolmError(f"baseline={baseline!r}: unknown (accepted: {', '.join(BASELINES)})")
    if not run.objective.per_sequence:
        raise BiolmError("interpret explains sequence-level runs (binary, multiclass, multilabel, regression); this run predicts per base")
    if min(n_baselines, steps, batch_size) < 1:
        raise BiolmError(f"n_baselines={n_baselines}, steps={steps}, batch_size={batch_size}: each must be at least 1")
    tokenizer, alphabet = run.tokenizer, run.tokenizer.alphabet
    tokens = tokenize_records(tokenizer, records, None)
    sequences = alphabet.normalize(records.sequences, tokenizer.invalid)
    _check_fits(run, records, sequences, tokens, "")
    strands = [(sequences, tokens)]
    rc_average = bool((run.cfg.get("predict") or {}).get("rc_average"))
    if rc_average:
        if alphabet.complement is None:
            raise BiolmError(f"predict.rc_average: {alphabet.name} sequences have no reverse complement; set it to false")
        reverse = [alphabet.reverse_complement(s) for s in sequences]
        reverse_tokens = tokenize_records(tokenizer, SequenceRecords(records.source, records.ids, reverse, None, records.lines, records.line_word), None)
        _check_fits(run, records, reverse, reverse_tokens, " (reverse complement)")
        strands.append((reverse, reverse_tokens))
    run.model.eval()
    logits = [batch_logits(run, strand_tokens, batch_size) for _, strand_tokens in strands]  # each (N, C)
    probabilities = torch.stack([run.objective.activation(strand_logits) for strand_logits in logits]).mean(dim=0)  # what predict reports
    columns, names, scale, offset = run.objective.explained(torch.stack(logits).mean(dim=0), target, probabilities)
    rows, picked = torch.arange(len(tokens)), torch.tensor(columns, dtype=torch.long)
    raw = [strand_logits[rows, picked].double().numpy() for strand_logits in logits]  # each (N,)
    output = (np.mean(raw, axis=0) * scale + offset).astype(np.float32)
    letters = alphabet.letters.replace(alphabet.unknown, "")
    settings: dict = {"run": str(Path(run.path).resolve()), "target": target, "batch_size": batch_size, "rc_average": rc_average}

    per_strand, hypothetical_per_strand, deltas, special = [], [], [], []
    for strand, (strand_sequences, strand_tokens) in enumerate(strands):
        if method == "ism":
            where = [f"{records.where(i)} ({records.ids[i]}){' (reverse complement)' if strand else ''}" for i in range(len(records))]
            scores, hypothetical, letters = _ism(run, where, strand_sequences, raw[strand], columns, batch_size)
            hypothetical_per_strand.append(hypothetical)
        else:
            token_scores, strand_deltas = _gradient_scores(run, strand_tokens, columns, method, baseline, n_baselines, steps, seed, batch_size, strand_sequences)
            scores, strand_special = _token_to_base(tokenizer, strand_sequences, token_scores)
            deltas += strand_deltas
            special += strand_special
        per_strand.append(scores)
    if rc_average:  # read the reverse strand's scores back onto the forward strand and average
        per_strand[1] = [s[::-1] for s in per_strand[1]]
        if hypothetical_per_strand:
            complement = [letters.index(alphabet.reverse_complement(b)) for b in letters]  # forward letter -> its reverse-strand column
            hypothetical_per_strand[1] = [h[::-1][:, complement] for h in hypothetical_per_strand[1]]
    scores = [(np.mean(pair, axis=0) * scale).astype(np.float32) for pair in zip(*per_strand)]
    hypothetical = [(np.mean(pair, axis=0) * scale).astype(np.float32) for pair in zip(*hypothetical_per_strand)] if method == "ism" else None
    if method != "ism":
        # baselines actually used: N is one (DeepLIFT-SHAP reads it twice), DeepLIFT-SHAP draws at least 2 shuffles
        effective = 1 if baseline == "N" else max(2, n_baselines) if method == "deeplift_shap" else n_baselines
        settings.update({"n_baselines": effective if method != "saliency" else None, "steps": steps if method == "integrated_gradients" else None,
                         "seed": seed, "convergence_delta": float(np.mean(deltas)) * scale if deltas else None,
                         "special_token_share": float(np.mean(special)) if special else 0.0})
    used_baseline = baseline if method in ("integrated_gradients", "deeplift_shap") else None
    return Attributions(list(records.ids), sequences, scores, output, names, method, used_baseline, letters, hypothetical, settings)
