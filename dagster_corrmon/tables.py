"""Read a table from a file (CSV, compressed CSV or Parquet) with errors a user can act on.

Everything that can go wrong — a missing file, an unknown extension, content that is not what the
extension says, an empty table, a column that is not there — is an :class:`InputDataError` whose
message names the file (and the column), never a pandas/pyarrow traceback.
"""

import csv
import gzip
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dagster_corrmon.errors import InputDataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)
_DATETIME_SAMPLE = 100
DEFAULT_BATCH_ROWS = 32_768
"""Rows per record batch when a table is streamed: large enough that per-batch overhead vanishes
at a million rows, small enough that one batch of a wide table stays a few tens of MB."""


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    known = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise InputDataError(f"{path}: unknown table format (expected one of: {known})")


def _check_columns(path: Path, available: Sequence[str], wanted: Sequence[str] | None) -> None:
    if wanted is None:
        return
    for column in wanted:
        if column not in available:
            raise InputDataError(
                f"{path}: no column {column!r} (columns: {', '.join(map(str, available))})"
            )


def _read_csv(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    # Read the header first so an unknown column gets our message, not pandas' usecols error.
    header = pd.read_csv(path, nrows=0)
    _check_columns(path, [str(name) for name in header.columns], columns)
    if columns is None:
        frame = pd.read_csv(path)
    else:
        usecols: Any = list(columns)  # pandas-stubs reject list[str] for usecols
        frame = pd.read_csv(path, usecols=usecols).loc[:, list(columns)]
    for name in frame.columns:
        parsed = _as_datetime(frame.loc[:, name])
        if parsed is not None:
            frame[name] = parsed
    return frame


def _as_datetime(column: pd.Series) -> pd.Series | None:
    """The column parsed as UTC datetimes if its values are ISO-8601 strings, else None.

    CSV has no types; without this a CSV and a Parquet copy of one table would disagree on
    every timestamp column (text vs datetime).
    """
    if not pd.api.types.is_object_dtype(column.dtype):
        return None
    sample = column.dropna().head(_DATETIME_SAMPLE)
    if sample.empty or not all(
        isinstance(value, str) and _ISO_DATETIME.fullmatch(value) for value in sample
    ):
        return None
    try:
        return pd.to_datetime(column, format="ISO8601", utc=True)
    except (ValueError, TypeError):
        return None  # some later value is not a timestamp: the column stays text


def _read_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _check_columns(path, list(schema.names), columns)
    if columns is None:
        return pd.read_parquet(path)
    return pd.read_parquet(path, columns=list(columns))


def _read_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa  # ArrowInvalid is what a corrupt Parquet file raises

    return (
        pd.errors.ParserError,
        UnicodeDecodeError,
        csv.Error,
        zipfile.BadZipFile,
        gzip.BadGzipFile,
        EOFError,
        pa.ArrowException,
        OSError,
    )


def _existing_file(path: str | Path) -> Path:
    file = Path(path)
    if not file.exists():
        raise InputDataError(f"{file}: no such file")
    if not file.is_file():
        raise InputDataError(f"{file}: not a file")
    return file


def _parquet_batches(
    path: Path, columns: Sequence[str] | None, batch_rows: int
) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _check_columns(path, list(schema.names), columns)
    wanted = list(schema.names) if columns is None else list(columns)
    # Strings arrive dictionary-encoded (pandas categoricals): a few distinct values instead of
    # one Python object per row, which is most of the memory and time of a string column.
    strings = [
        name
        for name in wanted
        if pa.types.is_string(schema.field(name).type)
        or pa.types.is_large_string(schema.field(name).type)
    ]
    parquet = pq.ParquetFile(path, read_dictionary=strings)
    # One reader per row group and one thread: a reader spanning row groups, or decoding every
    # column at once, holds more and more of the file (measured: 2.2x the file at 10 M rows).
    for row_group in range(parquet.metadata.num_row_groups):
        for batch in parquet.iter_batches(
            batch_size=batch_rows, columns=wanted, row_groups=[row_group], use_threads=False
        ):
            yield batch.to_pandas()


def _csv_batches(
    path: Path, columns: Sequence[str] | None, batch_rows: int
) -> Iterator[pd.DataFrame]:
    header = pd.read_csv(path, nrows=0)
    _check_columns(path, [str(name) for name in header.columns], columns)
    usecols: Any = None if columns is None else list(columns)
    with pd.read_csv(path, usecols=usecols, chunksize=batch_rows) as reader:
        for chunk in reader:
            frame = chunk if columns is None else chunk.loc[:, list(columns)]
            for name in frame.columns:
                parsed = _as_datetime(frame.loc[:, name])
                if parsed is not None:
                    frame[name] = parsed
            yield frame


def iter_table_batches(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pd.DataFrame]:
    """Read a CSV or Parquet file as frames of at most ``batch_rows`` rows, in file order.

    Memory stays at one batch whatever the file's size. The batches read like
    :func:`read_table`'s frame, with two exceptions: Parquet string columns arrive as pandas
    categoricals (dictionary-encoded), and a CSV column's datetime detection is per batch.
    Raises the same :class:`InputDataError`s as :func:`read_table`, a table without rows
    included (after its last batch).
    """
    file = _existing_file(path)
    table_format = _format(file)
    reader = _csv_batches if table_format == "csv" else _parquet_batches
    rows = 0
    try:
        for frame in reader(file, columns, batch_rows):
            rows += len(frame)
            if len(frame):
                yield frame
    except pd.errors.EmptyDataError as error:
        raise InputDataError(f"{file}: the table is empty (no header, no rows)") from error
    except _read_errors() as error:
        raise InputDataError(f"{file}: cannot read as {table_format}: {error}") from error
    if rows == 0:
        raise InputDataError(f"{file}: the table has no rows")


def read_table(path: str | Path, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``, ``.csv.zip``, ``.csv.bz2``, ``.csv.xz``) or Parquet file.

    ``columns`` restricts (and orders) the columns read. CSV columns holding ISO-8601 dates or
    times are parsed to UTC datetimes, so a CSV and a Parquet copy read alike. Raises
    :class:`InputDataError` for a missing file, an unknown extension, unreadable content, an
    unknown column (listing those that exist) and a table without rows.
    """
    file = _existing_file(path)
    table_format = _format(file)
    try:
        reader = _read_csv if table_format == "csv" else _read_parquet
        frame = reader(file, columns)
    except pd.errors.EmptyDataError as error:
        raise InputDataError(f"{file}: the table is empty (no header, no rows)") from error
    except _read_errors() as error:
        raise InputDataError(f"{file}: cannot read as {table_format}: {error}") from error
    if len(frame) == 0:
        raise InputDataError(f"{file}: the table has no rows")
    return frame
