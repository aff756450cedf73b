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
