"""BiLstmCrf: CRF likelihood and Viterbi against brute force over valid IOB2 paths, overfitting,
vocabularies, asset round trip, and the user errors."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from biolm.errors import BiolmError
from biolm.models.bilstm_crf import BiLstmCrf, Iob2Crf

TINY = {"word_dim": 8, "char_dim": 4, "char_filters": 6, "hidden": 8, "dropout": 0.0}
SENTENCES = [["IL2", "binds", "the", "receptor"], ["p53", "mutations"], ["Gene", "GENE", "gene"]]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def valid(names: list[str]) -> bool:
    """IOB2 validity written from the definition, independently of `iob2_rules`."""
    prev = "O"
    for name in names:
        if name.startswith("I-") and prev[2:] != name[2:]:
            return False
        prev = name
    return True


def path_score(crf: Iob2Crf, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """start + emissions + transitions + end of one path, from the raw (learnt) parameters."""
    start = crf.parametrizations.start_transitions.original
    trans = crf.parametrizations.transitions.original
    score = start[path[0]] + crf.end_transitions[path[-1]]
    score = score + sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(trans[a, b] for a, b in itertools.pairwise(path))


def randomise(crf: Iob2Crf, seed: int) -> None:
    """Random CRF parameters, with the forbidden entries raised high so a missing mask would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        crf.parametrizations.transitions.original.copy_(torch.randn(crf.num_tags, crf.num_tags, generator=g))
        crf.parametrizations.transitions.original[~crf.allowed] = 5.0
        crf.parametrizations.start_transitions.original.copy_(torch.randn(crf.num_tags, generator=g))
        crf.parametrizations.start_transitions.original[~crf.start_allowed] = 5.0
        crf.end_transitions.copy_(torch.randn(crf.num_tags, generator=g))


def test_loss_equals_brute_force_over_valid_paths():
    torch.manual_seed(0)
    tags = ["O", "B-X", "I-X"]
    tagger = BiLstmCrf.build(SENTENCES, tags, **TINY).eval()
    randomise(tagger.crf, 1)
    batch = tagger.collate([tagger.encode(SENTENCES[0]), tagger.encode(SENTENCES[1])])
    gold = torch.tensor([[1, 2, 0, 1], [0, 1, -100, -100]])
    emissions = tagger.emissions(batch).detach()
    expected = []
    for b, length in enumerate((4, 2)):
        paths = [p for p in itertools.product(range(3), repeat=length) if valid([tags[i] for i in p])]
        assert len(paths) == (34 if length == 4 else 5)  # Fibonacci: I may not follow O or start
        log_z = torch.logsumexp(torch.stack([path_score(tagger.crf, emissions[b], p) for p in paths]), dim=0)
        expected.append(log_z - path_score(tagger.crf, emissions[b], tuple(gold[b, :length].tolist())))
    loss = tagger.loss(batch, gold)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), abs=1e-4)
    assert 0 < loss.item() < 50


def test_invalid_gold_is_read_as_iob1():
    torch.manual_seed(0)
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], **TINY).eval()
    batch = tagger.collate([tagger.encode(SENTENCES[0])])
    repaired = tagger.loss(batch, torch.tensor([[2, 2, 0, 2]]))
    assert repaired.item() == pytest.approx(tagger.loss(batch, torch.tensor([[1, 2, 0, 1]])).item())


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_equals_brute_force_argmax_over_valid_paths(seed):
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    crf = Iob2Crf(tags)
    randomise(crf, seed)
    g = torch.Generator().manual_seed(100 + seed)
    emissions = 3 * torch.randn(3, 5, len(tags), generator=g)
    lengths = [5, 3, 1]
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    decoded = crf.decode(emissions, mask)
    for b, length in enumerate(lengths):
        paths = [p for p in itertools.product(range(len(tags)), repeat=length) if valid([tags[i] for i in p])]
        scores = torch.stack([path_score(crf, emissions[b], p) for p in paths])
        assert tuple(decoded[b]) == paths[int(scores.argmax())]
        assert valid([tags[i] for i in decoded[b]])


