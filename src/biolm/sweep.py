"""Hyper-parameter search over fine-tunes with Optuna: `run_sweep` (``biolm sweep``).

In: the composed ``sweep`` config (``configs/sweep.yaml``): the whole ``finetune`` config that every trial
starts from (``experiment=`` and any finetune override compose into it, exactly as on ``biolm finetune``),
a search space (``configs/search_space/<name>.yaml``, `biolm.sweep_space`), the number of trials, what to do
when a trial fails, and the output folder. Out, in ``<output>/``:

- ``study.db``: the Optuna study (SQLite); the same command again continues it up to ``n_trials``;
- ``.lock``: held while a sweep runs on the folder (a second ``biolm sweep`` on it is refused);
- ``trials/trial_<n>/``: the run folder of each complete trial (pruned, failed and interrupted trials leave none);
- ``trials.csv``, ``history.png``, ``importances.png``, ``report.md`` and ``experiment/best.yaml``
  (`biolm.sweep_report`), written when the sweep ends, also when it ends by an error or an interruption.

A trial is `biolm.training.fit` on the sweep's finetune config with the sampled values set (plus
``run_name=trial_<n> output_dir=<output>/trials progress_bar=false``). The config is composed once from the
sweep's command line, not once per trial from override strings: Hydra reads ``experiment=`` as a group
choice and keeps no record of it in the composed config, so a sweep config that held only the overrides
could not take ``experiment=`` at all. Hence group choices (``model=``) are not searchable. ``model=<name>`` on
the sweep's command line brings the model's ``recommended:`` settings, as on ``biolm finetune``; the sweep warns
when a config's model lacks them otherwise. Each trial's objective is the best validation value of the task's monitor (``best_val``
in its ``test_metrics.json``), optimised in the monitor's own direction; `PruneOnValidation` reports the
monitor to Optuna after every validation and stops a trial that the pruner rejects. A trial that fails with a
user error or runs out of GPU memory is recorded as failed and the sweep goes on (``on_error=continue``) or
stops (``on_error=stop``); a trial whose monitor is never finite is failed too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from biolm.composition import override
from biolm.errors import BiolmError, RunInterrupted, require_extra
from biolm.resources import config_dir
from biolm.sweep_report import SweepResult, write_outputs
from biolm.sweep_space import SearchParam, finetune_config, parse_search_space, trial_config
from biolm.tasks.metrics import metric_mode

__all__ = ["PruneOnValidation", "SweepResult", "finetune_config", "parse_search_space", "run_sweep", "trial_config"]

log = logging.getLogger(__name__)

# Finetune keys that the sweep sets for each trial (and that are left out when comparing trials' settings).
TRIAL_KEYS = ("run_name", "output_dir", "progress_bar")
ON_ERROR = ("continue", "stop")


class PruneOnValidation(L.Callback):
    """Report ``monitor`` to an Optuna trial after every validation; raise ``optuna.TrialPruned`` when the pruner says so.

    The step reported is the 0-based index of the validation (counted by this callback, so several validations
    within one epoch, ``trainer.val_check_interval < 1``, are separate steps); a missing or NaN value (a metric
    undefined on the validation set) is not reported. Raising stops `lightning.Trainer.fit` at once, so a pruned
    trial is neither tested nor published. (optuna-integration's ``PyTorchLightningPruningCallback`` does the
    same in one process; it is a separate package, which biolm does not depend on.)

    Args:
        trial: the ``optuna.Trial`` being run.
        monitor: the logged metric, e.g. ``val/mcc``.
    """

    def __init__(self, trial, monitor: str):
        self.trial = trial
        self.monitor = monitor
        self.validations = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking:
            return
        step = self.validations
        self.validations += 1
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or math.isnan(float(value)):
            return
        self.trial.report(float(value), step=step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after validation {step}: {self.monitor} {float(value):.4f}")


class _TrialFailed(Exception):
    """A trial's user error or out-of-memory error with ``on_error=continue``: Optuna records the trial as failed and goes on."""


