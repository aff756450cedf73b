"""Drift of a current file against a stored profile, read in record batches (bounded memory).

The current table is never held whole: each record batch is sketched on the reference profile's
edges (:func:`~dagster_corrmon.core.profile.sketch_batch`), the sketches merge, and the merged
sketch is scored (:func:`~dagster_corrmon.core.drift.detect_drift_from_sketch`). Memory is one
batch plus the sketches (a few kB per numeric column, one count per distinct category).
A numeric column whose test needs the current's raw values beyond the sketch's exact cap
(:func:`~dagster_corrmon.core.drift.sketch_needs_values`) is re-read alone — one column, not the
table — so every result equals the in-memory :func:`detect_drift_from_profile`'s.

A column that cannot be tested (no value in the current batch) is reported as a
:class:`ColumnFailure` in its place, as the drift asset check does, instead of ending the report.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_corrmon.core.drift import (
    DriftResult,
    detect_drift_from_profile,
    detect_drift_from_sketch,
    sketch_needs_values,
)
from dagster_corrmon.core.profile import (
    DatasetProfile,
    DatasetSketch,
    merge_sketches,
    sketch_batch,
)
from dagster_corrmon.errors import InsufficientDataError
from dagster_corrmon.tables import DEFAULT_BATCH_ROWS, iter_table_batches, read_table


@dataclass(frozen=True)
class ColumnFailure:
    """A column that could not be tested for drift, and why (a data fault in its own right)."""

    column: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON row: the six contract keys (null where unknown), then ``error``."""
        return {
            "column": self.column,
            "method": None,
            "statistic": None,
            "p_value": None,
            "threshold": None,
            "drifted": None,
            "error": self.error,
        }


ColumnOutcome = DriftResult | ColumnFailure


def per_column(names: Sequence[str], score: Callable[[str], DriftResult]) -> list[ColumnOutcome]:
    """``score(name)`` for each column; a column without data becomes a :class:`ColumnFailure`."""
    outcomes: list[ColumnOutcome] = []
    for name in names:
        try:
            outcomes.append(score(name))
        except InsufficientDataError as error:
            outcomes.append(ColumnFailure(column=name, error=str(error)))
    return outcomes


def sketch_table(
    profile: DatasetProfile,
    path: str | Path,
    *,
    columns: Sequence[str],
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> DatasetSketch:
    """The merged sketch of a CSV/Parquet file's ``columns``, one record batch at a time."""
    sketch: DatasetSketch | None = None
    for batch in iter_table_batches(path, columns=columns, batch_rows=batch_rows):
        part = sketch_batch(batch, like=profile, columns=columns)
        sketch = part if sketch is None else merge_sketches(sketch, part)
    assert sketch is not None  # iter_table_batches refuses a table without rows
    return sketch


def drift_from_profile_file(
    profile: DatasetProfile,
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[ColumnOutcome]:
    """Test each column of the file at ``path`` for drift against ``profile``, streaming it."""
    names = list(profile.columns) if columns is None else list(columns)
    for name in names:
        profile.column(name)  # a clear error naming the profile's columns
    sketch = sketch_table(profile, path, columns=names, batch_rows=batch_rows)

    def score(name: str) -> DriftResult:
        if sketch_needs_values(profile, sketch, name, method=method):
            frame = read_table(path, columns=[name])
            (result,) = detect_drift_from_profile(
                profile, frame, columns=[name], method=method, threshold=threshold
            )
            return result
        (result,) = detect_drift_from_sketch(
            profile, sketch, columns=[name], method=method, threshold=threshold
        )
        return result

    return per_column(names, score)
