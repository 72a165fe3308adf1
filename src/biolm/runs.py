"""The run folder: what training writes and what every consumer reads.

Layout of ``runs/<name>/``::

    config.yaml          resolved Hydra config of the run
    tokenizer/           tokenizer files in Hugging Face formats + biolm_tokenizer.json
    labels.json          task type, label map and the objective's class (`LabelSpec`)
    model.safetensors    best weights (by the monitored validation metric)
    adapter/             LoRA runs instead: peft adapter (LoRA + head) and base.json (the pretrained run + SHA-256)
    checkpoint.json      which epoch/step/metric value those weights come from
    metrics.csv          per-step / per-epoch training and validation log (Lightning CSVLogger)
    test_metrics.json    final test metrics
    test_segments.tsv    token-classification runs: the test set's predicted segments
    test_predictions.csv per-record test predictions

`load_run` rebuilds the model from ``config.yaml`` and the safetensors weights; nothing is
unpickled, and only ``biolm.*`` classes may be named by ``_target_`` in a run's config.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import yaml
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import SafetensorError
from safetensors.torch import load_file

from biolm.data.io import atomic_path
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError, find_user_error
from biolm.tasks.decision import DECISION_FILE, load_decision  # noqa: F401  (DECISION_FILE: re-exported for run writers)
from biolm.tokenizers import load_tokenizer

REQUIRED_FILES = ("config.yaml", "labels.json", "model.safetensors", "tokenizer")


@dataclass
class Run:
    """A trained run loaded for inference.

    Attributes:
        path: the run folder.
        cfg: its resolved config.
        tokenizer: the tokenizer it was trained with.
        labels: its label space.
        model: the network in eval mode, on CPU.
    """

    path: Path
    cfg: DictConfig
    tokenizer: object
    labels: LabelSpec
    model: torch.nn.Module

    @property
    def objective(self):
        """The run's task objective (`biolm.tasks.objectives`): activation, prediction table, metrics."""
        from biolm.tasks.objectives import objective_for

        if getattr(self, "_objective", None) is None:
            self._objective = objective_for(self.labels)
        return self._objective

    @property
    def max_tokens(self) -> int | None:
        """Longest token sequence the model accepts (the run's data.max_tokens or the model's limit)."""
        return token_limit(self.model, self.cfg.data)


RUN_STAMP_ENV = "BIOLM_RUN_STAMP"


def default_run_name(prefix: str) -> str:
    """``<prefix>-<date>-<time>``, the same in every DDP rank of one launch.

    Lightning starts ranks 1.. by re-running the command with the parent's environment, so the
    first rank's timestamp is passed down in ``$BIOLM_RUN_STAMP``. Ranks started by an external
    launcher on other nodes cannot share it: give multi-node runs an explicit ``run_name``.
    """
    stamp = os.environ.setdefault(RUN_STAMP_ENV, f"{datetime.now():%Y%m%d-%H%M%S}")
    return f"{prefix}-{stamp}"


def token_limit(model: torch.nn.Module, data_cfg: DictConfig) -> int | None:
    """The tighter of the model's own limit and ``data.max_tokens`` (None: no limit)."""
    limits = [v for v in (getattr(model, "max_tokens", None), data_cfg.get("max_tokens")) if v]
    return int(min(limits)) if limits else None


def check_window_fits(tokenizer, window_bp: int, max_tokens: int | None, field: str) -> None:
    """Refuse a window of ``window_bp`` bases whose tokens (specials included) exceed ``max_tokens``."""
    window_tokens = len(tokenizer.encode_batch(["A" * int(window_bp)])[0])
    if max_tokens is not None and window_tokens > max_tokens:
        raise BiolmError(
            f"{field}={window_bp}: {window_bp} bp is {window_tokens} tokens, more than the model's limit of {max_tokens}; "
            f"lower {field} or raise the model's maximum length"
        )


def check_targets(node, where: str) -> None:
    """Refuse run configs that would instantiate anything outside biolm."""
    if isinstance(node, DictConfig):
        for key, value in node.items():
            if key == "_target_" and not str(value).startswith("biolm."):
                raise BiolmError(f"{where}: _target_ {value!r} is not a biolm class; refusing to load this run")
            check_targets(value, where)


# what a damaged or hand-edited run file raises while it is read (JSON and YAML errors are ValueErrors or YAMLErrors)
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, yaml.YAMLError, SafetensorError, OmegaConfBaseException)


