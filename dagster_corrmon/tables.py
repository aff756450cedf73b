"""Read a table from a file (CSV, compressed CSV or Parquet) with errors a user can act on.

Everything that can go wrong — a missing file, an unknown extension, content that is not what the
extension says, an empty table, a column that is not there — is an :class:`InputDataError` whose
message names the file (and the column), never a pandas/pyarrow traceback.
"""

import csv
import gzip
import re
import zipfile
from collections.abc import Sequence
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


def read_table(path: str | Path, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``, ``.csv.zip``, ``.csv.bz2``, ``.csv.xz``) or Parquet file.

    ``columns`` restricts (and orders) the columns read. CSV columns holding ISO-8601 dates or
    times are parsed to UTC datetimes, so a CSV and a Parquet copy read alike. Raises
    :class:`InputDataError` for a missing file, an unknown extension, unreadable content, an
    unknown column (listing those that exist) and a table without rows.
    """
    file = Path(path)
    if not file.exists():
        raise InputDataError(f"{file}: no such file")
    if not file.is_file():
        raise InputDataError(f"{file}: not a file")
    table_format = _format(file)
    import pyarrow as pa  # ArrowInvalid is what a corrupt Parquet file raises

    try:
        reader = _read_csv if table_format == "csv" else _read_parquet
        frame = reader(file, columns)
    except pd.errors.EmptyDataError as error:
        raise InputDataError(f"{file}: the table is empty (no header, no rows)") from error
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        csv.Error,
        zipfile.BadZipFile,
        gzip.BadGzipFile,
        EOFError,
        pa.ArrowException,
        OSError,
    ) as error:
        raise InputDataError(f"{file}: cannot read as {table_format}: {error}") from error
    if len(frame) == 0:
        raise InputDataError(f"{file}: the table has no rows")
    return frame
