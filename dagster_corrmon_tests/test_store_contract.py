"""One contract for the corrmon store, run against SQLite and against the real PostgreSQL.

The PostgreSQL half needs ``CORRMON_TEST_POSTGRES_URL`` (see conftest.py); without it those
parameters skip with that reason.
"""

import dataclasses
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from dagster_corrmon.core.incident import (
    AffectedRun,
    Cause,
    Incident,
    IncidentClass,
    IncidentStatus,
)
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError, SchemaVersionError, StoreError
from dagster_corrmon.store import (
    SCHEMA_VERSION,
    CorrmonStore,
    default_database_url,
    hide_password,
    normalize_database_url,
)
from dagster_corrmon.store import schema as store_schema

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'corrmon.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(database_url: str) -> Iterator[CorrmonStore]:
    with CorrmonStore(database_url) as opened:
        yield opened


def metric(day: int, *, asset: str = "model", name: str = "roc_auc", **fields) -> Signal:
    """One daily-partitioned metric signal: partition makes each day its own observation."""
    fields.setdefault("value", 0.9 - day / 100)
    fields.setdefault("observed_at", T0 + timedelta(days=day, hours=1))
    return Signal(
        kind=fields.pop("kind", SignalKind.METRIC),
        asset_key=asset,
        name=name,
        event_time=T0 + timedelta(days=day),
        partition=fields.pop("partition", f"2024-03-{day + 1:02d}"),
        **fields,
    )


def full_incident(incident_id: str = "INC-1", **overrides) -> Incident:
    cited = metric(3)
    cause_signal = metric(2, kind=SignalKind.DRIFT, asset="features", name="drift", column="dep")
    base = Incident(
        id=incident_id,
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        consequential=True,
        onset_time=T0 + timedelta(days=2),
        onset_partition="2024-03-03",
        detected_time=T0 + timedelta(days=3, hours=2),
        detected_partition="2024-03-04",
        window_start=T0 + timedelta(days=2),
        window_end=T0 + timedelta(days=5),
        baseline_value=0.91,
        observed_value=0.74,
        summary="**dep** nulls jumped in `raw/flights`",
        causes=(
            Cause(
                rank=1,
                kind="data_quality",
                asset_key="raw/flights",
                score=0.93,
                column="dep_delay",
                partition="2024-03-03",
                event_time=T0 + timedelta(days=2, minutes=5),
                p_value=0.0012,
                q_value=0.0049,
                repair_recovery=0.87,
                lineage_distance=3,
                shift_size=4.25,
                feature_importance=0.31,
                signal_keys=(cause_signal.idempotency_key,),
                data_versions=("dv-bad-1", "dv-bad-2"),
                evidence={"null_fraction": {"before": 0.01, "after": 0.4}, "tests": ["ks", "z"]},
            ),
            Cause(rank=2, kind="code_change", asset_key="features", score=0.2),
        ),
        affected_runs=(
            AffectedRun(run_id="run-train", asset_key="model", role="training", reason="dv-bad-1"),
            AffectedRun(
                run_id="run-score",
                asset_key="predictions",
                role="scoring",
                partition="2024-03-04",
                at_risk=True,
            ),
        ),
        cited_signal_keys=(cited.idempotency_key,),
        metadata={"detector": "cusum", "h": 5},
    )
    return dataclasses.replace(base, **overrides)


def without_stamps(incident: Incident) -> Incident:
    return dataclasses.replace(incident, created_at=None, updated_at=None)


# ---------------------------------------------------------------------------- schema


def test_a_new_database_is_created_at_the_current_version(store: CorrmonStore) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert sorted(store_schema.MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    again = store.upgrade()
    assert (again.from_version, again.to_version, again.changed) == (
        SCHEMA_VERSION,
        SCHEMA_VERSION,
        False,
    )


def _set_stored_version(database_url: str, version: int) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(store_schema.store_meta)
            .where(store_schema.store_meta.c.key == store_schema.SCHEMA_VERSION_KEY)
            .values(value=str(version))
        )
    engine.dispose()