def test_overfits_four_sentences():
    torch.manual_seed(0)
    tags = ["O", "B-Gene", "I-Gene", "B-Disease", "I-Disease"]
    sentences = [["BRCA1", "causes", "breast", "cancer"], ["the", "TP53", "gene"],
                 ["tumor", "necrosis", "factor", "binds"], ["no", "entity", "here"]]
    gold = [[1, 0, 3, 4], [0, 1, 0], [1, 2, 2, 0], [0, 0, 0]]
    tagger = BiLstmCrf.build(sentences, tags, **(TINY | {"hidden": 16, "dropout": 0.1}))
    batch = tagger.collate([tagger.encode(s) for s in sentences])
    target = torch.full(batch["word_mask"].shape, -100)
    for b, row in enumerate(gold):
        target[b, : len(row)] = torch.tensor(row)
    optimiser = torch.optim.Adam(tagger.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = tagger.loss(batch, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert tagger.eval().loss(batch, target).item() < 0.1 * losses[0]
    assert tagger.decode(batch) == gold


def test_assets_round_trip(tmp_path):
    torch.manual_seed(0)
    tags = ["O", "B-X", "I-X"]
    hyper = TINY | {"char_kernel": 5, "layers": 2, "lowercase": False, "max_word_chars": 4, "unk_replace": 0.2}
    tagger = BiLstmCrf.build(SENTENCES, tags, min_count=1, **hyper)
    tagger.save_assets(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.json"]
    saved = json.loads((tmp_path / "vocab.json").read_text())
    assert saved["words"][:2] == ["<pad>", "<unk>"] and saved["tags"] == tags and saved["hyper"]["layers"] == 2
    rebuilt = BiLstmCrf.from_assets(tmp_path, tags, layers=2)
    rebuilt.load_state_dict(tagger.state_dict(), strict=True)
    batch = tagger.collate([tagger.encode(s) for s in SENTENCES + [["unseen", "WORDS"]]])
    assert torch.equal(tagger.eval().emissions(batch), rebuilt.eval().emissions(batch))
    assert tagger.decode(batch) == rebuilt.decode(batch)


def test_from_assets_rejects_overrides_and_mismatches(tmp_path):
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], **TINY)
    tagger.save_assets(tmp_path)
    with pytest.raises(BiolmError, match="unknown option 'width'"):
        BiLstmCrf.from_assets(tmp_path, tagger.tags, width=3)
    with pytest.raises(BiolmError, match="hidden: 9 differs"):
        BiLstmCrf.from_assets(tmp_path, tagger.tags, hidden=9)
    with pytest.raises(BiolmError, match="saved tags"):
        BiLstmCrf.from_assets(tmp_path, ["O", "B-Y", "I-Y"])
    with pytest.raises(BiolmError, match="not found"):
        BiLstmCrf.from_assets(tmp_path / "missing", tagger.tags)


def test_vocab_normalises_digits_and_case():
    tagger = BiLstmCrf.build(SENTENCES + [["IL7"]], ["O", "B-X", "I-X"], min_count=2, **TINY)
    assert tagger.words == ["<pad>", "<unk>", "gene", "il0"]  # il2 and il7 merge; gene x3; the rest once
    assert {"G", "E", "2", "7"} <= set(tagger.chars)  # characters keep case and digits
    ids = tagger.encode(["IL9", "GeNe", "binds"])["word_ids"].tolist()
    assert ids == [3, 2, 1]
    cased = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], lowercase=False, **TINY)
    assert {"Gene", "GENE", "gene", "p00", "IL0"} <= set(cased.words)


def test_encode_collate_shapes_and_padding_invariance():
    torch.manual_seed(0)
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], max_word_chars=5, **TINY).eval()
    item = tagger.encode(["receptor", "xq"])
    assert item["char_ids"].shape == (2, 5) and item["char_ids"][1].tolist()[2:] == [0, 0, 0]
    assert item["char_ids"][1, 0].item() == 1  # 'x' was never seen
    short = tagger.encode(["the", "Gene"])
    batch = tagger.collate([short, tagger.encode(SENTENCES[0] + ["binds"])])
    assert batch["word_ids"].shape == (2, 5) and batch["char_ids"].shape == (2, 5, 5)
    assert batch["word_mask"].sum(dim=1).tolist() == [2, 5]
    alone = tagger.emissions(tagger.collate([short]))
    assert tagger(batch).shape == (2, 5, 3)
    assert torch.allclose(tagger(batch)[0, :2], alone[0], atol=1e-6)


