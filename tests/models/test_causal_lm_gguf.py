"""GGUF checkpoints through `biolm.models.causal_lm`, on a tiny file built here (no downloads).

What is built: a random two-layer `LlamaForCausalLM` and a byte-level BPE tokenizer trained on two
sentences, written with `gguf.GGUFWriter` the way llama.cpp's ``convert_hf_to_gguf.py`` writes a
llama model: architecture ``llama``, its ``llama.*`` hyperparameters, the ``blk.N.*`` tensor names
in float32, the tokenizer as ``tokenizer.ggml.*`` metadata (``gpt2`` model, tokens, token types,
merges, bos/eos ids) and ``tokenizer.chat_template``.

Why: llama.cpp reorders the rows of the q and k projections (``LlamaModel.permute``, for its rotary
layout) and transformers undoes that on load. Logits equal to the original model's show that the
file's layout, the conversion and the cached Hugging Face copy all agree.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from biolm.errors import BiolmError  # noqa: E402
from biolm.models import causal_lm  # noqa: E402
from biolm.models.adapters import file_sha256  # noqa: E402

SPECIALS = ["<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT = ["the gene encodes a protein kinase that binds the receptor", "mutations in the promoter reduce expression of the gene"]
# hf name inside model.layers.N -> llama.cpp name inside blk.N
LAYER_TENSORS = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def train_tokenizer() -> Tokenizer:
    """A byte-level BPE (GPT-2 style; ids 0 and 1 are the chat tokens), what ``tokenizer.ggml.model = gpt2`` describes."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(TEXT, trainer)
    return tokenizer


def llama_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (``convert_hf_to_gguf.LlamaModel.permute``): per head, the two rotary halves interleaved."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_llama_gguf(path: Path, model: LlamaForCausalLM, tokenizer: Tokenizer) -> None:
    """``model`` and ``tokenizer`` as a float32 llama GGUF, under llama.cpp's key and tensor names."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = sorted(tokenizer.get_vocab(), key=tokenizer.token_to_id)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges([" ".join(pair) for pair in json.loads(tokenizer.to_str())["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.token_to_id("<|im_start|>"))
    writer.add_eos_token_id(tokenizer.token_to_id("<|im_end|>"))
    writer.add_chat_template(CHAT_TEMPLATE)

    state = {key: value.detach().float().numpy() for key, value in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in LAYER_TENSORS.items():
            weight = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weight = llama_permute(weight, config.num_attention_heads)
            elif gguf_name == "attn_k":
                weight = llama_permute(weight, config.num_key_value_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", np.ascontiguousarray(weight))
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:  # llama.cpp writes the output projection only when it is not the embedding
        writer.add_tensor("output.weight", state["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(params=[False, True], ids=["output", "tied"])
def tiny_gguf(request, tmp_path, monkeypatch):
    """``(gguf path, original model, trained tokenizer)``, with and without tied embeddings; ``$BIOLM_CACHE_DIR`` under ``tmp_path``."""
    monkeypatch.setenv(causal_lm.CACHE_ENV, str(tmp_path / "cache"))
    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=tokenizer.get_vocab_size(), max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=request.param,
        bos_token_id=0, eos_token_id=1, initializer_range=0.2,  # logits of order one, so a misplaced row shows
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at one; random ones make a wrong mapping of them show up
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "tiny-llama-f32.gguf"
    write_llama_gguf(path, model, tokenizer)
    return path, model, tokenizer


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits  # (B, T, V)


def test_gguf_loads_with_the_original_weights_and_tokenizer(tiny_gguf, tmp_path, monkeypatch):
    path, original, trained = tiny_gguf
    ids = torch.tensor([trained.encode(text).ids[:8] for text in TEXT])  # (2, 8)
    conversions = []
    load_folder = causal_lm._load_folder

    def counting_load_folder(folder, **kwargs):
        if "gguf_file" in kwargs:
            conversions.append(kwargs["gguf_file"])
        return load_folder(folder, **kwargs)

    monkeypatch.setattr(causal_lm, "_load_folder", counting_load_folder)

    model, tokenizer = causal_lm.load_causal_lm(path)
    assert conversions == [path.name]
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert model.config.tie_word_embeddings == original.config.tie_word_embeddings
    torch.testing.assert_close(logits(model, ids), logits(original, ids), atol=1e-5, rtol=1e-5)

    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"
    assert tokenizer(TEXT[1], add_special_tokens=False)["input_ids"] == trained.encode(TEXT[1]).ids
    prompt = causal_lm.render_chat(tokenizer, [{"role": "user", "content": "the gene"}], add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nthe gene<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer(prompt, add_special_tokens=False)["input_ids"][0] == trained.token_to_id("<|im_start|>")

    folder = tmp_path / "cache" / "gguf" / f"{path.stem}-{file_sha256(path)[:16]}"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert causal_lm.resolve_causal_lm(path) == str(folder)

    again, _ = causal_lm.load_causal_lm(path)  # from the cached folder: no second conversion
    assert conversions == [path.name]
    torch.testing.assert_close(logits(again, ids), logits(original, ids), atol=1e-5, rtol=1e-5)


def test_gguf_source_and_fingerprint(tiny_gguf):
    path, _, _ = tiny_gguf
    assert causal_lm.gguf_source(path) == path
    assert causal_lm.gguf_source(path.parent) == path  # a folder with the file alone
    assert causal_lm.weights_fingerprint(path.parent) == {"weights": path.name, "sha256": file_sha256(path)}
    assert causal_lm.weights_fingerprint(path) == causal_lm.weights_fingerprint(path.parent)

    (path.parent / "tiny-llama-q8_0.gguf").write_bytes(path.read_bytes())
    with pytest.raises(BiolmError, match=r"2 GGUF files \(tiny-llama-f32\.gguf, tiny-llama-q8_0\.gguf\)"):
        causal_lm.gguf_source(path.parent)
    with pytest.raises(BiolmError, match="GGUF files"):
        causal_lm.resolve_causal_lm(path.parent)
