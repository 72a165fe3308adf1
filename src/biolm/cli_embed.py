"""``biolm embed``: sequence embeddings of a run or a public checkpoint (configs/embed.yaml), registered on `biolm.cli`."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from biolm.cli import _required, command
from biolm.errors import BiolmError

log = logging.getLogger(__name__)


def _embedding_model(cfg: DictConfig):
    """``run=`` (a run folder) or ``model.pretrained=`` (a checkpoint, with the ``tokenizer`` config), not both."""
    from biolm import api

    pretrained = OmegaConf.select(cfg, "model.pretrained")
    if not pretrained:
        return api.load_run_trunk(_required(cfg, "run", "pass run=runs/<name> (or model.pretrained=<checkpoint folder>)"))
    if cfg.get("run"):
        raise BiolmError(f"run={cfg.run} and model.pretrained={pretrained}: pass one of them")
    return api.load_pretrained_trunk(pretrained, cfg.get("tokenizer"))


OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
PLOTS = {None: [], "pca": ["pca"], "umap": ["umap"], "both": ["pca", "umap"]}


def _checked_settings(cfg: DictConfig) -> tuple[str, int, str, list[str]]:
    """``(output, layer, pooling, plot methods)``, each checked before any reading or loading (one line per mistake)."""
    from biolm.embeddings import EMBEDDING_POOLINGS
    from biolm.errors import require_extra

    output = _required(cfg, "output", "pass output=embeddings.parquet")
    suffix = Path(output.lower().removesuffix(".gz")).suffix
    if output != "-" and suffix not in OUTPUT_SUFFIXES:
        raise BiolmError(f"output={output}: unknown table format {suffix or '(no suffix)'!r}; accepted: {', '.join(OUTPUT_SUFFIXES)} "
                         "(optionally .gz for .csv/.tsv), or - for CSV on stdout")
    layer = cfg.get("layer")
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise BiolmError(f"layer={layer}: accepted: an integer: -1 (the trunk's final output), 0 (token embeddings) or i (output of block i)")
    pooling = str(cfg.get("pooling"))
    if pooling not in EMBEDDING_POOLINGS:
        raise BiolmError(f"pooling={pooling}: accepted: {', '.join(EMBEDDING_POOLINGS)}")
    methods = PLOTS.get(cfg.get("plot"))
    if methods is None:
        raise BiolmError(f"plot={cfg.plot}: accepted: pca, umap, both (or null for no map)")
    if output == "-" and methods:
        raise BiolmError("plot: the map is written beside output=; pass output=<file>.parquet")
    if "umap" in methods:
        require_extra("analysis", "umap")
    return output, layer, pooling, methods


@command
def cmd_embed(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.data.io import read_records, write_table

    source = _required(cfg, "input", "pass input=seqs.fasta (or .csv/.tsv/.parquet, or - for stdin)")
    output, layer, pooling, methods = _checked_settings(cfg)
    sequence_column, id_column = str(cfg.sequence_column), cfg.get("id_column")
    records = read_records(source, field_name="input", sequence_column=sequence_column, label_column=None, id_column=id_column)
    model = _embedding_model(cfg)
    frame = api.embed(model, records, layer=layer, pooling=pooling, batch_size=int(cfg.batch_size),
                      columns=api.input_columns(source, sequence_column, id_column))
    if methods and cfg.get("color_by"):
        api.check_color_by(frame, str(cfg.color_by))  # before anything is written
    if methods and len(frame) < 3:
        raise BiolmError(f"plot={cfg.plot}: a 2-D map needs at least 3 rows, the table has {len(frame)}; pass plot=null")
    write_table(frame, output)
    if output != "-":
        width = sum(str(c).startswith("emb_") for c in frame.columns)
        what = f"{len(frame)} token embeddings of {len(records)} sequences" if pooling == "none" else f"{len(frame)} embeddings"
        log.info("%s (%d dims, layer %s, pooling %s) written to %s", what, width, layer, pooling, output)
    stem = Path(output.removesuffix(".gz")).with_suffix("")  # emb.parquet -> emb.pca.png beside it
    for method in methods:
        path = api.plot_embeddings(frame, stem.with_name(f"{stem.name}.{method}.png"), method, cfg.get("color_by"))
        log.info("%s map written to %s", method.upper(), path)