@contextlib.contextmanager
def _exclusive(output: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<output>/.lock`` (released when the process ends, even when it is killed)."""
    if output.exists() and not output.is_dir():
        raise BiolmError(f"output={output}: a file, not a folder (the sweep's folder holds its study and trials)")
    output.mkdir(parents=True, exist_ok=True)
    fd = os.open(output / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BiolmError(f"output: {output} is in use by another biolm sweep (it holds {output / '.lock'}); "
                             "wait for it to end, or pass another output=") from None
        yield
    finally:
        os.close(fd)


def run_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or continue) the Optuna study that ``cfg`` describes and write its outputs (see the module docstring).

    Args:
        cfg: the composed ``sweep`` config (``compose("sweep", [...])``): the finetune config, ``search_space``,
            ``n_trials`` (in total, counting the complete and pruned trials of earlier runs), ``timeout_s``,
            ``direction``, ``on_error``, ``sampler``, ``pruner`` and ``output``.

    Returns:
        The trials table and the best trial (`SweepResult`).

    Raises:
        BiolmError: optuna is missing; a bad search space, sampler or pruner; a ``direction`` against the monitor's
            own; another sweep running on ``output``; a finetune config that differs from that of the study already
            in ``output``; or, with ``on_error=stop``, a trial's own error (prefixed with the trial and its values).
        RunInterrupted: SIGINT/SIGTERM stopped a trial; the same command continues the study.
    """
    require_extra("analysis", "optuna")
    import optuna

    if not cfg.get("output"):
        raise BiolmError("output: missing; pass output=<sweep folder> (the same folder again continues the study)")
    output = Path(str(cfg.output)).expanduser()
    on_error = str(cfg.on_error)
    if on_error not in ON_ERROR:
        raise BiolmError(f"on_error={on_error}: accepted: continue (record the failed trial and go on) or stop")
    space = parse_search_space(cfg.search_space)
    base = finetune_config(cfg)
    _check_base(base, space)
    monitor = f"val/{base.task.monitor}"
    direction = _direction(cfg.get("direction"), str(base.task.monitor))

    with _exclusive(output):
        trials_dir = (output / "trials").resolve()
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # optuna logs a failed trial with its traceback; we log one line
        try:
            study = optuna.create_study(storage=f"sqlite:///{(output / 'study.db').resolve()}", study_name="sweep", direction=direction,
                                        load_if_exists=True)
            settings = {"finetune": _comparable(base), "search_space": [p.record() for p in space], "direction": direction}
            _check_settings(study, settings, output)
            _fail_stale_trials(study, trials_dir)
            # seeded by the trials so far: a continued study does not replay the sampler's first draws
            study.sampler = _instantiate(cfg.sampler, "optuna.samplers.", seed_offset=len(study.trials))
            study.pruner = _instantiate(cfg.pruner, "optuna.pruners.")
            done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
            remaining = max(int(cfg.n_trials) - done, 0)
            log.info("sweep %s: %d trials done, %d to run; %s %s over %s", output, done, remaining, direction, monitor,
                     ", ".join(p.key for p in space))
            if remaining:
                objective = _Objective(space, base, trials_dir, monitor, on_error)
                try:
                    study.optimize(objective, n_trials=remaining, timeout=cfg.get("timeout_s"),
                                   catch=(_TrialFailed,) if on_error == "continue" else (), gc_after_trial=True)
                except BaseException:
                    _write_outputs_after_error(study, space, base, output, monitor)
                    raise
        finally:
            optuna.logging.set_verbosity(verbosity)
        return write_outputs(study, space, base, output, monitor)


def _direction(direction, monitor: str) -> str:
    """The study's direction: the monitor's own (its best validation value is the objective); another one is refused."""
    mode = metric_mode(monitor)
    own = "maximize" if mode == "max" else "minimize"
    if direction is not None and str(direction) != own:
        raise BiolmError(f"direction={direction}: the objective is the best validation {monitor}, picked as its {mode}imum, so the "
                         f"study must {own} it; leave direction unset (or pass direction={own}), or choose another task.monitor")
    return own


def _write_outputs_after_error(study, space: list[SearchParam], base: DictConfig, output: Path, monitor: str) -> None:
    """The outputs of the trials so far, while an error or interruption ends the sweep (that error is what is raised)."""
    try:
        write_outputs(study, space, base, output, monitor)
    except Exception as err:  # noqa: BLE001 - the error that ends the sweep matters more than its outputs
        log.warning("sweep outputs not written: %s", err)


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
    """Remove trial ``number``'s staging folder (`biolm.fitting.training_stage`), if any."""
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
    """One trial: sample, fit with pruning; the run's best validation value (NaN: failed, the monitor was never finite)."""

    def __init__(self, space: list[SearchParam], base: DictConfig, trials_dir: Path, monitor: str, on_error: str):
        self.space, self.base, self.trials_dir, self.monitor, self.on_error = space, base, trials_dir, monitor, on_error

    def __call__(self, trial) -> float:
        import optuna

        from biolm.training import fit

        sampled = {p.key: p.suggest(trial) for p in self.space}
        shown = " ".join(override(k, v) for k, v in sampled.items())
        start = time.monotonic()
        try:
            run_dir = fit(trial_config(self.base, sampled, f"trial_{trial.number}", self.trials_dir), callbacks=(PruneOnValidation(trial, self.monitor),))
        except optuna.TrialPruned as pruned:
            log.info("%s (%s; %.0f s)", pruned, shown, time.monotonic() - start)
            raise
        except RunInterrupted as err:
            stopped = str(err).split(";")[0]  # "training stopped by SIGINT at epoch e, step s"; trials are not resumed
            trial.set_user_attr("error", stopped)
            raise RunInterrupted(f"sweep: trial {trial.number} {stopped.removeprefix('training ')}; its partial run was dropped and "
                                 "the same biolm sweep command continues the study", err.exit_code) from None
        except (BiolmError, torch.cuda.OutOfMemoryError) as err:
            if isinstance(err, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
                err = f"out of GPU memory ({str(err).splitlines()[0]})"
            self._failed(trial, shown, " ".join(line.strip() for line in str(err).splitlines() if line.strip()))
            if self.on_error == "stop":
                raise BiolmError(f"trial {trial.number} ({shown}): {err}") from None
            raise _TrialFailed(str(err)) from None
        finally:
            _drop_partial_run(self.trials_dir, trial.number)
        metrics = json.loads((run_dir / "test_metrics.json").read_text())
        value = metrics.get("best_val")
        if value is None or not math.isfinite(float(value)):
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed trial leaves no run folder
            self._failed(trial, shown, f"monitor never finite ({self.monitor} undefined at every validation)")
            return math.nan  # optuna records the trial as failed
        trial.set_user_attr("run", str(run_dir))
        trial.set_user_attr("test_metrics", {k: v for k, v in metrics.items() if isinstance(v, float) and k != "best_val"})
        log.info("trial %d: %s -> %s %.4f (%.0f s)", trial.number, shown, self.monitor, value, time.monotonic() - start)
        return float(value)

    def _failed(self, trial, shown: str, message: str) -> None:
        trial.set_user_attr("error", message)
        log.error("trial %d failed (%s): %s", trial.number, shown, message)
