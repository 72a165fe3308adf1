"""Labels, AUROC/AUPRC against scikit-learn, and the annotated VCF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cyvcf2 import VCF
from sklearn.metrics import average_precision_score, roc_auc_score

from biolm.errors import BiolmError
from biolm.variants import annotate_vcf, attach_labels, evaluate_scores
from biolm.variants.evaluation import parse_label


def test_parse_label():
    assert [parse_label(v, "x") for v in ("Pathogenic", "likely_pathogenic", "1", "case", "Benign", "Likely benign", "0", "control")] == [1, 1, 1, 1, 0, 0, 0, 0]
    with pytest.raises(BiolmError, match="label 'VUS' is not accepted"):
        parse_label("VUS", "labels.csv line 3")


def _scores(method: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"chrom": "17", "pos": np.arange(1, 41), "ref": "A", "alt": "C", "score": rng.normal(size=40), "label": rng.integers(0, 2, 40),
         "method": method, "model": "runs/x", "window_bp": 64}
    )


@pytest.mark.parametrize("method, sign", [("clm_llr", -1.0), ("supervised_diff", 1.0)])
def test_metrics_equal_sklearn_with_the_stated_orientation(method, sign, tmp_path):
    scores = _scores(method)
    metrics = evaluate_scores(scores, roc_png=tmp_path / "roc.png")
    assert metrics["auroc"] == pytest.approx(roc_auc_score(scores["label"], sign * scores["score"]))
    assert metrics["auprc"] == pytest.approx(average_precision_score(scores["label"], sign * scores["score"]))
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_attach_labels_matches_chr_aliases(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("chrom,pos,ref,alt,clnsig\nchr17,5,A,C,Pathogenic\n17,6,G,T,Benign\n")
    scores = pd.DataFrame({"chrom": ["17", "17", "17"], "pos": [5, 6, 7], "ref": ["A", "G", "C"], "alt": ["C", "T", "A"], "score": [1.0, 2.0, 3.0]})
    labelled = attach_labels(scores, table, "clnsig")
    assert labelled["label"].tolist()[:2] == [1, 0] and np.isnan(labelled["label"].iloc[2])
    with pytest.raises(BiolmError, match="lacks column"):
        attach_labels(scores, table, "label")


def test_annotated_vcf_has_one_value_per_alt(tmp_path, make_vcf):
    vcf = make_vcf(tmp_path / "in.vcf", ["chr1\t5\ta\tA\tC,G\t50\tPASS\tDP=3", "chr1\t9\tb\tT\tA\t50\tPASS\tDP=3", "chr1\t12\tc\tG\tC\t50\tPASS\tDP=3"])
    scores = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr1"], "pos": [5, 5, 9], "ref": ["A", "A", "T"], "alt": ["C", "G", "A"], "score": [-1.5, np.nan, 0.25],
         "method": "clm_llr", "model": "runs/m", "window_bp": 128}
    )
    assert annotate_vcf(vcf, scores, tmp_path / "out.vcf.gz") == 2
    reader = VCF(str(tmp_path / "out.vcf.gz"))
    assert "window_bp=128" in reader.raw_header and "model=runs/m" in reader.raw_header
    values = [record.INFO.get("BIOLM_SCORE") for record in reader]
    assert values[0][0] == pytest.approx(-1.5) and values[1] == pytest.approx(0.25) and values[2] is None
