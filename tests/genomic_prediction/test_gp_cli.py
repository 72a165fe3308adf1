"""`biolm gp cv / fit / predict` end to end on tiny data, and every configs/gp experiment smoke-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolm.cli import compose, main

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "gp" / "experiment").glob("*.yaml"))
TINY_DEEP = {"max_epochs": 2, "patience": 1}


def _tiny_overrides(command: str, base: list[str]) -> list[str]:
    """Shrink every deep model the composed config selects (few epochs, small network)."""
    cfg = compose(command, base)
    out = []
    for name, node in cfg.models.items():
        if str(node.estimator._target_).endswith("DeepRegressor"):
            out += [f"models.{name}.estimator.{k}={v}" for k, v in TINY_DEEP.items()]
    return out


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """40 lines x 30 SNPs (0/1/2, a few missing), two traits with an additive signal."""
    root = tmp_path_factory.mktemp("gp")
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, size=(40, 30)).astype(float)
    signal = values[:, :6] @ rng.normal(size=6)
    values[rng.random(values.shape) < 0.03] = np.nan
    ids = [f"L{i:02d}" for i in range(40)]
    geno = pd.DataFrame(values, columns=[f"snp{j}" for j in range(30)]).astype("Int64")
    geno.insert(0, "line", ids)
    geno.to_csv(root / "geno.csv", index=False)
    pheno = pd.DataFrame({"id": ids, "yield": signal + rng.normal(size=40), "height": -signal + rng.normal(size=40)})
    pheno.to_csv(root / "pheno.csv", index=False)
    return {"geno": root / "geno.csv", "pheno": root / "pheno.csv", "root": root}


def _data(files) -> list[str]:
    return ["data=files", f"data.genotypes={files['geno']}", f"data.phenotypes={files['pheno']}"]


def test_cv_uses_the_same_folds_for_every_model(tiny_files, tmp_path):
    base = [*_data(tiny_files), "models=[gmlp,mlp,rrblup,gblup,rkhs]", "cv.folds=3", "cv.repeats=2"]
    args = [*base, *_tiny_overrides("gp_cv", base), "models.gmlp.estimator.network.markers_per_token=8",
            f"output_dir={tmp_path}", "run_name=cv", "plots=false"]
    assert main(["gp", "cv", *args]) == 0
    run = tmp_path / "cv"
    results = pd.read_csv(run / "cv_results.csv")
    assert len(results) == 2 * 5 * 3 * 2  # traits x models x folds x repeats
    oof = pd.read_csv(run / "oof_predictions.csv")
    folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    expected = folds[folds.repeat == 0].set_index("id")["fold"]
    for (_, _), block in oof.groupby(["trait", "model"]):
        assert block.set_index("id")["fold"].sort_index().equals(expected.sort_index())
    per_model = results.groupby("model")[["repeat", "fold", "n_test"]].apply(lambda f: tuple(map(tuple, f.to_numpy())))
    assert per_model.nunique() == 1
    summary = pd.read_csv(run / "cv_summary.csv")
    assert set(summary.columns) >= {"trait", "model", "r_mean", "r_sd", "mse_mean", "fit_s"}
    assert (summary[summary.model == "rrblup"].r_mean > 0.3).all()  # the additive signal is found
    assert "| rkhs |" in (run / "report.md").read_text()


def test_max_repeats_keeps_the_first_repeats_folds(tiny_files, tmp_path):
    args = [*_data(tiny_files), "models=[rrblup,gblup]", "cv.folds=2", "cv.repeats=3", "models.gblup.max_repeats=1",
            "data.traits=[yield]", f"output_dir={tmp_path}", "run_name=cv"]
    assert main(["gp", "cv", *args]) == 0
    results = pd.read_csv(tmp_path / "cv" / "cv_results.csv")
    assert results.groupby("model").size().to_dict() == {"gblup": 2, "rrblup": 6}
    assert (tmp_path / "cv" / "r_by_model.png").stat().st_size > 0 and (tmp_path / "cv" / "scatter_yield.png").exists()


@pytest.mark.parametrize("model", ["gmlp", "rrblup", "gblup", "rkhs"])
def test_fit_then_predict_round_trip(tiny_files, tmp_path, model):
    base = [*_data(tiny_files), f"model={model}", "trait=yield"]
    run = tmp_path / "run"
    assert main(["gp", "fit", *base, *_tiny_overrides("gp_fit", base), "models.gmlp.estimator.network.markers_per_token=8", f"out={run}"]) == 0
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "markers.json", "features.safetensors", "model.safetensors", "fit.json"}
    # New lines with the markers in another order (and one extra marker) predict the same.
    geno = pd.read_csv(tiny_files["geno"])
    shuffled = geno[["line", *reversed(geno.columns[1:])]].assign(extra=1)
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    assert main(["gp", "predict", f"run={run}", f"genotypes={tiny_files['geno']}", f"out={tmp_path / 'a.csv'}"]) == 0
    assert main(["gp", "predict", f"run={run}", f"genotypes={tmp_path / 'new.csv'}", f"out={tmp_path / 'b.csv'}"]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    np.testing.assert_allclose(a.prediction, b.prediction, rtol=1e-5)
    import json

    fit = json.loads((run / "fit.json").read_text())
    observed = pd.read_csv(tiny_files["pheno"])["yield"]
    assert np.corrcoef(a.prediction, observed)[0, 1] == pytest.approx(fit["train_pearson_r"], abs=1e-5)


def test_bad_inputs_give_one_line_errors(tiny_files, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("line,m1,m2\nL00,0,x\n")
    assert main(["gp", "cv", "data=files", f"data.genotypes={bad}", f"data.phenotypes={tiny_files['pheno']}"]) == 2
    assert "line 2, marker 'm2': non-numeric genotype 'x'" in capsys.readouterr().err
    other = tmp_path / "pheno.csv"
    other.write_text("id,yield\nnobody,1.0\n")
    assert main(["gp", "cv", "data=files", f"data.genotypes={tiny_files['geno']}", f"data.phenotypes={other}"]) == 2
    assert "have no genotypes" in capsys.readouterr().err
    assert main(["gp", "cv", "models=[nosuch]"]) == 2
    assert "unknown models 'nosuch'; available: gblup, gmlp, mlp, pblup, rkhs, rrblup" in capsys.readouterr().err
    assert main(["gp", "predict", f"run={tmp_path}", f"genotypes={tiny_files['geno']}"]) == 2
    assert "not a complete gp fit run folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_gp_experiment_smoke_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    base = [f"experiment={name}", "cv.folds=2", "cv.repeats=1"]
    cfg = compose("gp_cv", base)
    trait = f"data.traits=[{cfg.data.traits[0]}]" if cfg.data.get("traits") else "data.traits=[env1]"
    args = [*base, *_tiny_overrides("gp_cv", base), trait, f"output_dir={tmp_path}", "run_name=smoke"]
    assert main(["gp", "cv", *args]) == 0
    summary = pd.read_csv(tmp_path / "smoke" / "cv_summary.csv")
    assert set(summary.model) == set(cfg.models)


def test_selecting_fewer_models_than_the_experiment_configures():
    from biolm.genomic_prediction.cv import selected_models

    cfg = compose("gp_cv", ["experiment=wheat599_gmlp", "models=[rrblup]"])
    assert list(selected_models(cfg)) == ["rrblup"]  # the experiment's gmlp/mlp settings do not make models
