"""Genetic sex from chromosome X (and Y) genotypes, computed as PLINK 1.9's ``--check-sex`` does.

In: a VCF with genotypes (cyvcf2), each sample's reported sex (``male``/``female``/``unknown``, used
for the allele counts of males, as PLINK uses its .fam sex), a genome build for the
pseudo-autosomal regions (PAR). Out: `SexCheck`, one row per VCF sample: ``F, n_sites,
observed_hom, expected_hom, y_calls, inferred_sex``, and the per-sample autosomal call and
heterozygous counts that `biolm.variants.sample_qc` turns into missingness/heterozygosity QC. One
pass over the VCF; X genotypes are held as an ``(n_x_sites, n_samples)`` int8 matrix.

The method (PLINK 1.9 ``sexcheck()``, plink_misc.c, and its ``--check-sex`` help text):

- Sites: biallelic SNVs on X (``X``, ``chrX`` or ``23``) outside PAR1/PAR2 (GRCh37
  X:60001-2699520 and X:154931044-155260560; GRCh38 X:10001-2781479 and X:155701383-156030895, the
  GRC's PARs as UCSC and Ensembl list them). The build is ``build=`` or, with ``auto``, the
  ``##contig`` length of X (155270560: GRCh37, 156040895: GRCh38).
- Per sample, over its called genotypes at sites whose ALT frequency p is not monomorphic
  (1e-8 < p < 1 - 1e-8, PLINK's test): ``n_sites`` = N, ``observed_hom`` = O (haploid calls
  ``0``/``1`` are homozygous, as PLINK stores them), ``expected_hom`` = E = sum of 1 - 2p(1 - p), and
  F = (O - E) / (N - E) (NaN when N - E is 0).
- p comes from the cohort (``freq=cohort``), counted as PLINK counts X alleles: one allele per
  reported male (a diploid homozygous call counts once, a heterozygous male call is left out, as
  PLINK leaves out heterozygous haploid calls), one per haploid call, two per other call (females
  and unknown sex; PLINK's --freq documentation: one allele observation per male on chrX, unknown
  sex counted as female). Or it is given: ``freq=info`` (INFO/AF) or ``freq=<table>`` with columns
  ``chrom, pos, ref, alt, alt_freq``; sites without a given frequency are left out and counted.
- Inferred sex: male when F > ``male_min_f`` (0.8), female when F < ``female_max_f`` (0.2),
  ambiguous otherwise (and when F is NaN). With ``ycount`` and Y records outside the Y PARs
  (GRCh37 Y:10001-2649520, Y:59034050-59363566; GRCh38 Y:10001-2781479, Y:56887903-57217415),
  ``y_calls`` is the sample's count of called Y genotypes (any record type); a female call needs
  ``y_calls <= female_max_y_calls`` (PLINK default 0) and a male call ``y_calls >=
  male_min_y_calls`` (PLINK default 0), else the call is ambiguous.

Where the numbers may differ from PLINK's, and why:

- Frequencies: PLINK counts founders only; a VCF has no pedigree (PLINK's ``--vcf`` import makes
  every sample a founder, as here), but a .fam with parents would change PLINK's numbers. PLINK
  knows a sample's sex only from its .fam (``--update-sex``); a VCF imported without it counts every
  sample diploid on X, where this counts the sample sheet's males haploid. PLINK filters variants
  only when asked (no MAF filter by default for ``--check-sex``); none is applied here either,
  beyond the monomorphic test. INFO/AF is read as float32 (htslib), a 1e-8 relative difference.
- No N/(N-1) (Nei) correction in E: PLINK 1.9 dropped it (its source says so), and so does this.
- Half calls (``0/.``) are missing here; PLINK's VCF import refuses them by default
  (``--vcf-half-call``). Multi-allelic records, indels and MNVs are skipped here; PLINK's import
  splits or keeps them depending on options, so a VCF with multi-allelic X sites may give PLINK
  more sites.
- Status: PLINK marks every sample with no reported sex PROBLEM; here such samples only get
  an inferred sex (`biolm.variants.sample_qc` fails samples whose reported sex disagrees).
- Y counts: PLINK counts every loaded chromosome-24 variant; here Y PAR records are left out (PLINK
  data usually has none there, as they sit on chromosome 25/XY).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.errors import BiolmError
from biolm.variants.dataset import read_labels_table
from biolm.variants.vcf import _field, _number, _records, genotype_calls, open_vcf

log = logging.getLogger(__name__)

BUILDS = ("GRCh37", "GRCh38")
X_PAR = {"GRCh37": ((60001, 2699520), (154931044, 155260560)), "GRCh38": ((10001, 2781479), (155701383, 156030895))}
Y_PAR = {"GRCh37": ((10001, 2649520), (59034050, 59363566)), "GRCh38": ((10001, 2781479), (56887903, 57217415))}
X_LENGTH_BUILD = {155270560: "GRCh37", 156040895: "GRCh38"}
SEXES = ("male", "female", "unknown")
MONOMORPHIC = 1e-8  # PLINK's bound on p and 1 - p
_AUTOSOMES = {str(n) for n in range(1, 23)}


def chromosome_kind(contig: str) -> str:
    """``X``, ``Y``, ``autosome`` or ``other`` for a contig name (``chrX``, ``X``, ``23``; ``chr1``..``chr22``)."""
    name = re.sub(r"^chr", "", contig, flags=re.IGNORECASE).upper()
    if name in ("X", "23"):
        return "X"
    if name in ("Y", "24"):
        return "Y"
    return "autosome" if name in _AUTOSOMES else "other"


def _in(pos: int, regions) -> bool:
    return any(start <= pos <= end for start, end in regions)


def resolve_build(reader, vcf, build: str | None) -> str:
    """``build`` checked, or (``auto``/None) read from the ``##contig`` length of X in the header."""
    if build not in (None, "auto"):
        if build not in BUILDS:
            raise BiolmError(f"build={build}: accepted: auto, {', '.join(BUILDS)}")
        return build
    try:
        declared = dict(zip(reader.seqnames, reader.seqlens))
    except Exception:  # cyvcf2 raises when no ##contig line has a length
        declared = dict.fromkeys(reader.seqnames)
    lengths = {name: length for name, length in declared.items() if chromosome_kind(name) == "X"}
    for length in lengths.values():
        if length in X_LENGTH_BUILD:
            return X_LENGTH_BUILD[length]
    found = ", ".join(f"{name} length={length}" for name, length in lengths.items()) or "no ##contig line for X"
    raise BiolmError(
        f"build: cannot tell the genome build of {vcf} from its header ({found}; GRCh37 X is 155270560 bp, GRCh38 X is "
        f"156040895 bp); set build=GRCh37 or build=GRCh38"
    )


