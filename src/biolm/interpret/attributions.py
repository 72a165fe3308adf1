"""Per-base attributions of a sequence-level run: which bases a prediction rests on.

In: a loaded `Run` (any trunk, any tokenizer, a sequence-level task) and `SequenceRecords`.
Out: `Attributions`, one ``(L_i,)`` float32 score per base of each normalised sequence (positive
where the base pushes the explained output up), saved as ``attributions.npz`` + ``summary.csv``.

The explained output is the model's raw output for one column: binary, the positive class's logit;
multiclass and multilabel, the logit of ``target`` (a class name) or, with ``target=None``, of each
sequence's highest-scoring class; regression, the predicted value (in the head's standardised units).

Methods:

- ``ism``: in-silico mutagenesis through the model. Every base is replaced by each other letter of the
  alphabet (A, C, G, T for DNA), the mutants are scored in batches, and ``delta[i, b]`` is the output
  change (0 at the reference letter). ``hypothetical = delta - delta.mean(axis=1)`` (``(L, 4)``, what
  TF-MoDISco calls hypothetical contributions) and a base's score is its reference letter's entry,
  ``-mean_b delta[i, b]``. 3 L forward passes per sequence; exact for any model, no baseline.
- ``saliency``: gradient x input at the token-embedding layer (Captum ``LayerGradientXActivation``;
  Shrikumar et al. 2016, arXiv:1605.01713), summed over the embedding dimension.
- ``integrated_gradients``: Captum ``LayerIntegratedGradients`` at the token-embedding layer,
  ``steps`` Riemann steps from the baseline (Sundararajan et al. 2017, ICML), summed over the
  embedding dimension; with ``baseline="shuffle"`` averaged over ``n_baselines`` shuffles.
- ``deeplift_shap``: Captum ``DeepLiftShap`` over ``n_baselines`` baselines (Lundberg & Lee 2017,
  NeurIPS; Shrikumar et al. 2017, ICML), applied to the token-embedding layer's output (Captum's
  ``LayerDeepLiftShap`` needs float model inputs, and biolm's models read token ids). Captum applies the DeepLIFT rescale rule to
  non-linearities that are modules (``nn.ReLU``, ``nn.Sigmoid``, ...); functional ones (the GELU and
  softmax inside attention, max pooling in heads) get plain gradients, so the scores sum to the output
  difference only approximately; the mean absolute convergence delta is recorded in the settings
  (``convergence_delta``). The one-hot CNN's blocks use module ReLU and max pooling for this reason.

The token-embedding layer is the trunk's ``token_embedding`` module when it declares one (the
one-hot CNN), else its first ``nn.Embedding``. Token scores become base scores through the
tokenizer's geometry (`biolm.tokenizers.geometry.base_scores`: a token's score is shared evenly
among its bases, so overlapping k-mers each give a share to a base, and a BPE token's score is
spread over its run of bases); special tokens' scores are dropped (their share is reported).

Baselines (recorded in the output): ``shuffle``, each sequence's letters shuffled (seeded;
mononucleotide composition kept) and encoded again; a BPE tokenizer's token count changes when
letters move, so there the non-special token ids are shuffled instead. ``N``: every non-special
token replaced by the unknown token (the ``N`` token of a char tokenizer, ``[UNK]`` otherwise).

Captum rather than tangermeme: tangermeme's attribution functions take a one-hot ``(N, 4, L)`` input,
while biolm's transformer and Hyena trunks read token ids through an embedding; Captum's layer
methods attribute at that embedding for any ``nn.Module``, which covers every trunk and tokenizer.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from biolm.atomic import atomic_path
from biolm.data.datasets import Collator, tokenize_records
from biolm.data.io import SequenceRecords
from biolm.errors import BiolmError, require_extra
from biolm.prediction import batch_logits
from biolm.tokenizers.geometry import base_scores

log = logging.getLogger(__name__)

METHODS = ("ism", "saliency", "integrated_gradients", "deeplift_shap")
BASELINES = ("shuffle", "N")


@dataclass
class Attributions:
    """Per-base attributions of N sequences (see the module docstring).

    Attributes:
        ids: sequence ids (N).
        sequences: the normalised sequences (upper case), as the model read them (N).
        scores: ``(L_i,)`` float32 per-base scores, in units of the explained output.
        output: ``(N,)`` the explained output (logit or value) of each sequence.
        target: ``(N,)`` the class explained (the task name for regression).
        method: one of `METHODS`.
        baseline: one of `BASELINES` (None for ``ism``).
        letters: the alphabet letters of ``hypothetical``'s columns.
        hypothetical: ``ism`` only: ``(L_i, len(letters))`` float32 mean-centred mutation effects.
        settings: the method's parameters (steps, n_baselines, seed, special-token share, ...).
    """

    ids: list[str]
    sequences: list[str]
    scores: list[np.ndarray]
    output: np.ndarray
    target: list[str]
    method: str
    baseline: str | None
    letters: str = "ACGT"
    hypothetical: list[np.ndarray] | None = None
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def top_windows(self, window_bp: int) -> np.ndarray:
        """``(N, 2)`` int64 ``[start, end)`` of each sequence's ``window_bp`` window of largest summed score."""
        out = np.zeros((len(self), 2), dtype=np.int64)
        for i, scores in enumerate(self.scores):
            width = min(window_bp, len(scores))
            sums = np.convolve(scores, np.ones(width), mode="valid")  # (L - width + 1,)
            start = int(np.argmax(sums))
            out[i] = (start, start + width)
        return out

    def summary(self, window_bp: int = 10) -> pd.DataFrame:
        """One row per sequence: id, length, target, output, total score and the top window (0-based, half-open)."""
        top = self.top_windows(window_bp)
        return pd.DataFrame({
            "id": self.ids,
            "length_bp": [len(s) for s in self.sequences],
            "target": self.target,
            "output": self.output.astype(float),
            "total_score": [float(s.sum()) for s in self.scores],
            "top_start": top[:, 0],
            "top_end": top[:, 1],
            "top_score": [float(s[a:b].sum()) for s, (a, b) in zip(self.scores, top)],
            "top_sequence": [seq[a:b] for seq, (a, b) in zip(self.sequences, top)],
        })

    def save(self, folder: str | Path, window_bp: int = 10) -> Path:
        """Write ``attributions.npz`` (ragged arrays flattened with ``offsets``), ``attributions.json`` and ``summary.csv``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(s) for s in self.scores], dtype=np.int64)
        arrays = {
            "ids": np.array(self.ids, dtype=str),
            "sequences": np.array(self.sequences, dtype=str),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),  # (N + 1,)
            "scores": np.concatenate(self.scores).astype(np.float32) if len(self) else np.zeros(0, np.float32),
            "output": self.output.astype(np.float32),
            "target": np.array(self.target, dtype=str),
        }
        if self.hypothetical is not None:
            arrays["hypothetical"] = np.concatenate(self.hypothetical).astype(np.float32)  # (sum L, A)
        with atomic_path(folder / "attributions.npz") as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        meta = {"method": self.method, "baseline": self.baseline, "letters": self.letters, "n_sequences": len(self), **self.settings}
        with atomic_path(folder / "attributions.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        with atomic_path(folder / "summary.csv") as tmp:
            self.summary(window_bp).to_csv(tmp, index=False)
        return folder


def load_attributions(folder: str | Path) -> Attributions:
    """Read a folder written by `Attributions.save` (``biolm interpret``).

    Raises:
        BiolmError: the folder has no readable ``attributions.npz`` / ``attributions.json``.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / "attributions.json").read_text())
        data = np.load(folder / "attributions.npz")
        offsets = data["offsets"]
        split = lambda flat: [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]  # noqa: E731
        return Attributions(
            ids=[str(x) for x in data["ids"]],
            sequences=[str(x) for x in data["sequences"]],
            scores=split(data["scores"]),
            output=data["output"],
            target=[str(x) for x in data["target"]],
            method=meta.pop("method"),
            baseline=meta.pop("baseline"),
            letters=meta.pop("letters"),
            hypothetical=split(data["hypothetical"]) if "hypothetical" in data.files else None,
            settings={k: v for k, v in meta.items() if k != "n_sequences"},
        )
    except (OSError, KeyError, ValueError) as err:
        raise BiolmError(f"attributions={folder}: not a folder written by biolm interpret ({err})") from None


