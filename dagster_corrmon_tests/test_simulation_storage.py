"""The simulated home's storages: Dagster's SQLite files, one engine per database, NORMAL sync."""

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
