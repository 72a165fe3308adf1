"""Command line: ``biolm <command> [key=value ...]``.

Thin by design: it composes the Hydra config of the command (configs/<command>.yaml, see `biolm.resources`, plus
the user's overrides), calls `biolm.api`, and renders results with rich. A `BiolmError`
(and a config that does not compose) becomes one line on stderr and exit code 2.

A command is two things: its config (``biolm variants score`` -> configs/variants_score.yaml, whose
first line ``# biolm variants score: <summary>`` is its help text) and one function registered with
``@command`` (``cmd_variants_score``). Known third-party warnings are silenced while it runs
(`biolm.fitting.quiet_lightning_warnings`).

    biolm finetune data.train=train.csv data.val=dev.csv data.test=test.csv model=bert_tiny tokenizer=kmer6 task=binary
    biolm evaluate run=runs/<name> data.test=other.csv
    biolm predict run=runs/<name> input=new.fasta output=preds.csv
    biolm <command> --cfg job        # print the composed config and exit
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from biolm.composition import CONFIG_SUBDIRS, compose, config_file, group_options  # noqa: F401  (compose: re-exported for callers of biolm.cli)
from biolm.errors import BiolmError
from biolm.resources import config_dir

Handler = Callable[[DictConfig], None]

# `biolm <command>` -> its function, filled by `@command`; each has its config configs/<command>.yaml
# (words joined by "_"), whose first comment line ``# biolm <command>: <summary>`` is its help text.
HANDLERS: dict[str, Handler] = {}
# Commands whose one bare argument is a sentence: `biolm agent "..."` means `biolm agent task="..."`.
FREE_TEXT_KEYS: dict[str, str] = {"agent": "task"}


def command(handler: Handler) -> Handler:
    """Register ``cmd_<words>`` as the handler of ``biolm <words>`` (``cmd_variants_score``: ``biolm variants score``)."""
    HANDLERS[handler.__name__.removeprefix("cmd_").replace("_", " ")] = handler
    return handler


def _header(command: str) -> list[str]:
    """The comment lines that open the command's config, without their ``#``."""
    try:
        text = config_file(command).read_text()
    except (OSError, BiolmError):
        return []
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" ").rstrip())
    return lines


def _summary(command: str) -> str:
    """The help text of a command: its config's first line, ``# biolm <command>: <summary>``."""
    first, prefix = (_header(command) or [""])[0], f"biolm {command}:"
    return first.removeprefix(prefix).strip().rstrip(".") if first.startswith(prefix) else ""


def _setup_logging() -> None:
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, show_time=False, console=_console(stderr=True))
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)
    import lightning  # noqa: F401  (configures its loggers on import; quieten them afterwards)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which CPU build faiss picked is not news


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        # Logs and pipes have no width; rich would assume 80 columns and fold the tables.
        console = Console(stderr=stderr, width=120)
    return console


