"""Composing a command's Hydra config from ``configs/`` and ``key=value`` overrides.

Shared by the CLI (`biolm.cli`) and by the engines that run other commands' configs themselves
(benchmark suites and sweeps compose one ``finetune`` config per run). ``compose("finetune",
["model=cnn"])`` is what ``biolm finetune model=cnn`` runs, with the same implied choices and errors.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from biolm.errors import BiolmError
from biolm.resources import config_dir, resolve_bundled

# Commands whose configs live in their own Hydra root under configs/ (own data/, models/, experiment/ groups).
CONFIG_SUBDIRS: dict[str, str] = {"gp": "gp", "ner": "text", "extract": "text", "llm": "text", "rag": "text", "agent": "text"}
# One name per concept across commands: an old spelling on the command line is refused, naming the new key.
RENAMED_KEYS: dict[str, str] = {
    "data.window.size": "data.window_bp",
    "data.window.stride": "data.window_stride_bp",
    "window": "window_bp",
    "average_rc": "rc_average",
}
# Commands that run other commands' configs: an override whose first key is none of the command's own keys or
# groups joins this list of the command's config (`biolm benchmark optim.lr=2e-3` = `finetune=["optim.lr=2e-3"]`).
BARE_OVERRIDE_LISTS: dict[str, str] = {"benchmark": "finetune"}


def config_file(command: str) -> Path:
    """configs/<command>.yaml (words joined by ``_``), under the command's own Hydra root if it has one."""
    words = command.replace("_", " ").split()
    return config_dir() / CONFIG_SUBDIRS.get(words[0], "") / f"{'_'.join(words)}.yaml"


def group_options(group: str, root: Path | None = None) -> list[str]:
    """The option names of a config group (``configs/<group>/*.yaml`` stems, sorted); empty for no such group.

    Args:
        group: the group folder, e.g. ``model`` or ``search_space``.
        root: the Hydra root it lives in (default: ``configs/``; ``configs/text`` for the text commands).
    """
    folder = (root or config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _composition_error(err: Exception, root: Path | None = None) -> BiolmError:
    """Turn Hydra's multi-line composition errors into one line that says what is accepted."""
    text = str(err)
    missing = re.search(r"Could not (?:find|load) '([^/']+)/([^']+)'", text)
    if missing:
        group, name = missing.groups()
        options = group_options(group, root)
        return BiolmError(f"unknown {group} {name!r}; available: {', '.join(options) or '(none)'}")
    unknown = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if unknown:
        key = unknown.group(1)
        return BiolmError(f"unknown config key {key!r}; use '+{key}=...' to add a new key, or see --cfg job for the valid ones")
    line = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return BiolmError(f"bad override: {line}")


def _refuse_renamed(overrides: list[str]) -> None:
    """An old spelling of a renamed key (`RENAMED_KEYS`) -> one line naming the new key."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in RENAMED_KEYS:
            raise BiolmError(f"{key} was renamed {RENAMED_KEYS[key]}")


def _implied_overrides(command: str, overrides: list[str]) -> list[str]:
    """Choices the command line implies, added after it unless it makes them itself:

    - ``model.pretrained=<checkpoint>`` -> ``tokenizer=pretrained`` (the checkpoint's own tokenizer);
    - ``model=<name>`` -> the ``recommended:`` settings of ``configs/model/<name>.yaml`` (e.g. ``model=cnn`` ->
      ``tokenizer=char``: the one-hot CNN reads single bases).

    Only for commands whose config has the group (``tokenizer``, ``model``) in its defaults. What was
    added shows in ``--cfg job`` and in the run's ``config.yaml``.
    """
    keys = {item.split("=", 1)[0].lstrip("+~"): item.partition("=")[2] for item in overrides}
    try:
        defaults = OmegaConf.load(config_file(command)).get("defaults") or []
    except (OSError, OmegaConfBaseException):
        return overrides
    groups = {key for item in defaults if isinstance(item, DictConfig) for key in item}
    for item in defaults:  # a config included whole (biolm sweep's `- finetune`) brings its groups
        included = config_file(command).parent / f"{item}.yaml" if isinstance(item, str) and item != "_self_" else None
        if included is not None and included.is_file():
            with contextlib.suppress(OSError, OmegaConfBaseException):
                groups |= {key for entry in OmegaConf.load(included).get("defaults") or [] if isinstance(entry, DictConfig) for key in entry}
    implied: dict[str, str] = {}
    if keys.get("model.pretrained", "null") not in ("", "null"):
        implied["tokenizer"] = "pretrained"
    elif keys.get("model") and "model" in groups:
        model_file = config_file(command).parent / "model" / f"{keys['model']}.yaml"
        try:
            recommended = OmegaConf.load(model_file).get("recommended") if model_file.is_file() else None
        except OmegaConfBaseException:
            recommended = None  # the composition names the broken file
        implied.update({str(key): str(value) for key, value in (recommended or {}).items()})
    added = [f"{key}={value}" for key, value in implied.items() if key not in keys and (key.split(".")[0] in groups or "." in key)]
    return [*overrides, *added]


def compose(command: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<command>.yaml`` with Hydra overrides (``key=value``); ``${bundled:...}`` paths are resolved.

    Raises:
        BiolmError: an override names an unknown or renamed key, or the config does not compose.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    _refuse_renamed(overrides)
    overrides, bare = _split_bare(command, overrides)
    overrides = _implied_overrides(command, overrides)
    GlobalHydra.instance().clear()
    root = config_file(command).parent
    try:
        with initialize_config_dir(config_dir=str(root), version_base=None):
            cfg = hydra_compose(config_name=command, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise _composition_error(err, root) from None
    if bare:
        listed = cfg.get(BARE_OVERRIDE_LISTS[command])
        cfg[BARE_OVERRIDE_LISTS[command]] = [*(listed or []), *bare]
    resolve_bundled(cfg)
    return cfg


def _split_bare(command: str, overrides: list[str]) -> tuple[list[str], list[str]]:
    """``(the command's own overrides, the others)`` for a command of `BARE_OVERRIDE_LISTS` (else all are its own).

    Own: the first key (``suite`` of ``suite.tasks.a.metric=mcc``) is a top-level key or a group of the command's
    config, or ``hydra``. The others are composed later, as the other command's overrides (where a typo is named).
    """
    if command not in BARE_OVERRIDE_LISTS:
        return overrides, []
    config = OmegaConf.load(config_file(command))
    own = {"hydra", *(str(k) for k in config if k != "defaults")}
    own |= {str(key).removeprefix("optional ") for item in config.get("defaults") or [] if isinstance(item, DictConfig) for key in item}
    first = [re.split(r"[.=\[]", item.lstrip("+~"), maxsplit=1)[0] for item in overrides]
    return ([item for item, key in zip(overrides, first, strict=True) if key in own or item.startswith("-")],
            [item for item, key in zip(overrides, first, strict=True) if key not in own and not item.startswith("-")])


def override(key: str, value) -> str:
    """``key=value`` in Hydra's override grammar: numbers exact (``repr``), strings quoted unless plain words."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif re.fullmatch(r"[A-Za-z_][\w./-]*", str(value)) and str(value).lower() not in ("true", "false", "null", "nan", "inf"):
        text = str(value)
    else:
        text = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"
