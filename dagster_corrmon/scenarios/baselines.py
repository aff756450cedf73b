"""The two peer baselines ``corrmon score`` puts beside corrmon's own numbers.

Both run on the very history corrmon recorded during a simulation (the signal store next to the
report), so the comparison is about the method, not about different data:

* **Evidently's dataset-drift alarm** (``DataDriftPreset``): per partition, the share of feature
  columns whose drift test failed at Evidently's own thresholds (not corrmon's calibrated
  ones); the dataset is "drifted" when that share is at least
  ``drift_share`` (Evidently's default 0.5, ``share >= drift_share`` as in its
  ``get_dataset_drift``). It detects but never attributes.
* **NannyML's ``CorrelationRanker``**: for each feature column, Pearson's r between the column's
  drift statistic per partition and ``|metric - mean reference metric|``, columns sorted by r,
  highest first (signed, as NannyML sorts it). It attributes but does not detect: it ranks once a
  performance change is known, so it gets no detection delay of its own.

The functions here are pure (sequences in, frozen results out) except :func:`load_history`, the one
place that reads a simulation folder's store.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dagster_corrmon.core.drift import DECISIONS, STATISTIC_AT_OR_ABOVE, decide
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.errors import InputDataError

#: Evidently DataDriftPreset's default ``drift_share``.
EVIDENTLY_DRIFT_SHARE = 0.5

#: Two correlations closer than this are a tie: the ranking cannot tell the columns apart.
TIE_TOLERANCE = 1e-9

#: The null-fraction check's signal name; its columns tell which raw columns each feed carries.
NULL_FRACTION_SIGNAL = "null_fraction"


@dataclass(frozen=True, kw_only=True)
class DriftTable:
    """Per-column drift over an ordered list of partitions (``None`` = no signal there).

    When a partition was checked more than once (a late batch re-materialized), the last stored
    signal wins: it judged the data the model finally read.
    """

    partitions: tuple[str, ...]
    statistics: Mapping[str, tuple[float | None, ...]]
    drifted: Mapping[str, tuple[bool | None, ...]]
    # corrmon's own verdict (the check failed), beside Evidently's in ``drifted``
    failed: Mapping[str, tuple[bool | None, ...]] = field(
        default_factory=dict[str, tuple[bool | None, ...]]
    )


@dataclass(frozen=True, kw_only=True)
class RankedColumn:
    """One row of the NannyML-style ranking.

    ``rank`` is the column's position; ``worst_rank`` is the last position of its tie group (the
    rank a fair scorer must assume when the ranking cannot separate tied columns). ``correlation``
    is ``None`` when r is undefined (fewer than 3 paired points, or a constant series): such
    columns sort last, as NaN does in NannyML.
    """

    column: str
    correlation: float | None
    p_value: float | None
    points: int
    rank: int
    worst_rank: int
    has_drifted: bool


@dataclass(frozen=True, kw_only=True)
class BaselineHistory:
    """What both baselines need from one simulation's store, aligned on the scored partitions."""

    partitions: tuple[str, ...]
    drift: DriftTable
    metric: tuple[float | None, ...]
    feed_columns: Mapping[str, frozenset[str]]
    features_asset: str
    evaluation_asset: str


def _evidently_drifted(signal: Signal) -> bool | None:
    """The column's verdict under Evidently's own threshold.

    corrmon's check may have raised a distance's threshold to the reference batches' noise floor
    (``core.drift.calibrate_profile``); the baseline is Evidently's rule, so the verdict is
    re-taken at the ``configured_threshold`` the signal recorded. Older signals without it keep
    their recorded verdict.
    """
    meta = signal.metadata
    method, threshold = meta.get("method"), meta.get("configured_threshold")
    if isinstance(method, str) and method in DECISIONS and isinstance(threshold, int | float):
        value = meta.get("statistic") if DECISIONS[method] == STATISTIC_AT_OR_ABOVE else None
        p_value = meta.get("p_value")
        if value is not None or p_value is not None:
            statistic = math.inf if value is None else float(value)
            return decide(method, statistic, p_value, float(threshold))
    return None if signal.passed is None else not signal.passed


