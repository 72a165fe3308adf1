"""The service tests serve the suite's shared tiny binary run (tests/conftest.py)."""

from __future__ import annotations

import pytest

from biolm import api


@pytest.fixture(scope="session")
def served_run(tiny_binary_run):
    return tiny_binary_run


@pytest.fixture(scope="session")
def loaded_run(served_run):
    return api.load_run(served_run)
