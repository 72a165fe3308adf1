"""Readers for labelled and unlabelled sequence files, and atomic writers.

In: a path (CSV, TSV, Parquet or FASTA, each optionally gzip-compressed; ``-`` for stdin).
Out: a `SequenceRecords` table: ids, sequences, optional raw label strings, and for each
record the place it came from (``file line N``) so that later checks can name it.

Every user mistake (missing or empty file, FASTA without headers, missing column, unknown
format) raises `BiolmError` with the file and line or column at fault. `atomic_path` lives in
`biolm.atomic` and is re-exported here for the writers that import it from this module.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
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
    for rid, seq, label, number in fasta_entries(text.splitlines(), source, label_key):
        ids.append(rid)
        seqs.append(seq)
        labels.append(label)
        lines.append(number)
    if not ids:
        raise BiolmError(f"{source}: no FASTA records found (expected lines starting with '>')")
    return SequenceRecords(source, ids, seqs, labels if label_key is not None else None, lines)


def fasta_entries(lines: Iterable[str], source: str, label_key: str | None = None) -> Iterator[tuple[str, str, str | None, int]]:
    """``(id, sequence, label or None, header line)`` per FASTA record of ``lines`` (numbered from 1), one at a time.

    Raises:
        BiolmError: as `parse_fasta` (an empty input yields nothing).
    """
    rid, label, header_line = None, None, 0
    chunks: list[str] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if rid is not None:
                if not chunks:
                    raise BiolmError(f"{source} line {header_line}: FASTA record {rid!r} has no sequence")
                yield rid, "".join(chunks), label, header_line
                chunks = []
            words = line[1:].split()
            if not words:
                raise BiolmError(f"{source} line {number}: FASTA header has no id")
            rid, header_line = words[0], number
            label = _header_label(words, label_key, f"{source} line {number}") if label_key is not None else None
        elif line.startswith(";"):
            continue
        else:
            if rid is None:
                raise BiolmError(
                    f"{source} line {number}: sequence data before the first FASTA header; "
                    "each record must start with a '>id' line"
                )
            chunks.append(line)
    if rid is not None:
        if not chunks:
            raise BiolmError(f"{source} line {header_line}: FASTA record {rid!r} has no sequence")
        yield rid, "".join(chunks), label, header_line


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
    with _table_errors(path, fmt):
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            return frame.astype(object).where(frame.notna(), None)
        source = io.StringIO(text if text is not None else read_text(path))
        return pd.read_csv(source, sep=TABLE_SUFFIXES["." + fmt], dtype=str, keep_default_na=False)


@contextlib.contextmanager
def _table_errors(source: str, fmt: str, passthrough: tuple[type[BaseException], ...] = (BiolmError,)) -> Iterator[None]:
    """pandas' errors while reading a table -> one `BiolmError` naming ``source``; ``passthrough`` errors go through as they are."""
    try:
        yield
    except passthrough:
        raise
    except pd.errors.EmptyDataError:
        raise BiolmError(f"{source}: file is empty; expected a header line and rows") from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise BiolmError(f"{source}: cannot read as {fmt.upper()}: {message}") from None


def _table_records(
    frame: pd.DataFrame,
    source: str,
    fmt: str,
    sequence_column: str,
    label_column: str | None,
    id_column: str | None,
    require_label: bool,
    offset: int = 0,
) -> SequenceRecords:
    """Records of a table (or of the rows ``offset, offset + 1, ...`` of one, read in chunks)."""
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
    first = (2 if fmt != "parquet" else 1) + offset
    lines = list(range(first, first + len(frame)))
    if id_column is not None and id_column in columns:
        ids = [str(v) for v in frame[id_column].tolist()]
    else:
        ids = [f"seq{i}" for i in range(offset, offset + len(frame))]
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


