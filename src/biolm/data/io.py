"""Readers for labelled and unlabelled sequence files, and atomic writers.

In: a path (CSV, TSV, Parquet or FASTA, each optionally gzip-compressed; ``-`` for stdin).
Out: a `SequenceRecords` table: ids, sequences, optional raw label strings, and for each
record the place it came from (``file line N``) so that later checks can name it.

Every user mistake (missing or empty file, FASTA without headers, missing column, unknown
format) raises `BiolmError` with the file and line or column at fault. `atomic_path` lives in
`biolm.atomic` and is re-exported here for the writers that import it from this module.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from biolm.atomic import atomic_path
from biolm.errors import BiolmError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
ACCEPTED_FORMATS = "CSV (.csv), TSV (.tsv), Parquet (.parquet) or FASTA (.fa/.fasta/.fna), optionally .gz"


@dataclass
class SequenceRecords:
    """Records read from one file, in file order.

    Attributes:
        source: the file name as the user gave it (``<stdin>`` for ``-``).
        ids: one id per record.
        sequences: raw sequences (not yet validated or upper-cased).
        labels: raw label strings, or None when the file has no labels.
        lines: 1-based line numbers (row numbers for Parquet) of each record, for messages.
        line_word: "line" for text files, "row" for Parquet.
    """

    source: str
    ids: list[str]
    sequences: list[str]
    labels: list[str] | None = None
    lines: list[int] = field(default_factory=list)
    line_word: str = "line"

    def __len__(self) -> int:
        return len(self.sequences)

    def where(self, index: int) -> str:
        """Where record ``index`` came from, e.g. ``train.csv line 12``."""
        return f"{self.source} {self.line_word} {self.lines[index]}"

    def subset(self, indices) -> SequenceRecords:
        """A new table holding the records at ``indices`` (keeps their origins)."""
        pick = list(indices)
        return SequenceRecords(
            source=self.source,
            ids=[self.ids[i] for i in pick],
            sequences=[self.sequences[i] for i in pick],
            labels=None if self.labels is None else [self.labels[i] for i in pick],
            lines=[self.lines[i] for i in pick],
            line_word=self.line_word,
        )


def format_of(path: str) -> str:
    """The format of a sequence file by its suffix (``.gz`` aside): fasta, csv, tsv or parquet.

    Raises:
        BiolmError: an unknown suffix (naming the accepted ones).
    """
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in TABLE_SUFFIXES:
        return suffix[1:] if suffix != ".txt" else "tsv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise BiolmError(f"{path}: unknown file format {suffix or '(no suffix)'!r}; accepted: {ACCEPTED_FORMATS}")


def _check_file(path: str, field_name: str) -> None:
    if not os.path.exists(path):
        raise BiolmError(f"{field_name}: file not found: {path}")
    if os.path.isdir(path):
        raise BiolmError(f"{field_name}: {path} is a directory, expected a file ({ACCEPTED_FORMATS})")
    if os.path.getsize(path) == 0:
        raise BiolmError(f"{path}: file is empty; expected {ACCEPTED_FORMATS}")


def read_text(path: str) -> str:
    """Whole text of a file, gunzipped when it starts with the gzip magic bytes.

    Raises:
        BiolmError: the file is a truncated or corrupt gzip, or not UTF-8 text.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise BiolmError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise BiolmError(f"{path}: not a valid gzip file ({err})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BiolmError(f"{path}: not a UTF-8 text file (byte {err.start}); expected {ACCEPTED_FORMATS}") from None


def parse_fasta(text: str, source: str, label_key: str | None = None) -> SequenceRecords:
    """Parse FASTA text into records.

    The id is the first word of the header. When ``label_key`` is given, the label is read
    from a ``<label_key>=<value>`` word in the header, or else from the second word.

    Raises:
        BiolmError: text before the first header, a header without sequence, or (with
            ``label_key``) a header without a label.
    """
    ids: list[str] = []
    seqs: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    chunks: list[str] = []
    have_record = False

    def close_record() -> None:
        if have_record:
            if not chunks:
                raise BiolmError(f"{source} line {lines[-1]}: FASTA record {ids[-1]!r} has no sequence")
            seqs.append("".join(chunks))
            chunks.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            close_record()
            words = line[1:].split()
            if not words:
                raise BiolmError(f"{source} line {number}: FASTA header has no id")
            ids.append(words[0])
            lines.append(number)
            if label_key is not None:
                labels.append(_header_label(words, label_key, f"{source} line {number}"))
            have_record = True
        elif line.startswith(";"):
            continue
        else:
            if not have_record:
                raise BiolmError(
                    f"{source} line {number}: sequence data before the first FASTA header; "
                    "each record must start with a '>id' line"
                )
            chunks.append(line)
    close_record()
    if not ids:
        raise BiolmError(f"{source}: no FASTA records found (expected lines starting with '>')")
    return SequenceRecords(source, ids, seqs, labels if label_key is not None else None, lines)


def _header_label(words: list[str], key: str, where: str) -> str:
    prefix = f"{key}="
    for word in words[1:]:
        if word.startswith(prefix):
            return word[len(prefix):]
    if len(words) == 2 and "=" not in words[1]:
        return words[1]
    raise BiolmError(
        f"{where}: FASTA header has no label; write '>id {key}=VALUE' (or '>id VALUE'), "
        "or give a side table with data.labels_file"
    )


def read_dataframe(path: str, fmt: str, text: str | None = None) -> pd.DataFrame:
    """A CSV/TSV (every cell a string, empty cells ``""``) or Parquet table (object columns, ``None`` for missing).

    Args:
        path: the file (named in errors).
        fmt: csv, tsv or parquet (`format_of`).
        text: the file's text, when already read (CSV/TSV, e.g. from stdin).

    Raises:
        BiolmError: an empty or unparsable file.
    """
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            return frame.astype(object).where(frame.notna(), None)
        source = io.StringIO(text if text is not None else read_text(path))
        return pd.read_csv(source, sep=TABLE_SUFFIXES["." + fmt], dtype=str, keep_default_na=False)
    except BiolmError:
        raise
    except pd.errors.EmptyDataError:
        raise BiolmError(f"{path}: file is empty; expected a header line and rows") from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise BiolmError(f"{path}: cannot read as {fmt.upper()}: {message}") from None


def _table_records(
    frame: pd.DataFrame,
    source: str,
    fmt: str,
    sequence_column: str,
    label_column: str | None,
    id_column: str | None,
    require_label: bool,
) -> SequenceRecords:
    columns = [str(c) for c in frame.columns]
    if sequence_column not in columns:
        raise BiolmError(
            f"{source}: no column {sequence_column!r} (found: {column_list(columns)}); "
            "set data.sequence_column to the column holding the sequences"
        )
    if not len(frame):
        raise BiolmError(f"{source}: no rows after the header")
    labels = None
    if label_column is not None and label_column in columns:
        labels = ["" if v is None else str(v) for v in frame[label_column].tolist()]
    elif require_label:
        raise BiolmError(
            f"{source}: no label column {label_column!r} (found: {column_list(columns)}); "
            "set data.label_column to the column holding the labels"
        )
    first = 2 if fmt != "parquet" else 1
    lines = list(range(first, first + len(frame)))
    if id_column is not None and id_column in columns:
        ids = [str(v) for v in frame[id_column].tolist()]
    else:
        ids = [f"seq{i}" for i in range(len(frame))]
    seqs = ["" if v is None else str(v) for v in frame[sequence_column].tolist()]
    return SequenceRecords(source, ids, seqs, labels, lines, "row" if fmt == "parquet" else "line")


def read_records(
    path: str,
    *,
    field_name: str = "input",
    sequence_column: str = "sequence",
    label_column: str | None = "label",
    id_column: str | None = "id",
    require_label: bool = False,
    labels_file: str | None = None,
) -> SequenceRecords:
    """Read a sequence file (or ``-`` for stdin) into records.

    Args:
        path: CSV/TSV/Parquet/FASTA file, optionally gzip-compressed, or ``-`` (stdin:
            FASTA when it starts with ``>``, else CSV with a header).
        field_name: the config key that named the file, used in messages (``data.train``).
        sequence_column: column of sequences in tables.
        label_column: column of labels in tables; in FASTA headers the ``key`` of ``key=value``.
        id_column: column of ids in tables (optional; ``seq<i>`` when absent).
        require_label: fail when no labels can be found.
        labels_file: for FASTA, a side table (``id,<label_column>``) joined on the id; an id
            repeated in either file is an error (without a join, repeated ids are allowed: records
            stay in file order and predictions keep that order).

    Returns:
        The records in file order.
    """
    if path == "-":
        text = sys.stdin.read()
        source = "<stdin>"
        if not text.strip():
            raise BiolmError("<stdin>: no input; pipe FASTA or CSV with a header line")
        fmt = "fasta" if text.lstrip().startswith(">") else "csv"
    else:
        _check_file(path, field_name)
        source = path
        fmt = format_of(path)
        text = read_text(path) if fmt != "parquet" else None
        if text is not None and not text.strip():
            raise BiolmError(f"{path}: file is empty; expected {ACCEPTED_FORMATS}")

    if fmt == "fasta":
        want_header_label = require_label and labels_file is None
        records = parse_fasta(text, source, label_column if want_header_label else None)
        if labels_file is not None:
            records.labels = _join_side_labels(records, labels_file, label_column)
        return records
    frame = read_dataframe(source if path != "-" else "<stdin>", fmt, text)
    return _table_records(frame, source, fmt, sequence_column, label_column, id_column, require_label)


def _join_side_labels(records: SequenceRecords, labels_file: str, label_column: str | None) -> list[str]:
    """Labels of ``records`` looked up by id in a side table; ids must be unique on both sides."""
    _check_file(labels_file, "data.labels_file")
    fmt = format_of(labels_file)
    if fmt == "fasta":
        raise BiolmError(f"data.labels_file: {labels_file} must be a table with columns id,{label_column}")
    frame = read_dataframe(labels_file, fmt)
    columns = [str(c) for c in frame.columns]
    for needed in ("id", label_column):
        if needed not in columns:
            raise BiolmError(f"{labels_file}: no column {needed!r} (found: {column_list(columns)})")
    label_ids = ["" if v is None else str(v) for v in frame["id"].tolist()]
    label_values = ["" if v is None else str(v) for v in frame[label_column].tolist()]
    repeat = first_duplicate(label_ids)
    if repeat is not None:
        first, again = repeat
        word, offset = ("row", 1) if fmt == "parquet" else ("line", 2)
        raise BiolmError(
            f"{labels_file} {word} {again + offset}: id {label_ids[again]!r} is listed again (first on {word} {first + offset}; "
            f"labels {label_values[first]!r} and {label_values[again]!r}); each id needs exactly one row in data.labels_file"
        )
    repeat = first_duplicate(records.ids)
    if repeat is not None:
        first, again = repeat
        raise BiolmError(
            f"{records.where(again)}: id {records.ids[again]!r} appears again (first at {records.line_word} {records.lines[first]}); "
            f"labels are joined by id from {labels_file}, so every record needs its own id"
        )
    table = dict(zip(label_ids, label_values, strict=True))
    labels = []
    for i, rid in enumerate(records.ids):
        if rid not in table:
            raise BiolmError(f"{records.where(i)}: id {rid!r} has no row in labels file {labels_file}")
        labels.append(table[rid])
    return labels


def column_list(names) -> str:
    """Column names for a one-line message: as written, quoted only when they hold odd characters."""
    shown = [str(n) if str(n).isprintable() and str(n).strip() == str(n) and str(n) else repr(str(n)) for n in names]
    return ", ".join(shown) or "(no columns)"


def first_duplicate(ids: list[str]) -> tuple[int, int] | None:
    """``(first, again)`` positions of the first id seen twice, or None when all ids are unique."""
    seen: dict[str, int] = {}
    for position, value in enumerate(ids):
        if value in seen:
            return seen[value], position
        seen[value] = position
    return None


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write a table atomically (CSV, TSV or Parquet by suffix; ``-`` writes CSV to stdout).

    ``.bed`` writes interval tables (columns ``id``, ``start``, ``end``, ``label`` and optionally
    ``mean_prob``, e.g. predicted segments) as BED: ``chrom start end name [score]``, no header,
    the score being ``round(1000 * mean_prob)``.
    """
    if path == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    name = path.lower()
    compression = "gzip" if name.endswith(".gz") else None
    stem = name[:-3] if compression else name
    suffix = Path(stem).suffix
    if suffix not in (".csv", ".tsv", ".parquet", ".pq", ".bed"):
        raise BiolmError(f"output: unknown table format {suffix or '(no suffix)'!r}; accepted: .csv, .tsv, .parquet, .bed (intervals)")
    if suffix == ".bed":
        missing = [c for c in ("id", "start", "end", "label") if c not in frame.columns]
        if missing:
            raise BiolmError(f"output: {path}: BED needs interval columns (id, start, end, label); this table has {', '.join(map(str, frame.columns))}")
        frame = frame[[c for c in ("id", "start", "end", "label", "mean_prob") if c in frame.columns]]
        if "mean_prob" in frame:  # BED's score column is an integer 0..1000
            frame = frame.assign(mean_prob=(frame["mean_prob"].clip(0, 1) * 1000).round().astype(int))
    with atomic_path(path) as tmp:
        if suffix == ".bed":
            frame.to_csv(tmp, sep="\t", index=False, header=False, compression=compression)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False, compression=compression)
