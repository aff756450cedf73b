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
    def column_hit(self) -> str | None:
        """The column this injection corrupts, if it corrupts one."""
        return getattr(self, "column", None)

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
    """A fraction of the rows is delivered twice."""

    kind: Literal["duplicate_rows"] = "duplicate_rows"
    fraction: float = Field(default=0.5, gt=0, le=1)

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        hit = rng.random(len(frame)) < self.fraction
        return pd.DataFrame(pd.concat([frame, frame[hit]], ignore_index=True))


class _Shift(_InjectionBase):
    column: str
    shift_std: float = Field(
        default=1.5, description="Additive shift in units of the column's standard deviation."
    )
    scale: float = Field(default=1.0, gt=0, description="Multiplicative spread change.")

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        values = np.asarray(pd.to_numeric(out[self.column], errors="coerce"), dtype=float)
        finite = values[~np.isnan(values)]
        std = float(finite.std()) if finite.size > 1 else 0.0
        std = std or 1.0
        mean = float(finite.mean()) if finite.size else 0.0
        out[self.column] = mean + (values - mean) * self.scale + self.shift_std * std
        return out


class BenignDrift(_Shift):
    """A shift in a feature that carries little predictive power: must NOT raise a real alarm."""

    kind: Literal["benign_drift"] = "benign_drift"


class CovariateShift(_Shift):
    """A shift in an important feature's distribution (the world changed, not a defect)."""

    kind: Literal["covariate_shift"] = "covariate_shift"


class CodeChange(_InjectionBase):
    """A buggy feature transform shipped under a new ``code_version`` of the features asset."""

    kind: Literal["code_change"] = "code_change"
    source: str = "features"
    column: str
    code_version: str = "buggy"
    scale: float = 0.0  # default bug: the feature collapses to a constant
    offset: float = 0.0

    def effect(self) -> Effect:
        return Effect.TRANSFORM_FEATURES

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        self._require(frame, self.column)
        out = frame.copy()
        out[self.column] = out[self.column] * self.scale + self.offset
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