def _print_metrics(title: str, metrics: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    _console().print(table)


def _required(cfg: DictConfig, key: str, hint: str) -> str:
    value = OmegaConf.select(cfg, key, throw_on_missing=False)
    if value is None or value == "???" or value == "":
        raise BiolmError(f"{key}: missing; {hint}")
    return str(value)


@command
def cmd_finetune(cfg: DictConfig) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from biolm import api

    run_dir = api.finetune(cfg)
    if rank_zero_only.rank != 0:  # other DDP ranks return before the run is published
        return
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    _print_metrics(f"test metrics — {run_dir}", metrics)


@command
def cmd_pretrain(cfg: DictConfig) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from biolm import api

    run_dir = api.pretrain(cfg)
    if rank_zero_only.rank != 0:
        return
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    _print_metrics(f"held-out metrics — {run_dir}", metrics)


@command
def cmd_tokenizer_train(cfg: DictConfig) -> None:
    from biolm import api

    tokenizer = api.train_tokenizer(cfg.fasta, int(cfg.vocab_size), str(cfg.output), int(cfg.chunk_bp), cfg.get("max_bp"))
    logging.getLogger(__name__).info("BPE tokenizer with %d tokens written to %s", tokenizer.vocab_size, cfg.output)


@command
def cmd_adapter_merge(cfg: DictConfig) -> None:
    from biolm import api

    out = api.merge_adapter(_required(cfg, "run", "pass run=runs/<lora-run>"), _required(cfg, "out", "pass out=<folder to write>"), bool(cfg.overwrite))
    logging.getLogger(__name__).info("plain run folder written to %s", out)


@command
def cmd_export(cfg: DictConfig) -> None:
    from biolm import api

    api.export_run(_required(cfg, "run", "pass run=runs/<name>"), _required(cfg, "out", "pass out=<folder to write>"), bool(cfg.overwrite))


@command
def cmd_models(cfg: DictConfig) -> None:
    from rich.table import Table

    from biolm import api

    table = Table(title=f"model families (model=<name>; parameters at vocab_size={cfg.vocab_size})")
    for column in ("name", "trunk", "source", "parameters", "pretrained"):
        table.add_column(column, justify="right" if column == "parameters" else "left", overflow="fold")
    for row in api.model_catalog(int(cfg.vocab_size)):
        table.add_row(row["name"], row["trunk"], row["source"] or "", "?" if row["parameters"] is None else f"{row['parameters']:,}",
                      "yes" if row["pretrained"] else "no")
    _console().print(table)


@command
def cmd_evaluate(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.data.io import atomic_path

    run = _required(cfg, "run", "pass run=runs/<name>")
    _required(cfg, "data.test", "pass data.test=path/to/labelled.csv")
    metrics = api.evaluate(run, cfg.data, batch_size=int(cfg.batch_size))
    _print_metrics(f"{cfg.data.test} — {run}", metrics)
    if cfg.get("output"):
        with atomic_path(cfg.output) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        logging.getLogger(__name__).info("metrics written to %s", cfg.output)


@command
def cmd_predict(cfg: DictConfig) -> None:
    import pandas as pd

    from biolm import api
    from biolm.data.io import iter_records, table_suffix, write_table_chunks

    run = api.load_run(_required(cfg, "run", "pass run=runs/<name>"))
    source = _required(cfg, "input", "pass input=seqs.fasta (or .csv/.tsv/.parquet, or - for stdin)")
    output = str(cfg.get("output") or "-")
    if output != "-":
        table_suffix(output)  # refuse an unwritable suffix before predicting anything
    chunks = iter_records(
        source,
        int(cfg.chunk_size),
        field_name="input",
        sequence_column=cfg.get("sequence_column") or run.cfg.data.sequence_column,
        label_column=None,
        id_column=cfg.get("id_column") or "id",
    )
    batch_tokens = int(cfg.batch_tokens) if cfg.get("batch_tokens") is not None else None
    precision = str(cfg.get("precision") or "fp32")
    if precision not in ("fp32", "bf16"):
        raise BiolmError(f"precision={precision}: accepted: fp32 or bf16")
    shown: list = []

    def predictions():
        # one chunk in memory at a time; the writer renames its file into place after the last one
        for records in chunks:
            frame = api.predict_records(run, records, batch_size=int(cfg.batch_size), aggregate=cfg.get("aggregate"),
                                        rc_average=cfg.get("rc_average"), batch_tokens=batch_tokens, bf16=precision == "bf16")
            if sum(map(len, shown)) < int(cfg.get("show", 0) or 0):
                shown.append(frame.head(int(cfg.show)))
            yield frame

    rows = write_table_chunks(predictions(), output)
    if output != "-":
        logging.getLogger(__name__).info("%d predictions written to %s", rows, output)
        if shown:
            table = pd.concat(shown).head(int(cfg.show))
            _console().print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


@command
def cmd_compare(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.data.io import write_table

    runs = cfg.runs if not isinstance(cfg.runs, str) else [cfg.runs]
    table = api.compare_runs(list(runs), cfg.get("reference"), cfg.get("reference_task"))
    from rich.table import Table

    view = Table(title="test metrics")
    for column in table.columns:
        view.add_column(str(column), justify="left" if column in ("model", "source") else "right")
    for row in table.itertuples(index=False):
        view.add_row(*("" if v != v else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    _console().print(view)
    if cfg.get("output"):
        write_table(table, str(cfg.output))


@command
def cmd_report(cfg: DictConfig) -> None:
    from biolm.report import write_report

    write_report(Path(_required(cfg, "run", "pass run=runs/<name>")))


@command
def cmd_serve(cfg: DictConfig) -> None:
    from biolm.service import ServeSettings, serve

    settings = ServeSettings.from_config(cfg)
    if not cfg.get("run") and not settings.kb:
        _required(cfg, "run", "pass run=runs/<name> (or kb=<knowledge base> to serve literature search alone)")
    serve(str(cfg.run) if cfg.get("run") else None, settings)


def _aliases(cfg: DictConfig) -> dict[str, str]:
    return {str(k): str(v) for k, v in (cfg.get("aliases") or {}).items()}


@command
def cmd_variants_filter(cfg: DictConfig) -> None:
    from biolm import api

    report = api.filter_vcf(
        _required(cfg, "in", "pass in=calls.vcf.gz"),
        _required(cfg, "out", "pass out=pass.vcf.gz"),
        min_qual=cfg.min_qual,
        min_dp=cfg.min_dp,
        require_pass=bool(cfg.require_pass),
        min_sample_dp=cfg.min_sample_dp,
        min_call_rate=float(cfg.min_call_rate),
        max_sample_missing=float(cfg.max_sample_missing),
        max_het_z=cfg.max_het_z,
        report=cfg.report,
    )
    dropped = {f"dropped: {k}": v for k, v in report.dropped_records.items()}
    _print_metrics(f"variants filter — {cfg.out}", {"records in": report.input_records, "records kept": report.kept_records, **dropped,
                                                   "samples in": report.input_samples, "samples kept": len(report.kept_samples)})


@command
def cmd_variants_dataset(cfg: DictConfig) -> None:
    from biolm import api

    api.variant_dataset(
        _required(cfg, "vcf", "pass vcf=calls.vcf.gz"),
        _required(cfg, "ref", "pass ref=genome.fa"),
        _required(cfg, "region", "pass region=chr17:43044295-43125483"),
        labels=cfg.labels,
        output=_required(cfg, "out", "pass out=dataset.csv"),
        mode=str(cfg.mode),
        strand=str(cfg.strand),
        on_ref_mismatch=str(cfg.on_ref_mismatch),
        sample_column=str(cfg.sample_column),
        label_column=str(cfg.label_column),
        aliases=_aliases(cfg),
        exclude=cfg.get("exclude"),
    )


@command
def cmd_variants_qc(cfg: DictConfig) -> None:
    from rich.table import Table

    from biolm import api

    result = api.sample_qc(
        _required(cfg, "vcf", "pass vcf=cohort.vcf.gz"),
        _required(cfg, "out", "pass out=qc/"),
        samples=cfg.samples,
        sample_column=str(cfg.sample_column),
        sex_column=str(cfg.sex_column),
        max_sample_missing=cfg.max_sample_missing,
        max_het_z=cfg.max_het_z,
        build=str(cfg.build),
        freq=str(cfg.freq),
        male_min_f=float(cfg.male_min_f),
        female_max_f=float(cfg.female_max_f),
        ycount=bool(cfg.ycount),
        female_max_y_calls=int(cfg.female_max_y_calls),
        male_min_y_calls=int(cfg.male_min_y_calls),
    )
    counts = Table(title=f"sex check: {result.summary['n_samples']} samples", caption=f"{result.summary['n_x_sites']} X sites outside PAR")
    inferred = ["female", "male", "ambiguous"]
    for column in ("reported", *inferred):
        counts.add_column(column, justify="left" if column == "reported" else "right")
    for sex, row in result.summary["reported_vs_inferred"].items():
        counts.add_row(sex, *(str(row.get(i, 0)) for i in inferred))
    _console().print(counts)
    failed = Table(title=f"{len(result.failed)} samples failed — {result.out / 'failed_samples.txt'}")
    for column in ("sample", "reported", "inferred", "F", "reason"):
        failed.add_column(column, justify="right" if column == "F" else "left", overflow="fold")
    for row in result.failed.itertuples(index=False):
        failed.add_row(row.sample, row.reported_sex, row.inferred_sex, f"{row.F:.3f}", row.reason)
    _console().print(failed)


@command
def cmd_variants_windows(cfg: DictConfig) -> None:
    from biolm import api

    splits = api.variant_window_dataset(
        _required(cfg, "labels", "pass labels=clinvar_labels.csv.gz (chrom,pos,ref,alt,label)"),
        _required(cfg, "ref", "pass ref=genome.fa"),
        output=_required(cfg, "out", "pass out=<folder>"),
        window_bp=int(cfg.window_bp),
        region=cfg.region,
        snvs_only=bool(cfg.snvs_only),
        label_column=str(cfg.label_column),
        val=float(cfg.split.val),
        test=float(cfg.split.test),
        block_bp=int(cfg.split.block_bp),
        seed=int(cfg.split.seed),
        strand=str(cfg.strand),
        on_ref_mismatch=str(cfg.on_ref_mismatch),
        aliases=_aliases(cfg),
    )
    _print_metrics(f"variants windows — {cfg.out}", {f"{name} (pathogenic)": f"{len(part)} ({int(part['label'].sum())})" for name, part in splits.items()})


def _scoring_model(cfg: DictConfig):
    """``run=`` (a run folder) or ``model.pretrained=`` (a public LM checkpoint, loaded with its tokenizer)."""
    from biolm import api

    pretrained = OmegaConf.select(cfg, "model.pretrained")
    if not pretrained:
        return _required(cfg, "run", "pass run=runs/<name> (or model.pretrained=<checkpoint folder> for zero-shot scores)")
    if cfg.get("run"):
        raise BiolmError(f"run={cfg.run} and model.pretrained={pretrained}: pass one of them")
    return api.load_pretrained_language_model(pretrained, cfg.get("tokenizer"))


@command
def cmd_variants_score(cfg: DictConfig) -> None:
    from biolm.variants.report import score_vcf

    _, metrics = score_vcf(
        _scoring_model(cfg),
        _required(cfg, "vcf", "pass vcf=variants.vcf.gz"),
        _required(cfg, "ref", "pass ref=genome.fa"),
        _required(cfg, "out", "pass out=scores.tsv"),
        window_bp=int(cfg.window_bp),
        batch_size=int(cfg.batch_size),
        strand=str(cfg.strand),
        rc_average=bool(cfg.rc_average),
        on_ref_mismatch=str(cfg.on_ref_mismatch),
        labels=cfg.labels,
        label_column=str(cfg.label_column),
        annotated_vcf=cfg.annotated_vcf,
        region=cfg.region,
        snvs_only=bool(cfg.snvs_only),
        max_indel_bp=int(cfg.max_indel_bp),
        aliases=_aliases(cfg),
    )
    if metrics:
        _print_metrics(f"variants score — {cfg.out}", metrics)


@command
def cmd_variants_ism(cfg: DictConfig) -> None:
    from biolm import api

    api.in_silico_mutagenesis(
        _scoring_model(cfg),
        _required(cfg, "ref", "pass ref=genome.fa"),
        _required(cfg, "region", "pass region=chr17:43094000-43094200"),
        output=_required(cfg, "out", "pass out=ism/"),
        window_bp=int(cfg.window_bp),
        batch_size=int(cfg.batch_size),
        rc_average=bool(cfg.rc_average),
        aliases=_aliases(cfg),
    )


@command
def cmd_gp_cv(cfg: DictConfig) -> None:
    from biolm import api

    run_dir = api.gp_cross_validate(cfg)
    _console().print((run_dir / "report.md").read_text())


@command
def cmd_gp_fit(cfg: DictConfig) -> None:
    from biolm import api

    run_dir = api.gp_fit(cfg)
    _print_metrics(f"gp fit — {run_dir}", json.loads((run_dir / "fit.json").read_text()))


@command
def cmd_gp_predict(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.data.io import write_table

    run = _required(cfg, "run", "pass run=runs/<gp fit folder>")
    frame = api.gp_predict(run, _required(cfg, "genotypes", "pass genotypes=new_lines.csv (or .bed/.vcf)"))
    write_table(frame, str(cfg.get("out") or "-"))
    if str(cfg.get("out") or "-") != "-":
        logging.getLogger(__name__).info("%d predictions written to %s", len(frame), cfg.out)


import biolm.cli_agent  # noqa: E402, F401
import biolm.cli_benchmark  # noqa: E402, F401
import biolm.cli_embed  # noqa: E402, F401
import biolm.cli_interpret  # noqa: E402, F401
import biolm.cli_llm  # noqa: E402, F401
import biolm.cli_rag  # noqa: E402, F401
import biolm.cli_sweep  # noqa: E402, F401
import biolm.cli_text  # noqa: E402, F401  (registers the text commands; it needs `command` defined above)


def _usage() -> str:
    lines = ["usage: biolm <command> [key=value ...] [--cfg job]", "", "commands:"]
    width = max(map(len, HANDLERS)) + 1
    lines += [f"  {name:<{width}} {_summary(name)}" for name in HANDLERS]
    try:
        groups = sorted(p.name for p in config_dir().iterdir() if p.is_dir() and p.name not in CONFIG_SUBDIRS.values())
        lines += ["", "config groups (choose with group=name):"]
        lines += [f"  {g:<10} {', '.join(group_options(g))}" for g in groups]
        for sub in dict.fromkeys(CONFIG_SUBDIRS.values()):
            root = config_dir() / sub
            commands = " / ".join(f"biolm {c} ..." for c, s in CONFIG_SUBDIRS.items() if s == sub)
            lines += ["", f"config groups of '{commands}' (configs/{sub}/):"]
            lines += [f"  {g:<10} {', '.join(group_options(g, root))}" for g in sorted(p.name for p in root.iterdir() if p.is_dir())]
    except BiolmError:
        pass
    lines += ["", "examples:", "  biolm finetune experiment=demo_prom300", "  biolm predict run=runs/demo_bert input=seqs.fa output=preds.csv"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, overrides = args[0], args[1:]
    if overrides and f"{command} {overrides[0]}" in HANDLERS:
        command, overrides = f"{command} {overrides[0]}", overrides[1:]
    if command not in HANDLERS:
        print(f"biolm: unknown command {command!r}; accepted: {', '.join(HANDLERS)}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in overrides):
        print("\n".join(_header(command) or [f"biolm {command}"]) + f"\n\n{_usage()}")
        return 0
    if command in FREE_TEXT_KEYS and len([o for o in overrides if "=" not in o and not o.startswith("-")]) == 1:
        # biolm agent "Score ...": one bare argument is the free-text key (quoted for Hydra's override grammar)
        overrides = [f"{FREE_TEXT_KEYS[command]}={json.dumps(o)}" if "=" not in o and not o.startswith("-") else o for o in overrides]
    show_cfg = "--cfg" in overrides
    if show_cfg:
        at = overrides.index("--cfg")
        overrides = overrides[:at] + overrides[at + 2 :]
    try:
        bad = [o for o in overrides if o.startswith("-")]
        if bad:
            raise BiolmError(f"unknown option {bad[0]!r}; biolm takes key=value overrides (and --cfg job)")
        cfg = compose(command.replace(" ", "_"), overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        _setup_logging()
        from biolm.fitting import quiet_lightning_warnings

        with quiet_lightning_warnings():
            HANDLERS[command](cfg)
    except BiolmError as err:
        one_line = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"biolm {command}: error: {one_line}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"biolm {command}: interrupted", file=sys.stderr)
        return 130
    return 0


def app() -> None:
    """Console-script entry point (``biolm``)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (biolm --help | head): not an error; keep Python from reporting it at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    app()
