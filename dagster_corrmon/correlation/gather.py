"""Turn stored signals into the attribution engine's inputs.

Pure over :class:`~dagster_corrmon.core.signal.Signal` lists: no Dagster, no database. Candidate
values are aligned with the metric's partitions by partition key when both share a partitioning,
and otherwise by time (a signal belongs to the last metric partition that starts at or before
its event time), so a weekly feed can explain a daily model and an unpartitioned model's new
code version lands on the first partition scored after it.
"""

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dagster_corrmon.core.attribution import CandidateEvent, CandidateSeries, MetricSeries
from dagster_corrmon.core.signal import Severity, Signal, SignalKind

# Numeric signals that form candidate series (drift statistics, null fractions, row counts...).
SERIES_KINDS = frozenset({SignalKind.DRIFT, SignalKind.DATA_QUALITY})
# Discrete events that are candidates where they happen.
EVENT_KINDS = frozenset(
    {
        SignalKind.SCHEMA_CHANGE,
        SignalKind.FRESHNESS,
        SignalKind.RUN_FAILURE,
        SignalKind.CODE_VERSION_CHANGE,
        SignalKind.DATA_VERSION_CHANGE,
        SignalKind.EXTERNAL_INCIDENT,
    }
)
# Events whose kind persists once it happened: only the first partition of a run counts.
_PERSISTENT = frozenset({SignalKind.SCHEMA_CHANGE, SignalKind.CODE_VERSION_CHANGE})
MIN_SERIES_POINTS = 3


@dataclass(frozen=True)
class MetricPoints:
    """The metric's partitions, in time order, with their event times."""

    partitions: tuple[str, ...]
    times: tuple[datetime, ...]

    def locate(self, signal: Signal) -> str | None:
        """The metric partition a signal belongs to, or ``None``.

        A signal of a metric partition belongs to it. A signal of a partition *without* a metric
        (its scoring failed, or it was never scored) belongs to the first metric partition at or
        after it — its effect cannot show in an earlier one — and to none if there is none. A
        signal without a partition belongs to the last metric partition at or before its time
        (``None`` if it precedes them all).
        """
        if signal.partition is not None:
            if signal.partition in self._index:
                return signal.partition
            at = bisect.bisect_left(self.times, signal.event_time)
            return self.partitions[at] if at < len(self.partitions) else None
        at = bisect.bisect_right(self.times, signal.event_time) - 1
        return self.partitions[at] if at >= 0 else None

    def owns(self, signal: Signal) -> bool:
        """Whether the signal was observed on a metric partition itself."""
        return signal.partition is not None and signal.partition in self._index

    @property
    def _index(self) -> frozenset[str]:
        return frozenset(self.partitions)


def _latest_per_partition(signals: Iterable[Signal]) -> dict[str, Signal]:
    """The latest observation per partition (a re-evaluation supersedes the first)."""
    chosen: dict[str, Signal] = {}
    for signal in signals:
        key = signal.partition or signal.event_time.isoformat()
        current = chosen.get(key)
        if current is None or _observed(signal) >= _observed(current):
            chosen[key] = signal
    return chosen


def _observed(signal: Signal) -> datetime:
    return signal.observed_at or signal.event_time


def build_metric_series(
    signals: Iterable[Signal], *, asset_key: str, metric: str, higher_is_better: bool
) -> tuple[MetricSeries, MetricPoints] | None:
    """The model's metric series from its METRIC signals (latest value per partition)."""
    matching = [
        s
        for s in signals
        if s.kind is SignalKind.METRIC
        and s.asset_key == asset_key
        and s.name == metric
        and s.column is None
    ]
    latest = _latest_per_partition(matching)
    ordered = sorted(latest.values(), key=lambda s: (s.event_time, s.partition or ""))
    if not ordered:
        return None
    partitions = tuple(s.partition or s.event_time.isoformat() for s in ordered)
    times = tuple(s.event_time for s in ordered)
    series = MetricSeries(
        name=metric,
        partitions=partitions,
        values=[_value(s) for s in ordered],
        higher_is_better=higher_is_better,
        times=times,
        model_asset=asset_key,
        ci_low=[_bound(s, "ci_low") for s in ordered],
        ci_high=[_bound(s, "ci_high") for s in ordered],
    )
    return series, MetricPoints(partitions=partitions, times=times)


def _bound(signal: Signal, key: str) -> float:
    """A confidence bound the metric check recorded (NaN when it computed none)."""
    value = signal.metadata.get(key)
    return float(value) if isinstance(value, int | float) else float("nan")