def token_embedding_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the per-token input representation ``(B, L, D)`` (see the module docstring).

    Raises:
        BiolmError: the model declares no ``token_embedding`` and has no ``nn.Embedding``.
    """
    for module in model.modules():
        declared = getattr(module, "token_embedding", None)
        if isinstance(declared, nn.Module):
            return declared
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return module
    raise BiolmError(f"{type(model).__name__} has no token embedding to attribute at (declare a token_embedding module)")


def _target_columns(run, logits: torch.Tensor, target: str | None) -> tuple[list[int], list[str]]:
    """The output column explained for each sequence, and its name."""
    objective = run.objective
    if objective.name == "regression":
        return [0] * len(logits), [objective.name] * len(logits)
    classes = list(objective.classes)
    if objective.name == "binary":
        if target is not None and target != classes[1]:
            raise BiolmError(f"target={target!r}: a binary run explains its positive class {classes[1]!r} (pass target=null)")
        return [0] * len(logits), [classes[1]] * len(logits)
    if target is not None:
        if target not in classes:
            raise BiolmError(f"target={target!r}: not a class of this run (accepted: {', '.join(classes)}, or null for each sequence's top class)")
        return [classes.index(target)] * len(logits), [target] * len(logits)
    top = logits.argmax(dim=1).tolist()
    return top, [classes[j] for j in top]


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


def _gradient_scores(run, tokens, columns, method, baseline, n_baselines, steps, seed, batch_size, sequences):
    """Token-level scores ``(n_tokens,)`` per sequence from a Captum layer method."""
    require_extra("analysis", "captum")
    from captum.attr import DeepLiftShap, LayerGradientXActivation, LayerIntegratedGradients

    model = run.model
    layer = token_embedding_layer(model)
    forward = lambda ids, mask: model(ids, mask).logits  # noqa: E731  (B, C)
    explainer = {
        "saliency": LayerGradientXActivation,
        "integrated_gradients": LayerIntegratedGradients,
    }[method](forward, layer) if method != "deeplift_shap" else None
    tokenizer, rng = run.tokenizer, np.random.default_rng(seed)
    collate = Collator(tokenizer.pad_id)
    device = next(model.parameters()).device
    out: list[np.ndarray] = [np.zeros(0)] * len(tokens)
    deltas: list[float] = []
    per_batch = 1 if method == "deeplift_shap" else max(1, batch_size // (1 if method == "saliency" else max(1, steps // 8)))
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for start in range(0, len(order), per_batch):
        pick = order[start : start + per_batch]
        batch = collate([(tokens[i], None, int(i)) for i in pick])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        target = [columns[i] for i in pick]
        draws = n_baselines if baseline == "shuffle" else 1
        baselines_for = lambda draw_rng, pick=pick: _baseline_batch(tokenizer, collate, sequences, tokens, pick, baseline, draw_rng).to(device)  # noqa: E731

        if method == "saliency":
            attr = explainer.attribute(ids, additional_forward_args=(mask,), target=target)
        elif method == "integrated_gradients":
            attr = sum(
                explainer.attribute(ids, baselines=baselines_for(rng), additional_forward_args=(mask,), target=target, n_steps=steps,
                                    internal_batch_size=max(batch_size, len(pick)))
                for _ in range(draws)
            ) / draws
        else:  # deeplift_shap: one sequence against a distribution of its baselines, at the embedding's output
            refs = torch.cat([baselines_for(rng) for _ in range(max(2, draws))])  # (n_b, L)
            embedded = _layer_output(model, layer, ids, mask)  # (1, L, D)
            reference = _layer_output(model, layer, refs, mask.expand(len(refs), -1))  # (n_b, L, D)
            with warnings.catch_warnings():  # Captum announces its temporary hooks on every call
                warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
                attr, delta = DeepLiftShap(_FromEmbedding(model, layer)).attribute(
                    embedded, baselines=reference, additional_forward_args=(ids, mask), target=target, return_convergence_delta=True
                )
            deltas.append(float(delta.abs().mean()))
        summed = attr.detach().float().sum(dim=-1).cpu().numpy()  # (B, L, D) -> (B, L)
        for row, i in enumerate(pick):
            out[i] = summed[row, : len(tokens[i])]
    return out, (float(np.mean(deltas)) if deltas else None)


def _baseline_batch(tokenizer, collate, sequences, tokens, pick, baseline: str, rng) -> torch.Tensor:
    """``(B, L)`` baseline ids of the sequences ``pick``, padded like their batch."""
    rows = [_shuffled(tokenizer, sequences[i], tokens[i], rng) if baseline == "shuffle" else _unknown_baseline(tokenizer, tokens[i]) for i in pick]
    return collate([(row, None, 0) for row in rows])["input_ids"]


@torch.no_grad()
def _layer_output(model: nn.Module, layer: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What ``layer`` outputs when ``model`` reads ``ids``: ``(B, L, D)``."""
    seen = []
    handle = layer.register_forward_hook(lambda module, args, output: seen.append(output))
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
        handle = self.layer.register_forward_hook(lambda module, args, output: embedded)
        try:
            return self.model(input_ids, attention_mask).logits
        finally:
            handle.remove()


