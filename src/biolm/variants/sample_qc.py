"""Per-sample QC of a cohort VCF: the sex check against a sample sheet, plus call rate and heterozygosity.

In: a VCF with genotypes, a sample sheet (CSV/TSV, one row per sample, columns ``sample`` and
``sex``), settings. Out: a folder written whole (`biolm.atomic.atomic_folder`):

- ``sex_check.tsv``: ``sample, reported_sex, inferred_sex, F, n_sites, observed_hom,
  expected_hom[, y_calls], status, reason`` (status ``OK`` or ``PROBLEM``).
- ``failed_samples.txt``: the PROBLEM samples, one a line, ``sample<TAB># reason``; lines that
  start with ``#`` are comments. `biolm.variants.dataset.read_sample_list` reads it back (``variants dataset exclude=``).
- ``f_histogram.png``: F by reported sex, with the two thresholds.
- ``report.md`` and ``qc.json``: counts, the flagged samples, the settings.

A sample fails when its reported sex (male/female) differs from the inferred one or the inferred
one is ambiguous, when its autosomal missing-genotype share exceeds ``max_sample_missing``, or its
autosomal heterozygosity is more than ``max_het_z`` SD from the mean (`biolm.variants.vcf.sample_qc_reasons`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.atomic import atomic_folder
from biolm.errors import BiolmError
from biolm.plots import figure, markdown_table, save_png
from biolm.variants.dataset import read_sample_labels
from biolm.variants.sex_check import check_sex
from biolm.variants.vcf import sample_qc_reasons

log = logging.getLogger(__name__)

SEX_CODES = {"1": "male", "m": "male", "male": "male", "2": "female", "f": "female", "female": "female",
             "0": "unknown", "unknown": "unknown", "na": "unknown", "": "unknown"}
_ACCEPTED = "1/M/male, 2/F/female, 0/unknown/NA/empty (any case)"
_COLOURS = {"female": "tab:red", "male": "tab:blue", "unknown": "tab:gray"}


def read_sample_sheet(path: str | Path, sample_column: str = "sample", sex_column: str = "sex") -> dict[str, str]:
    """``{sample: male|female|unknown}`` from a CSV/TSV sample sheet.

    Raises:
        BiolmError: unreadable file, a missing column, a sample listed twice, or a sex outside the
            accepted codes, naming the file and line.
    """
    table = read_sample_labels(path, sample_column, sex_column, field_name="samples", label_key="sex_column",
                               strip_names=True, noun="sexes")
    sexes = {}
    for line, (name, value) in enumerate(table.items(), start=2):
        code = SEX_CODES.get(value.strip().lower())
        if code is None:
            raise BiolmError(f"samples: {path} line {line}: sex {value!r} of sample {name!r} is not accepted (accepted: {_ACCEPTED})")
        sexes[name] = code
    return sexes


@dataclass
class SampleQcResult:
    """The per-sample table (see the module docstring), summary counts and the folder written."""

    table: pd.DataFrame
    summary: dict
    out: Path

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "PROBLEM"]


def _reasons(row, qc_reasons: dict[str, str]) -> list[str]:
    """Why one sample fails (empty when it passes)."""
    reasons = []
    if row.reported_sex != "unknown" and row.inferred_sex != row.reported_sex:
        y_calls = f", {row.y_calls} Y calls" if hasattr(row, "y_calls") else ""
        reasons.append(f"sex: reported {row.reported_sex}, inferred {row.inferred_sex} (F={row.F:.3f}{y_calls})")
    if row.sample in qc_reasons:
        reasons.append(qc_reasons[row.sample])
    return reasons


def sample_qc(
    vcf: str | Path,
    out: str | Path,
    samples: str | Path | None = None,
    sample_column: str = "sample",
    sex_column: str = "sex",
    max_sample_missing: float | None = None,
    max_het_z: float | None = None,
    **sex_options,
) -> SampleQcResult:
    """Sex check (`biolm.variants.sex_check.check_sex`) plus autosomal call-rate/heterozygosity QC, written to ``out/``.

    Args:
        vcf: VCF/BCF with genotypes.
        out: output folder (replaced whole).
        samples: sample sheet (CSV/TSV) with ``sample_column`` and ``sex_column``; None: every sex unknown.
        max_sample_missing: fail samples missing more than this share of autosomal genotypes (None: off).
        max_het_z: fail samples whose autosomal heterozygous share is this many SD from the mean (None: off).
        **sex_options: `check_sex` settings (build, freq, male_min_f, female_max_f, ycount, ...).

    Returns:
        A `SampleQcResult`.
    """
    reported = read_sample_sheet(samples, sample_column, sex_column) if samples is not None else {}
    result = check_sex(vcf, reported, **sex_options)
    table = result.table
    names = table["sample"].tolist()
    if (max_sample_missing is not None or max_het_z is not None) and not result.autosome_records:
        log.warning("%s has no autosomal records (1-22, chr1-chr22): the missingness and heterozygosity QC is skipped", vcf)
    qc_reasons = sample_qc_reasons(names, result.autosome_called, result.autosome_het, result.autosome_records, max_sample_missing, max_het_z)
    reasons = [_reasons(row, qc_reasons) for row in table.itertuples(index=False)]
    table["status"] = ["PROBLEM" if r else "OK" for r in reasons]
    table["reason"] = ["; ".join(r) for r in reasons]
    if samples is not None and not reported:
        log.warning("%s lists no samples", samples)
    not_in_sheet = [name for name in names if name not in reported] if samples is not None else []
    not_in_vcf = [name for name in reported if name not in set(names)]
    if not_in_sheet:
        log.warning("%d VCF samples are not in %s (reported sex unknown): %s", len(not_in_sheet), samples, ", ".join(not_in_sheet[:10]))
    if not_in_vcf:
        log.warning("%d samples of %s are not in %s: %s", len(not_in_vcf), samples, vcf, ", ".join(not_in_vcf[:10]))
    crosstab = pd.crosstab(table["reported_sex"], table["inferred_sex"])
    summary = {
        "vcf": str(vcf), "samples": None if samples is None else str(samples), "n_samples": len(names),
        "n_failed": int((table["status"] == "PROBLEM").sum()), "n_x_sites": result.n_x_sites, "n_y_records": result.n_y_records,
        "n_autosome_records": result.autosome_records, "skipped_records": result.skipped,
        "reported_vs_inferred": {str(r): {str(c): int(crosstab.loc[r, c]) for c in crosstab.columns} for r in crosstab.index},
        "not_in_sample_sheet": not_in_sheet, "not_in_vcf": not_in_vcf,
        "settings": {**result.settings, "max_sample_missing": max_sample_missing, "max_het_z": max_het_z,
                     "sample_column": sample_column, "sex_column": sex_column},
    }
    out = Path(out)
    try:
        with atomic_folder(out) as stage:
            _write_outputs(stage, table, summary)
    except ValueError as err:  # atomic_folder refuses the working directory
        raise BiolmError(f"out: {err}") from None
    log.info("%d of %d samples failed QC; list in %s", summary["n_failed"], len(names), out / "failed_samples.txt")
    return SampleQcResult(table, summary, out)


def _write_outputs(folder: Path, table: pd.DataFrame, summary: dict) -> None:
    """sex_check.tsv, failed_samples.txt, f_histogram.png, report.md, qc.json into ``folder``."""
    table.to_csv(folder / "sex_check.tsv", sep="\t", index=False, float_format="%.4f")
    failed = table[table["status"] == "PROBLEM"]
    lines = [f"# samples failing biolm variants qc of {summary['vcf']}: {len(failed)} of {len(table)}; sample<TAB># reason"]
    lines += [f"{row.sample}\t# {row.reason}" for row in failed.itertuples(index=False)]
    (folder / "failed_samples.txt").write_text("\n".join(lines) + "\n")
    _histogram(table, summary["settings"], folder / "f_histogram.png")
    (folder / "report.md").write_text(_markdown(table, summary))
    (folder / "qc.json").write_text(json.dumps(summary, indent=2) + "\n")


def _histogram(table: pd.DataFrame, settings: dict, path: Path) -> None:
    fig, (ax,) = figure(7, 4)
    values = table["F"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low, high = min(-0.2, finite.min(initial=0.0)), max(1.05, finite.max(initial=1.0))
    bins = np.linspace(low, high, 41)
    groups = [(sex, table.loc[table["reported_sex"] == sex, "F"].dropna().to_numpy()) for sex in ("female", "male", "unknown")]
    groups = [(sex, v) for sex, v in groups if len(v)]
    ax.hist([v for _, v in groups], bins=bins, stacked=True, color=[_COLOURS[s] for s, _ in groups],
            label=[f"reported {s} ({len(v)})" for s, v in groups])
    ax.axvline(settings["female_max_f"], color="tab:red", linestyle="--", label=f"female_max_f {settings['female_max_f']}")
    ax.axvline(settings["male_min_f"], color="tab:blue", linestyle="--", label=f"male_min_f {settings['male_min_f']}")
    ax.set_xlabel("X-chromosome inbreeding coefficient F (outside PAR)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    save_png(fig, path)


def _markdown(table: pd.DataFrame, summary: dict) -> str:
    inferred = ["female", "male", "ambiguous"]
    rows = [(sex, *(str(summary["reported_vs_inferred"].get(sex, {}).get(i, 0)) for i in inferred))
            for sex in ("female", "male", "unknown") if sex in summary["reported_vs_inferred"]]
    lines = [f"# Sample QC of {summary['vcf']}", "",
             f"{summary['n_samples']} samples, {summary['n_x_sites']} informative X sites outside PAR ({summary['settings']['build']}), "
             f"{summary['n_y_records']} Y records, {summary['n_autosome_records']} autosomal records; "
             f"**{summary['n_failed']} samples failed** (`failed_samples.txt`).", "",
             "## Reported vs inferred sex", "", *markdown_table(rows, ("reported \\ inferred", *inferred)), "",
             "![F histogram](f_histogram.png)", ""]
    failed = table[table["status"] == "PROBLEM"]
    if len(failed):
        rows = [(r.sample, r.reported_sex, r.inferred_sex, f"{r.F:.3f}", r.reason.replace("|", "/")) for r in failed.itertuples(index=False)]
        lines += ["## Failed samples", "", *markdown_table(rows, ("sample", "reported", "inferred", "F", "reason"), numeric=False), ""]
    if summary["not_in_vcf"]:
        lines += [f"Sample sheet entries not in the VCF ({len(summary['not_in_vcf'])}): {', '.join(summary['not_in_vcf'])}", ""]
    if summary["not_in_sample_sheet"]:
        lines += [f"VCF samples not in the sample sheet ({len(summary['not_in_sample_sheet'])}): {', '.join(summary['not_in_sample_sheet'])}", ""]
    settings = ", ".join(f"{k}={v}" for k, v in summary["settings"].items())
    lines += [f"Settings: {settings}", ""]
    return "\n".join(lines)
