"""Hyper-parameter search over fine-tunes with Optuna: `run_sweep` (``biolm sweep``).

In: the composed ``sweep`` config (``configs/sweep.yaml``): the whole ``finetune`` config that every trial
starts from (``experiment=`` and any finetune override compose into it, exactly as on ``biolm finetune``),
a search space (``configs/search_space/<name>.yaml``), the number of trials and the output folder.
Out, in ``<output>/``:

- ``study.db``: the Optuna study (SQLite); the same command again continues it up to ``n_trials``;
- ``trials/trial_<n>/``: the run folder of each complete trial (pruned, failed and interrupted trials leave none);
- ``trials.csv``: a row per trial: number, state, value, wall_s, epochs (validations reported), run, and a
  column per searched key;
- ``history.png`` (value per trial, best so far), ``importances.png`` (from 2 complete trials on), ``report.md``;
- ``best.yaml``: the best trial's complete config as an experiment (``# @package _global_``): copied to
  ``configs/experiment/<name>.yaml``, ``biolm finetune experiment=<name>`` trains that trial again.

A trial is `biolm.training.fit` on the sweep's finetune config with the sampled values set (plus
``run_name=trial_<n> output_dir=<output>/trials progress_bar=false``). The config is composed once from the
sweep's command line, not once per trial from override strings: Hydra reads ``experiment=`` as a group
choice and keeps no record of it in the composed config, so a sweep config that held only the overrides
could not take ``experiment=`` at all. Hence group choices (``model=``) are not searchable, and a model's
``recommended:`` settings (which ``biolm finetune model=<name>`` adds) are not added: the sweep warns when
they are missing. Each trial's objective is the best validation value of the task's monitor (``best_val``
in its ``test_metrics.json``); `PruneOnValidation` reports the monitor to Optuna after every validation
epoch and stops a trial that the pruner rejects. (optuna-integration's ``PyTorchLightningPruningCallback``
is a separate package, not installed with optuna, and it only flags the trainer to stop, so a pruned
trial would still be tested and published.)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from biolm.atomic import atomic_path
from biolm.composition import config_file, override
from biolm.errors import BiolmError, RunInterrupted, require_extra
from biolm.plots import figure, markdown_table, save_png
from biolm.resources import config_dir
from biolm.tasks.metrics import metric_mode

log = logging.getLogger(__name__)

SEARCH_TYPES: dict[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
# Finetune keys that the sweep sets for each trial (and that are left out when comparing trials' settings).
TRIAL_KEYS = ("run_name", "output_dir", "progress_bar")


@dataclass(frozen=True)
class SearchParam:
    """One searched finetune key: ``type`` float or int in ``[low, high]`` (``log`` scale, ``step``), or one of ``choices``."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial):
        """The trial's value of this key (an Optuna ``suggest_*`` call named by the key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def describe(self) -> str:
        if self.type == "categorical":
            return ", ".join(map(str, self.choices))
        return f"[{self.low}, {self.high}]" + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")


@dataclass
class SweepResult:
    """What `run_sweep` found.

    Attributes:
        trials: one row per trial (see the module docstring for the columns).
        monitor: the validation metric optimised, e.g. ``val/mcc``.
        direction: ``maximize`` or ``minimize``.
        best_trial: the best complete trial's number (None: no trial completed).
        best_value: its best validation value.
        first_value: the value of the first complete trial (what the search improved on).
        best_overrides: the best trial's sampled values as ``key=value`` overrides.
        command: the shell command that trains the best trial again (empty when none completed).
        output: the sweep folder.
    """

    trials: pd.DataFrame
    monitor: str
    direction: str
    best_trial: int | None
    best_value: float | None
    first_value: float | None
    best_overrides: list[str]
    command: str
    output: Path


def parse_search_space(node) -> list[SearchParam]:
    """The searched keys of a ``search_space`` config, nested as in the finetune config.

    A spec is a mapping with a ``type``: ``{type: float, low: 1e-4, high: 1e-2, log: true}``,
    ``{type: int, low: 1, high: 4, step: 1}`` or ``{type: categorical, choices: [64, 128]}``; any other
    mapping holds more keys, e.g. ``optim: {lr: <spec>}`` searches ``optim.lr``.

    Raises:
        BiolmError: an empty space, or a spec with an unknown type or field, a missing bound, ``low > high``,
            a log scale over values <= 0 or no choices (one line naming ``search_space.<key>``).
    """
    tree = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    params = [_parse_spec(key, spec) for key, spec in _specs(tree or {}, "")]
    if not params:
        raise BiolmError("search_space: no key to search; name one, e.g. optim: {lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}")
    return params


def _specs(tree: dict, prefix: str):
    """``(dotted key, spec)`` for every mapping with a string ``type`` under ``tree``."""
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            yield key, value
        elif isinstance(value, dict) and value:
            yield from _specs(value, f"{key}.")
        else:
            raise BiolmError(f"search_space.{key}: {value!r} is not a spec; accepted: {{type: float|int|categorical, ...}} or a mapping of specs")


def _parse_spec(key: str, spec: dict) -> SearchParam:
    where = f"search_space.{key}"
    kind = spec["type"]
    if kind not in SEARCH_TYPES:
        raise BiolmError(f"{where}.type: {kind!r} is not a search type; accepted: {', '.join(SEARCH_TYPES)}")
    unknown = sorted(set(spec) - set(SEARCH_TYPES[kind]))
    if unknown:
        raise BiolmError(f"{where}: unknown field {unknown[0]!r} for type {kind}; accepted: {', '.join(SEARCH_TYPES[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or any(isinstance(c, dict | list) for c in choices):
            raise BiolmError(f"{where}.choices: {choices!r}; accepted: a non-empty list of numbers, strings, booleans or null")
        return SearchParam(key, kind, choices=tuple(choices))
    number = int if kind == "int" else int | float
    bounds = {name: spec.get(name) for name in ("low", "high")}
    for name, value in bounds.items():
        if not isinstance(value, number) or isinstance(value, bool):
            raise BiolmError(f"{where}.{name}: {value!r}; accepted: {'an integer' if kind == 'int' else 'a number'}")
    low, high, log_scale, step = bounds["low"], bounds["high"], bool(spec.get("log", False)), spec.get("step")
    if low > high:
        raise BiolmError(f"{where}: low {low} > high {high}")
    if log_scale and low <= 0:
        raise BiolmError(f"{where}: log: true needs low > 0 (got {low})")
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or step <= 0 or log_scale):
        raise BiolmError(f"{where}.step: {step!r}; accepted: a positive {'integer' if kind == 'int' else 'number'}, and no step with log: true")
    return SearchParam(key, kind, low, high, log_scale, step)


class PruneOnValidation(L.Callback):
    """Report ``monitor`` to an Optuna trial after every validation epoch; raise ``optuna.TrialPruned`` when the pruner says so.

    The step reported is the 0-based epoch; a missing or NaN value (a metric undefined on the validation set) is not
    reported. Raising stops `lightning.Trainer.fit` at once, so a pruned trial is neither tested nor published.

    Args:
        trial: the ``optuna.Trial`` being run.
        monitor: the logged metric, e.g. ``val/mcc``.
    """

    def __init__(self, trial, monitor: str):
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna

        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or math.isnan(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}: {self.monitor} {float(value):.4f}")


def finetune_config(cfg: DictConfig) -> DictConfig:
    """The finetune config inside a composed ``sweep`` config: a copy without the sweep's own keys and groups."""
    own = OmegaConf.load(config_file("sweep"))
    base = cfg.copy()
    with open_dict(base):
        for key in [*_groups(own), *(str(k) for k in own if k != "defaults")]:
            base.pop(key, None)
    return base


