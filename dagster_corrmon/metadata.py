"""Every ``corrmon/...`` metadata key, and the one function that makes values Dagster-safe.

Keys live here, in one module, so the UI's plots (one series per numeric key), the correlation
sensor and the docs agree on spelling. Per-column and per-metric keys are built by the helpers
below (``column_key("null_fraction", "temp")`` → ``corrmon/null_fraction/temp``) rather than
spelled inline.

Dagster rejects numpy and pandas scalars (``np.int64``, ``np.bool_``, ``pd.Timestamp``) and raw
``datetime`` values as metadata; :func:`to_metadata_value` casts anything a check computes into a
``dg.MetadataValue``. :func:`to_plain` does the same for the store, whose metadata column is JSON
(JSONB on PostgreSQL, which rejects NaN): it yields plain JSON-safe Python.
"""

import dataclasses
import math
import os
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon.core.markdown import escape_markdown, markdown_code  # noqa: F401 - re-exported
from dagster_corrmon.core.signal import ensure_utc

PREFIX = "corrmon/"

# --- standard tags of the checked materialization (mirrored on every check result) ---
PARTITION = "corrmon/partition"
DATA_VERSION = "corrmon/data_version"
CODE_VERSION = "corrmon/code_version"
EVENT_TIME = "corrmon/event_time"
MATERIALIZATION_RUN_ID = "corrmon/materialization_run_id"
SIGNALS_WRITTEN = "corrmon/signals_written"
CHECK_SECONDS = "corrmon/check_seconds"  # the check's own cost, store reads and writes included

# --- shared by several checks ---
SUMMARY = "corrmon/summary"  # markdown: what failed and why
FAILURES = "corrmon/failures"  # json list of failed items (column, rule, value, threshold)
FAILED_COUNT = "corrmon/failed_count"
NOTES = "corrmon/notes"  # json list: e.g. "too little history for a baseline"
INPUT_ERROR = "corrmon/input_error"  # the check could not judge the data (missing column, ...)
ROW_COUNT = "corrmon/row_count"

# --- completeness / volume / validity / suites ---
NULL_FRACTION = "corrmon/null_fraction"  # worst column; per column via column_key
MAX_NULL_FRACTION = "corrmon/max_null_fraction"
ROW_COUNT_BASELINE = "corrmon/row_count_baseline"
ANOMALY_SCORE = "corrmon/anomaly_score"  # robust z of the value against its adaptive baseline
EXPECTATIONS_EVALUATED = "corrmon/expectations_evaluated"
EXPECTATIONS_FAILED = "corrmon/expectations_failed"
SUCCESS_PERCENT = "corrmon/success_percent"

# --- schema contract ---
SCHEMA_DIFF = "corrmon/schema_diff"  # json: added / removed / renamed / retyped
COLUMNS_ADDED = "corrmon/columns_added"
COLUMNS_REMOVED = "corrmon/columns_removed"
COLUMNS_RENAMED = "corrmon/columns_renamed"
COLUMNS_RETYPED = "corrmon/columns_retyped"
CONTRACT_SOURCE = "corrmon/contract_source"

# --- freshness ---
LATENESS_SECONDS = "corrmon/lateness_seconds"
EXPECTED_BY = "corrmon/expected_by"
MATERIALIZED_AT = "corrmon/materialized_at"
MISSING_PARTITIONS = "corrmon/missing_partitions"

# --- drift ---
DRIFT = "corrmon/drift"  # per column via column_key: the drift statistic
DRIFTED_COLUMNS = "corrmon/drifted_columns"
CONSEQUENTIAL_COLUMNS = "corrmon/consequential_columns"
GRADUAL_DRIFT_COLUMNS = "corrmon/gradual_drift_columns"
DRIFT_TABLE = "corrmon/drift_table"  # markdown table: column, method, statistic, p, importance

# --- model evaluation: corrmon/<metric>, corrmon/<metric>_ci_low, ... via metric_key ---
EVALUATED_ROWS = "corrmon/evaluated_rows"


