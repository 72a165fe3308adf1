"""Export a fine-tuning run folder as a Hugging Face model folder (`biolm export run=... out=...`).

In: ``runs/<name>/`` (see `biolm.runs`). Out: a folder built beside ``out`` and renamed into place::

    config.json            transformers `BertConfig` (BertForSequenceClassification) for BERT-style runs;
                           otherwise a biolm description without ``model_type`` (transformers refuses it)
    model.safetensors      BERT-style runs only: the weights under transformers' names
    vocab.txt | tokenizer.json, tokenizer_config.json, special_tokens_map.json, biolm_tokenizer.json
    README.md              model card: labels, test metrics, training data files, biolm version, usage
    biolm/                 the run itself (config.yaml, labels.json, tokenizer/, model.safetensors, ...):
                           ``biolm predict run=<out>/biolm`` predicts exactly as the run

A run maps onto `transformers.BertForSequenceClassification` when its trunk is a `BertEncoder` with
learned positions and a GELU MLP, its head pools ``cls``, and its tokenizer has a ``vocab.txt``.
transformers' classifier reads ``tanh(pooler(h_cls))`` while biolm's head reads ``h_cls``: the
exported pooler is ``scale * I`` with ``scale`` small enough that ``tanh`` is linear to ~1e-7 for
any output of the final LayerNorm, and the classifier is divided by ``scale``. A binary head (one
logit) becomes two logits ``[0, z]`` (softmax = sigmoid), a regression head folds in the target
mean and std. Every other run is exported for biolm only, and the model card says so.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import Tensor

from biolm import __version__
from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.fitting import publish, staging_dir
from biolm.models.adapters import is_adapted
from biolm.models.bert import BertEncoder
from biolm.models.bert_hub import convert_hf_bert_state_dict
from biolm.models.heads import SequenceModel
from biolm.runs import Run, load_run

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "labels.json", "test_metrics.json", "checkpoint.json", "report.md")  # copied; the weights are written from the model
TANH_LINEAR_BOUND = 1e-3  # largest |pooler input| after scaling: tanh(x) = x (1 - x^2/3), so relative error <= 3.4e-7

_TRUNK_TO_HF = [
    ("embeddings.word_embeddings.", "embeddings.word_embeddings."),
    ("embeddings.position_embeddings.", "embeddings.position_embeddings."),
    ("embeddings.token_type_embeddings.", "embeddings.token_type_embeddings."),
    ("embeddings.layer_norm.", "embeddings.LayerNorm."),
    ("attention.out.", "attention.output.dense."),
    ("attention_norm.", "attention.output.LayerNorm."),
    ("mlp.fc_in.", "intermediate.dense."),
    ("mlp.fc_out.", "output.dense."),
    ("mlp_norm.", "output.LayerNorm."),
]


def export_run(run: Run | str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a run as a Hugging Face model folder with a model card (see the module docstring).

    Args:
        run: a fine-tuning run folder (or a loaded `Run`); LoRA runs must be merged first.
        out: the folder to write.
        overwrite: replace ``out`` if it exists.

    Returns:
        The written folder.

    Raises:
        BiolmError: ``out`` exists without ``overwrite``, the run is a LoRA run, or the run is damaged.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    if is_adapted(run.model):
        raise BiolmError(f"run: {run.path} is a LoRA run; fold its adapter first (biolm adapter merge run={run.path} out=<folder>), then export that")
    if not isinstance(run.model, SequenceModel):
        raise BiolmError(f"run: {run.path} holds a {type(run.model).__name__}; biolm export writes sequence-level (trunk + SequenceHead) runs only")
    final = Path(out)
    if final.exists() and not overwrite:
        raise BiolmError(f"out: {final} already exists; choose another out= or pass overwrite=true")
    reason = transformers_incompatibility(run)
    stage = staging_dir(final, overwrite)
    try:
        (stage / "biolm").mkdir()
        for name in RUN_FILES:
            if (run.path / name).is_file():
                shutil.copy2(run.path / name, stage / "biolm" / name)
        run.tokenizer.save(stage / "biolm" / "tokenizer")
        with atomic_path(stage / "biolm" / "model.safetensors") as tmp:
            save_file({name: tensor.detach().contiguous() for name, tensor in run.model.state_dict().items()}, str(tmp))
        run.tokenizer.save(stage)
        if reason is None:
            config, weights = _bert_classifier(run)
            with atomic_path(stage / "model.safetensors") as tmp:
                save_file(weights, str(tmp), metadata={"format": "pt"})
            _write_json(stage / "tokenizer_config.json", _tokenizer_config(run))
            _write_json(stage / "special_tokens_map.json", _special_tokens(run))
        else:
            config = _biolm_description(run, reason)
            log.info("%s: exported for biolm only (%s); transformers cannot load it", final, reason)
        _write_json(stage / "config.json", config)
        (stage / "README.md").write_text(model_card(run, final.name, reason))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, final)
    log.info("exported %s to %s", run.path, final)
    return final


def transformers_incompatibility(run: Run) -> str | None:
    """Why ``run`` has no exact `BertForSequenceClassification` equivalent (None: it has one)."""
    trunk, head = run.model.trunk, run.model.head
    if run.objective.transformers_problem is None:
        return f"its objective ({run.objective.name}) has no transformers sequence-classification equivalent"
    if not isinstance(trunk, BertEncoder):
        return f"its trunk is a {type(trunk).__name__}, which transformers does not implement"
    if trunk.config.position_embedding != "learned" or trunk.config.mlp != "gelu":
        return (f"its BertEncoder uses {trunk.config.position_embedding} positions and a {trunk.config.mlp} MLP "
                "(DNABERT-2 style); transformers' BERT has learned positions and GELU")
    if trunk.config.pre_layer_norm:
        return "its BertEncoder is pre-LN (GENA-LM style); transformers' BERT is post-LN"
    if head.pooling != "cls":
        return f"its head pools by {head.pooling}; transformers' BERT classifier reads the first token only"
    if not (run.path / "tokenizer" / "vocab.txt").is_file() or not run.tokenizer.add_special_tokens:
        return "its tokenizer has no vocab.txt with [CLS] ... [SEP] wrapping for transformers' BertTokenizer"
    return None


def _bert_classifier(run: Run) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config.json, state dict) of the `BertForSequenceClassification` that computes the run's probabilities."""
    trunk: BertEncoder = run.model.trunk
    cfg = trunk.config
    trunk_state = {name: tensor.detach().float() for name, tensor in trunk.state_dict().items()}
    weights = {f"bert.{name}": tensor for name, tensor in _trunk_to_hf(trunk_state).items()}
    type_vocab_size = cfg.type_vocab_size
    if type_vocab_size == 0:  # biolm adds no token-type row; transformers always adds row 0, so export a zero row
        weights["bert.embeddings.token_type_embeddings.weight"] = torch.zeros(1, cfg.hidden_size)
        type_vocab_size = 1
    scale = _pooler_scale(trunk_state, cfg.num_layers, cfg.hidden_size)
    weights["bert.pooler.dense.weight"] = scale * torch.eye(cfg.hidden_size)
    weights["bert.pooler.dense.bias"] = torch.zeros(cfg.hidden_size)
    out_weight, out_bias = run.model.head.out.weight.detach().float(), run.model.head.out.bias.detach().float()
    out_weight, out_bias, classes, _ = run.objective.transformers_head(out_weight, out_bias)
    weights["classifier.weight"] = out_weight / scale
    weights["classifier.bias"] = out_bias
    weights = {name: tensor.contiguous().clone() for name, tensor in weights.items()}
    problem = run.objective.transformers_problem
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": run.tokenizer.vocab_size,
        "pad_token_id": run.tokenizer.pad_id,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.hidden_dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout,
        "classifier_dropout": float(run.model.head.dropout.p),
        "max_position_embeddings": cfg.max_position_embeddings,
        "position_embedding_type": "absolute",
        "type_vocab_size": type_vocab_size,
        "initializer_range": cfg.initializer_range,
        "layer_norm_eps": cfg.layer_norm_eps,
        "problem_type": problem,
        "id2label": {str(i): name for i, name in enumerate(classes)},
        "label2id": {name: i for i, name in enumerate(classes)},
        "torch_dtype": "float32",
        "biolm": _provenance(run, None),
    }
    return config, weights