def _groups(config: DictConfig) -> list[str]:
    """The config groups in a config file's defaults list (``- model: bert_tiny``, ``- optional debug: null``)."""
    return [str(key).removeprefix("optional ") for item in config.get("defaults") or [] if isinstance(item, DictConfig) for key in item]


def trial_config(base: DictConfig, sampled: dict, run_name: str, output_dir: str | Path, progress_bar: bool = False) -> DictConfig:
    """``base`` (a finetune config) with the ``sampled`` values (dotted keys) and the trial's run folder set."""
    cfg = base.copy()
    for key, value in {**sampled, "run_name": run_name, "output_dir": str(output_dir), "progress_bar": progress_bar}.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def run_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or continue) the Optuna study that ``cfg`` describes and write its outputs (see the module docstring).

    Args:
        cfg: the composed ``sweep`` config (``compose("sweep", [...])``): the finetune config, ``search_space``,
            ``n_trials`` (in total, counting the complete and pruned trials of earlier runs), ``timeout_s``,
            ``direction``, ``sampler``, ``pruner`` and ``output``.

    Returns:
        The trials table and the best trial (`SweepResult`).

    Raises:
        BiolmError: optuna is missing; a bad search space, sampler or pruner; a finetune config that differs from
            that of the study already in ``output``; or a trial's own error (prefixed with the trial and its values).
        RunInterrupted: SIGINT/SIGTERM stopped a trial; the same command continues the study.
    """
    require_extra("analysis", "optuna")
    import optuna

    if not cfg.get("output"):
        raise BiolmError("output: missing; pass output=<sweep folder> (the same folder again continues the study)")
    output = Path(str(cfg.output)).expanduser()
    space = parse_search_space(cfg.search_space)
    base = finetune_config(cfg)
    _check_base(base, space)
    monitor = f"val/{base.task.monitor}"
    direction = str(cfg.get("direction") or ("maximize" if metric_mode(str(base.task.monitor)) == "max" else "minimize"))
    if direction not in ("maximize", "minimize"):
        raise BiolmError(f"direction: {direction!r}; accepted: maximize, minimize, or null (from task.monitor)")

    output.mkdir(parents=True, exist_ok=True)
    trials_dir = (output / "trials").resolve()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # optuna logs a failed trial with its traceback; the CLI prints one line
    try:
        study = optuna.create_study(storage=f"sqlite:///{(output / 'study.db').resolve()}", study_name="sweep", direction=direction, load_if_exists=True)
        settings = {"finetune": _comparable(base), "search_space": [{**vars(p), "choices": list(p.choices)} for p in space], "direction": direction}
        _check_settings(study, settings, output)
        _fail_stale_trials(study, trials_dir)
        # seeded by the trials so far: a continued study does not replay the sampler's first draws
        study.sampler = _instantiate(cfg.sampler, "optuna.samplers.", seed_offset=len(study.trials))
        study.pruner = _instantiate(cfg.pruner, "optuna.pruners.")
        done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
        remaining = max(int(cfg.n_trials) - done, 0)
        log.info("sweep %s: %d trials done, %d to run; %s %s over %s", output, done, remaining, direction, monitor, ", ".join(p.key for p in space))
        if remaining:
            study.optimize(_Objective(space, base, trials_dir, monitor), n_trials=remaining, timeout=cfg.get("timeout_s"), catch=(), gc_after_trial=True)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return write_outputs(study, space, base, output, monitor)


def _check_base(base: DictConfig, space: list[SearchParam]) -> None:
    """Refuse searched keys the finetune config lacks (or that are whole groups), resuming and several devices; warn
    about a model's ``recommended:`` settings that ``biolm finetune model=<name>`` would have added."""
    for param in space:
        value = OmegaConf.select(base, param.key, default=_ABSENT)
        if value is _ABSENT:
            raise BiolmError(f"search_space.{param.key}: no such key in the finetune config (see biolm sweep --cfg job)")
        if isinstance(value, DictConfig):
            raise BiolmError(f"search_space.{param.key}: a whole config node; search its keys (a group choice such as model= cannot be searched)")
    if base.get("ckpt"):
        raise BiolmError(f"ckpt={base.ckpt}: trials are not resumed; the same biolm sweep command continues the study")
    devices, nodes = base.trainer.get("devices"), int(base.trainer.get("num_nodes") or 1)
    if nodes != 1 or (isinstance(devices, int) and devices > 1) or (isinstance(devices, ListConfig) and len(devices) > 1):
        raise BiolmError(f"trainer.devices={devices}, trainer.num_nodes={nodes}: a sweep trains one trial at a time on one device")
    missing = []
    for key, value in (OmegaConf.select(base, "model.recommended") or {}).items():
        option = config_dir() / str(key) / f"{value}.yaml"
        if "." in str(key):
            applied = OmegaConf.select(base, str(key)) == value
        else:
            wanted = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(option)).items() if k != "defaults"} if option.is_file() else {}
            applied = all(OmegaConf.select(base, f"{key}.{k}") == v for k, v in wanted.items())
        if not applied:
            missing.append(f"{key}={value}")
    if missing:
        log.warning("model.recommended: biolm finetune with this model= adds %s; biolm sweep does not: pass them if wanted", " ".join(missing))


_ABSENT = object()


def _comparable(base: DictConfig) -> dict:
    """The finetune settings a continued study must share (all but the trial's run name, folder and progress bar)."""
    settings = OmegaConf.to_container(base, resolve=True)
    for key in TRIAL_KEYS:
        settings.pop(key, None)
    return settings


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    return {k: v for name, value in tree.items() for k, v in _flat(value, f"{prefix}{name}.").items()}


def _check_settings(study, settings: dict, output: Path) -> None:
    """Record the sweep's settings in a new study; refuse to continue a study that has other settings."""
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
        return
    now, then = _flat(settings["finetune"], "finetune."), _flat(recorded.get("finetune") or {}, "finetune.")
    differ = [k for k in sorted(set(now) | set(then)) if now.get(k, _ABSENT) != then.get(k, _ABSENT)]
    differ += [k for k in ("search_space", "direction") if json.dumps(settings[k]) != json.dumps(recorded.get(k))]
    if differ:
        key = differ[0]
        was = then.get(key) if key.startswith("finetune.") else recorded.get(key)
        raise BiolmError(f"output: {output} holds a study with other settings ({len(differ)} differ; {key}: {was!r} there); "
                         "continue it with the same command, or pass another output=")


def _fail_stale_trials(study, trials_dir: Path) -> None:
    """Trials left running by a killed sweep -> failed (they do not count towards ``n_trials``); drop their partial runs."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        _drop_partial_run(trials_dir, trial.number)


def _drop_partial_run(trials_dir: Path, number: int) -> None:
    # the staging folder of `biolm.fitting.training_stage`
    shutil.rmtree(trials_dir / f".trial_{number}.incomplete", ignore_errors=True)


def _instantiate(node: DictConfig, prefix: str, seed_offset: int = 0):
    """An Optuna sampler or pruner from its ``_target_`` config (a class of ``optuna.samplers`` / ``optuna.pruners``)."""
    from hydra.utils import instantiate

    where = "sampler" if "samplers" in prefix else "pruner"
    target = str(node.get("_target_") or "")
    if not target.startswith(prefix):
        raise BiolmError(f"{where}._target_: {target!r}; accepted: a class of {prefix[:-1]}")
    kwargs = OmegaConf.to_container(node, resolve=True)
    if kwargs.get("seed") is not None:
        kwargs["seed"] = int(kwargs["seed"]) + seed_offset
    try:
        return instantiate(kwargs)
    except Exception as err:  # noqa: BLE001 - hydra wraps the class's own ImportError/TypeError/ValueError
        raise BiolmError(f"{where}: {target}: {str(err).splitlines()[0]}") from None


class _Objective:
    """One trial: sample, fit with pruning; the run's best validation value (NaN if it never was finite)."""

    def __init__(self, space: list[SearchParam], base: DictConfig, trials_dir: Path, monitor: str):
        self.space, self.base, self.trials_dir, self.monitor = space, base, trials_dir, monitor

    def __call__(self, trial) -> float:
        import optuna

        from biolm.training import fit

        sampled = {p.key: p.suggest(trial) for p in self.space}
        shown = " ".join(override(k, v) for k, v in sampled.items())
        start = time.monotonic()
        try:
            run_dir = fit(trial_config(self.base, sampled, f"trial_{trial.number}", self.trials_dir), callbacks=(PruneOnValidation(trial, self.monitor),))
        except optuna.TrialPruned as pruned:
            _drop_partial_run(self.trials_dir, trial.number)
            log.info("%s (%s; %.0f s)", pruned, shown, time.monotonic() - start)
            raise
        except RunInterrupted as err:
            _drop_partial_run(self.trials_dir, trial.number)
            stopped = str(err).split(";")[0]  # "training stopped by SIGINT at epoch e, step s"; trials are not resumed
            raise RunInterrupted(f"sweep: trial {trial.number} {stopped.removeprefix('training ')}; its partial run was dropped and "
                                 "the same biolm sweep command continues the study", err.exit_code) from None
        except BiolmError as err:
            _drop_partial_run(self.trials_dir, trial.number)
            raise BiolmError(f"trial {trial.number} ({shown}): {err}") from None
        metrics = json.loads((run_dir / "test_metrics.json").read_text())
        trial.set_user_attr("run", str(run_dir))
        trial.set_user_attr("test_metrics", {k: v for k, v in metrics.items() if isinstance(v, float) and k != "best_val"})
        value = metrics.get("best_val")
        log.info("trial %d: %s -> %s %s (%.0f s)", trial.number, shown, self.monitor, "undefined" if value is None else f"{value:.4f}",
                 time.monotonic() - start)
        return math.nan if value is None else float(value)  # NaN: optuna records the trial as failed


