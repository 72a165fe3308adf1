"""Rebuild this folder from the E. coli K-12 MG1655 genome and its RefSeq GFF3 (see SOURCES.md).

    python data/ecoli_genes/build.py NC_000913.3.fna.gz NC_000913.3.gff.gz data/ecoli_genes

Windows of WINDOW_BP bases, evenly spaced within three position blocks of the chromosome (train:
the first 80%, val: the next 10%, test: the last 10%; no window crosses a block boundary), each
with BED intervals (window coordinates) of the GFF3 `gene` features it overlaps, named `gene`.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

WINDOW_BP = 500
COUNTS = {"train": 800, "val": 100, "test": 100}
BLOCKS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def main(fasta: str, gff: str, out: str) -> None:
    with gzip.open(fasta, "rt") as handle:
        lines = handle.read().splitlines()
    contig = lines[0][1:].split()[0]
    genome = "".join(lines[1:]).upper()
    genes = []
    with gzip.open(gff, "rt") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 9 and parts[0] == contig and parts[2] == "gene":
                genes.append((int(parts[3]) - 1, int(parts[4])))  # GFF3 1-based closed -> 0-based half-open
    genes.sort()
    folder = Path(out)
    for split, count in COUNTS.items():
        lo, hi = (int(f * len(genome)) for f in BLOCKS[split])
        step = (hi - lo - WINDOW_BP) // (count - 1)
        fasta_lines, bed_lines = [], []
        for i in range(count):
            start = lo + i * step
            end = start + WINDOW_BP
            name = f"{contig}:{start}-{end}"
            fasta_lines += [f">{name}", genome[start:end]]
            for g_start, g_end in genes:
                if g_start < end and g_end > start:
                    bed_lines.append(f"{name}\t{max(g_start, start) - start}\t{min(g_end, end) - start}\tgene")
        with gzip.open(folder / f"{split}.fa.gz", "wt") as handle:
            handle.write("\n".join(fasta_lines) + "\n")
        with gzip.open(folder / f"{split}.bed.gz", "wt") as handle:
            handle.write("\n".join(bed_lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