def test_an_older_schema_is_refused_until_upgraded(database_url: str) -> None:
    with CorrmonStore(database_url) as store:
        store.write_signals([metric(0)])
    _set_stored_version(database_url, SCHEMA_VERSION - 1)

    with pytest.raises(SchemaVersionError) as raised:
        CorrmonStore(database_url)
    message = str(raised.value)
    assert f"schema version {SCHEMA_VERSION - 1}" in message
    assert f"needs version {SCHEMA_VERSION}" in message
    assert "corrmon db upgrade" in message

    with CorrmonStore(database_url, check_schema=False) as store:
        result = store.upgrade()
    assert (result.from_version, result.to_version) == (SCHEMA_VERSION - 1, SCHEMA_VERSION)
    with CorrmonStore(database_url) as store:
        assert len(store.read_signals()) == 1  # migrating kept the data


def test_a_newer_schema_is_refused_and_never_downgraded(database_url: str) -> None:
    CorrmonStore(database_url).close()
    _set_stored_version(database_url, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
        CorrmonStore(database_url)
    with (
        CorrmonStore(database_url, check_schema=False) as store,
        pytest.raises(SchemaVersionError, match="never downgraded"),
    ):
        store.upgrade()


# --------------------------------------------------------------------------- signals


def test_writes_are_idempotent_by_key(store: CorrmonStore) -> None:
    first = [metric(day) for day in range(3)]
    assert store.write_signals(first) == 3
    assert store.write_signals(first) == 0
    # A batch repeating itself and old rows stores only what is new, once.
    assert store.write_signals([*first, metric(3), metric(3)]) == 1
    assert store.write_signals([]) == 0
    # The first write wins: a re-observation with another value does not overwrite.
    assert store.write_signals([metric(0, value=0.1)]) == 0
    stored = store.read_signals()
    assert len(stored) == 4
    assert stored[0].value == pytest.approx(0.9)


def test_reads_are_ordered_by_event_time_then_write_order(store: CorrmonStore) -> None:
    days = list(range(10))
    random.Random(7).shuffle(days)
    store.write_signals([metric(day) for day in days])
    # Two signals at the same instant come back in the order they were written.
    tie_a = metric(4, name="latency_p95", partition="a")
    tie_b = metric(4, name="latency_p95", partition="b")
    store.write_signals([tie_a])
    store.write_signals([tie_b])

    times = [signal.event_time for signal in store.read_signals()]
    assert times == sorted(times)
    at_tie = store.read_signals(name="latency_p95")
    assert [signal.partition for signal in at_tie] == ["a", "b"]


def test_filters_and_half_open_window(store: CorrmonStore) -> None:
    store.write_signals(
        [
            *(metric(day) for day in range(6)),
            *(metric(day, name="f1") for day in range(6)),
            *(metric(day, asset="other") for day in range(6)),
            metric(2, kind=SignalKind.DRIFT, asset="features", name="drift", column="dep"),
            metric(2, kind=SignalKind.DRIFT, asset="features", name="drift", column="arr"),
            metric(3, kind=SignalKind.RUN_FAILURE, asset="raw", name="run_failure"),
        ]
    )
    window = store.read_signals(
        asset_key="model", name="roc_auc", start=T0 + timedelta(days=1), end=T0 + timedelta(days=4)
    )
    assert [signal.event_time for signal in window] == [
        T0 + timedelta(days=day) for day in (1, 2, 3)
    ]  # start inclusive, end exclusive

    assert len(store.read_signals(start=T0 + timedelta(days=5))) == 3
    assert [s.column for s in store.read_signals(kind=SignalKind.DRIFT)] == ["dep", "arr"]
    assert [s.name for s in store.read_signals(kind="run_failure")] == ["run_failure"]
    assert [s.column for s in store.read_signals(column="arr")] == ["arr"]
    assert [s.asset_key for s in store.read_signals(partition="2024-03-04")] == [
        "model",
        "model",
        "other",
        "raw",
    ]
    assert {s.asset_key for s in store.read_signals(asset_keys=["other", "raw"])} == {
        "other",
        "raw",
    }
    assert store.read_signals(asset_keys=[]) == []
    assert len(store.read_signals(asset_key="model", limit=4)) == 4
    with pytest.raises(ConfigError, match="unknown signal kind 'nonsense'"):
        store.read_signals(kind="nonsense")


def test_signal_points_are_the_signals_values_without_metadata(store: CorrmonStore) -> None:
    store.write_signals(
        [
            *(metric(day, metadata={"big": list(range(50))}) for day in range(6)),
            metric(2, value=None, passed=False, run_id="rerun"),  # a re-run: no value, failed
            *(metric(day, kind=SignalKind.DRIFT, column="dep") for day in range(3)),
            *(metric(day, kind=SignalKind.DRIFT, column="arr") for day in range(3)),
        ]
    )
    window = {"start": T0 + timedelta(days=1), "end": T0 + timedelta(days=4)}
    for filters in (
        {"asset_key": "model", "name": "roc_auc", "kind": SignalKind.METRIC, **window},
        {"asset_key": "model", "name": "roc_auc", "kind": "drift"},
        {"asset_key": "model", "name": "roc_auc", "kind": "drift", "column": "arr"},
    ):
        signals = store.read_signals(**filters)
        points = store.read_signal_points(**filters)
        assert signals, filters
        assert [
            (p.column, p.partition, p.event_time, p.observed_at, p.value, p.passed) for p in points
        ] == [
            (s.column, s.partition, s.event_time, s.observed_at, s.value, s.passed) for s in signals
        ]
        assert all(p.event_time.tzinfo is UTC for p in points)


def test_reads_by_kinds_and_without_metadata(store: CorrmonStore) -> None:
    written = [
        metric(1, metadata={"importance": 0.3}),
        metric(2, kind=SignalKind.DRIFT, column="dep", metadata={"importance": 0.7}),
        metric(3, kind=SignalKind.RUN_FAILURE, name="run_failure", metadata={"why": "oom"}),
    ]
    store.write_signals(written)
    assert [s.kind for s in store.read_signals(kinds=["drift", SignalKind.RUN_FAILURE])] == [
        SignalKind.DRIFT,
        SignalKind.RUN_FAILURE,
    ]
    assert store.read_signals(kinds=[]) == []
    light = store.read_signals(with_metadata=False)
    full = store.read_signals()
    # Everything but the metadata, and the key each was stored under.
    assert [s.metadata for s in light] == [{}, {}, {}]
    assert [dataclasses.replace(s, metadata={}) for s in full] == light
    assert [s.idempotency_key for s in light] == [s.idempotency_key for s in written]
    assert full == written


def test_reads_can_leave_out_what_passed(store: CorrmonStore) -> None:
    store.write_signals(
        [
            metric(1, passed=True),
            metric(2, passed=False),
            metric(3, passed=None),
            metric(4, passed=True),
        ]
    )
    kept = store.read_signals(exclude_passed=True)
    assert [(s.partition, s.passed) for s in kept] == [("2024-03-03", False), ("2024-03-04", None)]
    assert [s.partition for s in store.read_signals()] == [f"2024-03-0{d}" for d in range(2, 6)]


def test_get_signals_by_keys(store: CorrmonStore) -> None:
    signals = [metric(day) for day in range(4)]
    store.write_signals(signals)
    wanted = [signals[3].idempotency_key, signals[1].idempotency_key, "no-such-key"]
    assert store.get_signals_by_keys(wanted) == [signals[1], signals[3]]
    assert store.get_signals_by_keys([]) == []


def test_datetimes_round_trip_as_aware_utc(store: CorrmonStore) -> None:
    plus_five = timezone(timedelta(hours=5))
    local = Signal(
        kind=SignalKind.FRESHNESS,
        asset_key="raw",
        name="lateness",
        event_time=datetime(2024, 3, 2, 5, 30, 0, 123456, tzinfo=plus_five),
        observed_at=datetime(2024, 3, 2, 6, 0),  # naive = UTC
        partition="p",
    )
    before = datetime.now(UTC)
    no_observed = metric(9, observed_at=None)
    store.write_signals([local, no_observed])
    after = datetime.now(UTC)

    stored_local, stored_default = store.read_signals()
    assert stored_local.event_time == datetime(2024, 3, 2, 0, 30, 0, 123456, tzinfo=UTC)
    assert stored_local.event_time.tzinfo == UTC
    assert stored_local.observed_at == datetime(2024, 3, 2, 6, 0, tzinfo=UTC)
    assert stored_default.observed_at is not None
    assert stored_default.observed_at.tzinfo == UTC
    assert before <= stored_default.observed_at <= after
    # Window bounds in another zone mean the same instant.
    hit = store.read_signals(start=datetime(2024, 3, 2, 5, 30, 0, 123456, tzinfo=plus_five))
    assert hit[0] == stored_local


def test_signal_and_metadata_round_trip(store: CorrmonStore) -> None:
    signal = Signal(
        kind=SignalKind.DRIFT,
        asset_key="features/flights",
        name="drift",
        event_time=T0,
        observed_at=T0 + timedelta(minutes=3),
        value=0.137,
        passed=False,
        severity=Severity.WARN,
        partition="2024-03-01",
        column="dep_delay",
        run_id="8f2c",
        data_version="dv-1",
        code_version="v3",
        source="corrmon.drift",
        metadata={
            "method": "wasserstein",
            "threshold": 0.1,
            "p_value": None,
            "nested": {"bins": [1, 2.5, -3], "ok": True},
            "label": "Ünïcødé ✓",
        },
    )
    store.write_signals([signal])
    (stored,) = store.read_signals()
    assert stored == signal
    assert stored.idempotency_key == signal.idempotency_key
    # Rows are decoded without Signal's constructor: the members and forms are still its own.
    assert stored.kind is SignalKind.DRIFT and stored.severity is Severity.WARN
    assert stored.event_time.tzinfo is UTC and stored.observed_at is not None
    assert stored.observed_at.tzinfo is UTC
    assert type(stored.value) is float and stored.passed is False


def test_numpy_scalars_in_metadata_become_plain_python(store: CorrmonStore) -> None:
    store.write_signals(
        [metric(0, metadata={"rows": np.int64(7), "drifted": np.bool_(True), "d": np.float32(0.5)})]
    )
    (stored,) = store.read_signals()
    assert stored.metadata == {"rows": 7, "drifted": True, "d": 0.5}
    assert type(stored.metadata["rows"]) is int
    assert type(stored.metadata["drifted"]) is bool


def test_nan_value_means_no_value(store: CorrmonStore) -> None:
    store.write_signals([metric(0, value=float("nan")), metric(1, value=float("inf"))])
    assert [signal.value for signal in store.read_signals()] == [None, float("inf")]


@pytest.mark.parametrize(
    ("bad_metadata", "reason"),
    [({"when": object()}, "not JSON-serialisable"), ({"p": float("nan")}, "not JSON compliant")],
)
def test_a_bad_batch_stores_nothing_and_loses_nothing(
    store: CorrmonStore, bad_metadata: dict, reason: str
) -> None:
    kept = [metric(day) for day in range(3)]
    store.write_signals(kept)
    batch = [metric(5), metric(6, name="f1", metadata=bad_metadata)]
    with pytest.raises(StoreError, match=reason) as raised:
        store.write_signals(batch)
    assert "signal metric 'f1' on 'model'" in str(raised.value)
    assert store.read_signals() == kept


def test_nul_characters_are_refused_on_every_dialect(store: CorrmonStore) -> None:
    # PostgreSQL text cannot hold NUL; SQLite can: refusing on both keeps the dialects equal.
    with pytest.raises(StoreError, match="asset_key 'a\\\\x00b' contains a NUL character"):
        store.write_signals([metric(0, asset="a\x00b")])
    with pytest.raises(StoreError, match="NUL character"):
        store.upsert_incident(full_incident(summary="x\x00"))
    assert store.read_signals() == []
    assert store.list_incidents() == []


def _poison_inserts(database_url: str) -> None:
    """A real database-side failure for rows with asset_key 'poison' (a trigger, no mocks)."""
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON corrmon_signals "
                "WHEN NEW.asset_key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.asset_key = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON corrmon_signals "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )
    engine.dispose()