def _trunk_to_hf(trunk_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`BertEncoder` names -> transformers `BertModel` names (qkv split into query, key, value); checked by the inverse map."""
    out: dict[str, Tensor] = {}
    for name, tensor in trunk_state.items():
        prefix = ""
        rest = name
        if name.startswith("layers."):
            _, index, rest = name.split(".", 2)
            prefix = f"encoder.layer.{index}."
        if rest.startswith("attention.qkv."):
            kind = rest.rsplit(".", 1)[1]
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                out[f"{prefix}attention.self.{part}.{kind}"] = chunk
            continue
        mapped = next((new + rest[len(old):] for old, new in _TRUNK_TO_HF if rest.startswith(old)), None)
        if mapped is None:
            raise BiolmError(f"export: BertEncoder tensor {name!r} has no transformers BERT name; this biolm version cannot export the run")
        out[prefix + mapped] = tensor
    back = convert_hf_bert_state_dict(out)
    if back.keys() != trunk_state.keys() or any(not torch.equal(back[k], trunk_state[k]) for k in back):
        raise BiolmError("export: the transformers names do not map back onto the BertEncoder weights; this biolm version cannot export the run")
    return out


def _pooler_scale(trunk_state: dict[str, Tensor], num_layers: int, hidden_size: int) -> float:
    """A pooler scale under which tanh is linear for any final-LayerNorm output: |h| <= sqrt(D) max|gamma| + max|beta|."""
    norm = f"layers.{num_layers - 1}.mlp_norm" if num_layers else "embeddings.layer_norm"
    bound = math.sqrt(hidden_size) * trunk_state[f"{norm}.weight"].abs().max().item() + trunk_state[f"{norm}.bias"].abs().max().item()
    return TANH_LINEAR_BOUND / max(bound, 1.0)


def _tokenizer_config(run: Run) -> dict[str, Any]:
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "tokenize_chinese_chars": False, "strip_accents": False,
              "clean_up_tokenization_spaces": False, **_special_tokens(run)}
    if run.max_tokens:
        config["model_max_length"] = int(run.max_tokens)
    return config


def _special_tokens(run: Run) -> dict[str, str]:
    """The roles BertTokenizer has (bos/eos are not among them), as ``<role>_token`` keys."""
    roles = run.tokenizer.special_tokens.by_role()
    return {f"{role}_token": token for role, token in roles.items() if role in ("pad", "unk", "cls", "sep", "mask")}


def _biolm_description(run: Run, reason: str) -> dict[str, Any]:
    """config.json of a biolm-only export: no ``model_type``, so transformers refuses it instead of guessing."""
    return {"biolm": _provenance(run, reason)}


def _provenance(run: Run, reason: str | None) -> dict[str, Any]:
    return {
        "version": __version__,
        "run": run.path.name,
        "trunk": str(run.cfg.model.trunk._target_),
        "pooling": run.model.head.pooling,
        "task": run.labels.task,
        "classes": list(run.labels.classes),
        "tokenizer": run.tokenizer.config(),
        "transformers_compatible": reason is None,
        **({"transformers_incompatible_because": reason} if reason else {}),
        "run_folder": "biolm/",
    }


def _input_text(run: Run) -> tuple[str, str]:
    """(how to write a sequence as tokenizer input, a Python expression doing it on ``seq``)."""
    k = getattr(run.tokenizer, "k", None)
    if k is not None:
        stride = run.tokenizer.stride
        return (f"upper-case {k}-mers starting every {stride} bases, separated by spaces",
                f"' '.join(seq[i:i + {k}] for i in range(0, len(seq) - {k} + 1, {stride}))")
    return "upper-case bases separated by spaces", "' '.join(seq)"


def model_card(run: Run, name: str, reason: str | None) -> str:
    """README.md of an export: what the model predicts, how well, from which data, and how to load it."""
    metrics_file = run.path / "test_metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    data = run.cfg.get("data") or {}
    files = [f"- {split}: `{Path(str(data.get(split))).name}`" for split in ("train", "val", "test") if data.get(split)]
    library = "transformers" if reason is None else "biolm"
    lines = [
        "---",
        f"library_name: {library}",
        "tags: [biology, dna, biolm]",
        "---",
        "",
        f"# {name}",
        "",
        f"A {run.labels.task} sequence model fine-tuned with biolm {__version__} (run `{run.path.name}`, "
        f"trunk `{run.cfg.model.trunk._target_}`, head pooling `{run.model.head.pooling}`, tokenizer {run.tokenizer!r}).",
        "",
        "## Labels",
        "",
        ", ".join(f"`{c}`" for c in run.labels.classes) if run.labels.classes else f"one real value (targets standardised with mean {run.labels.mean:.4g}, std {run.labels.std:.4g})",
        "",
        "## Test metrics",
        "",
        *_metrics_table(metrics),
        "",
        "## Training data",
        "",
        *(files or ["(not recorded)"]),
        "",
        "## Use with biolm",
        "",
        "`biolm/` is the complete run folder; it predicts exactly as the run:",
        "",
        "```bash",
        f"biolm predict run={name}/biolm input=seqs.fasta output=preds.csv",
        "```",
        "",
    ]
    if reason is None:
        how, expression = _input_text(run)
        output = {"multilabel": "model(**batch).logits.sigmoid()", "regression": "model(**batch).logits[:, 0]"}.get(
            run.labels.task, "model(**batch).logits.softmax(-1)")
        lines += [
            "`model.pretrained=<this folder>` imports the trunk (the encoder) to fine-tune it on another task.",
            "",
            "## Use with transformers",
            "",
            f"Tokenizer input: {how}; the output as biolm predicts it is `{output}`.",
            "",
            "```python",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            f'model = AutoModelForSequenceClassification.from_pretrained("{name}").eval()',
            f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
            'seq = "ACGT..."',
            f"batch = tokenizer([{expression}], return_tensors='pt', padding=True)",
            f"prediction = {output}",
            "```",
            "",
            "biolm's head reads the `[CLS]` hidden state directly, while transformers' BERT classifier reads "
            "`tanh(pooler(h_cls))`: the exported pooler is a tiny multiple of the identity (tanh is linear there "
            "to ~1e-7) and the classifier is scaled back up, so both give the same probabilities "
            "(verified by biolm's tests to 1e-5). Fine-tuning further in transformers starts from this pooler."
            + (" " + run.objective.transformers_head(torch.zeros(1, 1), torch.zeros(1))[3]).rstrip(),
            "",
        ]
        if OmegaConf.select(run.cfg, "data.window_bp"):
            lines += [f"Note: biolm cuts longer sequences into {run.cfg.data.window_bp} bp windows (data.window_bp) and aggregates "
                      f"their predictions; transformers reads one sequence of at most {run.max_tokens} tokens.", ""]
        if (run.cfg.get("predict") or {}).get("rc_average"):
            lines += ["Note: biolm averages this run's predictions over both strands (predict.rc_average); transformers sees one strand.", ""]
    else:
        lines += [
            "## transformers",
            "",
            f"Not loadable with transformers: {reason}. `config.json` has no `model_type`, so transformers refuses "
            "the folder instead of loading something else; use biolm.",
            "",
        ]
    return "\n".join(lines)


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    if not metrics:
        return ["(the run folder has no test_metrics.json)"]
    rows = (f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |" for key, value in metrics.items())
    return ["| metric | value |", "|---|---|", *rows]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")
