"""The correlation layer end to end, in a real Dagster instance with a real store.

A hand-written daily pipeline (raw → features → predictions → evaluation, plus an unpartitioned
model) runs partition by partition. From day 9 the raw feed's ``temp`` column goes mostly
missing; a real asset check on ``raw`` fails from then on, and the performance metric drops.
The metric and data-quality signals are written the way corrmon's checks write them (kind, asset,
partition, data version of the checked materialization). Then the sensor is evaluated for real,
the correlation job is executed, and the incident, its cause and the run tags are asserted.
"""

import datetime as dt
import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dagster_corrmon import instance_api
from dagster_corrmon.cli.main import cli
from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.incident import IncidentClass
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.definitions import (
    CORRELATION_JOB_NAME,
    build_corrmon_defs,
)
from dagster_corrmon.correlation.engine import (
    AT_RISK_TAG,
    CAUSE_TAG,
    INCIDENT_TAG,
    flag_at_risk,
    lineage_from_provenance,
    upstream_fault_signals,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.sensor import load_cursor
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore

START = dt.date(2024, 1, 1)
DAYS = 20
FAULT_DAY = 13  # 0-based index of the first faulty partition
daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-31")


def _day(index: int) -> str:
    return (START + dt.timedelta(days=index)).isoformat()


def _faulty(partition: str) -> bool:
    return partition >= _day(FAULT_DAY)


def _versioned(frame: pd.DataFrame) -> dg.Output:
    """Content-hash data versions, as a well-instrumented project (and corrmon's pipeline) has."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame).to_numpy().tobytes()).hexdigest()
    return dg.Output(frame, data_version=dg.DataVersion(digest[:16]))


@dg.asset(partitions_def=daily, code_version="1")
def raw(context: dg.AssetExecutionContext) -> dg.Output:
    day = dt.date.fromisoformat(context.partition_key).toordinal()
    rng = np.random.default_rng(day)
    temp = rng.normal(50, 10, 200)
    if _faulty(context.partition_key):
        temp[rng.random(200) < 0.7] = np.nan
    return _versioned(pd.DataFrame({"temp": temp, "wind": rng.normal(10, 3, 200)}))


@dg.asset(partitions_def=daily, code_version="1")
def features(raw: pd.DataFrame) -> dg.Output:
    return _versioned(raw.fillna(0.0))


@dg.asset(code_version="1", deps=[features])
def model() -> dict:
    return {"weights": [1.0, 0.1]}


@dg.asset(partitions_def=daily, code_version="1")
def predictions(features: pd.DataFrame, model: dict) -> dg.Output:
    return _versioned(features.assign(score=features["temp"] * model["weights"][0]))


@dg.asset(partitions_def=daily, code_version="1")
def evaluation(predictions: pd.DataFrame) -> dg.Output:
    return _versioned(predictions)


@dg.asset_check(asset=raw, partitions_def=daily)
def temp_complete(raw: pd.DataFrame) -> dg.AssetCheckResult:
    null_fraction = float(raw["temp"].isna().mean())
    return dg.AssetCheckResult(
        passed=null_fraction < 0.2, metadata={"null_fraction": null_fraction}
    )


def _tick(sensor: dg.SensorDefinition, history, cursor: str | None = None):
    defs, instance, _, resource = history
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"corrmon": resource}, cursor=cursor
    ) as context:
        return sensor.evaluate_tick(context)


MODEL = MonitoredModel(
    model=dg.AssetKey("model"),
    evaluation=dg.AssetKey("evaluation"),
    predictions=dg.AssetKey("predictions"),
    metric="roc_auc",
    # a short history keeps this test fast; the default asks for more reference partitions
    config=AttributionConfig(min_reference=12),
)


def _signals_for(instance: dg.DagsterInstance, partition: str, index: int) -> list[Signal]:
    """What corrmon's completeness and metric checks record for one partition."""
    record = instance_api.latest_materialization(instance, dg.AssetKey("raw"), partition=partition)
    assert record is not None
    event_time = dt.datetime.combine(START + dt.timedelta(days=index), dt.time(), tzinfo=dt.UTC)
    rng = np.random.default_rng(index)
    faulty = _faulty(partition)
    signals = [
        Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key="raw",
            name="null_fraction",
            column="temp",
            event_time=event_time,
            value=0.7 if faulty else 0.01 + 0.005 * rng.random(),
            passed=not faulty,
            severity=Severity.ERROR if faulty else Severity.INFO,
            partition=partition,
            run_id=record.run_id,
            data_version=record.data_version,
        ),
        Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key="raw",
            name="null_fraction",
            column="wind",
            event_time=event_time,
            value=0.01 + 0.005 * rng.random(),
            passed=True,
            partition=partition,
            data_version=record.data_version,
        ),
        Signal(
            kind=SignalKind.METRIC,
            asset_key="evaluation",
            name="roc_auc",
            event_time=event_time,
            value=(0.66 if faulty else 0.82) + 0.01 * rng.standard_normal(),
            partition=partition,
        ),
    ]
    return signals


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("correlation")
    resource = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
    defs = dg.Definitions.merge(
        dg.Definitions(assets=[raw, features, model, predictions, evaluation]),
        build_corrmon_defs(models=[MODEL], data_checks=[temp_complete], store=resource),
    )
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        store = CorrmonStore(resource.database_url)
        dg.materialize([raw, features], instance=instance, partition_key=_day(0))
        dg.materialize([model], instance=instance, selection=[model], resources={})
        for index in range(DAYS):
            partition = _day(index)
            dg.materialize(
                [raw, features, model, predictions, evaluation, temp_complete],
                instance=instance,
                partition_key=partition,
                selection=[raw, features, predictions, evaluation, temp_complete],
            )
            store.write_signals(_signals_for(instance, partition, index))
        yield defs, instance, store, resource
        store.close()