def test_word_vectors_initialise_covered_rows():
    vectors = {"Gene": [0.5] * 8, "gene": [1.0] * 8, "IL9": [2.0] * 8, "absent": [3.0] * 8}
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], word_vectors=vectors, **TINY)
    weight = tagger.word_embedding.weight
    assert torch.equal(weight[tagger.word_index["gene"]], torch.ones(8))  # the exact key wins
    assert torch.equal(weight[tagger.word_index["il0"]], torch.full((8,), 2.0))
    assert not torch.equal(weight[tagger.word_index["the"]], torch.full((8,), 3.0))
    with pytest.raises(BiolmError, match="word_dim = 8"):
        BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], word_vectors={"gene": [1.0] * 3}, **TINY)


def test_unk_replace_only_in_training():
    torch.manual_seed(0)
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], unk_replace=1.0, **TINY)
    batch = tagger.collate([tagger.encode(s) for s in SENTENCES])
    all_unk = dict(batch, word_ids=batch["word_ids"].masked_fill(batch["word_mask"], 1))
    trained = tagger.train().emissions(batch)
    assert torch.equal(trained, tagger.eval().emissions(all_unk))
    assert not torch.equal(tagger.emissions(batch), trained)


@pytest.mark.parametrize(("tags", "message"), [
    (["B-X", "I-X"], "lack 'O'"),
    (["O", "PER"], "not an IOB2 tag name"),
    (["O", "I-X"], "has no 'B-X'"),
    (["O", "B-X", "B-X"], "repeat"),
])
def test_bad_tags_raise(tags, message):
    with pytest.raises(BiolmError, match=message):
        BiLstmCrf.build(SENTENCES, tags, **TINY)


def test_bad_input_raises():
    with pytest.raises(BiolmError, match="vocabulary is empty"):
        BiLstmCrf.build([], ["O"], **TINY)
    with pytest.raises(BiolmError, match="unknown option 'hiden'"):
        BiLstmCrf.build(SENTENCES, ["O"], hiden=3)
    tagger = BiLstmCrf.build(SENTENCES, ["O", "B-X", "I-X"], **TINY)
    with pytest.raises(BiolmError, match="non-empty list"):
        tagger.encode([])
    batch = tagger.collate([tagger.encode(["gene"])])
    with pytest.raises(BiolmError, match="outside 0..2"):
        tagger.loss(batch, torch.tensor([[-100]]))
    assert math.isfinite(tagger.loss(batch, torch.tensor([[2]])).item())


def test_word_vectors_from_an_encoder_folder(tiny_wordpiece_bert):
    from transformers import AutoModel

    from biolm.models.word_vectors import subword_mean_vectors

    table = AutoModel.from_pretrained(str(tiny_wordpiece_bert)).get_input_embeddings().weight.detach()
    vectors = subword_mean_vectors(tiny_wordpiece_bert, ["breast", "mutations"], 32)  # full width: no PCA
    pieces = [19, 20, 21, 22]  # breast | mut ##ation ##s
    torch.testing.assert_close(torch.tensor(vectors["breast"]), table[pieces[0]])
    torch.testing.assert_close(torch.tensor(vectors["mutations"]), table[pieces[1:]].mean(0))
    reduced = subword_mean_vectors(tiny_wordpiece_bert, ["breast", "mutations", "gene", "tumor"], 3)
    assert {len(v) for v in reduced.values()} == {3}
    tagger = BiLstmCrf.for_training(["O", "B-X", "I-X"], [["Breast", "mutations"]], word_vectors_from=str(tiny_wordpiece_bert), word_dim=3)
    expected = subword_mean_vectors(tiny_wordpiece_bert, ["breast", "mutations"], 3)  # the normalised vocabulary
    for word in ("breast", "mutations"):
        torch.testing.assert_close(tagger.word_embedding.weight[tagger.word_index[word]].detach(), torch.tensor(expected[word]))
    assert expected["breast"][2] == 0.0  # two words span two principal directions: the third column is zero
