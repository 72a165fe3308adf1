"""Held-out validation/test splits: sizes as scikit-learn counts them, a table too small to split is
one line with the rows each split would get and the minimum, and classes too rare to stratify fall
back to an unstratified split with a warning naming the class."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf
from sklearn.model_selection import train_test_split

from biolm.cli import main
from biolm.data.datasets import load_splits, split_sizes
from biolm.errors import BiolmError


def _data_cfg(path, **split):
    return OmegaConf.create(
        {
            "train": str(path),
            "val": None,
            "test": None,
            "sequence_column": "sequence",
            "label_column": "label",
            "id_column": "id",
            "labels_file": None,
            "split": {"val": 0.1, "test": 0.1, "seed": 42, **split},
        }
    )


def _table(path, labels):
    bases = "ACGT"
    rows = ["".join(bases[(i >> (2 * j)) & 3] for j in range(8)) for i in range(len(labels))]
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(rows, labels)))
    return path


@pytest.mark.parametrize("n_rows", [3, 4, 7, 10, 11, 29, 100, 1001])
@pytest.mark.parametrize(("val", "test"), [(0.1, 0.1), (0.2, 0.05), (0.33, 0.33)])
def test_split_sizes_match_scikit_learn(n_rows, val, test):
    rest, held_val = train_test_split(list(range(n_rows)), test_size=val, random_state=0)
    rest, held_test = train_test_split(rest, test_size=test / (1 - val), random_state=0)
    assert split_sizes(n_rows, {"val": val, "test": test}) == {"train": len(rest), "val": len(held_val), "test": len(held_test)}


def test_two_rows_are_one_line_with_sizes_and_minimum(tmp_path):
    path = tmp_path / "two_rows.csv"
    path.write_text("sequence,label\nACGTACGTACGGTTAA,0\nCGTACGTACGGTTAA,1\n")
    with pytest.raises(BiolmError) as err:
        load_splits(_data_cfg(path), stratify=True)
    assert str(err.value) == (
        f"data.train: {path} has 2 rows, too few to hold out data.split.val=0.1 and data.split.test=0.1: "
        "the splits would get train 0, val 1, test 1 rows; every split needs at least 1 row, so at least 3 rows are needed "
        "(add rows, or pass data.val= and data.test= files)"
    )


def test_minimum_follows_the_shares_and_given_files(tmp_path):
    path = _table(tmp_path / "t.csv", ["0", "1"] * 3)
    with pytest.raises(BiolmError, match=r"6 rows, too few to hold out data.split.val=0.5 and data.split.test=0.4: .*train 0, val 3, test 3 .*at least 10 rows"):
        load_splits(_data_cfg(path, val=0.5, test=0.4), stratify=True)
    assert split_sizes(10, {"val": 0.5, "test": 0.4}) == {"train": 1, "val": 5, "test": 4}
    assert split_sizes(9, {"val": 0.5, "test": 0.4})["train"] == 0
    one = _table(tmp_path / "one.csv", ["0"])
    cfg = _data_cfg(one)
    cfg.val = str(path)
    with pytest.raises(BiolmError, match=r"has 1 row, too few to hold out data.split.test=0.1: the splits would get train 0, test 1 rows; .*at least 2 rows .*pass data.test= files"):
        load_splits(cfg, stratify=False)
    with pytest.raises(BiolmError, match=r"data.split: data.split.val=0.6 \+ data.split.test=0.4 leaves nothing to train on"):
        load_splits(_data_cfg(path, val=0.6, test=0.4), stratify=True)


def test_minimum_is_enough(tmp_path):
    splits = load_splits(_data_cfg(_table(tmp_path / "t.csv", ["0", "1", "1"])), stratify=False)
    assert {name: len(r) for name, r in splits.items()} == {"train": 1, "val": 1, "test": 1}


def test_stratified_when_possible_else_a_warning_names_the_class(tmp_path, caplog):
    labels = ["a"] * 30 + ["b"] * 30
    splits = load_splits(_data_cfg(_table(tmp_path / "even.csv", labels)), stratify=True)
    assert sorted(splits["val"].labels) == ["a"] * 3 + ["b"] * 3  # stratified
    assert sorted(splits["test"].labels) == ["a"] * 3 + ["b"] * 3
    rare = _table(tmp_path / "rare.csv", ["a"] * 20 + ["b"] * 19 + ["c"])
    with caplog.at_level(logging.WARNING, logger="biolm.data.datasets"):
        splits = load_splits(_data_cfg(rare), stratify=True)
    assert sum(len(r) for r in splits.values()) == 40
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{rare}: data.val (class 'c' has 1 row among the 40 rows left to split) and "
        "data.test (class 'c' has 1 row among the 36 rows left to split) drawn without stratifying by label"
    ]


def test_tiny_table_finetune_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "two_rows.csv"
    path.write_text("sequence,label\nACGTACGTACGGTTAA,0\nCGTACGTACGGTTAA,1\n")
    out = tmp_path / "runs"
    assert main(["finetune", f"data.train={path}", "model=cnn", "tokenizer=char", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"biolm finetune: error: data.train: {path} has 2 rows, too few to hold out")