def iter_records(
    path: str,
    chunk_size: int,
    *,
    field_name: str = "input",
    sequence_column: str = "sequence",
    label_column: str | None = "label",
    id_column: str | None = "id",
) -> Iterator[SequenceRecords]:
    """Read a sequence file (or ``-`` for stdin) in tables of at most ``chunk_size`` records, in file order.

    The concatenated chunks are what `read_records` returns for the same file (without
    ``require_label`` and ``labels_file``): the same ids, sequences, labels and line (row) numbers,
    counted over the whole file, and the same errors. Only one chunk is held at a time, so memory
    does not grow with the file (a single FASTA record is still read whole). FASTA and CSV/TSV are
    read line by line (gzip too), Parquet by record batches. Repeated ids are allowed, as in
    `read_records`.

    Raises:
        BiolmError: as `read_records`; a problem late in the file is raised after the earlier
            chunks were yielded, so callers writing output must write it atomically.
    """
    if chunk_size < 1:
        raise BiolmError(f"chunk_size={chunk_size}: accepted: at least 1 sequence per chunk")
    if path == "-":
        source, fmt, handle = "<stdin>", None, sys.stdin
    else:
        _check_file(path, field_name)
        source, fmt = path, format_of(path)
        if fmt == "parquet":
            yield from _parquet_chunks(path, chunk_size, sequence_column, label_column, id_column)
            return
        handle = _open_text(path, newline=None if fmt == "fasta" else "")
    try:
        with _decoding_errors(source):
            head = _read_head(handle)
            if not head.strip():
                raise BiolmError("<stdin>: no input; pipe FASTA or CSV with a header line" if path == "-" else f"{path}: file is empty; expected {ACCEPTED_FORMATS}")
            fmt = fmt or ("fasta" if head.lstrip().startswith(">") else "csv")
            text = _Prefixed(head, handle)
            if fmt == "fasta":
                yield from _fasta_chunks(text, source, chunk_size)
            else:
                yield from _table_chunks(text, source, fmt, chunk_size, sequence_column, label_column, id_column)
    finally:
        if handle is not sys.stdin:
            handle.close()