def test_sensor_requests_one_correlation_run_and_is_idempotent(history) -> None:
    defs = history[0]
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    first = _tick(sensor, history)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    config = request.run_config["ops"]["corrmon_correlate"]["config"]
    assert config["model"] == "model"
    # The failing check executions on raw are the triggers (one per faulty day).
    assert (
        sum(t.startswith("check:raw:temp_complete") for t in config["triggers"]) == DAYS - FAULT_DAY
    )
    again = _tick(
        sensor,
        history,
        cursor=first.cursor,
    )
    assert not again.run_requests
    # A corrupt cursor is recovered from (history is re-read: the same run key comes back).
    recovered = _tick(sensor, history, cursor="{not json")
    assert [r.run_key for r in recovered.run_requests] == [request.run_key]
    assert load_cursor("{not json")["v"] == 1


def test_correlation_job_attributes_the_fault_and_tags_exactly_the_affected_runs(history) -> None:
    defs, instance, store, _ = history
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    request = _tick(sensor, history).run_requests[0]
    job = defs.resolve_job_def(CORRELATION_JOB_NAME)
    for _ in range(2):  # a retried / repeated job creates no duplicate incident
        result = job.execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert result.success
    incidents = [i for i in store.list_incidents(model_asset="model") if i.id.startswith("inc-")]
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident.classification is IncidentClass.DATA_FAULT
    assert incident.consequential
    top = incident.top_cause
    assert top is not None and (top.asset_key, top.column) == ("raw", "temp")
    assert incident.onset_partition == _day(FAULT_DAY)

    # Exactly the runs that consumed a faulty raw version: features and predictions/evaluation
    # runs of the faulty days — and none of the healthy days.
    faulty_raw_versions = {
        r.data_version
        for r in instance_api.all_materializations(instance, dg.AssetKey("raw"))
        if r.partition and _faulty(r.partition)
    }
    expected: set[str] = set()
    for asset in ("features", "predictions", "evaluation"):
        for record in instance_api.all_materializations(instance, dg.AssetKey(asset)):
            if record.partition and _faulty(record.partition):
                expected.add(record.run_id)
    assert faulty_raw_versions
    affected = {run.run_id for run in incident.affected_runs}
    assert affected == expected
    tagged = {
        record.dagster_run.run_id
        for record in instance.get_run_records(dg.RunsFilter(tags={INCIDENT_TAG: incident.id}))
    }
    assert tagged == expected
    some_run = instance.get_run_by_id(sorted(expected)[0])
    assert some_run is not None
    assert some_run.tags[CAUSE_TAG] == "raw.temp"
    assert some_run.tags[AT_RISK_TAG] == "false"

    # The model asset shows the incident as a check result (declared in code).
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("model"), "corrmon_incident")
    )
    assert check is not None and isinstance(check.evaluation, dg.AssetCheckEvaluation)
    assert check.evaluation.passed is False
    assert check.evaluation.metadata["corrmon/suspected_cause"].value == "raw.temp"

    # Retraining is blocked while the data fault is open, with the reason recorded.
    decisions = store.read_signals(asset_key="model", kind=SignalKind.RETRAIN_DECISION)
    assert decisions and decisions[-1].metadata["decision"] == "blocked"
    assert "fix the data" in decisions[-1].metadata["reason"]
    json.dumps(decisions[-1].metadata)

    # `corrmon explain` names the cause with its evidence, for people.
    runner = CliRunner()
    explained = runner.invoke(cli, ["explain", "model", "--database-url", store.database_url])
    assert explained.exit_code == 0, explained.output
    assert "data_fault" in explained.output and "raw.temp" in explained.output
    assert f"Affected runs: {len(expected)}" in explained.output
    missing = runner.invoke(cli, ["explain", "nope", "--database-url", store.database_url])
    assert missing.exit_code != 0

    # Proactive: upstream defects flag the downstream runs that consumed them *at risk*, before
    # any metric confirms a loss — exactly the consumers of the failing raw partitions.
    lineage = lineage_from_provenance(instance, [dg.AssetKey("evaluation"), dg.AssetKey("model")])
    faults = upstream_fault_signals(store, {"raw": 3}, since=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert {s.partition for s in faults} == {_day(i) for i in range(FAULT_DAY, DAYS)}
    risk = flag_at_risk(
        instance=instance,
        store=store,
        model=MODEL,
        lineage=lineage,
        faults=faults,
        now=dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
    )
    assert risk is not None and risk.classification is IncidentClass.DATA_FAULT
    assert not risk.consequential and risk.metadata["provisional"]
    assert {run.run_id for run in risk.affected_runs} == expected
    assert all(run.at_risk for run in risk.affected_runs)
    flagged = instance.get_run_records(dg.RunsFilter(tags={AT_RISK_TAG: "true"}))
    assert {record.dagster_run.run_id for record in flagged} == expected