def test_a_batch_the_database_rejects_is_rolled_back(
    store: CorrmonStore, database_url: str
) -> None:
    kept = [metric(day) for day in range(3)]
    store.write_signals(kept)
    _poison_inserts(database_url)
    # More rows than one multi-row INSERT holds (SQLAlchemy pages executemany by 1000), so the
    # rollback must span statements: atomicity of one statement would not be enough.
    batch = [
        *(metric(day, name="f1", partition=str(day)) for day in range(1200)),
        metric(9, asset="poison"),
    ]
    with pytest.raises(StoreError, match="poisoned row") as raised:
        store.write_signals(batch)
    assert "could not write signals" in str(raised.value)
    assert store.read_signals() == kept  # none of the five good rows of the failed batch


def test_hot_reads_use_the_indexes(store: CorrmonStore) -> None:
    store.write_signals([metric(day) for day in range(5)])
    store.upsert_incident(full_incident())
    engine = store._engine
    captured: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    window = {"start": T0, "end": T0 + timedelta(days=3)}
    calls = {
        "ix_corrmon_signals_asset_name_time": lambda: store.read_signals(
            asset_key="model", name="roc_auc", **window
        ),
        "ix_corrmon_signals_event_time": lambda: store.read_signals(**window),
        "ix_corrmon_signals_kind_time": lambda: store.read_signals(kind="drift", **window),
    }
    plans: dict[str, str] = {}
    for index, call in calls.items():
        captured.clear()
        call()
        (statement, parameters) = captured[-1]
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            else:
                # Tiny tables make a sequential scan cheapest; forbid it to prove an index serves.
                connection.exec_driver_sql("SET enable_seqscan = off")
                rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            plans[index] = "\n".join(str(row[-1]) for row in rows)
    sa.event.remove(engine, "before_cursor_execute", capture)
    for index, plan in plans.items():
        if engine.dialect.name == "sqlite":
            assert f"USING INDEX {index}" in plan, plan
            assert "SCAN corrmon_signals\n" not in plan + "\n", plan  # a full scan
        else:
            # PostgreSQL's planner may pick any of the indexes on a five-row table; what matters
            # is that an index serves the query.
            assert "Index Scan using ix_corrmon_signals_" in plan, plan
            assert "Seq Scan on corrmon_signals" not in plan, plan