@contextlib.contextmanager
def run_file(path: Path, problem: str) -> Iterator[None]:
    """Turn a failure to read one file of a run folder into one `BiolmError` naming the file."""
    try:
        yield
    except BiolmError:
        raise
    except _READ_ERRORS as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise BiolmError(f"run: {path}: {problem} ({detail}); the run folder is damaged or was edited by hand: restore it or train again") from None


def _read_config(run_dir: Path) -> DictConfig:
    path = run_dir / "config.yaml"
    with run_file(path, "not a readable run config"):
        cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise BiolmError(f"run: {path}: not a biolm run config (no model section); the run folder is damaged or was edited by hand")
    check_targets(cfg, str(path))
    return cfg


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    with run_file(path, "cannot load these weights into the model its config.yaml describes (truncated, corrupt, or from another model)"):
        model.load_state_dict(load_file(str(path)), strict=True)


def load_run(path: str | Path) -> Run:
    """Load a run folder for evaluation or prediction (a LoRA run: its base weights, then its adapter).

    Raises:
        BiolmError: the folder is missing or incomplete, or one of its files is damaged (a truncated
            ``model.safetensors``, an unreadable ``config.yaml``, ``labels.json`` or tokenizer, a
            ``_target_`` outside biolm); the message names the file.
    """
    from biolm.models.adapters import check_base, load_adapter

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise BiolmError(f"run: no run folder at {run_dir}")
    adapter_dir = run_dir / "adapter"
    adapted = (adapter_dir / "adapter_model.safetensors").exists()
    required = [name for name in REQUIRED_FILES if not (adapted and name == "model.safetensors")]
    missing = [name for name in required if not (run_dir / name).exists()]
    if missing:
        raise BiolmError(f"run: {run_dir} is not a complete biolm run folder (missing: {', '.join(missing)})")
    cfg = _read_config(run_dir)
    with run_file(run_dir / "tokenizer", "cannot load the tokenizer"):
        tokenizer = load_tokenizer(run_dir / "tokenizer")
    with run_file(run_dir / "labels.json", "not a readable label file"):
        labels = LabelSpec.from_json(run_dir / "labels.json")
    with run_file(run_dir / "labels.json", "names no known task objective"):
        from biolm.tasks.objectives import objective_for

        objective = objective_for(labels)
    objective.decision = load_decision(run_dir) or objective.decision
    with run_file(run_dir / "config.yaml", "its model section does not build"):
        model = objective.build_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    if adapted:
        with run_file(adapter_dir, "cannot load the adapter onto its base run"):
            base = check_base(adapter_dir, OmegaConf.select(cfg, "model.pretrained_from"))
            if (base / "config.yaml").exists():
                load_trunk(model, base)
            else:  # trained on a Hugging Face checkpoint folder (model.pretrained)
                import_trunk(model, base, tokenizer.vocab_size, tokenizer.pad_id)
            model = load_adapter(model, adapter_dir)
    else:
        _load_weights(model, run_dir / "model.safetensors")
    model.eval()
    run = Run(run_dir, cfg, tokenizer, labels, model)
    run._objective = objective
    return run


def load_trunk(model: torch.nn.Module, source: Path) -> None:
    """Copy the ``trunk.*`` weights of a pretrained run into ``model.trunk`` (every tensor must fit)."""
    state = load_file(str(Path(source) / "model.safetensors"))
    trunk_state = {key[len("trunk.") :]: value for key, value in state.items() if key.startswith("trunk.")}
    _fill_trunk(model, trunk_state, source)


def import_trunk(model: torch.nn.Module, folder: Path, vocab_size: int, pad_token_id: int) -> None:
    """Copy the trunk of the Hugging Face checkpoint ``folder`` (``model.pretrained``) into ``model.trunk``."""
    imported = type(model.trunk).from_pretrained(str(folder), vocab_size=vocab_size, pad_token_id=pad_token_id)
    wanted = model.trunk.state_dict()
    # the checkpoint's own LM head (ESM) is not part of a sequence model's trunk
    _fill_trunk(model, {key: value for key, value in imported.state_dict().items() if key in wanted}, folder)


