"""Export a fine-tuning run folder as a Hugging Face model folder (`biolm export run=... out=...`).

In: ``runs/<name>/`` (see `biolm.runs`). Out: a folder built beside ``out`` and renamed into place::

    config.json            transformers `BertConfig` / `EsmConfig` (``*ForSequenceClassification``) for runs
                           transformers can compute; otherwise a biolm description without ``model_type``
                           (transformers refuses it)
    model.safetensors      transformers-computable runs only: the weights under transformers' names
    vocab.txt | tokenizer.json, tokenizer_config.json, special_tokens_map.json, biolm_tokenizer.json
    README.md              model card: labels, test metrics, training data files, biolm version, usage
    biolm/                 the run itself (config.yaml, labels.json, tokenizer/, model.safetensors, ...):
                           ``biolm predict run=<out>/biolm`` predicts exactly as the run

Two trunk families map onto transformers, when the head pools ``cls`` (transformers' classifiers read
the first token only):

- a `BertEncoder` with learned positions, a GELU MLP and post-LN -> `BertForSequenceClassification`;
- an `EsmEncoder` with a GELU MLP with biases (Nucleotide Transformer v1: learned positions and token
  dropout; ESM-2: rotary positions) -> `EsmForSequenceClassification`. NT v2's gated SiLU MLP
  (``mlp: swiglu``) has no transformers class and stays biolm-only.

The tokenizer files follow the run's tokenizer, which must have a ``vocab.txt``: an `NtTokenizer` or
`LetterTokenizer` opening with ``<cls>`` gets an `EsmTokenizer` config (its ``eos_token`` is the
closing token, null for NT, which closes nothing), any other one a `BertTokenizer` config
(``[CLS] ... [SEP]``); either gives the run's ids (for upper-case input).

biolm's head reads ``h_cls`` while transformers' classifiers read ``tanh(dense(h_cls))`` (BERT's pooler,
ESM's classification head): the exported dense layer is ``scale * I`` with ``scale`` small enough that
``tanh`` is linear to ~1e-7 for any output of the final LayerNorm, and the output layer is divided by
``scale``. A binary head (one logit) becomes two logits ``[0, z]`` (softmax = sigmoid), a regression
head folds in the target mean and std. Every other run is exported for biolm only, and the model card
says why.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
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
from biolm.models.esm import EsmEncoder
from biolm.models.esm_hub import convert_hf_esm_state_dict
from biolm.models.heads import SequenceModel
from biolm.runs import DECISION_FILE, Run, load_run
from biolm.tokenizers.letters import LetterTokenizer
from biolm.tokenizers.nt import NtTokenizer

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "labels.json", DECISION_FILE, "test_metrics.json", "checkpoint.json", "report.md")  # copied; the weights are written from the model
TANH_LINEAR_BOUND = 1e-3  # largest |dense output| after scaling: tanh(x) = x (1 - x^2/3), so relative error <= 3.4e-7

# (biolm name prefix, transformers name prefix), matched after `layers.<i>.` -> `encoder.layer.<i>.`;
# the fused `attention.qkv` is split into `attention.self.{query,key,value}` (the same in both families).
_BERT_NAMES = [
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
_ESM_NAMES = [
    ("embeddings.", "embeddings."),  # word_embeddings, position_embeddings, layer_norm keep their names
    ("final_norm.", "encoder.emb_layer_norm_after."),
    ("attention_norm.", "attention.LayerNorm."),
    ("attention.out.", "attention.output.dense."),
    ("mlp.fc_in.", "intermediate.dense."),
    ("mlp.fc_out.", "output.dense."),
    ("mlp_norm.", "LayerNorm."),
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
            build = _esm_classifier if isinstance(run.model.trunk, EsmEncoder) else _bert_classifier
            config, weights = build(run)
            with atomic_path(stage / "model.safetensors") as tmp:
                save_file(weights, str(tmp), metadata={"format": "pt"})
            tokens = _special_tokens(run)
            _write_json(stage / "tokenizer_config.json", _tokenizer_config(run, tokens))
            _write_json(stage / "special_tokens_map.json", {role: token for role, token in tokens.items() if token is not None})
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
    """Why ``run`` has no exact transformers ``*ForSequenceClassification`` equivalent (None: it has one)."""
    trunk, head = run.model.trunk, run.model.head
    if run.objective.transformers_problem is None:
        return f"its objective ({run.objective.name}) has no transformers sequence-classification equivalent"
    if isinstance(trunk, BertEncoder):
        family = "BERT"
        if trunk.config.position_embedding != "learned" or trunk.config.mlp != "gelu":
            return (f"its BertEncoder uses {trunk.config.position_embedding} positions and a {trunk.config.mlp} MLP "
                    "(DNABERT-2 style); transformers' BERT has learned positions and GELU")
        if trunk.config.pre_layer_norm:
            return "its BertEncoder is pre-LN (GENA-LM style); transformers' BERT is post-LN"
    elif isinstance(trunk, EsmEncoder):
        family = "ESM"
        if trunk.config.mlp != "gelu":
            return (f"its EsmEncoder has a gated SiLU MLP (mlp: {trunk.config.mlp}, Nucleotide Transformer v2 style); "
                    "transformers' ESM has a GELU MLP, and NT v2 runs in transformers only as the checkpoint's own remote code")
        if not trunk.config.mlp_bias:
            return "its EsmEncoder's MLP has no biases (mlp_bias: false); transformers' ESM MLP has them"
    else:
        return f"its trunk is a {type(trunk).__name__}, which transformers does not implement"
    if head.pooling != "cls":
        return f"its head pools by {head.pooling}; transformers' {family} classifier reads the first token only"
    tokenizer_class = _tokenizer_class(run)
    if not (run.path / "tokenizer" / "vocab.txt").is_file() or not run.tokenizer.add_special_tokens:
        framing = "<cls> ... [<eos>]" if tokenizer_class == "EsmTokenizer" else "[CLS] ... [SEP]"
        return f"its tokenizer has no vocab.txt with {framing} wrapping for transformers' {tokenizer_class}"
    if tokenizer_class == "EsmTokenizer" and _esm_framing(run.tokenizer) is None:
        return "its tokenizer does not open sequences with the cls token, as transformers' EsmTokenizer does"
    return None


def _bert_classifier(run: Run) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config.json, state dict) of the `BertForSequenceClassification` that computes the run's probabilities."""
    trunk: BertEncoder = run.model.trunk
    cfg = trunk.config
    trunk_state = {name: tensor.detach().float() for name, tensor in trunk.state_dict().items()}
    weights = {f"bert.{name}": tensor for name, tensor in _trunk_to_hf(trunk_state, _BERT_NAMES, convert_hf_bert_state_dict, "BERT").items()}
    type_vocab_size = cfg.type_vocab_size
    if type_vocab_size == 0:  # biolm adds no token-type row; transformers always adds row 0, so export a zero row
        weights["bert.embeddings.token_type_embeddings.weight"] = torch.zeros(1, cfg.hidden_size)
        type_vocab_size = 1
    norm = f"layers.{cfg.num_layers - 1}.mlp_norm" if cfg.num_layers else "embeddings.layer_norm"  # post-LN: the last one
    dense, out_weight, out_bias, classes = _tanh_linear_head(run, trunk_state[f"{norm}.weight"], trunk_state[f"{norm}.bias"])
    weights |= {"bert.pooler.dense.weight": dense, "bert.pooler.dense.bias": torch.zeros(cfg.hidden_size),
                "classifier.weight": out_weight, "classifier.bias": out_bias}
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
        **_label_config(run, classes),
    }
    return config, {name: tensor.contiguous().clone() for name, tensor in weights.items()}


