"""What a non-editable install needs: configs and bundled data inside the wheel, bundled paths that
resolve from any working directory. (`.ci/wheel-check` installs the wheel into a fresh environment
and runs it; CI runs that script.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from biolm.cli import compose, main
from biolm.resources import bundled_dir, bundled_path

REPO = Path(__file__).resolve().parents[1]
BUNDLED = re.compile(r"\$\{bundled:([^}]+)\}")


def _bundled_references() -> set[str]:
    return {m for path in (REPO / "configs").rglob("*.yaml") for m in BUNDLED.findall(path.read_text())}


def test_the_listed_packages_are_every_package_under_src():
    setuptools_cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setuptools_cfg["packages"]) == {*find_packages(str(REPO / "src")), "biolm.configs", "biolm.bundled"}
    assert setuptools_cfg["package-dir"] == {"": "src", "biolm.configs": "configs", "biolm.bundled": "data"}


def test_every_bundled_reference_names_a_bundled_file():
    references = _bundled_references()
    assert len(references) >= 10
    for relative in references:
        assert Path(bundled_path(relative)).is_file(), relative


def test_bundled_experiments_compose_to_absolute_paths_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose("finetune", ["experiment=demo_prom300"])
    for split in ("train", "val", "test"):
        assert Path(cfg.data[split]).is_absolute() and Path(cfg.data[split]).is_file()
    gp = compose("gp_cv", ["experiment=wheat599_gmlp"])
    assert Path(gp.data.genotypes).is_file()


def test_a_missing_bundled_file_is_one_line(capsys):
    assert main(["finetune", "data.train=${bundled:gue/nope.csv}", "--cfg", "job"]) == 2
    err = capsys.readouterr().err
    assert "data.train: ${bundled:gue/nope.csv}: no such bundled file" in err and "Traceback" not in err


def test_cfg_job_shows_bundled_paths_but_keeps_secrets_lazy(capsys, monkeypatch):
    monkeypatch.setenv("BIOLM_API_KEY", "s3cret")
    assert main(["serve", "run=x", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "${oc.env:BIOLM_API_KEY" in out
    assert main(["finetune", "experiment=demo_prom300", "--cfg", "job"]) == 0
    assert str(bundled_dir() / "gue" / "prom_300_tata" / "train.csv.gz") in capsys.readouterr().out


@pytest.mark.slow
def test_the_wheel_carries_the_configs_and_the_bundled_data(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("biolm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"biolm/configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")}
    data = {f"biolm/bundled/{p.relative_to(REPO / 'data').as_posix()}" for p in (REPO / "data").rglob("*") if p.is_file()}
    assert configs <= names and data <= names
    assert "biolm/service/static/index.html" in names or any(n.startswith("biolm/service/static/") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "runs/")) for n in names)