# ------------------------------------------------------------------------- incidents


def test_incident_round_trip(store: CorrmonStore) -> None:
    incident = full_incident()
    store.upsert_incident(incident)
    stored = store.get_incident("INC-1")
    assert stored is not None
    assert without_stamps(stored) == incident
    assert stored.created_at is not None
    assert stored.created_at.tzinfo == UTC
    assert stored.top_cause is not None
    assert stored.top_cause.asset_key == "raw/flights"
    assert store.get_incident("INC-404") is None


def test_rewriting_an_incident_replaces_its_evidence_but_keeps_created_at_and_status(
    store: CorrmonStore,
) -> None:
    created = T0 + timedelta(days=4)
    store.upsert_incident(full_incident(created_at=created))
    store.set_incident_status("INC-1", IncidentStatus.ACKNOWLEDGED, actor="ana")
    rewrite = full_incident(
        causes=(Cause(rank=1, kind="schema_change", asset_key="raw/weather", score=0.7),),
        affected_runs=(AffectedRun(run_id="run-2", asset_key="model", role="training"),),
        cited_signal_keys=("k1", "k2"),
        summary="rewritten",
        status=IncidentStatus.OPEN,
    )
    store.upsert_incident(rewrite)
    store.upsert_incident(rewrite)  # a job retry
    stored = store.get_incident("INC-1")
    assert stored is not None
    assert stored.created_at == created
    assert stored.status == IncidentStatus.ACKNOWLEDGED  # people own the lifecycle
    assert without_stamps(stored) == dataclasses.replace(
        rewrite, status=IncidentStatus.ACKNOWLEDGED
    )
    assert len(store.list_incidents()) == 1
    assert [change.to_status for change in store.incident_history("INC-1")] == [
        IncidentStatus.OPEN,
        IncidentStatus.ACKNOWLEDGED,
    ]


