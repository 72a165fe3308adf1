"""`biolm variants filter|dataset|score|ism` end to end on tiny files; bad input -> one line, exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cyvcf2 import VCF

from biolm.cli import main


def test_filter_dataset_score_ism(tmp_path, make_vcf, reference_fasta, clm_run, chr1, capsys):
    rows = [
        f"chr1\t{p}\tv{p}\t{chr1[p - 1]}\t{'A' if chr1[p - 1] != 'A' else 'C'}\t{q}\tPASS\tDP={d}\tGT\t{g1}\t{g2}"
        for p, q, d, g1, g2 in ((30, 50, 20, "0|1", "1|1"), (60, 10, 20, "1|1", "0|0"), (90, 50, 5, "0|1", "0|0"), (120, 50, 40, "1|0", "0|1"))
    ]
    calls = make_vcf(tmp_path / "calls.vcf", rows, ["s1", "s2"])
    out = tmp_path / "pass.vcf.gz"
    assert main(["variants", "filter", f"in={calls}", f"out={out}", "min_qual=30", "min_dp=10"]) == 0
    assert [r.POS for r in VCF(str(out))] == [30, 120]
    assert json.loads((tmp_path / "pass.vcf.gz.qc.json").read_text())["records"]["dropped"] == {"qual_below_min": 1, "info_dp_below_min": 1}

    labels = tmp_path / "clinical.tsv"
    labels.write_text("sample\tlabel\ns1\tcase\ns2\tcontrol\n")
    risk = tmp_path / "risk.csv"
    assert main(["variants", "dataset", f"vcf={out}", f"ref={reference_fasta}", "region=chr1:1-150", f"labels={labels}", f"out={risk}"]) == 0
    table = pd.read_csv(risk)
    assert table["id"].tolist() == ["s1_h1", "s1_h2", "s2_h1", "s2_h2"] and table["label"].tolist() == ["case", "case", "control", "control"]
    assert (table["sequence"].str.len() == 150).all()

    variant_labels = tmp_path / "variant_labels.csv"
    variant_labels.write_text("chrom,pos,ref,alt,label\n" + "".join(
        f"chr1,{p},{chr1[p - 1]},{'A' if chr1[p - 1] != 'A' else 'C'},{lab}\n" for p, lab in ((30, "pathogenic"), (60, "benign"), (90, "benign"), (120, "pathogenic"))
    ))
    scores = tmp_path / "scores.tsv"
    code = main(["variants", "score", f"run={clm_run}", f"vcf={calls}", f"ref={reference_fasta}", "window_bp=64", f"out={scores}", f"labels={variant_labels}"])
    assert code == 0
    frame = pd.read_csv(scores, sep="\t")
    assert len(frame) == 4 and frame["score"].notna().all() and set(frame["window_bp"]) == {64}
    metrics = json.loads((tmp_path / "scores.metrics.json").read_text())
    assert metrics["n"] == 4 and 0.0 <= metrics["auroc"] <= 1.0 and metrics["method"] == "clm_llr"
    assert (tmp_path / "scores.roc.png").exists()
    annotated = [r.INFO.get("BIOLM_SCORE") for r in VCF(str(tmp_path / "scores.vcf.gz"))]
    assert annotated == pytest.approx(frame["score"].tolist(), rel=1e-5)

    ism = tmp_path / "ism"
    assert main(["variants", "ism", f"run={clm_run}", f"ref={reference_fasta}", "region=chr1:101-110", "window_bp=32", f"out={ism}"]) == 0
    grid = pd.read_csv(ism / "ism.tsv", sep="\t")
    assert len(grid) == 30 and sorted(grid["pos"].unique().tolist()) == list(range(101, 111))
    assert (grid["ref"] != grid["alt"]).all()
    assert (ism / "ism.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line_and_exit_2(tmp_path, reference_fasta, clm_run, capsys):
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\tx\t.\tA\tC\t.\t.\t.\n")
    assert main(["variants", "filter", f"in={bad}", f"out={tmp_path / 'o.vcf'}"]) == 2
    err = capsys.readouterr().err
    assert "line 3: POS 'x' is not a positive integer" in err and len(err.strip().splitlines()) == 1
    assert main(["variants", "score", f"run={clm_run}", f"vcf={bad}", f"ref={reference_fasta}", f"out={tmp_path / 's.tsv'}"]) == 2
    assert main(["variants", "ism", f"run={clm_run}", f"ref={reference_fasta}", "region=chr9:1-10", f"out={tmp_path / 'ism'}"]) == 2
    assert "contig 'chr9' is not in" in capsys.readouterr().err
    assert main(["variants", "score", f"vcf={bad}"]) == 2
