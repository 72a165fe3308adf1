"""Simulate the bundled sex-check cohort: data/sex_check/cohort.vcf.gz and sample_sheet.tsv (seeded, deterministic).

120 samples on GRCh38 coordinates: 1,500 chrX SNVs (60 in PAR1, 30 in PAR2), 40 chrY SNVs outside
the Y PARs, 150 chr1 SNVs. Each site draws an ALT frequency p ~ U(0.05, 0.5); females (and PAR sites
in everyone) get two alleles under Hardy-Weinberg, males one allele on non-PAR X, written haploid
(``0``/``1``) for half of them and homozygous diploid (``0/0``/``1/1``) for the others, with 0.2% of
male diploid calls turned heterozygous (genotyping error). Males carry one allele on Y; females are
missing there. 1% of genotypes are missing (25% on chr1 for S017). Planted problems: S005 and S044
are female but reported male, S090 is male but reported female, S033 is XXY (two X, a Y; reported
male), S061 is a male sample contaminated by female DNA (half of his non-PAR X calls diploid),
S072 has no reported sex, S120 is not in the sheet and the sheet lists S121, absent from the VCF.

    python data/sex_check/simulate.py        # rewrites both files next to this script
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_SAMPLES = 120
X_LENGTH, Y_LENGTH, CHR1_LENGTH = 156040895, 57227415, 248956422
PAR1, PAR2, Y_NON_PAR = (10001, 2781479), (155701383, 156030895), (2781480, 56887902)
MISREPORTED = {"S005": "M", "S044": "M", "S090": "F"}
XXY, CONTAMINATED, NO_SEX, NOT_IN_SHEET, HIGH_MISSING = "S033", "S061", "S072", "S120", "S017"


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(21)
    names = [f"S{i:03d}" for i in range(1, N_SAMPLES + 1)]
    male = rng.permutation(np.array([True] * 58 + [False] * 62))
    for name, reported in MISREPORTED.items():  # the truth is the opposite of the report
        male[names.index(name)] = reported == "F"
    male[names.index(XXY)] = male[names.index(CONTAMINATED)] = True
    haploid_style = rng.random(N_SAMPLES) < 0.5  # how a male's non-PAR X calls are written
    two_x = ~male
    two_x[names.index(XXY)] = True
    contaminated = np.array([name == CONTAMINATED for name in names])

    def sites(n, low, high):
        return np.sort(rng.choice(np.arange(low, high), size=n, replace=False))

    x_pos = np.concatenate([sites(60, *PAR1), sites(1410, PAR1[1] + 1, PAR2[0]), sites(30, *PAR2)])
    rows = []
    for pos in x_pos:
        p = rng.uniform(0.05, 0.5)
        par = pos <= PAR1[1] or pos >= PAR2[0]
        diploid = rng.random((N_SAMPLES, 2)) < p
        one = diploid[:, 0]
        calls = []
        for j in range(N_SAMPLES):
            if par or two_x[j] or (contaminated[j] and rng.random() < 0.5):
                calls.append(_diploid(diploid[j]))
            elif haploid_style[j]:
                calls.append(str(int(one[j])))
            elif rng.random() < 0.002:
                calls.append("0/1")
            else:
                calls.append(f"{int(one[j])}/{int(one[j])}")
        rows.append(("chrX", pos, p, _missing(calls, rng, 0.01)))
    for pos in sites(40, *Y_NON_PAR):
        p = rng.uniform(0.05, 0.5)
        alleles = rng.random(N_SAMPLES) < p
        calls = [str(int(a)) if male[j] else "." for j, a in enumerate(alleles)]
        rows.append(("chrY", pos, p, _missing(calls, rng, 0.01)))
    high_missing = names.index(HIGH_MISSING)
    for pos in sites(150, 1_000_000, 240_000_000):
        p = rng.uniform(0.05, 0.5)
        calls = _missing([_diploid(pair) for pair in rng.random((N_SAMPLES, 2)) < p], rng, 0.01)
        if rng.random() < 0.25:
            calls[high_missing] = "./."
        rows.append(("chr1", pos, p, calls))
    rows.sort(key=lambda row: (["chr1", "chrX", "chrY"].index(row[0]), row[1]))

    header = [
        "##fileformat=VCFv4.2",
        "##source=data/sex_check/simulate.py (simulated; not real genotypes)",
        f"##contig=<ID=chr1,length={CHR1_LENGTH}>",
        f"##contig=<ID=chrX,length={X_LENGTH}>",
        f"##contig=<ID=chrY,length={Y_LENGTH}>",
        '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency the site was simulated with">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]),
    ]
    bases = np.array(list("ACGT"))
    lines = []
    for chrom, pos, p, calls in rows:
        ref, alt = rng.choice(bases, size=2, replace=False)
        lines.append("\t".join([chrom, str(pos), ".", ref, alt, ".", "PASS", f"AF={p:.4f}", "GT", *calls]))
    _write_bgzip(out / "cohort.vcf.gz", "\n".join(header + lines) + "\n")

    sheet = ["sample\tsex"]
    for j, name in enumerate(names):
        if name == NOT_IN_SHEET:
            continue
        sex = "NA" if name == NO_SEX else MISREPORTED.get(name, "M" if male[j] else "F")
        sheet.append(f"{name}\t{sex}")
    sheet.append("S121\tF")
    (out / "sample_sheet.tsv").write_text("\n".join(sheet) + "\n")


def _diploid(pair) -> str:
    return f"{int(pair[0])}/{int(pair[1])}" if pair[0] <= pair[1] else f"{int(pair[1])}/{int(pair[0])}"


def _missing(calls: list[str], rng, share: float) -> list[str]:
    return [("." if "/" not in c else "./.") if rng.random() < share else c for c in calls]


def _write_bgzip(path: Path, text: str) -> None:
    """Write ``text`` as a bgzip-compressed VCF through cyvcf2 (htslib)."""
    from cyvcf2 import VCF, Writer

    plain = path.with_suffix("")  # cohort.vcf
    plain.write_text(text)
    reader = VCF(str(plain))
    writer = Writer(str(path), reader, mode="wz")
    for record in reader:
        writer.write_record(record)
    writer.close()
    reader.close()
    plain.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