def _ism(run, sequences: list[str], columns: list[int], batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Per-base scores and ``(L, A)`` hypothetical contributions by in-silico mutagenesis."""
    alphabet, tokenizer = run.tokenizer.alphabet, run.tokenizer
    letters = alphabet.letters.replace(alphabet.unknown, "")
    scores, hypothetical = [], []
    for sequence, column in zip(sequences, columns):
        mutants, where = [sequence], []
        for i, ref in enumerate(sequence):
            for b, letter in enumerate(letters):
                if letter != ref:
                    mutants.append(sequence[:i] + letter + sequence[i + 1 :])
                    where.append((i, b))
        tokens = tokenizer.encode_batch(mutants)
        values = batch_logits(run, tokens, batch_size)[:, column].double().numpy()  # (1 + n_mutants,)
        delta = np.zeros((len(sequence), len(letters)))  # (L, A), 0 at the reference letter
        rows, cols = np.array(where).T if where else (np.zeros(0, int), np.zeros(0, int))
        delta[rows, cols] = values[1:] - values[0]
        hyp = delta - delta.mean(axis=1, keepdims=True)
        hypothetical.append(hyp.astype(np.float32))
        scores.append((-delta.mean(axis=1)).astype(np.float32))
    return scores, hypothetical, letters


def attribute(
    run,
    records: SequenceRecords,
    method: str = "integrated_gradients",
    baseline: str = "shuffle",
    n_baselines: int = 8,
    steps: int = 32,
    target: str | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> Attributions:
    """Per-base attributions of a sequence-level run (see the module docstring for each method).

    Args:
        run: a loaded `Run` of a sequence-level task.
        records: the sequences; each must fit the model whole (at most ``run.max_tokens`` tokens).
        method: one of `METHODS`.
        baseline: ``shuffle`` or ``N`` (gradient methods; ``ism`` needs none).
        n_baselines: shuffled baselines averaged (integrated_gradients) or used as the reference
            distribution (deeplift_shap, at least 2).
        steps: integration steps of integrated_gradients.
        target: the class to explain (None: positive class / each sequence's top class).
        batch_size: sequences (or mutants) per forward pass.
        seed: seeds the shuffles.

    Returns:
        `Attributions` in input order.

    Raises:
        BiolmError: an unknown method or baseline, a per-base (token classification) run, a
            sequence longer than the model reads, or a bad letter (naming the record).
    """
    if method not in METHODS:
        raise BiolmError(f"method={method!r}: unknown (accepted: {', '.join(METHODS)})")
    if baseline not in BASELINES:
        raise BiolmError(f"baseline={baseline!r}: unknown (accepted: {', '.join(BASELINES)})")
    if not run.objective.per_sequence:
        raise BiolmError("interpret explains sequence-level runs (binary, multiclass, multilabel, regression); this run predicts per base")
    if min(n_baselines, steps) < 1:
        raise BiolmError("n_baselines and steps must be at least 1")
    tokenizer = run.tokenizer
    tokens = tokenize_records(tokenizer, records, None)
    limit = run.max_tokens
    too_long = [i for i, t in enumerate(tokens) if limit is not None and len(t) > limit]
    if too_long:
        i = too_long[0]
        raise BiolmError(
            f"{records.where(i)} ({records.ids[i]}) is {len(tokens[i])} tokens, the model reads at most {limit};"
            " attributions explain whole sequences: cut long inputs into windows first"
        )
    sequences = tokenizer.alphabet.normalize(records.sequences, tokenizer.invalid)
    run.model.eval()
    logits = batch_logits(run, tokens, batch_size)
    columns, names = _target_columns(run, logits, target)
    output = logits[torch.arange(len(tokens)), torch.tensor(columns, dtype=torch.long)].numpy() if len(tokens) else np.zeros(0)
    settings: dict = {"target": target, "batch_size": batch_size}
    if method == "ism":
        scores, hypothetical, letters = _ism(run, sequences, columns, batch_size)
        return Attributions(list(records.ids), sequences, scores, output, names, method, None, letters, hypothetical, settings)
    token_scores, delta = _gradient_scores(run, tokens, columns, method, baseline, n_baselines, steps, seed, batch_size, sequences)
    scores, special = [], []
    for sequence, ts in zip(sequences, token_scores):
        spans = tokenizer.token_spans(sequence)
        scores.append(base_scores(spans, ts, len(sequence)).astype(np.float32))
        real = spans[:, 1] > spans[:, 0]
        total = np.abs(ts).sum()
        special.append(float(np.abs(ts[~real]).sum() / total) if total > 0 else 0.0)
    settings.update({"n_baselines": n_baselines if method != "saliency" else None, "steps": steps if method == "integrated_gradients" else None,
                     "seed": seed, "convergence_delta": delta, "special_token_share": float(np.mean(special)) if special else 0.0})
    return Attributions(list(records.ids), sequences, scores, output, names, method, baseline if method != "saliency" else None,
                        tokenizer.alphabet.letters.replace(tokenizer.alphabet.unknown, ""), None, settings)


def write_attributions(attributions: Attributions, folder: str | Path, window_bp: int = 10, top_k: int = 8, title: str = "") -> Path:
    """Save ``attributions`` (see `Attributions.save`), logos of the ``top_k`` highest-output sequences and ``report.md``.

    Returns:
        The folder, holding attributions.npz/.json, summary.csv, logos/<rank>_<id>.png and report.md.
    """
    from biolm.interpret.logos import plot_attribution

    folder = attributions.save(folder, window_bp)
    summary = attributions.summary(window_bp)
    ranked = np.argsort(-attributions.output, kind="stable")[:top_k]
    lines = [f"# Attributions: {attributions.method}{f' — {title}' if title else ''}", ""]
    baseline = attributions.baseline or "none (mutations)"
    lines += [f"- {len(attributions)} sequences; baseline: {baseline}; explained output: the logit (value) of each sequence's target",
              f"- settings: {json.dumps({k: v for k, v in attributions.settings.items() if v is not None})}",
              f"- top window: the {window_bp} bp window with the largest summed score (summary.csv: top_start, top_end, 0-based, half-open)", ""]
    lines += ["| rank | id | target | output | top window | top sequence |", "|---:|---|---|---:|---|---|"]
    for rank, i in enumerate(ranked, start=1):
        row = summary.iloc[i]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(row.id))[:60]
        png = plot_attribution(attributions.sequences[i], attributions.scores[i], folder / "logos" / f"{rank:02d}_{safe}.png",
                               f"{row.id} | {attributions.method} | {row.target} output {row.output:.3f}", (int(row.top_start), int(row.top_end)))
        lines.append(f"| {rank} | {row.id} | {row.target} | {row.output:.3f} | {row.top_start}-{row.top_end} | `{row.top_sequence}` |")
        lines.append(f"|  | ![{row.id}](logos/{png.name}) |  |  |  |  |")
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return folder