def test_incident_json_must_be_strict(store: CorrmonStore) -> None:
    bad = full_incident(
        causes=(
            Cause(rank=1, kind="drift", asset_key="x", score=0.5, evidence={"p": float("nan")}),
        )
    )
    with pytest.raises(StoreError, match=re.escape("evidence of cause #1 (x) of incident 'INC-1'")):
        store.upsert_incident(bad)
    assert store.get_incident("INC-1") is None


def test_list_incidents_filters(store: CorrmonStore) -> None:
    store.upsert_incident(full_incident("A", created_at=T0))
    store.upsert_incident(full_incident("B", created_at=T0 + timedelta(days=2)))
    store.upsert_incident(
        full_incident("C", model_asset="other_model", created_at=T0 + timedelta(days=1))
    )
    store.set_incident_status("B", "resolved")
    assert [i.id for i in store.list_incidents()] == ["A", "C", "B"]  # by created_at
    assert [i.id for i in store.list_incidents(model_asset="model")] == ["A", "B"]
    assert [i.id for i in store.list_incidents(status="resolved")] == ["B"]
    assert [i.id for i in store.list_incidents(since=T0 + timedelta(days=1))] == ["C", "B"]
    with pytest.raises(ConfigError, match="unknown incident status 'closed'"):
        store.list_incidents(status="closed")


