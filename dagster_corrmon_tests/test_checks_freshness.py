"""Freshness checks in a real instance: late partitions, gaps, backfills, history, max age."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_corrmon.checks import build_freshness_checks
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    """The evaluation's metadata as plain values."""
    return {key: value.value for key, value in evaluation.metadata.items()}


TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
recent = dg.DailyPartitionsDefinition(start_date=(TODAY - timedelta(days=6)).strftime("%Y-%m-%d"))
old = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")


def day(offset: int) -> str:
    """The partition key ``offset`` days before today (1 = yesterday, the newest partition)."""
    return (TODAY - timedelta(days=offset)).strftime("%Y-%m-%d")


@dg.asset(partitions_def=recent)
def feed() -> pd.DataFrame:
    return pd.DataFrame({"x": [1]})


@dg.asset(partitions_def=old)
def archive() -> pd.DataFrame:
    return pd.DataFrame({"x": [1]})


@dg.asset
def snapshot() -> pd.DataFrame:
    return pd.DataFrame({"x": [1]})


@pytest.fixture
def setting(tmp_path: Path) -> Iterator[tuple[dg.DagsterInstance, str]]:
    with dg.instance_for_test() as instance:
        yield instance, f"sqlite:///{tmp_path}/c.db"


def _check(assets, checks, instance, url, *, partition=None, tags=None) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [*assets, *checks],
        instance=instance,
        partition_key=partition,
        resources={"corrmon": CorrmonResource(database_url=url)},
        tags=tags,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_partition_arriving_after_its_deadline_is_late(setting) -> None:
    instance, url = setting
    strict = build_freshness_checks(assets=[feed], lookback_partitions=0)
    before = datetime.now(UTC)
    late = _check([feed], strict, instance, url, partition=day(1))
    after = datetime.now(UTC)
    assert not late.passed and late.severity == dg.AssetCheckSeverity.WARN
    lateness = meta(late)["corrmon/lateness_seconds"]
    # Yesterday's partition ends at midnight; it arrived now.
    assert (before - TODAY).total_seconds() - 1 <= lateness <= (after - TODAY).total_seconds() + 1
    assert meta(late)["corrmon/expected_by"] == TODAY.timestamp()

    lenient = build_freshness_checks(
        assets=[feed], allowed_lateness=timedelta(days=2), lookback_partitions=0
    )
    on_time = _check([feed], lenient, instance, url, partition=day(2))
    assert on_time.passed, on_time.description
    with CorrmonStore(url) as store:
        (signal,) = store.read_signals(
            asset_key="feed", name="partition_lateness", partition=day(1)
        )
    assert signal.kind == SignalKind.FRESHNESS and signal.severity == Severity.WARN
    assert signal.value == pytest.approx(lateness)
    assert signal.event_time == TODAY - timedelta(days=1)


def test_missing_partitions_are_reported_once_each(setting) -> None:
    instance, url = setting
    checks = build_freshness_checks(
        assets=[feed], allowed_lateness=timedelta(days=7), lookback_partitions=4
    )
    assert _check([feed], checks, instance, url, partition=day(6)).passed  # the first partition
    gap = _check([feed], checks, instance, url, partition=day(3))
    assert not gap.passed and gap.severity == dg.AssetCheckSeverity.ERROR
    assert meta(gap)["corrmon/missing_partitions"] == [day(5), day(4)]
    again = _check([feed], checks, instance, url, partition=day(2))
    assert meta(again)["corrmon/missing_partitions"] == [day(5), day(4)]
    with CorrmonStore(url) as store:
        missing = store.read_signals(asset_key="feed", name="partition_missing")
    # Seen by two later partitions, stored once per missing partition.
    assert sorted(str(s.partition) for s in missing) == [day(5), day(4)]
    assert all(s.passed is False and s.severity == Severity.ERROR for s in missing)
    assert [s.event_time for s in missing] == [TODAY - timedelta(days=5), TODAY - timedelta(days=4)]
    # A gap filled in later is judged on its own arrival, and no longer counts as missing.
    filled = _check([feed], checks, instance, url, partition=day(4))
    assert not filled.passed
    assert meta(filled)["corrmon/missing_partitions"] == [day(5)]


def test_backfills_and_historical_loads_are_not_arrivals(setting) -> None:
    instance, url = setting
    strict = build_freshness_checks(assets=[feed], lookback_partitions=0)
    backfill = _check(
        [feed], strict, instance, url, partition=day(1), tags={"dagster/backfill": "bf-1"}
    )
    assert backfill.passed and "backfill" in (backfill.description or "")

    historical = build_freshness_checks(assets=[archive], lookback_partitions=0)
    assert _check([archive], historical, instance, url, partition="2024-01-02").passed
    judged = build_freshness_checks(
        assets=[archive], lookback_partitions=0, historical_horizon=None, late_severity="error"
    )
    verdict = _check([archive], judged, instance, url, partition="2024-01-03")
    assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.ERROR


def test_unpartitioned_assets_are_judged_by_age(setting) -> None:
    instance, url = setting
    fresh = _check(
        [snapshot],
        build_freshness_checks(assets=[snapshot], max_age=timedelta(hours=1)),
        instance,
        url,
    )
    assert fresh.passed
    stale = _check(
        [snapshot], build_freshness_checks(assets=[snapshot], max_age=timedelta(0)), instance, url
    )
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    with CorrmonStore(url) as store:
        ages = store.read_signals(asset_key="snapshot", name="asset_age")
    assert [s.passed for s in ages] == [True, False]
