"""Judging a value against its own history in the corrmon store (an adaptive baseline).

Every check that records a number (a column's null fraction, a row count, a model metric) can ask:
*is this value abnormal for this asset?* The history is the same signal's past values for the same
asset (and column), read from the store over ``lookback``, one point per partition, leaving out the
windows of confirmed (resolved) incidents — a fixed outage must not teach the baseline that an
outage is normal. The robust median/MAD baseline of :mod:`dagster_corrmon.core.baseline` then
scores the value, in the one direction that is bad for it.

Two guards keep the verdict honest: with fewer than ``min_history`` points there is no baseline yet
(the check passes *with a note* saying so), and a deviation smaller than ``min_change`` is never
anomalous however flat the history (a column that was never null has MAD 0, and one null must not
read as an infinite z-score).
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from dagster_corrmon.checks._common import history_points, positive_int, to_severity
from dagster_corrmon.core.baseline import Direction, binomial_scale_floor, fit_baseline
from dagster_corrmon.core.incident import IncidentStatus
from dagster_corrmon.core.signal import Severity, SignalKind, ensure_utc
from dagster_corrmon.errors import ConfigError, InsufficientDataError
from dagster_corrmon.store import CorrmonStore, SignalPoint


@dataclass(frozen=True, kw_only=True)
class BaselinePolicy:
    """How values are judged against their stored history.

    Attributes:
        min_history: past points needed before the baseline judges (until then: pass + note).
        threshold: robust |z| beyond which a value is anomalous (None: 3.5 for median/MAD).
        method: ``"median_mad"`` (robust; default) or ``"mean_std"``.
        seasonality: None, ``"day_of_week"``, ``"hour_of_day"`` or ``"hour_of_week"``.
        lookback: how far back the history reaches.
        severity: severity of a failure against the baseline (default WARN: an anomaly is a
            suspicion; fixed thresholds are the place for hard rules).
    """

    min_history: int = 7
    threshold: float | None = None
    method: str = "median_mad"
    seasonality: str | None = None
    lookback: timedelta = timedelta(days=90)
    severity: Any = Severity.WARN

    def validated(self, *, factory: str) -> "BaselinePolicy":
        positive_int(self.min_history, factory=factory, argument="baseline.min_history", minimum=2)
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and self.threshold > 0
        ):
            raise ConfigError(f"{factory}: baseline.threshold must be > 0; got {self.threshold!r}")
        if self.method not in ("median_mad", "mean_std"):
            raise ConfigError(
                f"{factory}: baseline.method must be 'median_mad' or 'mean_std'; "
                f"got {self.method!r}"
            )
        if self.seasonality not in (None, "day_of_week", "weekly", "hour_of_day", "hour_of_week"):
            raise ConfigError(
                f"{factory}: baseline.seasonality must be None, 'day_of_week', 'hour_of_day' or "
                f"'hour_of_week'; got {self.seasonality!r}"
            )
        if not isinstance(self.lookback, timedelta) or self.lookback <= timedelta(0):
            raise ConfigError(f"{factory}: baseline.lookback must be a positive timedelta")
        to_severity(self.severity, factory=factory, argument="baseline.severity")
        return self

    @property
    def failure_severity(self) -> Severity:
        return to_severity(self.severity, factory="BaselinePolicy", argument="severity")


def coerce_policy(value: Any, *, factory: str) -> BaselinePolicy | None:
    """``BaselinePolicy``, a mapping of its fields, ``True`` (defaults) or ``None``/``False``."""
    if value is None or value is False:
        return None
    if value is True:
        return BaselinePolicy()
    if isinstance(value, BaselinePolicy):
        return value.validated(factory=factory)
    if isinstance(value, Mapping):
        try:
            policy = BaselinePolicy(**dict(value))
        except TypeError as error:
            raise ConfigError(f"{factory}: baseline: {error}") from error
        return policy.validated(factory=factory)
    raise ConfigError(
        f"{factory}: baseline must be a BaselinePolicy, a mapping, True or None; got {value!r}"
    )


Status = Literal["normal", "anomalous", "insufficient_history"]


@dataclass(frozen=True, kw_only=True)
class BaselineVerdict:
    """One value against its history. ``expected``/``z`` are None without a baseline."""

    status: Status
    value: float
    history_size: int
    expected: float | None = None
    scale: float | None = None
    z: float | None = None
    threshold: float | None = None
    excluded: int = 0
    note: str | None = None

    @property
    def anomalous(self) -> bool:
        return self.status == "anomalous"

    def as_metadata(self) -> dict[str, Any]:
        """Plain fields for a signal's metadata (``baseline_*``)."""
        return {
            "baseline_status": self.status,
            "baseline_expected": self.expected,
            "baseline_scale": self.scale,
            "baseline_z": _finite(self.z),
            "baseline_threshold": self.threshold,
            "baseline_history": self.history_size,
            "baseline_excluded": self.excluded,
            "baseline_note": self.note,
        }