def drift_table(signals: Iterable[Signal], partitions: Sequence[str]) -> DriftTable:
    """Arrange per-column drift signals by column and partition.

    Signals without a column (the check's own summary) or outside ``partitions`` are ignored.
    """
    position = {key: index for index, key in enumerate(partitions)}
    statistics: dict[str, list[float | None]] = {}
    drifted: dict[str, list[bool | None]] = {}
    failed: dict[str, list[bool | None]] = {}
    for signal in signals:
        if signal.kind is not SignalKind.DRIFT or signal.column is None:
            continue
        index = position.get(signal.partition or "")
        if index is None:
            continue
        column = signal.column
        if column not in statistics:
            statistics[column] = [None] * len(partitions)
            drifted[column] = [None] * len(partitions)
            failed[column] = [None] * len(partitions)
        statistics[column][index] = signal.value
        drifted[column][index] = _evidently_drifted(signal)
        failed[column][index] = None if signal.passed is None else not signal.passed
    return DriftTable(
        partitions=tuple(partitions),
        statistics={column: tuple(values) for column, values in sorted(statistics.items())},
        drifted={column: tuple(values) for column, values in sorted(drifted.items())},
        failed={column: tuple(values) for column, values in sorted(failed.items())},
    )


def drift_false_fail_rate(table: DriftTable) -> float | None:
    """Share of corrmon's per-column drift checks that failed, over every (column, partition)
    judged: on a clean control every failure is a false one (``None``: nothing judged)."""
    verdicts = [v for series in table.failed.values() for v in series if v is not None]
    return sum(verdicts) / len(verdicts) if verdicts else None


def drifted_shares(table: DriftTable) -> tuple[float | None, ...]:
    """Share of drifted columns per partition, over the columns checked there (``None``: none)."""
    shares: list[float | None] = []
    for index in range(len(table.partitions)):
        decisions = [d[index] for d in table.drifted.values() if d[index] is not None]
        drifted = sum(1 for decision in decisions if decision)
        shares.append(drifted / len(decisions) if decisions else None)
    return tuple(shares)


def evidently_alarms(
    shares: Sequence[float | None], *, drift_share: float = EVIDENTLY_DRIFT_SHARE
) -> tuple[bool, ...]:
    """Evidently's dataset-drift decision per partition: ``share >= drift_share``."""
    if not 0.0 < drift_share <= 1.0:
        raise InputDataError(f"evidently_alarms: drift_share must be in (0, 1], got {drift_share}")
    return tuple(share is not None and share >= drift_share for share in shares)


def first_alarm(alarms: Sequence[bool], *, start: int) -> int | None:
    """Index of the first alarm at or after ``start``, else ``None``."""
    for index in range(max(start, 0), len(alarms)):
        if alarms[index]:
            return index
    return None


def performance_change(
    metric: Sequence[float | None], *, reference_end: int
) -> tuple[float | None, ...]:
    """``|metric - mean(metric[:reference_end])|`` per partition, NannyML's performance series.

    The reference mean is over the known values before ``reference_end`` (the injection's first
    partition): the analogue of NannyML fitting the ranker on its reference period.
    """
    reference = [v for v in metric[: max(reference_end, 0)] if v is not None and math.isfinite(v)]
    if not reference:
        raise InputDataError(
            f"performance_change: no metric value before partition {reference_end} "
            "to take the reference mean from"
        )
    mean = math.fsum(reference) / len(reference)
    return tuple(abs(v - mean) if v is not None and math.isfinite(v) else None for v in metric)


def correlation_ranking(
    drift: Mapping[str, Sequence[float | None]],
    performance: Sequence[float | None],
    *,
    drifted: Mapping[str, Sequence[bool | None]] | None = None,
) -> tuple[RankedColumn, ...]:
    """NannyML's ``CorrelationRanker.rank``: Pearson's r of each drift series with ``performance``.

    Pairs where either side is missing are dropped per column, as NannyML drops NaN. Sorted by r,
    highest first, then by column name so the order is reproducible; see :class:`RankedColumn`
    for undefined r and ties.
    """
    target = np.array([np.nan if v is None else v for v in performance], dtype=float)
    rows: list[tuple[str, float | None, float | None, int, bool]] = []
    for column, series in drift.items():
        if len(series) != len(target):
            raise InputDataError(
                f"correlation_ranking: drift series of {column!r} has {len(series)} points, "
                f"the performance series {len(target)}"
            )
        values = np.array([np.nan if v is None else v for v in series], dtype=float)
        keep = np.isfinite(values) & np.isfinite(target)
        x, y = values[keep], target[keep]
        correlation = p_value = None
        # scipy warns and returns NaN on constant input; r is simply undefined there.
        if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            # scipy's stubs do not declare PearsonRResult's fields.
            result: Any = stats.pearsonr(x, y)
            correlation, p_value = float(result.statistic), float(result.pvalue)
        flags = (drifted or {}).get(column) or ()
        rows.append((column, correlation, p_value, int(keep.sum()), any(f is True for f in flags)))
    rows.sort(key=lambda row: (row[1] is None, -(row[1] or 0.0)))
    # Tie groups: rounding noise must not decide an order the data cannot; names do, visibly.
    groups: list[list[tuple[str, float | None, float | None, int, bool]]] = []
    for row in rows:
        if groups and _tied(groups[-1][0][1], row[1]):
            groups[-1].append(row)
        else:
            groups.append([row])
    ranked: list[RankedColumn] = []
    for group in groups:
        worst = len(ranked) + len(group)
        for column, correlation, p_value, points, has_drifted in sorted(group):
            ranked.append(
                RankedColumn(
                    column=column,
                    correlation=correlation,
                    p_value=p_value,
                    points=points,
                    rank=len(ranked) + 1,
                    worst_rank=worst,
                    has_drifted=has_drifted,
                )
            )
    return tuple(ranked)