ALLOWED = {
    ("open", "acknowledged"),
    ("open", "resolved"),
    ("open", "false_positive"),
    ("acknowledged", "resolved"),
    ("acknowledged", "false_positive"),
}
PATHS_TO = {
    "open": [],
    "acknowledged": ["acknowledged"],
    "resolved": ["resolved"],
    "false_positive": ["false_positive"],
}


@pytest.mark.parametrize("target", [status.value for status in IncidentStatus])
def test_lifecycle_transitions(store: CorrmonStore, target: str) -> None:
    for start in ("open", "acknowledged", "resolved", "false_positive"):
        incident_id = f"{start}-to-{target}"
        store.upsert_incident(full_incident(incident_id))
        for step in PATHS_TO[start]:
            store.set_incident_status(incident_id, step)
        if (start, target) in ALLOWED:
            moved = store.set_incident_status(incident_id, target, note="why", actor="bo")
            assert moved.status == target
            last = store.incident_history(incident_id)[-1]
            assert (last.from_status, last.to_status, last.actor, last.note) == (
                start,
                target,
                "bo",
                "why",
            )
        else:
            with pytest.raises(ConfigError) as raised:
                store.set_incident_status(incident_id, target)
            assert f"from {start!r} to {target!r}" in str(raised.value)
            stored = store.get_incident(incident_id)
            assert stored is not None
            assert stored.status == start


def test_status_errors_and_history(store: CorrmonStore) -> None:
    with pytest.raises(ConfigError, match="no incident 'nope'"):
        store.set_incident_status("nope", "resolved")
    store.upsert_incident(full_incident(created_at=T0))
    with pytest.raises(ConfigError, match="unknown incident status 'done'"):
        store.set_incident_status("INC-1", "done")
    at = datetime(2024, 3, 9, 12, tzinfo=timezone(timedelta(hours=-4)))
    store.set_incident_status("INC-1", "false_positive", note="holiday", actor="cy", at=at)
    history = store.incident_history("INC-1")
    assert [(h.from_status, h.to_status) for h in history] == [
        (None, IncidentStatus.OPEN),
        (IncidentStatus.OPEN, IncidentStatus.FALSE_POSITIVE),
    ]
    assert history[0].changed_at == T0
    assert history[1].changed_at == datetime(2024, 3, 9, 16, tzinfo=UTC)
    stored = store.get_incident("INC-1")
    assert stored is not None
    assert stored.updated_at == datetime(2024, 3, 9, 16, tzinfo=UTC)


