"""Sequence embeddings from any trunk: a trained run's, or a public checkpoint's (`biolm embed`).

In: an `EmbeddingModel` (a trunk, its tokenizer and token limit), loaded from a run folder
(`load_run_trunk`: fine-tuning, LoRA or pretraining runs) or a Hugging Face checkpoint folder
(`load_pretrained_trunk`: DNABERT / DNABERT-2 / NT / ESM / HyenaDNA, or a `biolm export` folder), and
sequences. The trunk maps `(B, L)` token ids + mask -> `(B, L, D)` hidden states at the chosen layer:

- ``layer=-1`` (default): the trunk's final output, what the run's head sees;
- ``layer=0``: the token-embedding output (the input of the first block);
- ``layer=i``: the output of block ``i`` (1-based) of the trunk's block list (its one ``nn.ModuleList``
  child: ``layers`` of BERT / ESM / HyenaDNA, ``blocks`` of the CNNs), read with forward hooks. A trunk
  with no such list (BiLSTM) accepts ``layer=-1`` only; a block list whose outputs are not per-token
  `(B, L, D)` states (the pooling one-hot CNN) is refused for ``layer >= 0``.

Out: a DataFrame, one of two layouts (both with float32 ``emb_0 .. emb_{D-1}`` last):

- ``pooling`` = mean | max | cls | last (`biolm.models.heads.pool`, over real tokens, special tokens
  included, exactly as a sequence head pools): one row per sequence, in input order:
  ``id``, the input table's other non-sequence columns, ``emb_0 .. emb_{D-1}``;
- ``pooling=none``: one row per token, sequences in input order and tokens in order: ``id``, the
  other columns, ``position`` (0-based token index, special tokens counted), ``start``, ``end`` (the
  token's bases ``[start, end)`` in the sequence, `tokenizer.token_spans`), ``emb_*``. Special tokens
  are kept, with ``start = end = -1`` (drop them with ``frame[frame.start >= 0]``), so the mean of a
  sequence's token rows is its ``pooling=mean`` row.

Long sequences are truncated to the model's token limit (first tokens + the closing special token,
a warning counts them), as prediction without windows does; the run's ``data.window_bp`` is not used.
`plot_embeddings` draws a PCA or UMAP map of such a table as a PNG coloured by one of its columns.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from biolm.data.datasets import Collator, tokenize_records, truncate_tokens
from biolm.data.io import SequenceRecords
from biolm.errors import BiolmError, require_extra
from biolm.models.heads import POOLINGS, pool
from biolm.runs import LanguageModelRun, Run, instantiate_config, load_language_model_run, load_run, token_limit

log = logging.getLogger(__name__)

EMBEDDING_POOLINGS = (*POOLINGS, "none")
PLOT_METHODS = ("pca", "umap")
MAX_LEGEND_CLASSES = 20  # beyond that, the rarest categories share one grey "other" entry


@dataclass
class EmbeddingModel:
    """A trunk and its tokenizer, ready to embed.

    Attributes:
        source: the run or checkpoint folder it came from (None: a trunk built in memory).
        trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, D)` hidden states, in eval mode, on CPU unless
            the caller moves it (`embed` runs on the trunk's device).
        tokenizer: the tokenizer the trunk was trained with.
        max_tokens: the longest token sequence it accepts (None: no limit); longer ones are truncated.
    """

    source: Path | None
    trunk: nn.Module
    tokenizer: object
    max_tokens: int | None


def _from_run(run: Run | LanguageModelRun) -> EmbeddingModel:
    model = run.model.get_base_model() if hasattr(run.model, "get_base_model") else run.model  # LoRA: the injected trunk
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, nn.Module):
        raise BiolmError(f"run: {run.path} holds a {type(model).__name__}, which has no trunk to embed with")
    return EmbeddingModel(Path(run.path), trunk.eval(), run.tokenizer, token_limit(model, run.cfg.get("data") or {}))


def load_run_trunk(path: str | Path) -> EmbeddingModel:
    """The trunk of a run folder: a fine-tuning run (LoRA included) or a pretraining run (``biolm pretrain``).

    Raises:
        BiolmError: no run folder there, or a damaged one (see `biolm.runs.load_run`).
    """
    folder = Path(path)
    is_language_model = (folder / "config.yaml").is_file() and not (folder / "labels.json").exists()
    return _from_run(load_language_model_run(folder) if is_language_model else load_run(folder))


def load_pretrained_trunk(pretrained: str | Path, tokenizer: object | None = None) -> EmbeddingModel:
    """The trunk of a Hugging Face checkpoint (``model.pretrained``), without any head.

    Reads DNABERT / DNABERT-2 / GENA-LM (BERT), Nucleotide Transformer / ESM-2 and HyenaDNA folders, with
    or without an LM head, and `biolm export` folders: a transformers-loadable export through its
    ``config.json`` and weights, a biolm-only one (no ``model_type``) through the run inside it (``biolm/``).

    Args:
        pretrained: the checkpoint folder or a Hub id (downloaded when online, see `biolm.checkpoints`).
        tokenizer: its tokenizer, or a ``tokenizer`` config to instantiate; default: read from the folder.

    Raises:
        BiolmError: a folder whose family, tokenizer or weights biolm cannot read.
    """
    from biolm.checkpoints import resolve_pretrained
    from biolm.models import build_sequence_model
    from biolm.models.hub import detect_family
    from biolm.tokenizers.checkpoint import from_checkpoint

    folder = resolve_pretrained(pretrained)
    family = detect_family(folder)
    if family is None and (folder / "biolm" / "config.yaml").is_file():
        log.info("model.pretrained=%s: a biolm-only export; embedding with the run inside it (%s)", pretrained, folder / "biolm")
        return load_run_trunk(folder / "biolm")
    if family is None:
        raise BiolmError(
            f"model.pretrained={pretrained}: {folder / 'config.json'} names no family biolm imports "
            "(BERT / DNABERT / DNABERT-2, ESM / Nucleotide Transformer, HyenaDNA, or a biolm export)"
        )
    if isinstance(tokenizer, DictConfig):  # the command's `tokenizer` config node
        tokenizer = instantiate_config(tokenizer, "tokenizer")
    tokenizer = tokenizer if tokenizer is not None else from_checkpoint(folder)
    # The sequence builder imports the trunk alone and drops an LM head the checkpoint brings; its head is unused.
    cfg = OmegaConf.create({"trunk": {"_target_": family}, "head": {"pooling": "mean", "dropout": 0.0}, "pretrained": str(folder)})
    trunk = build_sequence_model(cfg, tokenizer.vocab_size, tokenizer.pad_id, num_outputs=1).trunk.eval()
    return EmbeddingModel(folder, trunk, tokenizer, trunk.max_tokens)


def trunk_blocks(trunk: nn.Module) -> nn.ModuleList | None:
    """The trunk's block list: its one non-empty ``nn.ModuleList`` child (None: none, or several)."""
    lists = [child for child in trunk.children() if isinstance(child, nn.ModuleList) and len(child)]
    return lists[0] if len(lists) == 1 else None


def check_layer(trunk: nn.Module, layer: int) -> None:
    """Refuse a ``layer`` outside ``-1`` and ``0 .. number of blocks``, in one line naming the accepted range."""
    blocks = trunk_blocks(trunk)
    name = type(trunk).__name__
    if blocks is None:
        if layer != -1:
            raise BiolmError(f"layer={layer}: {name} has no block list to read inner layers from; accepted: -1 (its final output)")
        return
    if not -1 <= layer <= len(blocks):
        raise BiolmError(
            f"layer={layer}: accepted -1 (the trunk's final output) or 0..{len(blocks)} "
            f"(0: token embeddings, i: output of block i; this {name} has {len(blocks)} blocks)"
        )


@contextlib.contextmanager
def _layer_states(trunk: nn.Module, layer: int) -> Iterator[dict]:
    """Hook layer ``layer`` (>= 0) of ``trunk``: after each forward, ``store["hidden"]`` holds its states."""
    store: dict = {}
    if layer == -1:
        yield store
        return
    blocks = trunk_blocks(trunk)

    def keep(value) -> None:
        store["hidden"] = value[0] if isinstance(value, (tuple, list)) else value

    if layer == 0:
        handle = blocks[0].register_forward_pre_hook(lambda _, args, kwargs: keep(args if args else list(kwargs.values())), with_kwargs=True)
    else:
        handle = blocks[layer - 1].register_forward_hook(lambda _, args, output: keep(output))
    try:
        yield store
    finally:
        handle.remove()


def _checked(hidden, input_ids: torch.Tensor, trunk: nn.Module, layer: int) -> torch.Tensor:
    """Hooked states must be per-token `(B, L, D)`, as the trunk's output is."""
    shape = (*input_ids.shape, trunk.hidden_size)
    if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != shape:
        got = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
        raise BiolmError(
            f"layer={layer}: the blocks of {type(trunk).__name__} do not give per-token states (batch, tokens, {trunk.hidden_size}) "
            f"but {got}; use layer=-1"
        )
    return hidden


def _as_records(sequences: SequenceRecords | Sequence[str], ids: Sequence[str] | None) -> SequenceRecords:
    if isinstance(sequences, SequenceRecords):
        return sequences
    sequences = list(sequences)
    ids = list(ids) if ids is not None else [f"seq{i}" for i in range(len(sequences))]
    if len(ids) != len(sequences):
        raise BiolmError(f"ids: {len(ids)} ids for {len(sequences)} sequences")
    return SequenceRecords("sequences", ids, sequences, None, list(range(len(sequences))), "index")


def _token_spans(tokenizer, records: SequenceRecords, tokens: Sequence[np.ndarray], max_tokens: int | None) -> list[np.ndarray]:
    """``(n_tokens, 2)`` base spans of each record's (possibly truncated) tokens."""
    spans = []
    for i, sequence in enumerate(records.sequences):
        try:
            full = tokenizer.token_spans(sequence)
        except NotImplementedError as err:
            raise BiolmError(f"pooling=none: {err}; choose a pooling (mean, max, cls, last)") from None
        spans.append(truncate_tokens(tokenizer, full, max_tokens))  # cut as the ids were
        if len(spans[-1]) != len(tokens[i]):
            raise BiolmError(f"{records.where(i)}: the tokenizer reports {len(spans[-1])} token spans for {len(tokens[i])} tokens")
    return spans


def embed(
    model: EmbeddingModel | Run | LanguageModelRun | str | Path,
    sequences: SequenceRecords | Sequence[str],
    ids: Sequence[str] | None = None,
    layer: int = -1,
    pooling: str = "mean",
    batch_size: int = 64,
    columns: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Embed sequences with a trunk at one layer (see the module docstring for layers and the table layout).

    Args:
        model: an `EmbeddingModel` (`load_pretrained_trunk`), a loaded run, or a run folder.
        sequences: file-backed records (errors name their file and line) or raw strings.
        ids: ids of raw strings (default ``seq0``, ``seq1``, ...; ignored for records).
        layer: -1 (final output), 0 (token embeddings) or i (output of block i).
        pooling: mean | max | cls | last (one row per sequence) or none (one row per token).
        batch_size: sequences per forward pass (length-sorted, so batches carry little padding).
        columns: per-record columns (one row per record, in record order) placed after ``id``.

    Returns:
        ``(N, 1 + C + D)`` per sequence, or ``(total tokens, 4 + C + D)`` per token: ``id``, ``columns``,
        [``position``, ``start``, ``end``], then float32 ``emb_0 .. emb_{D-1}``.

    Raises:
        BiolmError: an unknown pooling, a layer outside the trunk's range, ``cls`` on a causal trunk, a
            bad sequence (naming its record), or columns whose rows do not match the records.
    """
    if not isinstance(model, EmbeddingModel):
        model = _from_run(model) if isinstance(model, (Run, LanguageModelRun)) else load_run_trunk(model)
    if pooling not in EMBEDDING_POOLINGS:
        raise BiolmError(f"pooling={pooling}: accepted: {', '.join(EMBEDDING_POOLINGS)}")
    trunk, layer = model.trunk, int(layer)
    if pooling == "cls" and getattr(trunk, "causal", False):
        raise BiolmError(f"pooling=cls: {type(trunk).__name__} is causal, so its first token has seen nothing of the sequence; use last or mean")
    check_layer(trunk, layer)
    records = _as_records(sequences, ids)
    if columns is not None and len(columns) != len(records):
        raise BiolmError(f"columns: {len(columns)} rows for {len(records)} records")
    tokens = tokenize_records(model.tokenizer, records, model.max_tokens)
    spans = _token_spans(model.tokenizer, records, tokens, model.max_tokens) if pooling == "none" else None
    per_record: list[np.ndarray | None] = [None] * len(tokens)  # (D,) pooled, or (n_tokens, D)
    collate = Collator(model.tokenizer.pad_id)
    device = next(trunk.parameters()).device
    order = np.argsort([len(t) for t in tokens], kind="stable")
    with torch.inference_mode(), _layer_states(trunk, layer) as store:
        for start in range(0, len(order), batch_size):
            pick = order[start : start + batch_size]
            batch = collate([(tokens[i], None, int(i)) for i in pick])
            input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            hidden = trunk(input_ids, mask)  # (B, L, D)
            if layer != -1:
                hidden = _checked(store.pop("hidden", None), input_ids, trunk, layer)
            hidden = hidden.float()
            if pooling == "none":
                states = hidden.cpu().numpy()
                for row, i in enumerate(pick):
                    per_record[i] = states[row, : len(tokens[i])]
            else:
                pooled = pool(hidden, mask, pooling).cpu().numpy()  # (B, D)
                for row, i in enumerate(pick):
                    per_record[i] = pooled[row]
    return _table(records, per_record, spans, columns)


def _table(records: SequenceRecords, per_record: list[np.ndarray], spans: list[np.ndarray] | None, columns: pd.DataFrame | None) -> pd.DataFrame:
    """``id``, columns, [position, start, end], ``emb_*`` (see `embed`)."""
    if spans is None:
        owner = np.arange(len(records))
        values = np.stack(per_record)  # (N, D)
        meta = pd.DataFrame({"id": records.ids})
    else:
        counts = [len(s) for s in spans]
        owner = np.repeat(np.arange(len(records)), counts)  # record of each token row
        values = np.concatenate(per_record)  # (total tokens, D)
        flat = np.concatenate(spans)  # (total tokens, 2)
        meta = pd.DataFrame({"id": np.asarray(records.ids, dtype=object)[owner],
                             "position": np.concatenate([np.arange(n) for n in counts]), "start": flat[:, 0], "end": flat[:, 1]})
    embedding = pd.DataFrame(values.astype(np.float32, copy=False), columns=[f"emb_{j}" for j in range(values.shape[1])])
    if columns is not None and len(columns.columns):
        clash = [str(c) for c in columns.columns if str(c) in meta.columns or str(c) in embedding.columns]
        if clash:
            raise BiolmError(f"input: column {clash[0]!r} has the name of an output column; rename it in the input table")
        extra = columns.iloc[owner].reset_index(drop=True)
        meta = pd.concat([meta[["id"]], extra, meta.drop(columns="id")], axis=1)
    return pd.concat([meta, embedding], axis=1)


def input_columns(path: str, sequence_column: str, id_column: str | None) -> pd.DataFrame | None:
    """The non-sequence, non-id columns of an input table, one row per record (None: FASTA, stdin, or none).

    A column whose every non-empty cell reads as a number becomes numeric (a CSV is read as text); the others stay
    as they are. Call it after `biolm.data.io.read_records` has read and checked the same file.
    """
    from biolm.data.io import format_of, read_dataframe  # the reader read_records uses, so rows line up

    if path == "-" or format_of(path) == "fasta":
        return None
    frame = read_dataframe(path, format_of(path)).infer_objects()  # Parquet columns come back as objects
    keep = [c for c in frame.columns if str(c) not in (sequence_column, id_column)]
    if not keep:
        return None
    return pd.DataFrame({column: _numeric_if_all(frame[column]) for column in keep}).reset_index(drop=True)


def _numeric_if_all(column: pd.Series) -> pd.Series:
    """``column`` as numbers when every non-empty cell parses as one (empty cells -> NaN), else unchanged."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    present = column.notna() & (column.astype(str).str.strip() != "")
    if not present.any() or column[present].map(lambda v: isinstance(v, bool)).any():
        return column
    numbers = pd.to_numeric(column.where(present), errors="coerce")
    return numbers if numbers[present].notna().all() else column


def embedding_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``(rows, D)`` float32 ``emb_*`` block of an `embed` table.

    Raises:
        BiolmError: the table has no ``emb_*`` columns.
    """
    names = [c for c in frame.columns if str(c).startswith("emb_")]
    if not names:
        raise BiolmError("the table has no emb_0.. columns; pass the output of biolm embed")
    return frame[names].to_numpy(dtype=np.float32)


def project(values: np.ndarray, method: str, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``(rows, D)`` -> ``(rows, 2)`` map coordinates and the two axis names, by PCA or UMAP.

    Raises:
        BiolmError: an unknown method, fewer than 3 rows, or UMAP without the ``analysis`` extra.
    """
    if method not in PLOT_METHODS:
        raise BiolmError(f"plot={method}: accepted: {', '.join(PLOT_METHODS)} (or both)")
    if len(values) < 3:
        raise BiolmError(f"plot={method}: {len(values)} embeddings; a 2-D map needs at least 3")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        coords = pca.fit_transform(values)
        return coords, [f"PC{i + 1} ({share:.0%} of variance)" for i, share in enumerate(pca.explained_variance_ratio_)]
    require_extra("analysis", "umap")
    import umap

    # a seeded UMAP runs on one thread (n_jobs=1 says so, instead of umap's warning)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(values) - 1), random_state=seed, n_jobs=1)
    return reducer.fit_transform(values), ["UMAP 1", "UMAP 2"]


def check_color_by(frame: pd.DataFrame, color_by: str) -> None:
    """Refuse a ``color_by`` that names no column of the table, listing those it could name."""
    if color_by not in frame.columns:
        shown = ", ".join(str(c) for c in frame.columns if not str(c).startswith("emb_"))
        raise BiolmError(f"color_by={color_by}: no such column in the embedding table (accepted: {shown})")


def plot_embeddings(frame: pd.DataFrame, path: str | Path, method: str = "pca", color_by: str | None = None) -> Path:
    """Write a 2-D map (PCA or UMAP) of an `embed` table's rows as a PNG, atomically.

    Args:
        frame: a table with ``emb_*`` columns (per sequence or per token).
        path: the PNG to write.
        method: pca | umap (UMAP needs the ``analysis`` extra).
        color_by: a column to colour by: numeric with more than 10 distinct values -> a colorbar,
            anything else -> one colour per value with a legend (the 20 most frequent, then "other").

    Returns:
        The written path.

    Raises:
        BiolmError: see `project`; ``color_by`` names no column of the table.
    """
    from biolm.plots import figure, save_png

    if color_by is not None:
        check_color_by(frame, color_by)
    values = embedding_matrix(frame)
    coords, axes_names = project(values, method)
    fig, (ax,) = figure(6.4, 5.2)
    size = max(2.0, min(20.0, 4000 / len(coords)))
    if color_by is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, alpha=0.7, linewidths=0)
    else:
        _coloured_scatter(fig, ax, coords, frame[color_by], color_by, size)
    ax.set(xlabel=axes_names[0], ylabel=axes_names[1], title=f"{method.upper()} of {len(coords)} embeddings ({values.shape[1]} dims)")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _coloured_scatter(fig, ax, coords: np.ndarray, column: pd.Series, name: str, size: float) -> None:
    """A colorbar for many-valued numeric columns, else a categorical legend."""
    import matplotlib

    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all() and numbers.nunique() > 10:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=numbers.to_numpy(float), s=size, alpha=0.8, linewidths=0, cmap="viridis")
        fig.colorbar(points, ax=ax, label=name)
        return
    labels = column.astype(str).where(column.notna(), "(missing)")
    ranked = labels.value_counts().index.tolist()
    shown = ranked[:MAX_LEGEND_CLASSES] if len(ranked) <= MAX_LEGEND_CLASSES else ranked[: MAX_LEGEND_CLASSES - 1]
    palette = matplotlib.colormaps["tab10" if len(shown) <= 10 else "tab20"]
    for i, value in enumerate(shown):
        picked = (labels == value).to_numpy()
        ax.scatter(coords[picked, 0], coords[picked, 1], s=size, alpha=0.8, linewidths=0, label=value, color=palette(i))
    rest = (~labels.isin(shown)).to_numpy()
    if rest.any():
        ax.scatter(coords[rest, 0], coords[rest, 1], s=size, alpha=0.5, linewidths=0, color="lightgrey", label=f"other ({len(ranked) - len(shown)} values)")
    ax.legend(title=name, fontsize=7, markerscale=max(1.0, 20 / size), loc="best")