def injected_features(
    *,
    column: str | None,
    asset: str,
    features: Iterable[str],
    feed_columns: Mapping[str, Iterable[str]],
    feature_sources: Mapping[str, Iterable[str]] | None = None,
) -> frozenset[str]:
    """The features an injection hit, mapped by name.

    An injection into one column hits the feature of that name (a code change names the feature
    itself); one into a whole feed (missing or late batch, failed run) hits every feature named
    like a column the feed carries. ``feature_sources`` (feature → raw columns it is computed
    from), when the caller knows it, adds derived features whose names differ from their inputs.
    """
    features = set(features)
    hit = {column} if column is not None else set(feed_columns.get(asset, ()))
    derived = {feature for feature, inputs in (feature_sources or {}).items() if hit & set(inputs)}
    return frozenset((hit | derived) & features)


def load_history(
    folder: Path,
    *,
    partitions: Sequence[str],
    metric: str,
    features_asset: str | None = None,
    evaluation_asset: str | None = None,
) -> BaselineHistory:
    """Read the baselines' inputs from ``folder/dagster_home/corrmon.db``.

    The features asset is the one asset holding per-column drift signals and the evaluation asset
    the one holding ``metric`` signals, unless named; with several candidates ``features`` /
    ``evaluation`` win, else the choice is an error rather than a guess. With no ``partitions``,
    those the drift signals cover are used.
    """
    from dagster_corrmon.store import CorrmonStore

    path = folder / "dagster_home" / "corrmon.db"
    if not path.is_file():
        # CorrmonStore would create an empty database here: a missing store must be an error.
        raise InputDataError(f"no corrmon signal store at {path}")
    store = CorrmonStore(f"sqlite:///{path.resolve()}")
    try:
        drift_signals = [
            s for s in store.read_signals(kind=SignalKind.DRIFT) if s.column is not None
        ]
        features_asset = features_asset or _only_asset(
            drift_signals, preferred="features", what="per-column drift signals", where=path
        )
        drift_signals = [s for s in drift_signals if s.asset_key == features_asset]
        metric_signals = store.read_signals(kind=SignalKind.METRIC, name=metric)
        evaluation_asset = evaluation_asset or _only_asset(
            metric_signals, preferred="evaluation", what=f"{metric!r} metric signals", where=path
        )
        nulls = store.read_signals(kind=SignalKind.DATA_QUALITY, name=NULL_FRACTION_SIGNAL)
    finally:
        store.close()
    keys = tuple(partitions) or tuple(sorted({s.partition for s in drift_signals if s.partition}))
    position = {key: index for index, key in enumerate(keys)}
    values: list[float | None] = [None] * len(keys)
    for signal in metric_signals:  # ordered by event time: a later value replaces an earlier one
        index = position.get(signal.partition or "")
        if signal.asset_key == evaluation_asset and index is not None:
            values[index] = signal.value
    feeds: dict[str, set[str]] = {}
    for signal in nulls:
        if signal.column is not None:
            feeds.setdefault(signal.asset_key, set()).add(signal.column)
    return BaselineHistory(
        partitions=keys,
        drift=drift_table(drift_signals, keys),
        metric=tuple(values),
        feed_columns={asset: frozenset(columns) for asset, columns in feeds.items()},
        features_asset=features_asset,
        evaluation_asset=evaluation_asset,
    )


def _only_asset(signals: Sequence[Signal], *, preferred: str, what: str, where: Path) -> str:
    assets = sorted({s.asset_key for s in signals})
    if len(assets) == 1:
        return assets[0]
    if preferred in assets:
        return preferred
    if not assets:
        raise InputDataError(f"{where}: the store holds no {what}")
    raise InputDataError(f"{where}: {what} on several assets ({', '.join(assets)}); name one")


def _tied(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)


__all__ = [
    "EVIDENTLY_DRIFT_SHARE",
    "BaselineHistory",
    "DriftTable",
    "RankedColumn",
    "correlation_ranking",
    "drift_false_fail_rate",
    "drift_table",
    "drifted_shares",
    "evidently_alarms",
    "first_alarm",
    "injected_features",
    "load_history",
    "performance_change",
]
