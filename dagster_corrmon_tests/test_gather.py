"""Which metric partition an upstream signal is compared with (temporal precedence)."""

from datetime import UTC, datetime, timedelta

from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.gather import MetricPoints

WEEKS = ("2013-01-13", "2013-01-20", "2013-02-03")  # 2013-01-27 was never scored


def _time(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


POINTS = MetricPoints(partitions=WEEKS, times=tuple(_time(day) for day in WEEKS))


def _signal(day: str | None, at: datetime) -> Signal:
    return Signal(
        kind=SignalKind.RUN_FAILURE,
        asset_key="raw_weather",
        name="run_failure",
        event_time=at,
        passed=False,
        severity=Severity.ERROR,
        partition=day,
    )


def test_a_signal_of_a_scored_partition_belongs_to_it() -> None:
    assert POINTS.locate(_signal("2013-01-20", _time("2013-01-20"))) == "2013-01-20"
    assert POINTS.owns(_signal("2013-01-20", _time("2013-01-20")))


def test_a_signal_of_an_unscored_partition_moves_forward_never_back() -> None:
    # The 01-27 failure cannot explain the 01-20 metric: it belongs to the next scored week.
    unscored = _signal("2013-01-27", _time("2013-01-27"))
    assert POINTS.locate(unscored) == "2013-02-03"
    assert not POINTS.owns(unscored)
    # after the last scored partition it explains nothing observed yet
    assert POINTS.locate(_signal("2013-02-10", _time("2013-02-10"))) is None
    # before the first one it belongs to the first
    assert POINTS.locate(_signal("2013-01-06", _time("2013-01-06"))) == "2013-01-13"


def test_a_signal_without_partition_belongs_to_the_last_partition_at_or_before_it() -> None:
    assert POINTS.locate(_signal(None, _time("2013-01-20") + timedelta(days=3))) == "2013-01-20"
    assert POINTS.locate(_signal(None, _time("2013-01-13") - timedelta(days=1))) is None


def test_a_rollback_to_an_earlier_code_version_is_not_a_candidate() -> None:
    from dagster_corrmon.core.attribution import CandidateEvent
    from dagster_corrmon.correlation.gather import build_candidates

    def change(day: str, previous: str, version: str, *, observed: int = 0) -> Signal:
        return Signal(
            kind=SignalKind.CODE_VERSION_CHANGE,
            asset_key="features",
            name="code_version",
            event_time=_time(day),
            observed_at=_time(day) + timedelta(hours=observed),
            passed=False,
            severity=Severity.WARN,
            partition=day,
            code_version=version,
            metadata={"previous": previous},
        )

    weeks = ("2013-01-06", "2013-01-13", "2013-01-20", "2013-01-27", "2013-02-03")
    points = MetricPoints(partitions=weeks, times=tuple(_time(day) for day in weeks))
    signals = [
        change("2013-01-13", "v1", "buggy-2"),  # the buggy release
        change("2013-01-13", "v1", "buggy-2", observed=5),  # the same change, recorded again
        change("2013-01-27", "buggy-2", "v1"),  # its rollback: back to code already judged
        change("2013-02-03", "v1", "v3"),  # a new release
    ]
    candidates = build_candidates(signals, points=points, distances={"features": 1})
    assert len(candidates) == 2
    assert [(c.kind, c.partition) for c in candidates if isinstance(c, CandidateEvent)] == [
        (SignalKind.CODE_VERSION_CHANGE, "2013-01-13"),
        (SignalKind.CODE_VERSION_CHANGE, "2013-02-03"),
    ]


def test_the_engines_narrow_read_gives_the_candidates_of_every_stored_signal() -> None:
    """The correlation job reads only what candidate building can use (no passed events, no
    metadata but where it is read); the candidates are those of all the stored signals."""
    from dagster_corrmon.correlation.engine import (
        _upstream_signals,  # pyright: ignore[reportPrivateUsage]
    )
    from dagster_corrmon.correlation.gather import build_candidates
    from dagster_corrmon.store import CorrmonStore

    days = [f"2013-01-{d:02d}" for d in range(1, 15)]
    points = MetricPoints(partitions=tuple(days), times=tuple(_time(d) for d in days))
    signals: list[Signal] = []
    for index, day in enumerate(days):
        broken = index >= 9
        at = {"asset_key": "raw_weather", "event_time": _time(day), "partition": day}
        signals += [
            Signal(
                kind=SignalKind.DATA_QUALITY,
                name="null_fraction",
                column="temp",
                value=0.5 * broken,
                passed=not broken,
                **at,
            ),
            Signal(
                kind=SignalKind.DRIFT,
                name="drift",
                column="temp",
                value=0.1 + broken,
                passed=not broken,
                metadata={"importance": 0.3},
                **at,
            ),
            Signal(
                kind=SignalKind.SCHEMA_CHANGE,
                name="schema_observation",
                passed=True,
                metadata={"big": 1},
                **at,
            ),
            Signal(
                kind=SignalKind.FRESHNESS,
                name="partition_arrival",
                passed=index != 4,
                severity=Severity.INFO if index != 4 else Severity.ERROR,
                **at,
            ),
            Signal(kind=SignalKind.METRIC, name="rows", value=float(index), **at),
        ]
        if index == 11:
            signals += [
                Signal(
                    kind=SignalKind.SCHEMA_CHANGE,
                    name="column_removed",
                    column="wind",
                    passed=False,
                    severity=Severity.ERROR,
                    **at,
                ),
                Signal(
                    kind=SignalKind.CODE_VERSION_CHANGE,
                    name="code_version",
                    passed=False,
                    code_version="v2",
                    metadata={"previous": "v1"},
                    **at,
                ),
            ]
    store = CorrmonStore("sqlite://")
    store.write_signals(signals)
    start = _time(days[0]) - timedelta(days=1)
    narrow = _upstream_signals(store, ["raw_weather"], start=start)
    everything = store.read_signals(asset_keys=["raw_weather"], start=start)
    assert len(narrow) < len(everything)
    distances = {"raw_weather": 2}
    expected = build_candidates(everything, points=points, distances=distances)
    assert build_candidates(narrow, points=points, distances=distances) == expected
    assert {type(c).__name__ for c in expected} == {"CandidateSeries", "CandidateEvent"}


def test_metric_intervals_and_failed_checks_reach_the_engine() -> None:
    """The metric check's bootstrap interval and a check's ERROR failures are what a defect-
    anchored detection reads; a WARN failure or a passed check is no defect."""
    from dagster_corrmon.core.attribution import CandidateSeries
    from dagster_corrmon.correlation.gather import build_candidates, build_metric_series

    metric = [
        Signal(
            kind=SignalKind.METRIC,
            asset_key="evaluation",
            name="roc_auc",
            partition=day,
            event_time=_time(day),
            value=0.9,
            metadata={"ci_low": 0.85, "ci_high": 0.95} if day != WEEKS[1] else {},
        )
        for day in WEEKS
    ]
    found = build_metric_series(
        metric, asset_key="evaluation", metric="roc_auc", higher_is_better=True
    )
    assert found is not None
    series, points = found
    assert series.ci_low is not None and series.ci_high is not None
    assert series.ci_low[0] == 0.85 and series.ci_high[2] == 0.95
    assert series.ci_low[1] != series.ci_low[1]  # NaN: no interval that partition

    def nulls(day: str, *, passed: bool, severity: Severity) -> Signal:
        return Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key="raw_weather",
            name="null_fraction",
            column="temp",
            partition=day,
            event_time=_time(day),
            value=0.5,
            passed=passed,
            severity=severity,
        )

    signals = [
        nulls(WEEKS[0], passed=True, severity=Severity.INFO),
        nulls(WEEKS[1], passed=False, severity=Severity.WARN),
        nulls(WEEKS[2], passed=False, severity=Severity.ERROR),
    ]
    (candidate,) = build_candidates(signals, points=points, distances={"raw_weather": 2})
    assert isinstance(candidate, CandidateSeries)
    assert candidate.failed_partitions == (WEEKS[2],)
