"""Looking inside a run (``biolm interpret``, ``biolm motifs``), registered on `biolm.cli` like every other command."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from biolm.cli import _console, _required, command

log = logging.getLogger(__name__)


def _three_decimals(value: float) -> str:
    return f"{value:.3f}"


def _three_digits(value: float) -> str:
    return f"{value:.3g}"


@command
def cmd_interpret(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.data.io import read_records
    from biolm.errors import require_extra
    from biolm.interpret.outputs import check_output, check_write_settings

    window_bp, top_k = int(cfg.window_bp), int(cfg.top_k)
    check_write_settings(window_bp, top_k)  # before any work: nothing is attributed only to be refused at the end
    needed = ["captum"] if str(cfg.method) != "ism" else []
    require_extra("analysis", *needed, *(["logomaker"] if top_k else []))
    output = _required(cfg, "output", "pass output=<folder>")
    check_output(output, "attributions.json", "interpret")
    run = api.load_run(_required(cfg, "run", "pass run=runs/<name>"))
    records = read_records(
        _required(cfg, "input", "pass input=seqs.fasta (or .csv/.tsv/.parquet)"),
        field_name="input",
        sequence_column=cfg.get("sequence_column") or run.cfg.data.sequence_column,
        label_column=None,
        id_column=cfg.get("id_column") or "id",
    )
    target = None if cfg.get("target") is None else str(cfg.target)  # Hydra reads target=1 as an int
    attributions = api.attribute(run, records, method=str(cfg.method), baseline=str(cfg.baseline), n_baselines=int(cfg.n_baselines),
                                 steps=int(cfg.steps), target=target, batch_size=int(cfg.batch_size), seed=int(cfg.seed))
    folder = api.write_attributions(attributions, output, window_bp=window_bp, top_k=top_k, title=Path(str(cfg.run)).name)
    summary = attributions.summary(window_bp).sort_values("output", ascending=False).head(5)
    _console().print(summary[["id", "target", "output", "top_start", "top_end", "top_sequence"]].to_string(index=False, float_format=_three_decimals))
    log.info("%d sequences attributed (%s); %s written", len(attributions), cfg.method, folder)


@command
def cmd_motifs(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.errors import BiolmError, require_extra
    from biolm.interpret.outputs import check_output

    require_extra("analysis", "logomaker", *(["memelite"] if cfg.get("motif_db") else []))
    source = _required(cfg, "attributions", "pass attributions=<folder of biolm interpret>")
    output = _required(cfg, "output", "pass output=<folder>")
    check_output(output, "motifs.csv", "motifs")
    attributions = api.load_attributions(source)
    recorded = attributions.settings.get("run")
    if cfg.get("run") and recorded and Path(str(cfg.run)).resolve() != Path(recorded).resolve():
        raise BiolmError(f"run={cfg.run}: attributions={source} explain another run ({recorded}); pass that run or leave run= out")
    motifs = api.find_motifs(attributions, seqlet_bp=int(cfg.seqlet_bp), flank_bp=int(cfg.flank_bp), null_quantile=float(cfg.null_quantile),
                             max_per_sequence=int(cfg.max_per_sequence), max_shift_bp=int(cfg.max_shift_bp), min_similarity=float(cfg.min_similarity),
                             min_seqlets=int(cfg.min_seqlets), max_seqlets=int(cfg.max_seqlets), trim=float(cfg.trim), seed=int(cfg.seed))
    if cfg.get("motif_db"):
        api.match_known(motifs, str(cfg.motif_db), top=int(cfg.top_matches))
    folder = api.write_motifs(motifs, attributions, output)
    table = api.motif_table(motifs)
    if len(table):
        _console().print(table.drop(columns=["share_of_sequences"]).to_string(index=False, float_format=_three_digits))
    log.info("%d seqlets, %d motifs; %s written", len(motifs.seqlets), len(motifs.motifs), folder)
