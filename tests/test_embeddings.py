"""biolm embed: a run and its export embed alike, pooling and layers are what they say, the CLI writes the table and map."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from biolm import api
from biolm.cli import main
from biolm.embeddings import trunk_blocks
from biolm.errors import BiolmError
from biolm.models.bert import BertEncoder
from biolm.models.cnn import CnnEncoder
from biolm.models.esm import EsmEncoder
from biolm.models.hyena import HyenaEncoder
from biolm.models.lstm import LstmEncoder
from biolm.models.onehot_cnn import OneHotCnn
from biolm.tokenizers import BpeTokenizer, CharTokenizer
from tests.checkpoints import write_tiny_dnabert2

SEQUENCES = [
    "ACGTACGTTTGACCATGACGTAGCTAGCTAGGATCCGATCGATCGTAGCTAGCTAGCTAAC",
    "TTTTAAAACCCCGGGGACGTACGATCGATCGACTAGCTAGC",  # shorter: padded in its batch
    "GATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTA",
    "CCGGAATTCCGGAATT",
]


@pytest.fixture(scope="module")
def exported(tiny_binary_run, tmp_path_factory):
    return api.export_run(tiny_binary_run, tmp_path_factory.mktemp("embed_export") / "tiny-hf")


def _emb(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("emb_")]].to_numpy()


def test_run_and_its_export_embed_alike(tiny_binary_run, exported, tmp_path):
    run = api.load_run_trunk(tiny_binary_run)
    public = api.load_pretrained_trunk(exported)  # transformers' BERT layout, tokenizer read from vocab.txt
    assert type(public.trunk) is BertEncoder and public.tokenizer.encode_batch(SEQUENCES)[1].tolist() == run.tokenizer.encode_batch(SEQUENCES)[1].tolist()
    biolm_only = tmp_path / "biolm-only"  # what export writes for runs transformers cannot compute: no model_type
    shutil.copytree(exported / "biolm", biolm_only / "biolm")
    (biolm_only / "config.json").write_text(json.dumps({"biolm": {"transformers_compatible": False}}))
    for layer, pooling in ((-1, "mean"), (1, "max"), (0, "none")):
        expected = api.embed(run, SEQUENCES, layer=layer, pooling=pooling, batch_size=3)
        for model in (public, api.load_pretrained_trunk(biolm_only)):
            got = api.embed(model, SEQUENCES, layer=layer, pooling=pooling, batch_size=3)
            assert got.drop(columns=[c for c in got if c.startswith("emb_")]).equals(expected.drop(columns=[c for c in got if c.startswith("emb_")]))
            np.testing.assert_allclose(_emb(got), _emb(expected), atol=1e-5)


def test_checkpoint_without_lm_head_embeds_per_token(tmp_path):
    folder = write_tiny_dnabert2(tmp_path / "dnabert2", mlm_head=False)
    with pytest.raises(BiolmError, match="no MLM head"):
        api.load_pretrained_language_model(folder)
    model = api.load_pretrained_trunk(folder)
    assert isinstance(model.tokenizer, BpeTokenizer) and model.max_tokens is None  # ALiBi: no position table
    tokens = api.embed(model, SEQUENCES[:2], pooling="none", layer=2)
    assert tokens.shape[1] == 4 + 32
    for rid, sequence in zip(("seq0", "seq1"), SEQUENCES[:2], strict=True):
        spans = tokens.loc[(tokens["id"] == rid) & (tokens["start"] >= 0), ["start", "end"]].to_numpy()
        assert "".join(sequence[a:b] for a, b in spans) == sequence  # BPE tokens tile the sequence


def test_final_layer_is_what_the_head_sees(tiny_binary_run):
    run = api.load_run(tiny_binary_run)
    frame = api.embed(run, SEQUENCES, pooling=run.model.head.pooling)
    assert list(frame.columns[:2]) == ["id", "emb_0"] and frame.shape == (4, 1 + run.model.trunk.hidden_size)
    assert (frame.dtypes.iloc[1:] == np.float32).all()
    with torch.no_grad():
        probability = torch.sigmoid(run.model.head.out(torch.tensor(_emb(frame)))).squeeze(1).numpy()
    np.testing.assert_allclose(probability, api.predict(run, SEQUENCES)["prob_1"].to_numpy(), atol=1e-6)
    # post-LN BERT has no final norm: the last block's output is the trunk's output
    assert run.model.trunk.final_norm is None
    np.testing.assert_allclose(_emb(api.embed(run, SEQUENCES, layer=1)), _emb(api.embed(run, SEQUENCES)), atol=1e-6)


def test_mean_pooling_is_the_mean_of_token_rows(tiny_binary_run):
    run = api.load_run_trunk(tiny_binary_run)
    ids = [f"s{i}" for i in range(len(SEQUENCES))]
    tokens = api.embed(run, SEQUENCES, ids=ids, pooling="none", layer=1)
    assert list(tokens.columns[:4]) == ["id", "position", "start", "end"]
    for rid, sequence in zip(ids, SEQUENCES, strict=True):
        rows = tokens[tokens["id"] == rid]
        np.testing.assert_array_equal(rows[["start", "end"]].to_numpy(), run.tokenizer.token_spans(sequence))  # specials kept as (-1, -1)
        assert rows["position"].tolist() == list(range(len(rows)))
    means = tokens.drop(columns=["position", "start", "end"]).groupby("id", sort=False).mean()
    pooled = api.embed(run, SEQUENCES, ids=ids, pooling="mean", layer=1)
    assert means.index.tolist() == pooled["id"].tolist() == ids
    np.testing.assert_allclose(means.to_numpy(), _emb(pooled), atol=1e-5)


def test_layer_range_and_token_embeddings(tiny_binary_run):
    run = api.load_run(tiny_binary_run)
    for bad in (2, -2):
        with pytest.raises(BiolmError, match=r"^layer=-?\d: accepted -1 \(the trunk's final output\) or 0\.\.1 ") as err:
            api.embed(run, SEQUENCES, layer=bad)
        assert "\n" not in str(err.value)
    frame = api.embed(run, SEQUENCES, layer=0)
    assert frame.shape == (4, 1 + run.model.trunk.hidden_size)
    ids = torch.from_numpy(run.tokenizer.encode_batch(SEQUENCES[:1])[0])[None]
    with torch.no_grad():
        expected = run.model.trunk.embeddings(ids)[0].mean(0).numpy()  # the input of block 1
    np.testing.assert_allclose(_emb(frame)[0], expected, atol=1e-6)
    with pytest.raises(BiolmError, match="pooling=sum: accepted: cls, mean, max, last, none"):
        api.embed(run, SEQUENCES, pooling="sum")


TRUNKS = {
    "bert": (BertEncoder, {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32, "max_position_embeddings": 24}),
    "esm": (EsmEncoder, {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32}),
    "hyena": (HyenaEncoder, {"d_model": 16, "n_layer": 2, "max_seq_len": 128}),
    "cnn": (CnnEncoder, {"hidden_size": 16, "num_layers": 3}),
    "onehot_cnn": (OneHotCnn, {"channels": 16, "kernel_sizes": [5, 3]}),
    "lstm": (LstmEncoder, {"hidden_size": 16}),
}


@pytest.mark.parametrize("name", TRUNKS)
def test_every_trunk_family_embeds_at_every_layer(name, caplog):
    tokenizer = CharTokenizer()
    trunk_cls, options = TRUNKS[name]
    torch.manual_seed(0)
    trunk = trunk_cls(tokenizer.vocab_size, tokenizer.pad_id, **options).eval()
    model = api.EmbeddingModel(None, trunk, tokenizer, trunk.max_tokens)
    blocks = {"onehot_cnn": 2, "lstm": 0}.get(name, options.get("num_layers", options.get("n_layer", 0)))
    per_token_blocks = name not in ("onehot_cnn", "lstm")
    for layer in [-1, *range(blocks + 1)] if per_token_blocks else [-1]:
        frame = api.embed(model, SEQUENCES, layer=layer, pooling="last" if name == "hyena" else "mean", batch_size=2)
        assert frame.shape == (4, 1 + trunk.hidden_size) and np.isfinite(_emb(frame)).all()
    if not per_token_blocks:
        with pytest.raises(BiolmError, match="use layer=-1" if blocks else "accepted: -1"):
            api.embed(model, SEQUENCES, layer=1)
    if name == "hyena":
        with pytest.raises(BiolmError, match="pooling=cls: HyenaEncoder is causal"):
            api.embed(model, SEQUENCES, pooling="cls")
    if name == "bert":  # 24 tokens at most: the longer sequences keep their first 23 tokens and [SEP]
        with caplog.at_level(logging.WARNING):
            tokens = api.embed(model, SEQUENCES, pooling="none")
        assert "3 of 4 sequences truncated to 24 tokens" in caplog.text
        first = tokens[tokens["id"] == "seq0"]
        assert len(first) == 24 and first[["start", "end"]].iloc[-2:].to_numpy().tolist() == [[21, 22], [-1, -1]]


# The token-embedding output of each family, (1, L) ids -> (1, L, D): what layer=0 reads, the input of block 1.
EMBEDDING_OUTPUT = {
    "bert": lambda trunk, ids: trunk.embeddings(ids),
    "esm": lambda trunk, ids: trunk.embeddings(ids, torch.ones_like(ids, dtype=torch.bool)),
    "hyena": lambda trunk, ids: trunk.embeddings(ids),
    "cnn": lambda trunk, ids: trunk.embedding(ids),
}
# The norm each family applies after its last block (None: post-LN BERT has none).
FINAL_NORM = {"bert": "final_norm", "esm": "final_norm", "hyena": "ln_f", "cnn": "final_norm"}


@pytest.mark.parametrize("name", EMBEDDING_OUTPUT)
def test_inner_layers_are_the_blocks_outputs(name):
    tokenizer = CharTokenizer()
    trunk_cls, options = TRUNKS[name]
    torch.manual_seed(0)
    trunk = trunk_cls(tokenizer.vocab_size, tokenizer.pad_id, **options).eval()
    model = api.EmbeddingModel(None, trunk, tokenizer, trunk.max_tokens)
    sequence = SEQUENCES[3]  # one short sequence: no padding, no truncation
    ids = torch.from_numpy(tokenizer.encode_batch([sequence])[0])[None]  # (1, L)
    seen = {}
    blocks = trunk_blocks(trunk)
    handle = blocks[0].register_forward_hook(lambda _, args, output: seen.setdefault("block1", output[0] if isinstance(output, tuple) else output))
    with torch.no_grad():
        final = trunk(ids, torch.ones_like(ids))[0]  # (L, D)
        embedded = EMBEDDING_OUTPUT[name](trunk, ids)[0]
    handle.remove()
    tokens = {layer: _emb(api.embed(model, [sequence], layer=layer, pooling="none")) for layer in (-1, 0, 1, len(blocks))}
    np.testing.assert_allclose(tokens[0], embedded.numpy(), atol=1e-6)
    np.testing.assert_allclose(tokens[1], seen["block1"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(tokens[-1], final.numpy(), atol=1e-6)
    norm = getattr(trunk, FINAL_NORM[name])
    with torch.no_grad():
        last = torch.tensor(tokens[len(blocks)])
        np.testing.assert_allclose((last if norm is None else norm(last)).numpy(), tokens[-1], atol=1e-5)  # the last block, normed, is the output
    assert not np.allclose(tokens[0], tokens[1])


@pytest.fixture
def table(tmp_path):
    """A CSV with the sequence column between others, in an order the output must keep."""
    frame = pd.DataFrame({
        "label": ["b", "a", "b", "a"] * 3,
        "sequence": SEQUENCES * 3,
        "gc": [0.1 * i for i in range(12)],
        "id": [f"r{11 - i}" for i in range(12)],
    })
    path = tmp_path / "seqs.csv"
    frame.to_csv(path, index=False)
    return path


def test_cli_writes_the_table_and_the_map(tiny_binary_run, exported, table, tmp_path):
    out = tmp_path / "emb.parquet"
    code = main(["embed", f"run={tiny_binary_run}", f"input={table}", f"output={out}", "plot=pca", "color_by=label", "batch_size=5"])
    assert code == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns[:4]) == ["id", "label", "gc", "emb_0"] and frame.shape[1] == 3 + 32
    assert frame["id"].tolist() == [f"r{11 - i}" for i in range(12)] and frame["label"].tolist()[:2] == ["b", "a"]
    assert (frame.dtypes.iloc[3:] == np.float32).all()
    assert frame["gc"].dtype == np.float64 and frame["gc"].tolist() == pytest.approx([0.1 * i for i in range(12)])  # the CSV's numbers
    assert frame["id"].map(type).eq(str).all() and frame["label"].map(type).eq(str).all()
    assert (tmp_path / "emb.pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    # the export, as a public checkpoint (tokenizer=pretrained implied), gives the same table
    again = tmp_path / "again.parquet"
    assert main(["embed", f"model.pretrained={exported}", f"input={table}", f"output={again}"]) == 0
    np.testing.assert_allclose(_emb(pd.read_parquet(again)), _emb(frame), atol=1e-5)
    api.plot_embeddings(frame, tmp_path / "gc.png", "pca", "gc")  # numeric: a colorbar
    assert (tmp_path / "gc.png").stat().st_size > 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["input=nowhere.fa"], "input: file not found: nowhere.fa"),
        (["layer=7"], "layer=7: accepted -1"),
        (["plot=tsne"], "plot=tsne: accepted: pca, umap, both"),
        (["layer=last"], "layer=last: accepted: an integer: -1 (the trunk's final output)"),
        (["pooling=sum"], "pooling=sum: accepted: cls, mean, max, last, none"),
        ([f"output=e.{'xlsx'}"], "output=e.xlsx: unknown table format '.xlsx'; accepted: .parquet, .pq, .csv, .tsv"),
        (["plot=pca", "color_by=colour"], "color_by=colour: no such column in the embedding table (accepted: id, label, gc)"),
    ],
)
def test_cli_errors_are_one_line(tiny_binary_run, table, tmp_path, capsys, overrides, message):
    args = ["embed", f"run={tiny_binary_run}", f"input={table}", f"output={tmp_path / 'e.parquet'}", *overrides]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("biolm embed: error:")
    assert not (tmp_path / "e.parquet").exists()


def test_cli_checks_its_settings_before_reading_or_loading(monkeypatch, tmp_path, capsys):
    import importlib.util

    from biolm import cli_embed

    monkeypatch.setattr(cli_embed, "_embedding_model", lambda cfg: pytest.fail("loaded a model before checking the settings"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    assert main(["embed", "run=nowhere", "input=nowhere.fa", f"output={tmp_path / 'e.parquet'}", "plot=umap"]) == 2
    assert "pip install 'biolm[analysis]'" in capsys.readouterr().err


def test_numeric_columns_are_numbers_and_the_rest_stay_as_read(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": ["007", "008", "009"], "sequence": ["ACGT"] * 3, "score": ["1.5", "", "-2"], "code": ["1", "2", "x"],
                  "n": ["3", "4", "5"]}).to_csv(path, index=False)
    columns = api.input_columns(str(path), "sequence", "id")
    assert list(columns.columns) == ["score", "code", "n"]
    assert columns["score"].tolist()[::2] == [1.5, -2.0] and np.isnan(columns["score"][1])
    assert columns["code"].tolist() == ["1", "2", "x"] and columns["n"].dtype.kind == "i"


def test_cli_refuses_run_and_checkpoint_together(tiny_binary_run, exported, table, tmp_path, capsys):
    assert main(["embed", f"run={tiny_binary_run}", f"model.pretrained={exported}", f"input={table}", f"output={tmp_path / 'e.parquet'}"]) == 2
    assert "pass one of them" in capsys.readouterr().err


def test_umap_without_the_analysis_extra_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    frame = pd.DataFrame({"id": list("abcd"), "emb_0": [0.0, 1, 2, 3], "emb_1": [1.0, 0, 1, 0]})
    with pytest.raises(BiolmError, match=r"pip install 'biolm\[analysis\]'"):
        api.plot_embeddings(frame, tmp_path / "u.png", "umap")


@pytest.mark.slow
def test_umap_map(tmp_path):
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(6, 1, (20, 8))]).astype(np.float32)
    frame = pd.concat([pd.DataFrame({"id": [f"s{i}" for i in range(40)], "group": ["x"] * 20 + ["y"] * 20}),
                       pd.DataFrame(values, columns=[f"emb_{j}" for j in range(8)])], axis=1)
    path = api.plot_embeddings(frame, tmp_path / "m.umap.png", "umap", "group")
    assert path.read_bytes()[:4] == b"\x89PNG"