def column_key(name: str, column: str) -> str:
    """``corrmon/<name>/<column>``: one plottable series per column."""
    return f"{PREFIX}{name}/{column}"


def metric_key(metric: str, suffix: str | None = None) -> str:
    """``corrmon/f1``, ``corrmon/f1_ci_low``, ``corrmon/f1_baseline``: one series per metric."""
    return f"{PREFIX}{metric}" if suffix is None else f"{PREFIX}{metric}_{suffix}"


def to_plain(value: Any) -> Any:
    """``value`` as plain, JSON-safe Python: what the store's JSON metadata column accepts.

    numpy/pandas scalars become ``int``/``float``/``bool``/``str``; NaN, ±inf and NaT become
    ``None`` (JSON has no NaN, and PostgreSQL's JSONB refuses it); datetimes become ISO 8601 UTC
    strings; mappings, sequences, arrays and Series recurse; dataclasses become dicts; enums
    their value. Anything else is ``str(value)``.
    """
    if isinstance(value, Enum):  # before str: a StrEnum is a str
        return to_plain(value.value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime | np.datetime64):
        moment = _as_datetime(value)
        return None if moment is None else moment.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta | pd.Timedelta | np.timedelta64):
        span = pd.Timedelta(value)
        return None if span is pd.NaT else float(span.total_seconds())
    if isinstance(value, dg.AssetKey):
        return value.to_user_string()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, pd.DataFrame):
        return [to_plain(record) for record in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray | pd.Series | pd.Index | list | tuple | set | frozenset):
        return [to_plain(item) for item in (sorted(value, key=str) if _unordered(value) else value)]
    return str(value)


def _as_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime (naive = UTC), or None for NaT."""
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return None
    moment = stamp.to_pydatetime()
    return ensure_utc(moment) if isinstance(moment, datetime) else None


def _unordered(value: object) -> bool:
    return isinstance(value, set | frozenset)


def to_metadata_value(value: Any) -> dg.MetadataValue:
    """``value`` as a ``dg.MetadataValue`` that Dagster accepts and the UI shows sensibly.

    Numbers stay numbers (so the UI plots them over time; NaN stays a float NaN, which Dagster
    stores), booleans stay booleans, datetimes become timestamps, ``AssetKey`` an asset link,
    paths a path, mappings and sequences JSON (recursively made plain), anything else text.
    """
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, Enum):  # before str: a StrEnum is a str
        return to_metadata_value(value.value)
    if value is None or value is pd.NaT:
        return dg.MetadataValue.null()
    if isinstance(value, bool | np.bool_):
        return dg.MetadataValue.bool(bool(value))
    if isinstance(value, int | np.integer):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, float | np.floating):
        return dg.MetadataValue.float(float(value))
    if isinstance(value, str):
        return dg.MetadataValue.text(str(value))
    if isinstance(value, pd.Timestamp | datetime | np.datetime64):
        moment = _as_datetime(value)
        return dg.MetadataValue.null() if moment is None else dg.MetadataValue.timestamp(moment)
    if isinstance(value, date | time):
        return dg.MetadataValue.text(value.isoformat())
    if isinstance(value, timedelta | pd.Timedelta | np.timedelta64):
        seconds = to_plain(value)
        return dg.MetadataValue.null() if seconds is None else dg.MetadataValue.float(seconds)
    if isinstance(value, dg.AssetKey):
        return dg.MetadataValue.asset(value)
    if isinstance(value, os.PathLike):
        return dg.MetadataValue.path(value)
    plain = to_plain(value)
    if isinstance(plain, dict | list):
        return dg.MetadataValue.json(plain)
    return to_metadata_value(plain)


def to_metadata(values: Mapping[str, Any]) -> dict[str, dg.MetadataValue]:
    """Every value of ``values`` through :func:`to_metadata_value`; keys become ``str``."""
    return {str(key): to_metadata_value(value) for key, value in values.items()}
