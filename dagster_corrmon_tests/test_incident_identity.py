"""Which active incident a newly found shift updates, and when it opens a new one."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from dagster_corrmon.core.attribution import AttributionResult, ShiftDetection
from dagster_corrmon.core.incident import Incident, IncidentClass, IncidentStatus
from dagster_corrmon.correlation.engine import _incident_for  # pyright: ignore[reportPrivateUsage]
from dagster_corrmon.correlation.gather import MetricPoints
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.store import CorrmonStore

MODEL = MonitoredModel(model=dg.AssetKey("model"), evaluation=dg.AssetKey("evaluation"))
WEEKS = [datetime(2013, 9, 1, tzinfo=UTC) + timedelta(weeks=i) for i in range(14)]  # to 12-01
POINTS = MetricPoints(partitions=tuple(t.date().isoformat() for t in WEEKS), times=tuple(WEEKS))


def _week(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _shift(onset: str, end: str, classification: IncidentClass) -> AttributionResult:
    partitions = POINTS.partitions
    first, last = partitions.index(onset), partitions.index(end)
    shift = ShiftDetection(
        metric="roc_auc",
        higher_is_better=True,
        onset_index=first,
        onset_partition=onset,
        detection_index=last,
        detection_partition=end,
        end_partition=end,
        degraded_partitions=partitions[first : last + 1],
        baseline_value=0.9,
        degraded_value=0.7,
        loss=0.2,
        alarm_count=last - first + 1,
        change_point_index=first,
        change_point_significance=0.001,
        sustained=True,
    )
    return AttributionResult(
        metric="roc_auc",
        shift=shift,
        classification=classification,
        consequential=True,
        causes=(),
    )


def _existing(
    store: CorrmonStore,
    onset: str,
    end: str,
    classification: IncidentClass = IncidentClass.CONCEPT_DRIFT,
    status: IncidentStatus = IncidentStatus.OPEN,
    *,
    detected: bool = True,
) -> Incident:
    incident = Incident(
        id="inc-existing",
        model_asset=MODEL.name,
        metric="roc_auc",
        classification=classification,
        onset_time=_week(onset),
        onset_partition=onset,
        detected_time=_week(onset) if detected else None,
        detected_partition=onset if detected else None,
        window_start=_week(onset),
        window_end=_week(end),
    )
    store.upsert_incident(incident)
    if status is not IncidentStatus.OPEN:
        store.set_incident_status(incident.id, status)
    return incident


@pytest.fixture
def store() -> CorrmonStore:
    return CorrmonStore("sqlite://")


def _id_for(store: CorrmonStore, result: AttributionResult) -> str:
    return _incident_for(store, MODEL, result, POINTS, now=WEEKS[-1]).id


def test_an_onset_moved_a_little_is_the_same_incident(store: CorrmonStore) -> None:
    _existing(store, "2013-11-10", "2013-11-17", classification=IncidentClass.DATA_FAULT)
    # Within 14 days of the recorded onset, whatever the diagnosis now.
    assert _id_for(store, _shift("2013-11-03", "2013-11-24", IncidentClass.CONCEPT_DRIFT)) == (
        "inc-existing"
    )


@pytest.mark.parametrize("now", [IncidentClass.CONCEPT_DRIFT, IncidentClass.DATA_FAULT])
def test_a_drift_dated_weeks_earlier_over_the_same_window_is_the_same_incident(
    store: CorrmonStore, now: IncidentClass
) -> None:
    # The demo's concept drift: first dated 11-10, four weeks later dated 10-13 — and a pass in
    # between called it a data fault. One degradation, one incident, the latest diagnosis.
    _existing(store, "2013-11-10", "2013-11-17")
    assert _id_for(store, _shift("2013-10-13", "2013-12-01", now)) == "inc-existing"


@pytest.mark.parametrize(
    ("existing", "later", "why"),
    [
        (
            ("2013-11-10", "2013-11-17", "upstream_failure", "at risk"),
            ("2013-10-13", "2013-12-01", "concept_drift"),
            "an at-risk incident has no shift of its own",
        ),
        (
            ("2013-09-01", "2013-09-15", "concept_drift", "open"),
            ("2013-10-13", "2013-12-01", "concept_drift"),
            "windows apart",
        ),
        (
            ("2013-11-10", "2013-11-17", "concept_drift", "resolved"),
            ("2013-10-13", "2013-12-01", "concept_drift"),
            "resolved",
        ),
    ],
)
def test_a_new_incident_otherwise(
    store: CorrmonStore, existing: tuple[str, str, str, str], later: tuple[str, str, str], why: str
) -> None:
    onset, end, classification, status = existing
    at_risk = status == "at risk"
    _existing(
        store,
        onset,
        end,
        IncidentClass(classification),
        IncidentStatus.OPEN if at_risk else IncidentStatus(status),
        detected=not at_risk,
    )
    found = _id_for(store, _shift(later[0], later[1], IncidentClass(later[2])))
    assert found != "inc-existing", why


def test_a_shift_just_after_an_open_incident_continues_it_and_keeps_its_history(
    store: CorrmonStore,
) -> None:
    # Open until 10-20; a pass whose shift starts 11-03 (two weekly partitions later, within the
    # episode gap) sees the same degradation: one incident, still dated from 10-13.
    _existing(store, "2013-10-13", "2013-10-20", classification=IncidentClass.DATA_FAULT)
    later = _shift("2013-11-03", "2013-11-10", IncidentClass.DATA_FAULT)
    updated = _incident_for(store, MODEL, later, POINTS, now=WEEKS[-1])
    assert updated.id == "inc-existing"
    assert (updated.onset_partition, updated.detected_partition) == ("2013-10-13", "2013-10-13")
    assert updated.window_end == _week("2013-11-10")
    # Beyond the gap (more than episode_gap partitions after it), it is a new episode.
    apart = _shift("2013-11-17", "2013-11-24", IncidentClass.DATA_FAULT)
    assert _id_for(store, apart) != "inc-existing"
