"""The simulated home's storages: Dagster's SQLite files, one engine per database, NORMAL sync."""

import logging
from pathlib import Path

import dagster as dg
import sqlalchemy as db
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage

from dagster_corrmon.scenarios import storage
from dagster_corrmon.scenarios.simulate import instance_yaml

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")


@dg.asset(partitions_def=DAYS)
def numbers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"day": context.partition_key})


@dg.asset_check(asset=numbers)
def numbers_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml(home))
    return home


def test_simulated_home_uses_the_shared_engine_storages(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, storage.SimulationEventLogStorage)
        assert isinstance(instance.run_storage, storage.SimulationRunStorage)
        assert isinstance(instance.schedule_storage, storage.SimulationScheduleStorage)
        for day in ("2024-01-01", "2024-01-02"):
            result = dg.materialize(
                [numbers], instance=instance, partition_key=day, selection=[numbers]
            )
            assert result.success
        run_db = home / "history" / "runs.db"
        events_db = home / "history" / "event_log.db"
        assert run_db.exists() and events_db.exists()
        engine = storage.shared_engine(f"sqlite:///{events_db}")
        # One engine per database: the storage's connections come from it...
        assert storage.shared_engine(f"sqlite:///{events_db}") is engine
        with engine.connect() as conn:
            # ...in WAL mode (Dagster's) with synchronous=NORMAL (1) instead of FULL (2).
            assert conn.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(db.text("PRAGMA synchronous")).scalar() == 1


def test_a_simulated_home_reads_back_with_dagsters_own_storages(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [numbers, numbers_ok], instance=instance, partition_key="2024-01-03"
        )
        assert result.success
        run_id = result.run_id
    # Same files, Dagster's classes: the runs, the materialization and the check are all there.
    runs = SqliteRunStorage.from_local(str(home / "history"))
    assert [r.run_id for r in runs.get_runs()] == [run_id]
    events = ConsolidatedSqliteEventLogStorage(str(home / "history"))
    records = events.fetch_materializations(dg.AssetKey("numbers"), limit=10).records
    assert [r.partition_key for r in records] == ["2024-01-03"]
    checks = events.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_ok"), limit=10
    )
    assert (run_id, "SUCCEEDED") in [(c.run_id, c.status.value) for c in checks]


def _count_connects(engine: db.Engine) -> list[object]:
    opened: list[object] = []
    db.event.listen(engine, "connect", lambda dbapi_connection, _record: opened.append(1))
    return opened


def test_a_run_reuses_pooled_connections_and_closing_the_instance_releases_them(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    events_db = home / "history" / "event_log.db"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        dg.materialize([numbers, numbers_ok], instance=instance, partition_key="2024-01-01")
        engine = storage.shared_engine(f"sqlite:///{events_db}")
        opened = _count_connects(engine)
        anywhere: list[object] = []  # any engine's, e.g. a throwaway one for a schema question

        def count(*_args: object) -> None:
            anywhere.append(1)

        db.event.listen(db.Engine, "connect", count)
        try:
            result = dg.materialize(
                [numbers, numbers_ok], instance=instance, partition_key="2024-01-02"
            )
        finally:
            db.event.remove(db.Engine, "connect", count)
        assert result.success
        # A run writes dozens of events; Dagster's own storage opens a connection for each, and
        # asks on yet another whether the check table exists before each check event.
        written = len(instance.all_logs(result.run_id))
        assert written > 10
        assert len(opened) <= 1, f"{len(opened)} connections opened for {written} events"
        assert len(anywhere) <= 1, f"{len(anywhere)} connections opened in all"
        assert engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
    # The instance closed: its idle connections are closed too (no file handles left behind).
    assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]


def _idle_connections_after_fork(url: str) -> int:
    return storage.shared_engine(url).pool.checkedin()  # type: ignore[attr-defined]


def test_a_forked_child_does_not_share_the_parents_connections(tmp_path: Path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'any.db'}"
    with storage.shared_engine(url).connect() as conn:
        conn.execute(db.text("SELECT 1"))
    assert storage.shared_engine(url).pool.checkedin() == 1  # type: ignore[attr-defined]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_idle_connections_after_fork, (url,)) == 0
    assert storage.shared_engine(url).pool.checkedin() == 1  # type: ignore[attr-defined]


@dg.asset(partitions_def=DAYS)
def values() -> list[int]:
    return [1, 2]


@dg.asset(partitions_def=DAYS)
def doubled(values: list[int]) -> list[int]:
    return [2 * v for v in values]


def test_the_event_log_keeps_dagsters_events_but_not_debug_chatter(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([values, doubled], instance=instance, partition_key="2024-01-01")
        assert result.success
        records = instance.all_logs(result.run_id)
    plain = [r for r in records if r.dagster_event is None]
    kinds = {r.dagster_event.event_type_value for r in records if r.dagster_event is not None}
    # The IO manager's DEBUG lines ("Loading partition ...") are not stored...
    assert not [r for r in plain if r.level < logging.INFO], [r.user_message for r in plain]
    # ...while Dagster's own DEBUG-level events are (the UI and the sensors read them).
    assert {"LOADED_INPUT", "HANDLED_OUTPUT", "STEP_START", "ASSET_MATERIALIZATION"} <= kinds