def build_candidates(
    signals: Iterable[Signal],
    *,
    points: MetricPoints,
    distances: Mapping[str, int],
    exclude_assets: Iterable[str] = (),
) -> list[CandidateSeries | CandidateEvent]:
    """Candidate causes among the signals on the model's lineage ancestors.

    ``distances`` maps every ancestor (user-string asset key) to its hops from the asset that
    holds the metric; signals on other assets are ignored. Numeric DRIFT / DATA_QUALITY signals
    become per-(asset, kind, name, column) series; failed schema, freshness, run-failure and
    version-change signals become events. A code-version change *back* to a version the asset
    ran before (a rollback, e.g. the fix of a buggy release) is not a candidate: it restores
    code the history already judged, and blaming it for a later drop would re-open the release
    it undid.
    """
    skip = set(exclude_assets)
    signals = list(signals)
    rollbacks = _rollbacks(signals)
    series_groups: dict[tuple[str, SignalKind, str, str | None], list[Signal]] = defaultdict(list)
    event_groups: dict[tuple[str, SignalKind, str, str | None], list[Signal]] = defaultdict(list)
    for signal in signals:
        if signal.asset_key not in distances or signal.asset_key in skip:
            continue
        if signal.idempotency_key in rollbacks:
            continue
        key = (signal.asset_key, signal.kind, signal.name, signal.column)
        if signal.kind in SERIES_KINDS and signal.value is not None:
            series_groups[key].append(signal)
        elif signal.kind in EVENT_KINDS and signal.passed is not True:
            event_groups[key].append(signal)

    candidates: list[CandidateSeries | CandidateEvent] = []
    for (asset, kind, name, column), group in sorted(series_groups.items(), key=_group_order):
        by_partition: dict[str, Signal] = {}
        # A metric partition's own observation wins over one carried forward from a partition
        # without a metric (sorted last, so it is written last).
        for signal in sorted(_latest_per_partition(group).values(), key=points.owns):
            at = points.locate(signal)
            if at is not None:
                by_partition[at] = signal  # several per metric partition: keep the last
        if len(by_partition) < MIN_SERIES_POINTS:
            continue
        keys = [p for p in points.partitions if p in by_partition]
        candidates.append(
            CandidateSeries(
                asset_key=asset,
                name=name,
                column=column,
                kind=kind,
                partitions=keys,
                values=[_value(by_partition[p]) for p in keys],
                lineage_distance=distances[asset],
                feature_importance=_importance(by_partition.values()),
                signal_keys=tuple(by_partition[p].idempotency_key for p in keys),
                data_versions={
                    p: v for p in keys if (v := by_partition[p].data_version) is not None
                },
                failed_partitions=[
                    p
                    for p in keys
                    if by_partition[p].passed is False
                    and by_partition[p].severity is Severity.ERROR
                ],
            )
        )
    for (asset, kind, name, column), group in sorted(event_groups.items(), key=_group_order):
        located: dict[str, list[Signal]] = defaultdict(list)
        for signal in group:
            partition = points.locate(signal)
            if partition is not None:
                located[partition].append(signal)
        keys = [p for p in points.partitions if p in located]
        if kind in _PERSISTENT:
            keys = _first_of_runs(keys, points.partitions)
        for partition in keys:
            cited = located[partition]
            candidates.append(
                CandidateEvent(
                    asset_key=asset,
                    kind=kind,
                    partition=partition,
                    name=name,
                    column=column,
                    lineage_distance=distances[asset],
                    signal_keys=tuple(s.idempotency_key for s in cited),
                    data_versions=tuple(
                        dict.fromkeys(s.data_version for s in cited if s.data_version)
                    ),
                )
            )
    return candidates


def _rollbacks(signals: Sequence[Signal]) -> set[str]:
    """Idempotency keys of code-version changes to a version their asset ran before."""
    changes = sorted(
        (s for s in signals if s.kind is SignalKind.CODE_VERSION_CHANGE),
        key=lambda s: (s.event_time, _observed(s)),
    )
    seen: dict[str, set[str]] = defaultdict(set)
    judged: dict[tuple[str, str, str | None], bool] = {}  # a change seen again keeps its verdict
    found: set[str] = set()
    for signal in changes:
        previous = str(signal.metadata.get("previous") or "")
        change = (signal.asset_key, previous, signal.code_version)
        if change not in judged:
            versions = seen[signal.asset_key]
            if previous:
                versions.add(previous)
            judged[change] = bool(signal.code_version) and signal.code_version in versions
            if signal.code_version:
                versions.add(signal.code_version)
        if judged[change]:
            found.add(signal.idempotency_key)
    return found


def _value(signal: Signal) -> float:
    return float("nan") if signal.value is None else signal.value


def _group_order(item: tuple[tuple[str, SignalKind, str, str | None], list[Signal]]) -> tuple:
    asset, kind, name, column = item[0]
    return (asset, kind.value, name, column or "")


def _first_of_runs(keys: Sequence[str], order: Sequence[str]) -> list[str]:
    """The first partition of each run of consecutive partitions."""
    position = {key: index for index, key in enumerate(order)}
    firsts: list[str] = []
    previous: int | None = None
    for key in keys:
        index = position[key]
        if previous is None or index != previous + 1:
            firsts.append(key)
        previous = index
    return firsts


def _importance(signals: Iterable[Signal]) -> float | None:
    """A feature importance recorded on the signals (drift checks record it), if any."""
    for signal in signals:
        value = signal.metadata.get("importance")
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None


def feature_importances_from_signals(signals: Iterable[Signal]) -> dict[str, float]:
    """``{column: importance}`` from the metadata drift checks record."""
    found: dict[str, float] = {}
    for signal in signals:
        value = signal.metadata.get("importance")
        if signal.column and isinstance(value, int | float) and value >= 0:
            found[signal.column] = float(value)
    return found