def trials_table(study, space: list[SearchParam]) -> pd.DataFrame:
    """One row per trial: number, state, value, wall_s, epochs, run, then a column per searched key."""
    rows = []
    for trial in study.trials:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else None
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value if trial.values else None,
                     "wall_s": None if wall is None else round(wall, 1), "epochs": len(trial.intermediate_values),
                     "run": trial.user_attrs.get("run", ""), **{p.key: trial.params.get(p.key) for p in space}})
    return pd.DataFrame(rows, columns=["number", "state", "value", "wall_s", "epochs", "run", *(p.key for p in space)])


def write_outputs(study, space: list[SearchParam], base: DictConfig, output: Path, monitor: str) -> SweepResult:
    """Write ``trials.csv``, the plots, ``best.yaml`` and ``report.md`` of a study into ``output``."""
    import optuna

    table = trials_table(study, space)
    with atomic_path(output / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plot_history(table, monitor, direction, output / "history.png")
    importances, why_not = param_importances(study, complete)
    if importances:
        plot_importances(importances, output / "importances.png")
    best = study.best_trial if complete else None
    overrides, command = [], ""
    if best is not None:
        name = f"{output.resolve().name}_best"
        overrides = [override(p.key, best.params[p.key]) for p in space]
        best_cfg = trial_config(base, {p.key: best.params[p.key] for p in space}, name, base.output_dir, bool(base.progress_bar))
        command = f"cp {output / 'best.yaml'} {config_dir() / 'experiment' / name}.yaml && biolm finetune experiment={name}"
        write_best_experiment(best_cfg, f"trial {best.number} of {output}: {monitor} {best.value:.4f}; sampled {' '.join(overrides)}",
                              command, output / "best.yaml")
    result = SweepResult(table, monitor, direction, best.number if best else None, best.value if best else None,
                         complete[0].value if complete else None, overrides, command, output)
    write_sweep_report(result, space, importances, why_not, best)
    return result


def param_importances(study, complete: list) -> tuple[dict[str, float], str]:
    """fANOVA importances of the searched keys (seeded; they sum to 1), or ``({}, why not)`` below 2 complete trials."""
    import optuna

    if len(complete) < 2:
        return {}, f"{len(complete)} complete trial(s); importances need at least 2"
    try:
        return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)), ""
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return {}, f"not computable ({str(err).splitlines()[0]})"