def _esm_classifier(run: Run) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config.json, state dict) of the `EsmForSequenceClassification` that computes the run's probabilities.

    Besides the trunk (its LM head, if any, is left out) and the classifier, the state dict holds what
    transformers' `EsmModel` always has: the contact head (zeros; contact prediction is not exported)
    and, with rotary positions, the ``inv_freq`` buffer, so that loading reports no missing tensor.
    """
    trunk: EsmEncoder = run.model.trunk
    cfg = trunk.config
    rotary = cfg.position_embedding == "rotary"
    trunk_state = {name: tensor.detach().float() for name, tensor in trunk.state_dict().items() if not name.startswith("lm_head.")}
    weights = {f"esm.{name}": tensor for name, tensor in
               _trunk_to_hf(trunk_state, _ESM_NAMES, lambda sd: convert_hf_esm_state_dict(sd, rotary), "ESM").items()}
    weights["esm.contact_head.regression.weight"] = torch.zeros(1, cfg.num_layers * cfg.num_heads)
    weights["esm.contact_head.regression.bias"] = torch.zeros(1)
    if rotary:  # EsmRotaryEmbedding's buffer: base 10000 over the head size, as `biolm.models.esm.rotary_tables` uses it
        head_dim = cfg.hidden_size // cfg.num_heads
        weights["esm.rotary_embeddings.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    dense, out_weight, out_bias, classes = _tanh_linear_head(run, trunk_state["final_norm.weight"], trunk_state["final_norm.bias"])
    weights |= {"classifier.dense.weight": dense, "classifier.dense.bias": torch.zeros(cfg.hidden_size),
                "classifier.out_proj.weight": out_weight, "classifier.out_proj.bias": out_bias}
    config = {
        "architectures": ["EsmForSequenceClassification"],
        "model_type": "esm",
        "vocab_size": trunk.embeddings.word_embeddings.num_embeddings,
        "pad_token_id": trunk.embeddings.pad_token_id,
        "mask_token_id": cfg.mask_token_id,  # token dropout looks for it
        "eos_token_id": run.tokenizer.eos_id,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.hidden_dropout,  # also the classification head's dropout in transformers
        "attention_probs_dropout_prob": cfg.attention_dropout,
        "max_position_embeddings": cfg.max_position_embeddings,
        "position_embedding_type": "rotary" if rotary else "absolute",
        "token_dropout": cfg.token_dropout,
        "emb_layer_norm_before": cfg.embedding_layer_norm,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "initializer_range": cfg.initializer_range,
        "layer_norm_eps": cfg.layer_norm_eps,
        **_label_config(run, classes),
    }
    return config, {name: tensor.contiguous().clone() for name, tensor in weights.items()}


def _trunk_to_hf(trunk_state: dict[str, Tensor], names: list[tuple[str, str]],
                 to_biolm: Callable[[dict[str, Tensor]], dict[str, Tensor]], family: str) -> dict[str, Tensor]:
    """Trunk names -> transformers names by ``names`` (qkv split into query, key, value); checked by ``to_biolm``, the importer's map.

    Raises:
        BiolmError: a tensor without a transformers name, or names that do not map back onto the same tensors.
    """
    out: dict[str, Tensor] = {}
    for name, tensor in trunk_state.items():
        prefix = ""
        rest = name
        if name.startswith("layers."):
            _, index, rest = name.split(".", 2)
            prefix = f"encoder.layer.{index}."
        if rest.startswith("attention.qkv."):
            kind = rest.rsplit(".", 1)[1]
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):  # fused as (q | k | v) rows
                out[f"{prefix}attention.self.{part}.{kind}"] = chunk
            continue
        mapped = next((new + rest[len(old):] for old, new in names if rest.startswith(old)), None)
        if mapped is None:
            raise BiolmError(f"export: trunk tensor {name!r} has no transformers {family} name; this biolm version cannot export the run")
        out[prefix + mapped] = tensor
    back = to_biolm(out)
    if back.keys() != trunk_state.keys() or any(not torch.equal(back[k], trunk_state[k]) for k in back):
        raise BiolmError(f"export: the transformers {family} names do not map back onto the trunk weights; this biolm version cannot export the run")
    return out


def _tanh_linear_head(run: Run, norm_weight: Tensor, norm_bias: Tensor) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    """``(dense (D, D), out weight (C, D), out bias (C,), label names)``: ``out(tanh(dense(h)))`` = the run's head on ``h``.

    ``dense = scale * I``, with ``scale`` such that ``|scale * h| <= TANH_LINEAR_BOUND`` for any output of
    the final LayerNorm (``|h| <= sqrt(D) max|gamma| + max|beta|``), and the out layer is divided by
    ``scale``; the objective folds its own output convention in (binary -> two logits, regression -> mean, std).
    """
    hidden_size = norm_weight.shape[0]
    bound = math.sqrt(hidden_size) * norm_weight.abs().max().item() + norm_bias.abs().max().item()
    scale = TANH_LINEAR_BOUND / max(bound, 1.0)
    out_weight, out_bias = run.model.head.out.weight.detach().float(), run.model.head.out.bias.detach().float()
    out_weight, out_bias, classes, _ = run.objective.transformers_head(out_weight, out_bias)
    return scale * torch.eye(hidden_size), out_weight / scale, out_bias, classes


def _label_config(run: Run, classes: list[str]) -> dict[str, Any]:
    """The config.json keys both families share: problem type, labels, dtype and biolm's provenance."""
    return {
        "problem_type": run.objective.transformers_problem,
        "id2label": {str(i): name for i, name in enumerate(classes)},
        "label2id": {name: i for i, name in enumerate(classes)},
        "torch_dtype": "float32",
        "biolm": _provenance(run, None),
    }


