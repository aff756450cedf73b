"""An at-risk incident (a defect seen, no loss measured) does not stay open forever.

It resolves when the faulty partitions are re-materialized clean (the checks that failed there
pass on the new materialization), or when labels for all its partitions arrived and the
correlation pass confirmed no loss over them (non-consequential). Until then it stands — and
blocks retraining, as the retrain guard reads open data-fault incidents.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dagster_corrmon.core.incident import Cause, Incident, IncidentClass
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.engine import at_risk_resolution
from dagster_corrmon.store import CorrmonStore

DAY = datetime(2013, 7, 8, tzinfo=UTC)


def _nulls(*, passed: bool, observed: datetime, version: str) -> Signal:
    return Signal(
        kind=SignalKind.DATA_QUALITY,
        asset_key="raw_departures",
        name="null_fraction",
        column="dep_delay",
        partition="2013-07-08",
        event_time=DAY,
        observed_at=observed,
        value=0.7 if not passed else 0.0,
        passed=passed,
        severity=Severity.INFO if passed else Severity.ERROR,
        data_version=version,
    )


@pytest.fixture
def store(tmp_path: Path) -> CorrmonStore:
    return CorrmonStore(f"sqlite:///{tmp_path}/c.db")


def _at_risk(fault: Signal) -> Incident:
    cause = Cause(
        rank=1,
        kind="data_quality",
        asset_key="raw_departures",
        column="dep_delay",
        score=1.0,
        signal_keys=(fault.idempotency_key,),
    )
    return Incident(
        id="risk-1",
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        consequential=False,
        onset_time=DAY,
        window_start=DAY,
        window_end=DAY,
        causes=(cause,),
        cited_signal_keys=cause.signal_keys,
        metadata={"provisional": True},
    )


def test_labels_showing_no_loss_close_it_as_non_consequential(store: CorrmonStore) -> None:
    fault = _nulls(passed=False, observed=DAY, version="bad")
    store.write_signals([fault])
    risk = _at_risk(fault)
    # Labels not there yet for the faulty partition: it stands.
    before = DAY - timedelta(days=1)
    assert at_risk_resolution(store, risk, labelled_until=before, performance=None) is None
    note = at_risk_resolution(store, risk, labelled_until=DAY, performance=None)
    assert note is not None and note.startswith("non-consequential")
    # A consequential performance incident over its window: the risk materialized, it stands.
    loss = Incident(
        id="inc-1",
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        consequential=True,
        window_start=DAY,
        window_end=DAY + timedelta(days=2),
    )
    assert at_risk_resolution(store, risk, labelled_until=DAY, performance=loss) is None
    # A resolved or non-provisional incident is not this rule's business.
    assert at_risk_resolution(store, loss, labelled_until=DAY, performance=None) is None


def test_a_clean_re_materialization_closes_it_as_repaired(store: CorrmonStore) -> None:
    fault = _nulls(passed=False, observed=DAY, version="bad")
    store.write_signals([fault])
    risk = _at_risk(fault)
    labels_pending = DAY - timedelta(days=1)
    assert at_risk_resolution(store, risk, labelled_until=labels_pending, performance=None) is None
    # The backfill after the fix: the same check passes on the re-materialized partition.
    store.write_signals([_nulls(passed=True, observed=DAY + timedelta(days=2), version="good")])
    note = at_risk_resolution(store, risk, labelled_until=labels_pending, performance=None)
    assert note is not None and note.startswith("repaired")