def judge_against_history(
    store: CorrmonStore,
    *,
    asset_key: str,
    name: str,
    kind: SignalKind,
    column: str | None,
    value: float,
    event_time: datetime,
    direction: Direction,
    policy: BaselinePolicy,
    min_change: float = 0.0,
    incident_assets: Iterable[str] = (),
) -> BaselineVerdict:
    """Score ``value`` against the stored history of the same signal (see module docstring).

    ``incident_assets``: assets whose resolved incidents' windows are left out of the history
    (the checked asset itself is always included).
    """
    return judge_columns_against_history(
        store,
        asset_key=asset_key,
        name=name,
        kind=kind,
        values={column: value},
        event_time=event_time,
        direction=direction,
        policy=policy,
        min_change=min_change,
        incident_assets=incident_assets,
    )[column]


def judge_columns_against_history(
    store: CorrmonStore,
    *,
    asset_key: str,
    name: str,
    kind: SignalKind,
    values: Mapping[str | None, float],
    event_time: datetime,
    direction: Direction,
    policy: BaselinePolicy,
    min_change: float = 0.0,
    incident_assets: Iterable[str] = (),
    proportion_rows: int | None = None,
) -> dict[str | None, BaselineVerdict]:
    """:func:`judge_against_history` for several columns of one signal, from one read.

    A check that judges every column (completeness) reads the store once, not once per column.
    With a single entry, its column (``None``: any column) filters the read as before.
    ``proportion_rows``: the values are proportions measured on this many rows; the baseline's
    scale is then never below their binomial sampling error
    (:func:`~dagster_corrmon.core.baseline.binomial_scale_floor`).
    """
    columns = list(values)
    stored = store.read_signal_points(
        asset_key=asset_key,
        name=name,
        kind=kind,
        column=columns[0] if len(columns) == 1 else None,
        start=event_time - policy.lookback,
        end=event_time,
    )
    history: dict[str | None, list[SignalPoint]] = {column: [] for column in columns}
    for signal in stored:
        # Observations that failed their check never teach the baseline: otherwise a defect
        # that persists (a feed that keeps losing 90 % of a column) becomes "normal" after a
        # few partitions and the check goes green while the data is still broken.
        if signal.passed is False:
            continue
        key = columns[0] if len(columns) == 1 else signal.column
        if key in history:
            history[key].append(signal)
    windows: list[tuple[datetime, datetime]] = []
    for incident_asset in dict.fromkeys([asset_key, *incident_assets]):
        windows.extend(store.incident_windows(incident_asset, statuses=(IncidentStatus.RESOLVED,)))
    return {
        column: _verdict(
            history[column],
            name=name,
            column=column,
            value=value,
            event_time=event_time,
            direction=direction,
            policy=policy,
            min_change=min_change,
            windows=windows,
            proportion_rows=proportion_rows,
        )
        for column, value in values.items()
    }


def _verdict(
    stored: Sequence[SignalPoint],
    *,
    name: str,
    column: str | None,
    value: float,
    event_time: datetime,
    direction: Direction,
    policy: BaselinePolicy,
    min_change: float,
    windows: Sequence[tuple[datetime, datetime]],
    proportion_rows: int | None = None,
) -> BaselineVerdict:
    values, times = history_points(stored)
    if len(values) < policy.min_history:
        return BaselineVerdict(
            status="insufficient_history",
            value=value,
            history_size=len(values),
            note=(
                f"{len(values)} past point(s) of {name!r}"
                + (f" for column {column!r}" if column else "")
                + f"; the baseline judges from {policy.min_history}"
            ),
        )
    try:
        baseline = fit_baseline(
            values,
            # naive UTC: numpy has no time zones (and warns when handed aware datetimes)
            np.array([ensure_utc(t).replace(tzinfo=None) for t in times], dtype="datetime64[ns]"),
            method=policy.method,  # type: ignore[arg-type]  # validated in BaselinePolicy
            exclude=windows,
            seasonality=policy.seasonality,  # type: ignore[arg-type]
            threshold=policy.threshold,
            direction=direction,
            min_points=policy.min_history,
        )
    except InsufficientDataError:
        return BaselineVerdict(
            status="insufficient_history",
            value=value,
            history_size=len(values),
            note=(
                f"{len(values)} past point(s) of {name!r}, too few outside confirmed incident "
                f"windows ({len(windows)}); the baseline judges from {policy.min_history}"
            ),
        )
    score = baseline.score(value, event_time)
    scale, z, alarm = score.scale, score.z, score.anomalous
    if proportion_rows:
        floor = binomial_scale_floor(min(max(score.expected, 0.0), 1.0), proportion_rows)
        if not scale >= floor:  # also a NaN scale
            scale, z = floor, (value - score.expected) / floor
            alarm = (
                abs(z) > score.threshold
                if direction == "both"
                else (z > score.threshold if direction == "increase" else z < -score.threshold)
            )
    beyond_noise = abs(value - score.expected) >= min_change
    anomalous = alarm and beyond_noise
    note = None
    if alarm and not beyond_noise:
        note = f"|change| {abs(value - score.expected):.4g} is below min_change {min_change:.4g}"
    return BaselineVerdict(
        status="anomalous" if anomalous else "normal",
        value=value,
        history_size=len(values),
        expected=score.expected,
        scale=scale,
        z=z,
        threshold=score.threshold,
        excluded=baseline.n_excluded,
        note=note,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
