"""experiment=brca1_risk_dnabert2_lora end to end on a tiny DNABERT-2 folder in the published layout
(MosaicBERT names, fused Wqkv, GEGLU, ALiBi, the real 4096-token tokenizer.json), and its data: the
bundled ClinVar BRCA1 windows are exactly what `biolm variants windows` builds from the bundled files."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from biolm import api
from biolm.cli import main
from tests.checkpoints import REPO, write_tiny_dnabert2

CLINVAR = REPO / "data" / "variants" / "clinvar_brca_grch38"
WINDOWS = REPO / "data" / "variants" / "clinvar_brca1_windows_256"


def test_brca1_risk_experiment_trains_a_lora_adapter_on_a_dnabert2_folder(tmp_path):
    folder = write_tiny_dnabert2(tmp_path / "dnabert2")
    args = ["finetune", "experiment=brca1_risk_dnabert2_lora", f"model.pretrained={folder}", f"output_dir={tmp_path / 'runs'}",
            "trainer.max_epochs=1", "trainer.accelerator=cpu", "progress_bar=false"]
    assert main(args) == 0
    run_dir = tmp_path / "runs" / "brca1_risk_dnabert2_lora"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and not (run_dir / "model.safetensors").exists()
    base = json.loads((run_dir / "adapter" / "base.json").read_text())
    assert base["init_from"] == str(folder) and base["weights"] == "pytorch_model.bin"
    config = (run_dir / "config.yaml").read_text()
    assert "position_embedding: alibi" in config and "mlp: geglu" in config and f"pretrained_from: {folder}" in config

    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["n_test"] == 310 and all(math.isfinite(metrics[k]) for k in ("auroc", "auprc", "accuracy", "mcc"))
    run = api.load_run(run_dir)  # base weights re-imported from the checkpoint folder, then the adapter
    assert run.tokenizer.vocab_size == 4096
    names = [name for name, _ in run.model.named_parameters()]
    adapted = sum(p.numel() for name, p in run.model.named_parameters() if "lora_" in name or "modules_to_save" in name)
    assert any("qkv.lora_A" in name for name in names)
    assert metrics["trainable_params"] == adapted < metrics["total_params"] / 20  # LoRA matrices + the head only

    test = pd.read_csv(WINDOWS / "test.csv.gz")
    expected = pd.read_csv(run_dir / "test_predictions.csv")
    np.testing.assert_allclose(api.predict(run, test["sequence"].tolist()[:16])["prob_1"], expected["prob_1"][:16], rtol=1e-5, atol=1e-6)
    shutil.rmtree(folder)  # the adapter needs its base checkpoint, and says so
    assert main(["predict", f"run={run_dir}", f"input={WINDOWS / 'test.csv.gz'}", f"output={tmp_path / 'p.csv'}"]) == 2


def test_bundled_brca1_windows_are_what_variants_windows_builds(tmp_path):
    out = tmp_path / "windows"
    args = ["variants", "windows", f"labels={CLINVAR / 'clinvar_20200803_BRCA1_BRCA2_labels.csv.gz'}",
            f"ref={CLINVAR / 'chr17_42425000-43600000.GRCh38.fa.gz'}", "region=17:42425000-43600000", f"out={out}"]
    assert main(args) == 0
    for split in ("train", "val", "test"):
        built = pd.read_csv(out / f"{split}.csv", dtype={"chrom": str})
        pd.testing.assert_frame_equal(built, pd.read_csv(WINDOWS / f"{split}.csv.gz", dtype={"chrom": str}))
        assert (built["sequence"].str.len() == 256).all() and set(built["label"]) == {0, 1}
    train, test = (pd.read_csv(out / f"{s}.csv") for s in ("train", "test"))
    gap = (test["pos"].to_numpy()[:, None] - train["pos"].to_numpy()[None, :]).__abs__().min()
    assert gap >= 256  # no test window shares a base with a training window


def test_variant_windows_carry_the_alternative_allele_and_refuse_bad_labels(tmp_path):
    from biolm.errors import BiolmError
    from biolm.variants import Reference

    reference = Reference(CLINVAR / "chr17_42425000-43600000.GRCh38.fa.gz")
    rows = pd.read_csv(WINDOWS / "val.csv.gz", dtype={"chrom": str}).head(3)
    for row in rows.itertuples():
        assert row.sequence[128] == row.alt and reference.fetch("17", row.pos - 1 - 128, row.pos - 1) == row.sequence[:128]
    labels = tmp_path / "labels.csv"
    labels.write_text("chrom,pos,ref,alt,label\n17,43039471,G,A,maybe\n")
    with pytest.raises(BiolmError, match="label 'maybe' is not accepted"):
        api.variant_window_dataset(labels, reference)
