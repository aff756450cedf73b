"""A persistent defect must not become the baseline: failed observations never teach it."""

import datetime as dt
from pathlib import Path

from dagster_corrmon.checks._baseline import BaselinePolicy, judge_against_history
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.store import CorrmonStore

START = dt.datetime(2013, 3, 1, tzinfo=dt.UTC)


def _signal(day: int, value: float, passed: bool) -> Signal:
    return Signal(
        kind=SignalKind.DATA_QUALITY,
        asset_key="raw_schedule",
        name="null_fraction",
        column="dest",
        event_time=START + dt.timedelta(days=day),
        partition=(START + dt.timedelta(days=day)).date().isoformat(),
        value=value,
        passed=passed,
        severity=Severity.INFO if passed else Severity.ERROR,
    )


def test_a_defect_that_persists_keeps_failing(tmp_path: Path) -> None:
    with CorrmonStore(f"sqlite:///{tmp_path / 'c.db'}") as store:
        clean = [_signal(day, 0.01 + 0.001 * (day % 3), True) for day in range(10)]
        broken = [_signal(day, 0.9, False) for day in range(10, 16)]
        store.write_signals([*clean, *broken])
        verdict = judge_against_history(
            store,
            asset_key="raw_schedule",
            name="null_fraction",
            kind=SignalKind.DATA_QUALITY,
            column="dest",
            value=0.9,
            event_time=START + dt.timedelta(days=16),
            direction="increase",
            policy=BaselinePolicy(min_history=7),
        )
    assert verdict.status == "anomalous"
    assert verdict.history_size == 10  # the six failed partitions were left out
    assert verdict.expected is not None and verdict.expected < 0.02
