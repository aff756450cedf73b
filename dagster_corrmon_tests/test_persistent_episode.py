"""A persistent change is one incident that stays open, pass after pass.

Seattle's daily weather (vega_datasets): a gradient-boosting model trained on 2012 predicts the
day's maximum temperature; 2013–2014 are scored in weekly partitions, each week's RMSE with its
bootstrap interval written to a real store as the model-evaluation check writes it. From the
week of 2013-10-07 on, the feed reports ``temp_min`` in °F instead of °C, for good (through
April 2014: a cold-season change, the model extrapolates the hot end of its training range and
the RMSE triples; in summer °F and °C lows map to similar predictions). The correlation pass
runs every week (``correlate`` on a real, empty Dagster instance) with a 12-partition
lookback: after 12 weeks the lookback holds only degraded weeks, and a baseline
that learned from them would call the change the new normal. It must not: the open incident's
window is held out of the baseline, so every pass finds the same shift and updates the one
incident, which keeps its onset and first detection.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.metrics import evaluate_regression
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.correlation.engine import correlate
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.datasets import package_dir
from dagster_corrmon.store import ACTIVE_STATUSES, CorrmonStore

FEATURES = ["temp_min", "precipitation", "wind"]
CHANGE = datetime(2013, 10, 7, tzinfo=UTC)
END = datetime(2014, 5, 5, tzinfo=UTC)
MODEL = MonitoredModel(
    model=dg.AssetKey("model"),
    evaluation=dg.AssetKey("evaluation"),
    metric="rmse",
    lookback_partitions=12,
    config=AttributionConfig(min_reference=10),
)
LINEAGE = {"evaluation": ["model", "features"], "model": ["features"], "features": []}


@pytest.fixture(scope="module")
def weekly_rmse() -> list[Signal]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    weather = pd.read_csv(package_dir("vega_datasets") / "_data" / "seattle-weather.csv")
    weather["date"] = pd.to_datetime(weather["date"]).dt.tz_localize(UTC)
    train = weather.loc[weather["date"].dt.year == 2012]
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0)
    model.fit(train[FEATURES], train["temp_max"])
    signals: list[Signal] = []
    week = datetime(2013, 1, 7, tzinfo=UTC)
    while week < END:
        batch = weather.loc[
            (weather["date"] >= week) & (weather["date"] < week + timedelta(weeks=1))
        ].copy()
        if week >= CHANGE:
            batch["temp_min"] = batch["temp_min"] * 1.8 + 32
        rmse = evaluate_regression(
            batch["temp_max"], model.predict(batch[FEATURES]), n_resamples=200, metrics=["rmse"]
        )["rmse"]
        signals.append(
            Signal(
                kind=SignalKind.METRIC,
                asset_key="evaluation",
                name="rmse",
                partition=week.date().isoformat(),
                event_time=week,
                value=rmse.value,
                metadata={"ci_low": rmse.ci_low, "ci_high": rmse.ci_high},
            )
        )
        week += timedelta(weeks=1)
    return signals


def test_a_persistent_unit_change_is_one_incident_that_stays_open(
    weekly_rmse: list[Signal], tmp_path: Path
) -> None:
    change = next(i for i, s in enumerate(weekly_rmse) if s.event_time >= CHANGE)
    values = np.array([s.value for s in weekly_rmse], dtype=float)
    assert values[change:].min() > values[:change].max()  # the change really is persistent
    seen: list[str] = []
    with dg.instance_for_test() as instance, CorrmonStore(f"sqlite:///{tmp_path}/c.db") as store:
        store.write_signals(weekly_rmse[: change - 1])
        for signal in weekly_rmse[change - 1 :]:
            store.write_signals([signal])
            outcome = correlate(
                instance=instance,
                store=store,
                model=MODEL,
                lineage=LINEAGE,
                now=signal.event_time,
            )
            if signal.event_time >= CHANGE:
                seen.append(outcome.incident.id if outcome.incident is not None else "")
        incidents = store.list_incidents(model_asset="model")
    # Detected within a partition of the change; from then on, 30 weekly passes (18 of them with
    # only degraded weeks in the lookback) find it and update the same incident.
    detected = next(i for i, found in enumerate(seen) if found)
    assert detected <= 1
    assert len(seen) == len(weekly_rmse) - change
    assert all(seen[detected:]), f"passes without the incident: {seen}"
    assert len(set(seen[detected:])) == 1
    (incident,) = incidents
    assert incident.status in ACTIVE_STATUSES and incident.consequential
    assert incident.onset_partition == weekly_rmse[change].partition
    assert incident.detected_partition == weekly_rmse[change + detected].partition
    assert incident.window_end == weekly_rmse[-1].event_time
