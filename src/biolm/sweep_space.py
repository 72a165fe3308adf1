"""What a ``biolm sweep`` trial trains: the search space and the trial's finetune config.

In: a ``search_space`` config (``configs/search_space/<name>.yaml``), nested as the finetune config
(``optim: {lr: <spec>}`` searches ``optim.lr``), each leaf a spec with a ``type``. Out: one `SearchParam` per
searched key, in file order, each drawing its value from an Optuna trial (`SearchParam.suggest`);
`finetune_config` (the finetune config inside a composed sweep config) and `trial_config` (it, with a trial's
sampled values and run folder set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from biolm.composition import config_file
from biolm.errors import BiolmError

SEARCH_TYPES: dict[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}


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
        """The range as the report shows it: ``[low, high] log step s`` or the choices."""
        if self.type == "categorical":
            return ", ".join(map(str, self.choices))
        return f"[{self.low}, {self.high}]" + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")

    def record(self) -> dict:
        """A JSON-able record of the spec (what a continued study must share)."""
        return {**vars(self), "choices": list(self.choices)}


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


def config_groups(config: DictConfig) -> list[str]:
    """The config groups in a config file's defaults list (``- model: bert_tiny``, ``- optional debug: null``)."""
    return [str(key).removeprefix("optional ") for item in config.get("defaults") or [] if isinstance(item, DictConfig) for key in item]


def finetune_config(cfg: DictConfig) -> DictConfig:
    """The finetune config inside a composed ``sweep`` config: a copy without the sweep's own keys and groups."""
    own = OmegaConf.load(config_file("sweep"))
    base = cfg.copy()
    with open_dict(base):
        for key in [*config_groups(own), *(str(k) for k in own if k != "defaults")]:
            base.pop(key, None)
    return base


def trial_config(base: DictConfig, sampled: dict, run_name: str, output_dir: str | Path, progress_bar: bool = False) -> DictConfig:
    """``base`` (a finetune config) with the ``sampled`` values (dotted keys) and the trial's run folder set."""
    cfg = base.copy()
    for key, value in {**sampled, "run_name": run_name, "output_dir": str(output_dir), "progress_bar": progress_bar}.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg
