"""Label spaces: fitting, encoding, and label errors per task type."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError


def where(i: int) -> str:
    return f"f.csv line {i + 2}"


def test_binary_numeric_and_string_labels():
    spec = LabelSpec.fit("binary", ["1", "0", "1"], where)
    assert spec.classes == ["0", "1"] and spec.num_outputs == 1
    assert spec.encode(["0", "1"], where).tolist() == [0.0, 1.0]
    spec = LabelSpec.fit("binary", ["benign", "pathogenic"], where, positive_label="benign")
    assert spec.classes == ["pathogenic", "benign"]


def test_multiclass_orders_numbers_numerically_and_round_trips(tmp_path):
    spec = LabelSpec.fit("multiclass", ["10", "2", "1", "2"], where)
    assert spec.classes == ["1", "2", "10"]
    assert spec.encode(["10", "1"], where).tolist() == [2, 0]
    spec.to_json(tmp_path / "labels.json")
    assert LabelSpec.from_json(tmp_path / "labels.json") == spec


def test_multilabel_multi_hot():
    spec = LabelSpec.fit("multilabel", ["a;b", "c", "b"], where)
    assert spec.classes == ["a", "b", "c"] and spec.num_outputs == 3
    np.testing.assert_array_equal(spec.encode(["b;c", "a"], where), [[0, 1, 1], [1, 0, 0]])


def test_regression_standardises_with_training_statistics():
    spec = LabelSpec.fit("regression", ["1", "2", "3"], where)
    assert spec.mean == pytest.approx(2.0) and spec.std == pytest.approx(np.std([1, 2, 3]))
    np.testing.assert_allclose(spec.encode(["2", "4"], where), [0.0, 2.0 / spec.std], rtol=1e-6)


@pytest.mark.parametrize(
    ("task", "labels", "message"),
    [
        ("binary", ["1", "0", "2"], r"task=binary needs exactly 2 label values .* found 3: 0, 1, 2; use task=multiclass"),
        ("binary", ["1", "", "0"], r"f.csv line 3: label is empty or NaN"),
        ("binary", ["1", "nan", "0"], r"f.csv line 3: label is empty or NaN"),
        ("regression", ["1.5", "cat"], r"f.csv line 3: label 'cat' is not a number"),
        ("regression", ["1.5", "inf"], r"not a finite number"),
        ("ordinal", ["1"], r"task.type: unknown task type 'ordinal'"),
    ],
)
def test_label_errors(task, labels, message):
    with pytest.raises(BiolmError, match=message):
        LabelSpec.fit(task, labels, where)


def test_unseen_label_at_encode_names_the_line():
    spec = LabelSpec.fit("multiclass", ["a", "b"], where)
    with pytest.raises(BiolmError, match=r"f.csv line 3: label 'z' does not match task=multiclass"):
        spec.encode(["a", "z"], where)
