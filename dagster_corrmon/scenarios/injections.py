"""Labelled upstream incidents that the scenario lab injects into a monitored pipeline.

Each injection is a validated pydantic model (the ``incidents:`` list of a scenario spec) with a
pure ``apply(frame, rng)`` that returns the corrupted batch of one source feed (or, for
``code_change``, of the features). Injections that are not data transforms — a failed upstream run,
a batch that arrives late or never, labels that arrive late — are *declared* here and carried out
by the simulator, which asks :meth:`Injection.effect`.

Kinds and their stable identifiers (they appear in reports and expectations):
``schema_change``, ``null_spike``, ``unit_change``, ``delayed_batch``, ``missing_batch``,
``upstream_run_failure``, ``code_change``, ``new_category``, ``duplicate_rows``, ``label_delay``,
``benign_drift``, ``covariate_shift``.
"""

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dagster_corrmon.errors import InputDataError


class Effect(StrEnum):
    """How the simulator carries out an injection."""

    TRANSFORM_SOURCE = "transform_source"  # corrupt the source feed's batch
    TRANSFORM_FEATURES = "transform_features"  # corrupt the features (a buggy code version)
    FAIL_RUN = "fail_run"  # the source feed's run fails
    EMPTY_BATCH = "empty_batch"  # the batch never arrives
    LATE_BATCH = "late_batch"  # the batch arrives empty, then late
    LATE_LABELS = "late_labels"  # labels arrive later than the pipeline's label delay


class InjectedFailure(RuntimeError):
    """Raised inside a source asset to simulate an upstream run failure."""


class _InjectionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, description="Stable id; defaults to '<kind>-<n>'.")
    source: str = Field(description="The source feed (or 'features' for code_change) it hits.")
    start: dt.date = Field(description="First partition date affected (inclusive).")
    end: dt.date | None = Field(default=None, description="Last affected date (inclusive).")

    @model_validator(mode="after")
    def _check_window(self) -> "_InjectionBase":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def active(self, partition_date: dt.date) -> bool:
        return partition_date >= self.start and (self.end is None or partition_date <= self.end)

    def effect(self) -> Effect:
        return Effect.TRANSFORM_SOURCE

    @property
    def columns_hit(self) -> tuple[str, ...]:
        """The columns this injection corrupts (none for whole-batch effects)."""
        column = getattr(self, "column", None)
        return (column,) if column is not None else ()

    @property
    def column_hit(self) -> str | None:
        """The column this injection corrupts when it corrupts exactly one, else None."""
        hit = self.columns_hit
        return hit[0] if len(hit) == 1 else None

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return frame

    def _require(self, frame: pd.DataFrame, column: str) -> None:
        if column not in frame.columns:
            raise InputDataError(
                f"injection {self.id or self.__class__.__name__}: column {column!r} is not in "
                f"source {self.source!r} (columns: {', '.join(map(str, frame.columns))})"
            )


class SchemaChange(_InjectionBase):
    """A column renamed, dropped or retyped upstream."""

    kind: Literal["schema_change"] = "schema_change"
    column: str
    action: Literal["rename", "drop", "retype"] = "rename"
    new_name: str | None = None
    new_type: Literal["string"] = "string"

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        if self.action == "drop":
            return frame.drop(columns=[self.column])
        if self.action == "rename":
            return frame.rename(columns={self.column: self.new_name or f"{self.column}_v2"})
        out = frame.copy()
        out[self.column] = out[self.column].astype("string")
        return out


class NullSpike(_InjectionBase):
    """A fraction of a column's values goes missing."""

    kind: Literal["null_spike"] = "null_spike"
    column: str
    fraction: float = Field(default=0.6, gt=0, le=1)

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        hit = rng.random(len(out)) < self.fraction
        out[self.column] = out[self.column].mask(hit)
        return out


class UnitChange(_InjectionBase):
    """An affine change of unit, ``new = scale * old + offset`` (°F→°C: 5/9 and -160/9)."""

    kind: Literal["unit_change"] = "unit_change"
    column: str
    scale: float = 1.0
    offset: float = 0.0

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        out[self.column] = out[self.column] * self.scale + self.offset
        return out


class NewCategory(_InjectionBase):
    """A fraction of a categorical column takes a value never seen before."""

    kind: Literal["new_category"] = "new_category"
    column: str
    value: str = "__NEW__"
    fraction: float = Field(default=0.3, gt=0, le=1)

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        hit = rng.random(len(out)) < self.fraction
        out[self.column] = out[self.column].astype(object).where(~hit, self.value)
        return out


class DuplicateRows(_InjectionBase):
    """Rows delivered more than once: ``factor`` times the batch's size, on average.

    ``factor: 3`` delivers every row three times; ``factor: 1.3`` delivers each row once and a
    random 30 % of them a second time. ``fraction: f`` is the same as ``factor: 1 + f``; without
    either, half the rows come twice.
    """

    kind: Literal["duplicate_rows"] = "duplicate_rows"
    fraction: float | None = Field(
        default=None, gt=0, le=1, description="Share of rows delivered twice (default 0.5)."
    )
    factor: float | None = Field(
        default=None, gt=1, description="Delivered rows per original row, on average (> 1)."
    )

    @model_validator(mode="after")
    def _one_magnitude(self) -> "DuplicateRows":
        if self.fraction is not None and self.factor is not None:
            raise ValueError("give fraction or factor, not both")
        return self

    @property
    def copies(self) -> float:
        """Delivered rows per original row (the factor, whichever way it was given)."""
        if self.factor is not None:
            return self.factor
        return 1.0 + (self.fraction if self.fraction is not None else 0.5)

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        whole = int(np.floor(self.copies))
        hit = rng.random(len(frame)) < self.copies - whole
        parts = [frame] * whole + [frame[hit]]
        return pd.DataFrame(pd.concat(parts, ignore_index=True))


