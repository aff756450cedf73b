"""The check factories on a hand-written project (plain ``@dg.asset``s), in a real instance.

Four clean days build the history the baselines need; then each test injects one incident into a
new day and asserts the right check fails with the right severity, and that the results are in
the store with their tags. (Module-scoped: every test shares one instance and one store.)
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import handwritten_project as hp


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    """The evaluation's metadata as plain values."""
    return {key: value.value for key, value in evaluation.metadata.items()}


CLEAN_DAYS = ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04")


@dataclass
class World:
    instance: dg.DagsterInstance
    url: str
    clean: dict[str, dg.ExecuteInProcessResult]

    def store(self) -> CorrmonStore:
        return CorrmonStore(self.url)

    def run(
        self,
        partition: str,
        *,
        assets: tuple[Any, ...] = (hp.weather, hp.features),
        corruption: str = "none",
        degrade: bool = False,
    ) -> dg.ExecuteInProcessResult:
        run_config: dict[str, Any] = {"ops": {}}
        if hp.weather in assets:
            run_config["ops"]["weather"] = {"config": {"corruption": corruption}}
        if hp.predictions in assets:
            run_config["ops"]["predictions"] = {"config": {"degrade": degrade}}
        return dg.materialize(
            [*hp.ASSETS, *hp.CHECKS],
            selection=dg.AssetSelection.assets(*assets),
            instance=self.instance,
            partition_key=partition,
            resources={"corrmon": CorrmonResource(database_url=self.url)},
            run_config=run_config,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'corrmon.db'}"
    with dg.instance_for_test() as instance:
        world = World(instance=instance, url=url, clean={})
        for day in CLEAN_DAYS:
            world.clean[day] = world.run(
                day, assets=(hp.weather, hp.features, hp.delay_model, hp.predictions)
            )
        yield world


def evaluations(result: dg.ExecuteInProcessResult) -> Mapping[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_clean_partitions_pass_every_check(world: World) -> None:
    for day, result in world.clean.items():
        checks = evaluations(result)
        assert set(checks) == {
            "corrmon_completeness",
            "corrmon_validity",
            "corrmon_volume",
            "corrmon_schema_contract",
            "corrmon_freshness",
            "corrmon_drift",
            "corrmon_model_performance",
        }
        failing = {name: e.description for name, e in checks.items() if not e.passed}
        assert failing == {}, day
        assert all(meta(e)["corrmon/check_seconds"] > 0 for e in checks.values())
    first = evaluations(world.clean[CLEAN_DAYS[0]])
    assert "recorded this materialization's 8 columns" in (
        first["corrmon_schema_contract"].description or ""
    )
    # Partitions of 2024 materialized today are a historical load, and say so.
    assert "historical load" in (first["corrmon_freshness"].description or "")
    # Baselines need history: the first days pass with a note, not a verdict.
    assert "the baseline judges from 4" in (first["corrmon_volume"].description or "")


def test_signals_carry_the_standard_tags(world: World) -> None:
    day = CLEAN_DAYS[1]
    result = world.clean[day]
    record = world.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=hp.weather.key, asset_partitions=[day]), limit=1
    ).records[0]
    assert record.asset_materialization is not None
    materialization_tags = record.asset_materialization.tags or {}
    with world.store() as store:
        signals = store.read_signals(asset_key="weather", partition=day)
    assert {s.kind for s in signals} >= {
        SignalKind.DATA_QUALITY,
        SignalKind.SCHEMA_CHANGE,
        SignalKind.FRESHNESS,
    }
    for signal in signals:
        assert signal.run_id == result.run_id
        assert signal.data_version == materialization_tags["dagster/data_version"]
        assert signal.code_version == "1"
        assert signal.event_time == datetime(2024, 1, 2, tzinfo=UTC)
        assert signal.observed_at is not None and signal.observed_at > signal.event_time
    null_fractions = {s.column: s for s in signals if s.name == "null_fraction"}
    assert set(null_fractions) == set(hp.make_weather(day).columns)
    assert null_fractions["temp_f"].value == 0.0 and null_fractions["temp_f"].passed
    (row_count,) = [s for s in signals if s.name == "row_count"]
    assert row_count.value == hp.ROWS_PER_DAY
    # Every check result itself is a signal named after the check.
    assert {s.name for s in signals if s.metadata.get("check")} == {
        "corrmon_completeness",
        "corrmon_validity",
        "corrmon_volume",
        "corrmon_schema_contract",
        "corrmon_freshness",
    }
    with world.store() as store:
        metrics = store.read_signals(asset_key="predictions", partition=day, kind=SignalKind.METRIC)
    assert {"roc_auc", "f1", "ece", "brier_score", "latency_p95", "error_rate"} <= {
        s.name for s in metrics
    }


def test_null_spike_fails_completeness_with_error(world: World) -> None:
    day = "2024-01-05"
    checks = evaluations(world.run(day, corruption="null_spike"))
    completeness = checks["corrmon_completeness"]
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    expected = hp.corrupt_weather(hp.make_weather(day), "null_spike")["temp_f"].isna().mean()
    assert meta(completeness)["corrmon/null_fraction/temp_f"] == pytest.approx(expected)
    assert "temp_f" in (completeness.description or "")
    with world.store() as store:
        (signal,) = store.read_signals(
            asset_key="weather", partition=day, name="null_fraction", column="temp_f"
        )
    assert signal.passed is False and signal.severity == Severity.ERROR
    assert signal.metadata["max_null_fraction"] == 0.05
    # Against four clean days (all 0.0) the baseline flags it too.
    assert signal.metadata["baseline_status"] == "anomalous"
    assert checks["corrmon_schema_contract"].passed and checks["corrmon_validity"].passed