def _open_text(path: str, newline: str | None) -> io.TextIOBase:
    """A UTF-8 text handle on ``path``, gunzipped when it starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as handle:
            zipped = handle.read(2) == b"\x1f\x8b"
        binary = gzip.open(path, "rb") if zipped else open(path, "rb")  # noqa: SIM115 -- the caller closes the text handle, which closes this
    except OSError as err:
        raise BiolmError(f"{path}: cannot read the file ({err.strerror or err})") from None
    return io.TextIOWrapper(binary, encoding="utf-8", newline=newline)


@contextlib.contextmanager
def _decoding_errors(source: str) -> Iterator[None]:
    """Turn a corrupt gzip stream or bytes that are not UTF-8, met while streaming, into `BiolmError`."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise BiolmError(f"{source}: not a valid gzip file ({err})") from None
    except OSError as err:
        raise BiolmError(f"{source}: cannot read the file ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise BiolmError(f"{source}: not a UTF-8 text file; expected {ACCEPTED_FORMATS}") from None


def _read_head(handle) -> str:
    """Text from the start of ``handle`` up to and including the first line that is not blank."""
    head = ""
    while True:
        line = handle.readline()
        head += line
        if not line or line.strip():
            return head


class _Prefixed:
    """A text stream: ``head`` (already read from ``rest``), then what ``rest`` still holds."""

    def __init__(self, head: str, rest):
        self._head, self._rest = io.StringIO(head), rest

    def read(self, size: int = -1) -> str:
        text = self._head.read(size)
        if size is None or size < 0:
            return text + self._rest.read()
        return text if text else self._rest.read(size)

    def __iter__(self) -> Iterator[str]:
        yield from self._head
        yield from self._rest


def _fasta_chunks(text: _Prefixed, source: str, chunk_size: int) -> Iterator[SequenceRecords]:
    # str.splitlines breaks at more characters than a file's lines do (\f, \x1c, \u2028, ...);
    # splitting each line again numbers lines exactly as `parse_fasta` does
    lines = (part for line in text for part in (line.splitlines() or [""]))
    chunk, count = SequenceRecords(source, [], [], None, []), 0
    for rid, seq, _, number in fasta_entries(lines, source):
        chunk.ids.append(rid)
        chunk.sequences.append(seq)
        chunk.lines.append(number)
        count += 1
        if len(chunk) == chunk_size:
            yield chunk
            chunk = SequenceRecords(source, [], [], None, [])
    if not count:
        raise BiolmError(f"{source}: no FASTA records found (expected lines starting with '>')")
    if len(chunk):
        yield chunk


def _table_chunks(text: _Prefixed, source: str, fmt: str, chunk_size: int, *columns: str | None) -> Iterator[SequenceRecords]:
    # decoding errors of the lazily read (gzip) text are translated by the caller, which knows the file
    with _table_errors(source, fmt, (BiolmError, UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile)):
        reader = pd.read_csv(text, sep=TABLE_SUFFIXES["." + fmt], dtype=str, keep_default_na=False, chunksize=chunk_size)
        offset = 0
        for frame in reader:
            if len(frame) or not offset:
                yield _table_records(frame, source, fmt, *columns, require_label=False, offset=offset)
            offset += len(frame)


def _parquet_chunks(path: str, chunk_size: int, sequence_column: str, *columns: str | None) -> Iterator[SequenceRecords]:
    """Parquet record batches (only the columns used) as records; rows numbered over the whole file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        names = [str(c) for c in handle.schema_arrow.empty_table().to_pandas().columns]
        wanted = [c for c in (sequence_column, *columns) if c is not None and c in names]
        batches = handle.iter_batches(batch_size=chunk_size, columns=list(dict.fromkeys(wanted))) if wanted else iter(())
        offset = 0
        empty = handle.schema_arrow.empty_table().to_pandas()
        for batch in batches:
            if not batch.num_rows and offset:
                continue
            frame = pa.Table.from_batches([batch]).to_pandas()
            frame = frame.astype(object).where(frame.notna(), None)
            yield _table_records(frame, path, "parquet", sequence_column, *columns, require_label=False, offset=offset)
            offset += len(frame)
        if not offset:
            _table_records(empty, path, "parquet", sequence_column, *columns, require_label=False)
    except BiolmError:
        raise
    except (ValueError, OSError, pa.ArrowException) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise BiolmError(f"{path}: cannot read as PARQUET: {message}") from None


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
    suffix, compression = table_suffix(path)
    if suffix == ".bed":
        frame = _bed_frame(frame, path)
    with atomic_path(path) as tmp:
        if suffix == ".bed":
            frame.to_csv(tmp, sep="\t", index=False, header=False, compression=compression)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False, compression=compression)


def table_suffix(path: str) -> tuple[str, str | None]:
    """``(suffix, compression)`` of an output table path, e.g. ``(".csv", "gzip")`` for ``x.csv.gz``.

    Raises:
        BiolmError: a suffix `write_table` cannot write (naming the accepted ones).
    """
    name = path.lower()
    compression = "gzip" if name.endswith(".gz") else None
    suffix = Path(name[:-3] if compression else name).suffix
    if suffix not in (".csv", ".tsv", ".parquet", ".pq", ".bed"):
        raise BiolmError(f"output: unknown table format {suffix or '(no suffix)'!r}; accepted: .csv, .tsv, .parquet, .bed (intervals)")
    return suffix, compression


def _bed_frame(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    missing = [c for c in ("id", "start", "end", "label") if c not in frame.columns]
    if missing:
        raise BiolmError(f"output: {path}: BED needs interval columns (id, start, end, label); this table has {', '.join(map(str, frame.columns))}")
    frame = frame[[c for c in ("id", "start", "end", "label", "mean_prob") if c in frame.columns]]
    if "mean_prob" in frame:  # BED's score column is an integer 0..1000
        frame = frame.assign(mean_prob=(frame["mean_prob"].clip(0, 1) * 1000).round().astype(int))
    return frame


def write_table_chunks(frames: Iterable[pd.DataFrame], path: str) -> int:
    """Write tables with the same columns one after another as one table, as `write_table` writes their concatenation.

    Each frame is written as soon as it arrives, so memory holds one chunk. A file is written to a
    temporary sibling renamed into place after the last chunk: an exception while producing the
    chunks leaves no output (and an earlier file of that name as it was). ``-`` streams CSV to stdout.

    Returns:
        The number of rows written.
    """
    if path == "-":
        rows = 0
        for frame in frames:
            frame.to_csv(sys.stdout, index=False, header=not rows)
            rows += len(frame)
        return rows
    suffix, compression = table_suffix(path)
    with atomic_path(path) as tmp:
        if suffix in (".parquet", ".pq"):
            return _write_parquet_chunks(frames, tmp)
        opener = gzip.open if compression else open
        rows, header = 0, suffix != ".bed"
        with opener(tmp, "wt", newline="", encoding="utf-8") as handle:
            for frame in frames:
                if suffix == ".bed":
                    frame = _bed_frame(frame, path)
                frame.to_csv(handle, sep="\t" if suffix in (".tsv", ".bed") else ",", index=False, header=header)
                rows, header = rows + len(frame), False
        return rows


def _write_parquet_chunks(frames: Iterable[pd.DataFrame], tmp: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows, last = None, 0, None
    try:
        for frame in frames:
            last = frame
            if writer is None and not len(frame):  # an empty chunk's column types are unknown; wait for rows
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False, schema=writer.schema if writer else None)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None and last is not None:
        last.to_parquet(tmp, index=False)
    return rows