def _tokenizer_class(run: Run) -> str:
    """The transformers tokenizer that reproduces the run's ids: EsmTokenizer for NT / ESM-style vocabularies, else BertTokenizer."""
    return "EsmTokenizer" if isinstance(run.tokenizer, (NtTokenizer, LetterTokenizer)) else "BertTokenizer"


def _esm_framing(tokenizer: NtTokenizer | LetterTokenizer) -> tuple[str, str | None] | None:
    """(opening, closing token or None) of an NT / letter tokenizer; None unless it opens with cls, as EsmTokenizer does."""
    roles = tokenizer.special_tokens
    if isinstance(tokenizer, NtTokenizer):  # <cls>, then the sep or eos token if a role names one
        return roles.cls, roles.sep if roles.sep is not None else roles.eos
    if tokenizer.open != "cls":
        return None
    return roles.cls, None if tokenizer.close is None else getattr(roles, tokenizer.close)


def _tokenizer_config(run: Run, tokens: dict[str, str | None]) -> dict[str, Any]:
    """tokenizer_config.json: the class, its special tokens and the run's token limit."""
    if _tokenizer_class(run) == "EsmTokenizer":
        config = {"tokenizer_class": "EsmTokenizer", "clean_up_tokenization_spaces": False, **tokens}
    else:
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "tokenize_chinese_chars": False, "strip_accents": False,
                  "clean_up_tokenization_spaces": False, **tokens}
    if run.max_tokens:
        config["model_max_length"] = int(run.max_tokens)
    return config