def test_unit_change_is_consequential_drift(world: World) -> None:
    day = "2024-01-06"
    checks = evaluations(world.run(day, corruption="unit_change"))
    drift = checks["corrmon_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
    assert meta(drift)["corrmon/consequential_columns"] == ["temp_f"]
    with world.store() as store:
        (signal,) = store.read_signals(
            asset_key="features", partition=day, name="drift", column="temp_f"
        )
    assert signal.kind == SignalKind.DRIFT and signal.severity == Severity.ERROR
    assert signal.metadata["consequence"] == "consequential"
    assert signal.metadata["method"] == "wasserstein" and signal.value is not None
    assert signal.value > signal.metadata["threshold"]
    assert "predictive power" in signal.metadata["reason"]
    # °C readings still lie inside the physical range rule: only drift can see this incident.
    assert checks["corrmon_validity"].passed and checks["corrmon_schema_contract"].passed


def test_drift_in_an_unimportant_feature_is_a_benign_warning(world: World) -> None:
    day = "2024-01-07"
    checks = evaluations(world.run(day, corruption="humidity_percent"))
    drift = checks["corrmon_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert meta(drift)["corrmon/drifted_columns"] == ["humidity"]
    assert meta(drift)["corrmon/consequential_columns"] == []
    with world.store() as store:
        (signal,) = store.read_signals(
            asset_key="features", partition=day, name="drift", column="humidity"
        )
    assert signal.severity == Severity.WARN and signal.metadata["consequence"] == "benign"
    assert signal.metadata["importance_share"] < 0.1
    # The hard range rule still catches the value change, as an error of the raw feed.
    assert checks["corrmon_validity"].severity == dg.AssetCheckSeverity.ERROR


def test_renamed_column_fails_schema_and_names_the_column(world: World) -> None:
    day = "2024-01-08"
    with world.store() as store:
        before = len(store.read_signals(asset_key="weather"))
    checks = evaluations(world.run(day, corruption="renamed_column"))
    schema = checks["corrmon_schema_contract"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    diff = meta(schema)["corrmon/schema_diff"]
    assert [(r["from"], r["to"]) for r in diff["renamed"]] == [("temp_f", "temperature_f")]
    assert diff["removed"] == [] and diff["added"] == []
    # The configured column is gone: a failed ERROR check naming column and asset, no crash.
    completeness = checks["corrmon_completeness"]
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    assert "'temp_f'" in (completeness.description or "")
    assert "'weather'" in (completeness.description or "")
    assert checks["corrmon_drift"].severity == dg.AssetCheckSeverity.ERROR
    with world.store() as store:
        (renamed,) = store.read_signals(asset_key="weather", partition=day, name="column_renamed")
        after = len(store.read_signals(asset_key="weather"))
    assert renamed.kind == SignalKind.SCHEMA_CHANGE and renamed.column == "temp_f"
    assert renamed.metadata["renamed_to"] == "temperature_f"
    assert after > before  # nothing stored earlier was lost


def test_retyped_column_fails_schema_with_error(world: World) -> None:
    day = "2024-01-09"
    checks = evaluations(world.run(day, corruption="retyped_column"))
    schema = checks["corrmon_schema_contract"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert meta(schema)["corrmon/schema_diff"]["retyped"] == [
        {"column": "humidity", "contract": "float", "observed": "string"}
    ]
    drift = checks["corrmon_drift"]
    assert drift.severity == dg.AssetCheckSeverity.ERROR and "humidity" in (drift.description or "")


def test_new_category_fails_validity_and_drifts(world: World) -> None:
    day = "2024-01-10"
    checks = evaluations(world.run(day, corruption="new_category"))
    validity = checks["corrmon_validity"]
    assert not validity.passed and validity.severity == dg.AssetCheckSeverity.ERROR
    with world.store() as store:
        (rule,) = store.read_signals(
            asset_key="weather", partition=day, name="validity_allowed_values"
        )
        (drift,) = store.read_signals(
            asset_key="features", partition=day, name="drift", column="station"
        )
    assert rule.passed is False and "TEB" in rule.metadata["unexpected_sample"]
    assert drift.passed is False and drift.metadata["consequence"] == "benign"


def test_degraded_model_fails_its_performance_check(world: World) -> None:
    day = "2024-01-11"
    result = world.run(day, assets=(hp.weather, hp.features, hp.predictions), degrade=True)
    performance = evaluations(result)["corrmon_model_performance"]
    assert not performance.passed and performance.severity == dg.AssetCheckSeverity.ERROR
    metadata = meta(performance)
    assert metadata["corrmon/roc_auc_ci_high"] < metadata["corrmon/roc_auc_baseline"]
    assert metadata["corrmon/roc_auc_ci_low"] <= metadata["corrmon/roc_auc"]
    with world.store() as store:
        (auc,) = store.read_signals(asset_key="predictions", partition=day, name="roc_auc")
    assert auc.kind == SignalKind.METRIC and auc.passed is False
    assert auc.metadata["baseline_status"] == "anomalous"
    assert auc.metadata["baseline_history"] == len(CLEAN_DAYS)
    assert auc.run_id == result.run_id


def test_checks_load_from_definitions(tmp_path: Path) -> None:
    dg.Definitions.validate_loadable(hp.defs)
    repository = hp.defs.get_repository_def()
    check_keys = {key for check in hp.CHECKS for key in check.check_keys}
    assert dg.AssetCheckKey(hp.weather.key, "corrmon_completeness") in check_keys
    assert repository.asset_checks_defs_by_key.keys() >= check_keys
