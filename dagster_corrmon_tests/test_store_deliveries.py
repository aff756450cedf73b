"""The alert delivery log's contract, on SQLite and on the real PostgreSQL.

Claims are exclusive (one sender per step, even racing from many engines), a sent step stays
sent, and a version-1 database gains the table through ``upgrade`` without losing anything.
"""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from dagster_corrmon.core.incident import Incident, IncidentClass
from dagster_corrmon.store import SCHEMA_VERSION, CorrmonStore
from dagster_corrmon.store import schema as store_schema

NOW = dt.datetime(2024, 5, 6, 12, tzinfo=dt.UTC)
KEY: dict[str, Any] = {"incident_id": "inc-1", "step": "opened", "route": "hook"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'corrmon.db'}"
    return request.getfixturevalue("postgres_url")


def _incident() -> Incident:
    return Incident(
        id="inc-1",
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        created_at=NOW,
    )


def _claim(store: CorrmonStore, now: dt.datetime = NOW) -> bool:
    return store.claim_delivery(
        **KEY,
        channel="webhook",
        severity="warn",
        now=now,
        lease_until=now + dt.timedelta(minutes=5),
    )


def test_a_step_is_claimed_once_and_stays_sent(database_url: str) -> None:
    with CorrmonStore(database_url) as store:
        store.upsert_incident(_incident())
        assert _claim(store)
        assert not _claim(store)  # the lease holds
        store.finish_delivery(
            **KEY,
            now=NOW,
            payload={"x": 1},
            error="webhook: HTTP 503",
            next_attempt_at=NOW + dt.timedelta(minutes=1),
        )
        (row,) = store.deliveries()
        assert (row.status, row.attempts, row.last_error) == ("failed", 1, "webhook: HTTP 503")
        assert row.next_attempt_at == NOW + dt.timedelta(minutes=1)
        assert _claim(store, NOW + dt.timedelta(minutes=1))
        store.finish_delivery(**KEY, now=NOW + dt.timedelta(minutes=1), payload={"x": 2})
        assert not _claim(store, NOW + dt.timedelta(hours=1))  # sent is final
        store.hold_delivery(
            **KEY, channel="webhook", severity="warn", status="superseded", reason="late", now=NOW
        )
        (row,) = store.deliveries()
        assert (row.status, row.attempts, row.payload) == ("sent", 2, {"x": 2})
        assert store.count_sent(route="hook", since=NOW) == 1
        assert store.count_sent(route="hook", since=NOW + dt.timedelta(hours=1)) == 0
        assert store.count_sent(route="other", since=NOW) == 0


def test_a_lease_that_ran_out_can_be_claimed_again(database_url: str) -> None:
    with CorrmonStore(database_url) as store:
        store.upsert_incident(_incident())
        assert _claim(store)  # the sender died before finishing
        assert _claim(store, NOW + dt.timedelta(minutes=6))


def test_racing_claims_from_many_engines_have_one_winner(database_url: str) -> None:
    with CorrmonStore(database_url) as store:
        store.upsert_incident(_incident())

    def claim(_: int) -> bool:
        with CorrmonStore(database_url) as own:
            return _claim(own)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, range(16)))
    assert results.count(True) == 1


def test_a_version_1_database_gains_the_delivery_log_on_upgrade(database_url: str) -> None:
    with CorrmonStore(database_url) as store:
        store.upsert_incident(_incident())
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        store_schema.alert_deliveries.drop(connection)
        connection.execute(
            sa.update(store_schema.store_meta)
            .where(store_schema.store_meta.c.key == store_schema.SCHEMA_VERSION_KEY)
            .values(value="1")
        )
    engine.dispose()
    with CorrmonStore(database_url, check_schema=False) as store:
        result = store.upgrade()
        assert (result.from_version, result.to_version) == (1, SCHEMA_VERSION)
    with CorrmonStore(database_url) as store:
        assert store.get_incident("inc-1") is not None
        assert _claim(store)