class _Shift(_InjectionBase):
    """Move a numeric column's location (and optionally its spread) in every affected batch.

    The move is given one of three ways: ``shift`` in the column's own unit (the same offset in
    every batch: what a persistent change of the world looks like), ``shift_relative`` as a share
    of the batch mean (``0.1``: 10 % higher), or ``shift_std`` in multiples of the batch's own
    standard deviation (the default, 1.5). ``scale`` stretches the spread around the batch mean.
    """

    column: str
    shift_std: float | None = Field(
        default=None,
        description="Additive shift in units of the batch's standard deviation (default 1.5 "
        "when no other shift is given).",
    )
    shift: float | None = Field(default=None, description="Additive shift in the column's unit.")
    shift_relative: float | None = Field(
        default=None, description="Additive shift as a share of the batch mean (0.1 = +10 %)."
    )
    scale: float = Field(default=1.0, gt=0, description="Multiplicative spread change.")

    @model_validator(mode="after")
    def _one_magnitude(self) -> "_Shift":
        given = [
            k for k in ("shift_std", "shift", "shift_relative") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of shift_std, shift, shift_relative (found: {given})")
        return self

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        values = np.asarray(pd.to_numeric(out[self.column], errors="coerce"), dtype=float)
        finite = values[~np.isnan(values)]
        mean = float(finite.mean()) if finite.size else 0.0
        if self.shift is not None:
            offset = self.shift
        elif self.shift_relative is not None:
            offset = self.shift_relative * mean
        else:
            std = (float(finite.std()) if finite.size > 1 else 0.0) or 1.0
            offset = (self.shift_std if self.shift_std is not None else 1.5) * std
        out[self.column] = mean + (values - mean) * self.scale + offset
        return out


class BenignDrift(_Shift):
    """A shift in a feature that carries little predictive power: must NOT raise a real alarm."""

    kind: Literal["benign_drift"] = "benign_drift"


class CovariateShift(_Shift):
    """A shift in an important feature's distribution (the world changed, not a defect)."""

    kind: Literal["covariate_shift"] = "covariate_shift"


class CodeChange(_InjectionBase):
    """A buggy feature transform shipped under a new ``code_version`` of the features asset.

    The bug maps each hit feature to ``scale * value + offset`` (by default a constant 0); it
    hits ``column``, or every one of ``columns`` (one release often breaks several features).
    """

    kind: Literal["code_change"] = "code_change"
    source: str = "features"
    column: str | None = None
    columns: list[str] | None = Field(
        default=None, min_length=1, description="Several features the release breaks."
    )
    code_version: str = "buggy"
    scale: float = 0.0  # default bug: the feature collapses to a constant
    offset: float = 0.0

    @model_validator(mode="after")
    def _one_target(self) -> "CodeChange":
        if (self.column is None) == (self.columns is None):
            raise ValueError("code_change needs exactly one of column or columns")
        return self

    @property
    def columns_hit(self) -> tuple[str, ...]:
        return (self.column,) if self.column is not None else tuple(self.columns or ())

    def effect(self) -> Effect:
        return Effect.TRANSFORM_FEATURES

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        out = frame.copy()
        for column in self.columns_hit:
            self._require(frame, column)
            out[column] = out[column] * self.scale + self.offset
        return out


class MissingBatch(_InjectionBase):
    """The source's batch never arrives: the partition is materialized empty."""

    kind: Literal["missing_batch"] = "missing_batch"

    def effect(self) -> Effect:
        return Effect.EMPTY_BATCH

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return frame.iloc[0:0]


class DelayedBatch(_InjectionBase):
    """The batch arrives empty on time and complete ``delay`` partitions later."""

    kind: Literal["delayed_batch"] = "delayed_batch"
    delay: int = Field(default=2, ge=1)

    def effect(self) -> Effect:
        return Effect.LATE_BATCH

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return frame.iloc[0:0]


class UpstreamRunFailure(_InjectionBase):
    """The source feed's run fails: the partition and all downstream stay unmaterialized."""

    kind: Literal["upstream_run_failure"] = "upstream_run_failure"
    message: str = "injected upstream failure"

    def effect(self) -> Effect:
        return Effect.FAIL_RUN

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        raise InjectedFailure(f"{self.id}: {self.message}")


class LabelDelay(_InjectionBase):
    """Labels arrive ``extra_delay`` partitions later than the pipeline's configured label delay."""

    kind: Literal["label_delay"] = "label_delay"
    source: str = "labels"
    extra_delay: int = Field(default=3, ge=1)

    def effect(self) -> Effect:
        return Effect.LATE_LABELS


Injection = Annotated[
    SchemaChange
    | NullSpike
    | UnitChange
    | NewCategory
    | DuplicateRows
    | BenignDrift
    | CovariateShift
    | CodeChange
    | MissingBatch
    | DelayedBatch
    | UpstreamRunFailure
    | LabelDelay,
    Field(discriminator="kind"),
]

INJECTION_KINDS: tuple[str, ...] = (
    "schema_change",
    "null_spike",
    "unit_change",
    "delayed_batch",
    "missing_batch",
    "upstream_run_failure",
    "code_change",
    "new_category",
    "duplicate_rows",
    "label_delay",
    "benign_drift",
    "covariate_shift",
)


def injection_rng(injection_id: str, partition_key: str, seed: int = 0) -> np.random.Generator:
    """A generator seeded by (injection, partition): the same scenario corrupts the same rows."""
    material = f"{seed}:{injection_id}:{partition_key}".encode()
    return np.random.default_rng(list(material))