def plot_history(table: pd.DataFrame, monitor: str, direction: str, path: Path) -> None:
    """Each complete trial's value and the best so far, by trial number."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = figure(6.0, 4.0)
    complete = table[table.state == "COMPLETE"].dropna(subset=["value"])
    ax.scatter(complete.number, complete.value, color="tab:blue", label="complete trial", zorder=3)
    best = complete.value.cummax() if direction == "maximize" else complete.value.cummin()
    ax.step(complete.number, best, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best {monitor} of the trial")
    ax.legend(loc="best")
    save_png(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> None:
    fig, (ax,) = figure(6.0, 0.8 + 0.4 * len(importances))
    keys = list(importances)[::-1]
    ax.barh(keys, [importances[k] for k in keys], color="tab:blue")
    ax.set_xlabel("importance (fANOVA; sums to 1)")
    save_png(fig, path)


def write_best_experiment(cfg: DictConfig, summary: str, command: str, path: Path) -> None:
    """``best.yaml``: ``cfg`` (a complete finetune config) as an experiment that ``biolm finetune experiment=<name>`` composes back.

    The experiment empties every group of ``configs/finetune.yaml`` (``override /<group>: null``) and then sets every
    value, so it composes to ``cfg`` itself, not to the configs' current defaults.
    """
    groups = _groups(OmegaConf.load(config_file("finetune")))
    header = ["# @package _global_", f"# The best trial of a biolm sweep: {summary}",
              f"# Train it again: {command}", "# (every group is emptied, then every value set: this is the whole config of the trial)"]
    defaults = OmegaConf.create({"defaults": [{f"override /{g}": None} for g in groups if g != "experiment"]})
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(header) + "\n" + OmegaConf.to_yaml(defaults) + OmegaConf.to_yaml(cfg, resolve=True))


def write_sweep_report(result: SweepResult, space: list[SearchParam], importances: dict[str, float], why_not: str, best) -> None:
    """``report.md``: counts, the search space, the best trial against the first, the top trials, importances and plots."""
    table = result.trials
    counts = ", ".join(f"{n} {s.lower()}" for s, n in table.state.value_counts().items())
    lines = [f"# Sweep {result.output.resolve().name}", "", f"{len(table)} trials ({counts}); objective: {result.direction} the best {result.monitor}.",
             "", "## Search space", ""]
    lines += markdown_table([(f"`{p.key}`", p.type, p.describe()) for p in space], ("key", "type", "range"), numeric=False)
    lines += ["", "Each trial's whole config is in `trials/trial_<n>/config.yaml` (complete trials keep their run folder).", "", "## Best trial", ""]
    if best is None:
        lines.append("No trial completed.")
    else:
        gain = result.best_value - result.first_value
        lines += [f"Trial {best.number}: {result.monitor} {result.best_value:.4f} (first complete trial {result.first_value:.4f}; {gain:+.4f}),",
                  f"with `{' '.join(result.best_overrides)}`. Train it again: `{result.command}`.", ""]
        test = best.user_attrs.get("test_metrics") or {}
        if test:
            lines += markdown_table([(k, f"{v:.4f}") for k, v in test.items()], ("test metric", "value")) + [""]
        top = table[table.state == "COMPLETE"].sort_values("value", ascending=result.direction == "minimize").head(10)
        lines += ["### Top trials", ""]
        lines += markdown_table([(str(r["number"]), f"{r['value']:.4f}", f"{r['wall_s']:.0f}", *(f"{r[p.key]:.4g}" if isinstance(r[p.key], float) else str(r[p.key]) for p in space))
                         for _, r in top.iterrows()],
                        ("trial", "value", "wall_s", *(f"`{p.key}`" for p in space)))
    lines += ["", "## Plots", "", "![Optimisation history](history.png)", ""]
    if importances:
        lines += ["![Parameter importances](importances.png)", ""] + markdown_table([(f"`{k}`", f"{v:.3f}") for k, v in importances.items()], ("key", "importance"))
    else:
        lines.append(f"Parameter importances skipped: {why_not}.")
    with atomic_path(result.output / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
