"""Scores against pathogenic/benign labels, and scores written back into a VCF.

In: a score table (`score_variants` output) and labels (a column of it, or a table with
``chrom, pos, ref, alt, label``). Labels: ``1``/``pathogenic``/``likely_pathogenic`` are
positive, ``0``/``benign``/``likely_benign`` negative. Out: AUROC / AUPRC (scikit-learn) with
the orientation stated (zero-shot: lower score = more pathogenic; supervised: higher), and a ROC
curve PNG. `annotate_vcf` copies a VCF adding INFO fields with each ALT's score.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import atomic_path
from biolm.errors import BiolmError
from biolm.variants.reference import canonical_contig
from biolm.variants.vcf import _records, open_vcf

log = logging.getLogger(__name__)

KEY = ["chrom", "pos", "ref", "alt"]


def parse_label(value, where: str) -> int:
    """``1``/``pathogenic``/``likely_pathogenic``/``case`` -> 1, ``0``/``benign``/``likely_benign``/``control`` -> 0."""
    text = str(value).strip().lower().replace(" ", "_")
    if text in ("1", "1.0", "true", "case") or text.endswith("pathogenic"):
        return 1
    if text in ("0", "0.0", "false", "control") or text.endswith("benign"):
        return 0
    raise BiolmError(f"{where}: label {value!r} is not accepted (accepted: 1/0, pathogenic/benign, likely_pathogenic/likely_benign, case/control)")


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["_chrom"] = out["chrom"].astype(str).map(canonical_contig)
    out["_pos"] = out["pos"].astype(np.int64)
    out["_ref"] = out["ref"].astype(str).str.upper()
    out["_alt"] = out["alt"].astype(str).str.upper()
    return out


def attach_labels(scores: pd.DataFrame, labels: str | Path, label_column: str = "label") -> pd.DataFrame:
    """``scores`` with a ``label`` column (0/1; NaN where the labels table has no row) joined on chrom/pos/ref/alt."""
    path = Path(labels)
    if not path.is_file():
        raise BiolmError(f"labels: file not found: {path}")
    sep = "\t" if ".tsv" in path.name else ","
    table = pd.read_csv(path, sep=sep, dtype={"chrom": str})
    missing = [c for c in [*KEY, label_column] if c not in table.columns]
    if missing:
        raise BiolmError(f"labels: {path} lacks column(s) {', '.join(missing)} (needs chrom, pos, ref, alt, {label_column})")
    table = _key_frame(table)
    table["label"] = [parse_label(v, f"labels: {path} line {i + 2}") for i, v in enumerate(table[label_column])]
    table = table.drop_duplicates(["_chrom", "_pos", "_ref", "_alt"])
    keyed = _key_frame(scores.drop(columns=["label"], errors="ignore"))
    merged = keyed.merge(table[["_chrom", "_pos", "_ref", "_alt", "label"]], on=["_chrom", "_pos", "_ref", "_alt"], how="left")
    return merged.drop(columns=["_chrom", "_pos", "_ref", "_alt"])


def higher_is_pathogenic(method: str) -> bool:
    """Zero-shot scores are log-likelihood ratios (low = damaging); supervised ones follow the positive class."""
    return method == "supervised_diff"


def evaluate_scores(scores: pd.DataFrame, roc_png: str | Path | None = None) -> dict[str, float | int | str | None]:
    """AUROC and AUPRC of ``scores.score`` against ``scores.label`` (rows with both finite).

    A metric undefined on these rows is None (JSON null), with a warning: AUROC when they are all
    pathogenic or all benign (no ROC curve is drawn then), AUPRC when none is pathogenic.

    Returns:
        ``auroc``, ``auprc``, ``n``, ``n_pathogenic``, ``n_benign``, ``orientation``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    if "label" not in scores:
        raise BiolmError("labels: the score table has no label column; pass labels=<table with chrom,pos,ref,alt,label>")
    usable = scores[np.isfinite(scores["score"].astype(float)) & scores["label"].notna()]
    y = usable["label"].astype(int).to_numpy()
    higher = higher_is_pathogenic(str(scores["method"].iloc[0]))
    predictor = usable["score"].to_numpy(float) * (1.0 if higher else -1.0)
    n_pathogenic = int(y.sum())
    both = 0 < n_pathogenic < len(y)
    held = f"the {len(y)} labelled variants with a score are all {'pathogenic' if n_pathogenic else 'benign'}" if len(y) else "no variant has both a label and a score"
    if not both:
        log.warning("auroc: undefined, %s; AUROC needs pathogenic and benign ones (no ROC curve drawn)", held)
    if not n_pathogenic:
        log.warning("auprc: undefined, %s; AUPRC needs a pathogenic one", held)
    metrics = {
        "auroc": float(roc_auc_score(y, predictor)) if both else None,
        "auprc": float(average_precision_score(y, predictor)) if n_pathogenic else None,
        "n": int(len(y)),
        "n_pathogenic": n_pathogenic,
        "n_benign": int(len(y) - n_pathogenic),
        "orientation": "higher score = pathogenic" if higher else "lower score = pathogenic",
    }
    if roc_png is not None and both:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fpr, tpr, _ = roc_curve(y, predictor)
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.plot(fpr, tpr, label=f"AUROC {metrics['auroc']:.3f} (n={len(y)})")
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{usable['method'].iloc[0]} | {Path(str(usable['model'].iloc[0])).name}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        with atomic_path(roc_png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
    return metrics


def annotate_vcf(vcf: str | Path, scores: pd.DataFrame, output: str | Path, info_key: str = "BIOLM_SCORE") -> int:
    """Copy ``vcf`` to ``output`` with INFO ``info_key`` (one value per ALT; ``.`` when unscored).

    The header records the method, model and window. Returns the number of records annotated.
    """
    from cyvcf2 import Writer

    keyed = _key_frame(scores)
    lookup = {
        (c, p, r, a): s for c, p, r, a, s in zip(keyed["_chrom"], keyed["_pos"], keyed["_ref"], keyed["_alt"], keyed["score"]) if np.isfinite(s)
    }
    method, model, window = scores["method"].iloc[0], scores["model"].iloc[0], int(scores["window_bp"].iloc[0])
    reader = open_vcf(vcf, "vcf")
    reader.add_info_to_header(
        {"ID": info_key, "Number": "A", "Type": "Float", "Description": f"biolm variant score ({method}, model {model}, window {window} bp)"}
    )
    reader.add_to_header(f"##biolm_variants_score=<method={method},model={model},window_bp={window},info={info_key}>")
    name = str(output)
    mode = "wz" if name.endswith(".gz") else "w"
    annotated = 0
    with atomic_path(output) as tmp:
        writer = Writer(str(tmp), reader, mode=mode)
        for record in _records(reader, vcf, "vcf"):
            values = [lookup.get((canonical_contig(record.CHROM), int(record.POS), record.REF.upper(), alt.upper())) for alt in record.ALT]
            if any(v is not None for v in values):
                record.INFO[info_key] = ",".join("." if v is None else f"{v:.6g}" for v in values)
                annotated += 1
            writer.write_record(record)
        writer.close()
    reader.close()
    return annotated