def _special_tokens(run: Run) -> dict[str, str | None]:
    """``<role>_token`` keys of the transformers tokenizer: BertTokenizer's roles (no bos/eos), or EsmTokenizer's,
    whose ``eos_token`` is the token closing every sequence (None: nothing closes it, as NT)."""
    roles = run.tokenizer.special_tokens.by_role()
    if _tokenizer_class(run) == "BertTokenizer":
        return {f"{role}_token": token for role, token in roles.items() if role in ("pad", "unk", "cls", "sep", "mask")}
    tokens: dict[str, str | None] = {f"{role}_token": token for role, token in roles.items() if role in ("pad", "unk", "cls", "mask")}
    tokens["eos_token"] = _esm_framing(run.tokenizer)[1]
    return tokens


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
    if _tokenizer_class(run) == "EsmTokenizer":
        unit = "6-mers from the left, single bases where fewer are left or at N" if isinstance(run.tokenizer, NtTokenizer) else "one token per letter"
        return f"the upper-case sequence as one string (EsmTokenizer splits it into {unit}, as biolm does)", "seq.upper()"
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
    alphabet = run.tokenizer.alphabet.name  # DNA or protein
    lines = [
        "---",
        f"library_name: {library}",
        f"tags: [biology, {alphabet.lower()}, biolm]",
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
        *(["## Decision rule", "", *run.objective.describe_decision(), *_threshold_note(run, reason), ""] if run.objective.decides else []),
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
        family, reads, dense = (("ESM", "out_proj(tanh(dense(h_cls)))", "`classifier.dense`") if isinstance(run.model.trunk, EsmEncoder)
                                else ("BERT", "classifier(tanh(pooler(h_cls)))", "pooler"))
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
            'seq = "MKTAYIAK..."' if alphabet == "protein" else 'seq = "ACGT..."',
            f"batch = tokenizer([{expression}], return_tensors='pt', padding=True)",
            f"prediction = {output}",
            "```",
            "",
            f"biolm's head reads the first (`{run.tokenizer.special_tokens.cls}`) token's hidden state directly, while "
            f"transformers' {family} classifier reads `{reads}`: the exported {dense} is a tiny multiple of the identity "
            "(tanh is linear there to ~1e-7) and the output layer is scaled back up, so both give the same probabilities "
            f"(verified by biolm's tests to 1e-5). Fine-tuning further in transformers starts from this {dense}."
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


def _threshold_note(run: Run, reason: str | None) -> list[str]:
    """A transformers user's argmax is the 0.5 rule: say so when the run decides at another threshold."""
    threshold = run.objective.decision.threshold
    if reason is not None or threshold == 0.5:
        return []
    return ["", f"transformers' `argmax` of the two logits is the 0.5 rule; to predict as this run does, compare the "
                f"probability of `{run.labels.classes[1]}` with {threshold:.6g}."]


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    if not metrics:
        return ["(the run folder has no test_metrics.json)"]
    rows = (f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |" for key, value in metrics.items())
    return ["| metric | value |", "|---|---|", *rows]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")
