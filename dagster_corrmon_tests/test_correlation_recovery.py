"""An incident resolves itself once the metric has been back at its baseline for a while."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np

from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.incident import IncidentStatus
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.correlation.engine import correlate
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.store import CorrmonStore

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MODEL = MonitoredModel(
    model=dg.AssetKey("model"),
    evaluation=dg.AssetKey("evaluation"),
    metric="roc_auc",
    config=AttributionConfig(min_reference=12),
)
LINEAGE = {"evaluation": ["features"], "features": ["raw"], "raw": []}


def _history(days: int, bad: range) -> list[Signal]:
    rng = np.random.default_rng(3)
    signals = []
    for day in range(days):
        when = START + dt.timedelta(days=day)
        faulty = day in bad
        partition = when.date().isoformat()
        signals.append(
            Signal(
                kind=SignalKind.METRIC,
                asset_key="evaluation",
                name="roc_auc",
                event_time=when,
                partition=partition,
                value=(0.65 if faulty else 0.82) + 0.01 * rng.standard_normal(),
            )
        )
        signals.append(
            Signal(
                kind=SignalKind.DATA_QUALITY,
                asset_key="raw",
                name="null_fraction",
                column="temp",
                event_time=when,
                partition=partition,
                value=0.7 if faulty else 0.01 + 0.002 * rng.random(),
                passed=not faulty,
            )
        )
    return signals


def test_the_incident_resolves_after_the_metric_recovers(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance, CorrmonStore(f"sqlite:///{tmp_path}/c.db") as store:
        store.write_signals(_history(18, bad=range(14, 18)))
        ongoing = correlate(
            instance=instance, store=store, model=MODEL, lineage=LINEAGE, now=START
        ).incident
        assert ongoing is not None and ongoing.status is IncidentStatus.OPEN
        assert ongoing.top_cause is not None and ongoing.top_cause.column == "temp"

        # the feed is fixed: nine partitions follow, the metric settles back at its baseline
        store.write_signals(_history(27, bad=range(14, 18)))
        later = correlate(instance=instance, store=store, model=MODEL, lineage=LINEAGE, now=START)
        assert later.incident is not None and later.incident.id == ongoing.id
        assert later.incident.status is IncidentStatus.RESOLVED
        history = store.incident_history(ongoing.id)
        assert "back at its baseline" in history[-1].note
