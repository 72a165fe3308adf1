"""The report prints undefined metrics as "undefined" and plots degenerate test sets without failing."""

from __future__ import annotations

import math

import numpy as np

from biolm.report import _format, plot_scatter


def test_format_of_undefined_values():
    assert _format(None) == "undefined" and _format(math.nan) == "undefined" and _format(0.5) == "0.5000" and _format(3) == "3"


def test_scatter_of_constant_predictions_and_of_one_record(tmp_path):
    assert math.isnan(plot_scatter(np.array([1.0, 2.0, 3.0]), np.full(3, 2.0), tmp_path / "a.png"))
    assert math.isnan(plot_scatter(np.array([1.0]), np.array([2.0]), tmp_path / "b.png"))
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "b.png").exists()