def _fill_trunk(model: torch.nn.Module, trunk_state: dict, source: Path) -> None:
    result = model.trunk.load_state_dict(trunk_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BiolmError(
            f"init_from: {source} weights do not fit the trunk (missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


@dataclass
class LanguageModelRun:
    """A pretraining run (``biolm pretrain``) loaded for scoring.

    Attributes:
        path: the run folder.
        cfg: its resolved config.
        tokenizer: the tokenizer it was trained with.
        objective: ``mlm`` or ``clm``.
        model: the `LanguageModel` (trunk + LM head) in eval mode, on CPU.
    """

    path: Path
    cfg: DictConfig
    tokenizer: object
    objective: str
    model: torch.nn.Module


def load_language_model_run(path: str | Path) -> LanguageModelRun:
    """Load a pretraining run folder (``config.yaml`` with ``objective.name``, ``tokenizer/``, ``model.safetensors``).

    Raises:
        BiolmError: the folder is missing, incomplete, damaged (as for `load_run`), or not a pretraining run.
    """
    from biolm.models import build_language_model

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise BiolmError(f"run: no run folder at {run_dir}")
    missing = [name for name in ("config.yaml", "model.safetensors", "tokenizer") if not (run_dir / name).exists()]
    if missing:
        raise BiolmError(f"run: {run_dir} is not a complete biolm pretraining run (missing: {', '.join(missing)})")
    cfg = _read_config(run_dir)
    objective = OmegaConf.select(cfg, "objective.name")
    if objective not in ("mlm", "clm"):
        raise BiolmError(f"run: {run_dir / 'config.yaml'} has objective.name={objective!r}; a language-model run has mlm or clm")
    with run_file(run_dir / "tokenizer", "cannot load the tokenizer"):
        tokenizer = load_tokenizer(run_dir / "tokenizer")
    with run_file(run_dir / "config.yaml", "its model section does not build"):
        model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    _load_weights(model, run_dir / "model.safetensors")
    model.eval()
    return LanguageModelRun(run_dir, cfg, tokenizer, str(objective), model)


def load_pretrained_language_model(pretrained: str | Path, tokenizer: object | None = None) -> LanguageModelRun:
    """A public masked or causal LM checkpoint (``model.pretrained``: a folder or a Hub id) loaded for scoring.

    The family comes from its ``config.json`` and the LM head from its weights; the objective is
    ``clm`` for a causal trunk (HyenaDNA), else ``mlm``. No biolm run is needed.

    Args:
        pretrained: the checkpoint folder or Hub id.
        tokenizer: its tokenizer, or a ``tokenizer`` config to instantiate; default: read from the folder
            (``tokenizer=pretrained``).

    Raises:
        BiolmError: a folder whose family, tokenizer or LM head biolm cannot read.
    """
    from biolm.checkpoints import resolve_pretrained
    from biolm.models import build_language_model
    from biolm.models.hub import detect_family
    from biolm.tokenizers.checkpoint import from_checkpoint

    folder = resolve_pretrained(pretrained)
    family = detect_family(folder)
    if family is None:
        raise BiolmError(
            f"model.pretrained={pretrained}: {folder / 'config.json'} names no family biolm imports "
            "(BERT / DNABERT / DNABERT-2, ESM / Nucleotide Transformer, HyenaDNA)"
        )
    if isinstance(tokenizer, DictConfig):  # a `tokenizer` config node (the command's), instantiated here
        tokenizer = instantiate_config(tokenizer, "tokenizer")
    tokenizer = tokenizer if tokenizer is not None else from_checkpoint(folder)
    cfg = OmegaConf.create({"model": {"trunk": {"_target_": family}, "pretrained": str(folder)}})
    model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id, require_lm_head=True).eval()
    objective = "clm" if getattr(model.trunk, "causal", False) else "mlm"
    return LanguageModelRun(folder, cfg, tokenizer, objective, model)


def instantiate_config(node: DictConfig, field: str, **kwargs):
    """`hydra.utils.instantiate`, with failures reported as `BiolmError` naming the config field."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        user_error = find_user_error(err)
        if user_error is not None:
            raise user_error from None
        cause = err.__cause__
        while cause is not None and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, (FileNotFoundError, OSError)):
            raise BiolmError(f"{field}: {cause}") from None
        message = str(cause or err).strip().splitlines()[0]
        raise BiolmError(f"{field}: cannot build it from the config: {message}") from None


def write_json(payload: dict, path: Path) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