def test_incident_windows(store: CorrmonStore) -> None:
    day = timedelta(days=1)
    store.upsert_incident(full_incident("resolved", window_start=T0, window_end=T0 + 2 * day))
    # No explicit window: onset to the moment it was closed.
    store.upsert_incident(
        full_incident(
            "fp", window_start=None, window_end=None, onset_time=T0 + 10 * day, created_at=T0
        )
    )
    store.upsert_incident(full_incident("still-open", window_start=T0 + 20 * day))
    store.upsert_incident(
        full_incident("acked", window_start=T0 + 30 * day, window_end=T0 + 31 * day)
    )
    store.upsert_incident(full_incident("no-window", window_start=None, onset_time=None))
    store.upsert_incident(full_incident("other", model_asset="other_model"))
    store.set_incident_status("resolved", "resolved", at=T0 + 3 * day)
    store.set_incident_status("fp", "false_positive", at=T0 + 12 * day)
    store.set_incident_status("acked", "acknowledged")
    store.set_incident_status("no-window", "resolved")
    store.set_incident_status("other", "resolved")

    assert store.incident_windows("model") == [
        (T0, T0 + 2 * day),
        (T0 + 10 * day, T0 + 12 * day),
    ]
    acknowledged = store.incident_windows("model", statuses=[IncidentStatus.ACKNOWLEDGED])
    assert acknowledged == [(T0 + 30 * day, T0 + 31 * day)]
    assert store.incident_windows("model", statuses=()) == []


def test_open_incidents_for_assets(store: CorrmonStore) -> None:
    store.upsert_incident(full_incident("on-model"))
    store.upsert_incident(
        full_incident(
            "blames-weather",
            model_asset="other_model",
            causes=(Cause(rank=1, kind="drift", asset_key="raw/weather", score=0.8),),
        )
    )
    store.upsert_incident(full_incident("closed", model_asset="model"))
    store.set_incident_status("closed", "resolved")
    store.set_incident_status("blames-weather", "acknowledged")

    assert [i.id for i in store.open_incidents_for_assets(["model"])] == ["on-model"]
    assert [i.id for i in store.open_incidents_for_assets(["raw/weather"])] == ["blames-weather"]
    assert {i.id for i in store.open_incidents_for_assets(["raw/flights", "raw/weather"])} == {
        "on-model",  # its top cause blames raw/flights
        "blames-weather",
    }
    assert store.open_incidents_for_assets([]) == []