def _gt_codes(record) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: -1 missing (half calls too), 0 hom-ref, 1 het, 2 hom-alt, of a biallelic record; and whether the call is haploid."""
    # (samples, ploidy + 1): the alleles (-1 missing, -2 no allele in that slot: a haploid call among diploid ones),
    # then the phase flag; a record where every call is haploid has a single allele column
    alleles = record.genotype.array()[:, :-1][:, :2].astype(np.int16)
    if (alleles > len(record.ALT)).any():
        raise ValueError(f"a GT allele index above the record's {len(record.ALT)} ALT allele(s)")
    first = alleles[:, 0]
    second = alleles[:, 1] if alleles.shape[1] > 1 else np.full_like(first, -2)
    haploid = second == -2
    second = np.where(haploid, first, second)
    missing = (first < 0) | (second < 0)
    codes = np.where(missing, -1, first + second).astype(np.int8)
    return codes, haploid


@dataclass
class SexCheck:
    """What `check_sex` read and computed; ``table`` has one row per VCF sample."""

    table: pd.DataFrame
    build: str
    n_x_sites: int = 0
    n_y_records: int = 0
    skipped: dict = field(default_factory=dict)
    autosome_records: int = 0
    autosome_called: np.ndarray | None = None  # (n_samples,) called genotypes over autosome_records
    autosome_het: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def informative_sites(alt_freq: np.ndarray) -> np.ndarray:
    """``(sites,)`` bool: an ALT frequency PLINK uses (finite, not within 1e-8 of 0 or 1)."""
    p = np.asarray(alt_freq, dtype=float)
    return np.isfinite(p) & (p > MONOMORPHIC) & (p < 1 - MONOMORPHIC)


def inbreeding_f(codes: np.ndarray, alt_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PLINK's F per sample from ``(sites, samples)`` codes (-1 missing, 0/2 homozygous, 1 het) and ``(sites,)`` ALT frequencies.

    Returns:
        ``(F, n_sites, observed_hom, expected_hom)``, each ``(samples,)``; sites with p <= 1e-8,
        p >= 1 - 1e-8 or NaN count for no one; F is NaN where N - E is 0.
    """
    p = np.asarray(alt_freq, dtype=float)
    informative = informative_sites(p)
    called = (codes >= 0) & informative[:, None]  # (sites, samples)
    expected_per_site = np.where(informative, 1.0 - 2.0 * p * (1.0 - p), 0.0)
    n_sites = called.sum(axis=0)
    expected = (called * expected_per_site[:, None]).sum(axis=0)
    observed = (called & (codes != 1)).sum(axis=0)
    denominator = n_sites - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(denominator > 0, (observed - expected) / denominator, np.nan)
    return f, n_sites, observed, expected


def cohort_alt_freq(codes: np.ndarray, haploid: np.ndarray, male: np.ndarray) -> np.ndarray:
    """``(sites,)`` ALT frequency counting one allele per male or haploid call (male hets left out), two per other call; NaN when none."""
    one_allele = haploid | male[None, :]
    used = (codes >= 0) & ~((codes == 1) & one_allele)
    alleles = np.where(used, np.where(one_allele, 1, 2), 0)
    alt = np.where(used, codes / 2.0 * alleles, 0.0)  # het diploid: 1 ALT; hom-alt: all of its alleles
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(alleles.sum(axis=1) > 0, alt.sum(axis=1) / alleles.sum(axis=1), np.nan)


def read_freq_table(path: str | Path) -> dict[tuple[str, int, str, str], float]:
    """``{(X|Y|contig, pos, REF, ALT): alt_freq}`` from a CSV/TSV with columns chrom, pos, ref, alt, alt_freq."""
    table = read_labels_table(path, "freq")
    columns = ["chrom", "pos", "ref", "alt", "alt_freq"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BiolmError(f"freq: {path} lacks column(s) {', '.join(missing)} (needs {', '.join(columns)}; has {', '.join(map(str, table.columns))})")
    freqs = {}
    for line, row in enumerate(table[columns].itertuples(index=False), start=2):
        try:
            value = float(row.alt_freq)
        except ValueError:
            value = np.nan
        if not row.pos.isdigit() or not 0.0 <= value <= 1.0:
            raise BiolmError(f"freq: {path} line {line}: pos {row.pos!r} / alt_freq {row.alt_freq!r}; pos must be a positive integer and alt_freq in [0, 1]")
        kind = chromosome_kind(row.chrom)
        freqs[(kind if kind in ("X", "Y") else row.chrom, int(row.pos), row.ref.upper(), row.alt.upper())] = value
    return freqs


def check_sex(
    vcf: str | Path,
    reported: dict[str, str] | None = None,
    build: str | None = "auto",
    freq: str = "cohort",
    male_min_f: float = 0.8,
    female_max_f: float = 0.2,
    ycount: bool = False,
    female_max_y_calls: int = 0,
    male_min_y_calls: int = 0,
) -> SexCheck:
    """Infer each sample's sex from X inbreeding (and Y call counts), as PLINK 1.9 ``--check-sex [ycount]``.

    Args:
        vcf: VCF/BCF with genotypes.
        reported: ``{sample: male|female|unknown}``; males count one X allele in cohort frequencies
            (samples not listed count as unknown).
        build: ``GRCh37``, ``GRCh38`` or ``auto`` (from the ``##contig`` length of X).
        freq: ``cohort``, ``info`` (INFO/AF) or a table path (chrom, pos, ref, alt, alt_freq).
        ycount: use Y call counts when the VCF has Y records outside the Y PARs.

    Returns:
        A `SexCheck` (see the module docstring for the method).

    Raises:
        BiolmError: a sites-only VCF, an unknown build, or no biallelic SNV on X outside the PARs.
    """
    if not female_max_f <= male_min_f:
        raise BiolmError(f"female_max_f={female_max_f} > male_min_f={male_min_f}; the female bound must not exceed the male bound")
    given = None if freq in ("cohort", "info") else read_freq_table(freq)
    reader = open_vcf(vcf, "vcf")
    samples = list(reader.samples)
    if not samples:
        reader.close()
        raise BiolmError(f"vcf: {vcf} has no samples (a sites-only VCF: no genotype columns); the sex check needs genotypes")
    build = resolve_build(reader, vcf, build)
    x_codes, x_haploid, x_freq = [], [], []
    y_calls = np.zeros(len(samples), np.int64)
    n_y = 0
    auto_called, auto_het, n_auto = np.zeros(len(samples), np.int64), np.zeros(len(samples), np.int64), 0
    skipped = {"x_in_par": 0, "x_not_biallelic_snv": 0, "x_without_freq": 0, "y_in_par": 0}
    contigs: dict[str, int] = {}
    for number, record in enumerate(_records(reader, vcf, "vcf"), start=1):
        contigs[record.CHROM] = contigs.get(record.CHROM, 0) + 1
        kind, pos = chromosome_kind(record.CHROM), int(record.POS)
        where = f"vcf: {vcf}: data record {number}"
        if kind == "autosome":
            called, het = genotype_calls(record, len(samples), None, where)
            auto_called += called
            auto_het += het & called
            n_auto += 1
        elif kind == "Y":
            if _in(pos, Y_PAR[build]):
                skipped["y_in_par"] += 1
                continue
            codes, _ = _field(lambda: _gt_codes(record), where, "the genotypes")  # noqa: B023 (called at once)
            y_calls += codes >= 0
            n_y += 1
        elif kind == "X":
            if _in(pos, X_PAR[build]):
                skipped["x_in_par"] += 1
                continue
            alts = record.ALT
            if len(alts) != 1 or len(record.REF) != 1 or len(alts[0]) != 1 or alts[0].upper() not in "ACGT" or record.REF.upper() not in "ACGT":
                skipped["x_not_biallelic_snv"] += 1
                continue
            if freq == "info":
                value = _number(_field(lambda: record.INFO.get("AF"), where, "INFO/AF"))  # noqa: B023 (called at once)
            elif given is not None:
                value = given.get(("X", pos, record.REF.upper(), alts[0].upper()), np.nan)
            else:
                value = np.nan
            if freq != "cohort" and not np.isfinite(value):
                skipped["x_without_freq"] += 1
                continue
            codes, haploid = _field(lambda: _gt_codes(record), where, "the genotypes")  # noqa: B023 (called at once)
            x_codes.append(codes)
            x_haploid.append(haploid)
            x_freq.append(value)
    reader.close()
    if not x_codes:
        seen = ", ".join(f"{name} ({count})" for name, count in contigs.items()) or "none"
        raise BiolmError(
            f"vcf: {vcf} has no biallelic SNV on chromosome X (X, chrX or 23) outside the {build} pseudo-autosomal regions "
            f"(records per contig: {seen}; skipped on X: {skipped['x_in_par']} in PAR, {skipped['x_not_biallelic_snv']} not biallelic SNVs, "
            f"{skipped['x_without_freq']} without a frequency)"
        )
    codes, haploid = np.vstack(x_codes), np.vstack(x_haploid)  # (x_sites, samples)
    reported = {name: (reported or {}).get(name, "unknown") for name in samples}
    if freq == "cohort":
        alt_freq = cohort_alt_freq(codes, haploid, np.array([reported[name] == "male" for name in samples]))
    else:
        alt_freq = np.asarray(x_freq, dtype=float)
    f, n_sites, observed, expected = inbreeding_f(codes, alt_freq)
    use_y = bool(ycount) and n_y > 0
    if ycount and not n_y:
        log.info("no Y records outside the %s Y PARs in %s: the Y count signal is off", build, vcf)
    inferred = []
    for value, ys in zip(f, y_calls):
        sex = "male" if value > male_min_f else "female" if value < female_max_f else "ambiguous"  # NaN: ambiguous
        if use_y and ((sex == "male" and ys < male_min_y_calls) or (sex == "female" and ys > female_max_y_calls)):
            sex = "ambiguous"
        inferred.append(sex)
    table = pd.DataFrame({
        "sample": samples, "reported_sex": [reported[name] for name in samples], "inferred_sex": inferred, "F": f,
        "n_sites": n_sites, "observed_hom": observed, "expected_hom": expected,
    })
    if use_y:
        table["y_calls"] = y_calls
    informative = int(informative_sites(alt_freq).sum())
    skipped["x_monomorphic"] = len(alt_freq) - informative
    settings = {"build": build, "freq": str(freq), "male_min_f": male_min_f, "female_max_f": female_max_f, "ycount": use_y,
                "female_max_y_calls": female_max_y_calls, "male_min_y_calls": male_min_y_calls}
    return SexCheck(table, build, informative, n_y, skipped, n_auto, auto_called, auto_het, settings)