def test_concurrent_writers_store_everything_once(store: CorrmonStore) -> None:
    """Sensor ticks and job retries overlap: racing writers must neither fail nor duplicate."""
    batch = [metric(day) for day in range(20)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        new_counts = list(pool.map(store.write_signals, [batch] * 4))
        list(pool.map(store.upsert_incident, [full_incident("RACE")] * 4))
    assert sum(new_counts) == 20
    assert len(store.read_signals()) == 20
    assert len(store.list_incidents()) == 1
    assert len(store.incident_history("RACE")) == 1  # created once


# ------------------------------------------------------------------------- retention


def test_prune_keeps_cited_signals_and_every_incident(store: CorrmonStore) -> None:
    old = [metric(day) for day in range(5)]
    directly_cited = old[1]
    cause_cited = metric(0, kind=SignalKind.DRIFT, asset="features", name="drift", column="x")
    recent = [metric(day) for day in range(100, 103)]
    store.write_signals([*old, cause_cited, *recent])
    incident = full_incident(
        cited_signal_keys=(directly_cited.idempotency_key,),
        causes=(
            Cause(
                rank=1,
                kind="drift",
                asset_key="features",
                score=0.9,
                signal_keys=(cause_cited.idempotency_key,),
            ),
        ),
    )
    store.upsert_incident(incident)
    store.set_incident_status("INC-1", "resolved")

    result = store.prune(older_than=timedelta(days=30), now=T0 + timedelta(days=102))
    assert result.cutoff == T0 + timedelta(days=72)
    assert (result.signals_deleted, result.cited_signals_kept) == (4, 2)
    remaining = {signal.idempotency_key for signal in store.read_signals()}
    assert remaining == {
        directly_cited.idempotency_key,
        cause_cited.idempotency_key,
        *(signal.idempotency_key for signal in recent),
    }
    stored = store.get_incident("INC-1")
    assert stored is not None
    assert without_stamps(stored) == dataclasses.replace(incident, status=IncidentStatus.RESOLVED)
    # Pruning again finds nothing more to delete.
    again = store.prune(older_than=timedelta(days=30), now=T0 + timedelta(days=102))
    assert (again.signals_deleted, again.cited_signals_kept) == (0, 2)
    with pytest.raises(ConfigError, match="older_than must be positive"):
        store.prune(older_than=timedelta(0), now=T0)


def test_info_counts(store: CorrmonStore) -> None:
    store.write_signals([metric(day) for day in range(3)])
    store.upsert_incident(full_incident("a"))
    store.upsert_incident(full_incident("b"))
    store.set_incident_status("b", "acknowledged")
    info = store.info()
    assert info.schema_version == info.expected_schema_version == SCHEMA_VERSION
    assert info.signal_count == 3
    assert info.incident_counts == {"open": 1, "acknowledged": 1}


# ------------------------------------------------------- URLs and connection errors


def test_default_database_url(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("CORRMON_DATABASE_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ConfigError, match=r"CORRMON_DATABASE_URL.*DAGSTER_HOME"):
        default_database_url()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert default_database_url() == f"sqlite:///{tmp_path.resolve()}/corrmon.db"
    with CorrmonStore() as store:
        assert store.dialect == "sqlite"
    assert (tmp_path / "corrmon.db").is_file()
    monkeypatch.setenv("CORRMON_DATABASE_URL", "postgresql+psycopg2://u@h/db")
    assert default_database_url() == "postgresql+psycopg2://u@h/db"


def test_urls_are_normalised_and_passwords_hidden() -> None:
    assert normalize_database_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_database_url("postgresql+psycopg2://h/db") == "postgresql+psycopg2://h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert hide_password("postgresql+psycopg2://u:s3cret@h/db") == (
        "postgresql+psycopg2://u:***@h/db"
    )


def test_unreachable_or_bad_databases_are_store_errors(tmp_path) -> None:
    with pytest.raises(StoreError) as raised:
        CorrmonStore("postgresql://corrmon:s3cret@127.0.0.1:1/nowhere")
    assert "postgresql+psycopg2://corrmon:***@127.0.0.1:1/nowhere" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(StoreError, match="not a valid SQLAlchemy database URL"):
        CorrmonStore("not a url")
    with pytest.raises(StoreError, match="unsupported database"):
        CorrmonStore("mysql://u@h/db")
    with pytest.raises(StoreError, match="does not exist"):
        CorrmonStore(f"sqlite:///{tmp_path / 'missing-dir' / 'corrmon.db'}")


def _long_signal(length: int) -> Signal:
    return Signal(
        kind=SignalKind.DATA_QUALITY,
        asset_key="raw/" + "a" * length,
        name="expect_" + "n" * length,
        column="c" * length,
        partition="p" * length,
        run_id="r" * length,
        data_version="d" * length,
        code_version="v" * length,
        event_time=T0,
        value=0.5,
        passed=True,
    )


def test_long_names_are_stored_alike_on_both_databases(store: CorrmonStore) -> None:
    # PostgreSQL's VARCHAR(512) used to refuse the whole batch that SQLite stored.
    signals = [_long_signal(600), metric(0)]
    assert store.write_signals(signals) == 2
    stored = {s.name: s for s in store.read_signals()}
    long = stored["expect_" + "n" * 600]
    assert (long.asset_key, long.column, long.partition, long.run_id) == (
        "raw/" + "a" * 600,
        "c" * 600,
        "p" * 600,
        "r" * 600,
    )
    assert long.data_version == "d" * 600 and long.code_version == "v" * 600


def test_names_over_the_bound_are_one_clear_error_on_both_databases(store: CorrmonStore) -> None:
    with pytest.raises(StoreError, match=r"is \d+ characters long, over the store's 2000"):
        store.write_signals([metric(0), _long_signal(store_schema.MAX_NAME_LENGTH)])
    assert store.read_signals() == []  # the batch is one transaction: nothing half-stored


def test_upgrading_a_version_1_store_widens_its_name_columns(database_url: str) -> None:
    CorrmonStore(database_url).close()
    engine = sa.create_engine(database_url)
    if engine.dialect.name == "postgresql":  # back to version 1's bounded columns
        with engine.begin() as connection:
            connection.execute(
                sa.text("ALTER TABLE corrmon_signals ALTER COLUMN name TYPE VARCHAR(256)")
            )
    engine.dispose()
    _set_stored_version(database_url, 1)
    with CorrmonStore(database_url, check_schema=False) as store:
        store.upgrade()
    with CorrmonStore(database_url) as store:
        assert store.write_signals([_long_signal(600)]) == 1
