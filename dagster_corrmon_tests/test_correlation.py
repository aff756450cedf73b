"""The correlation layer end to end, in a real Dagster instance with a real store.

A hand-written daily pipeline (``correlation_project``: raw → features → predictions →
evaluation, plus an unpartitioned model) runs partition by partition. From ``FAULT_DAY`` the raw
feed's ``temp`` column goes mostly missing; a real asset check on ``raw`` fails from then on, and
the performance metric drops. The metric and data-quality signals are written the way corrmon's
checks write them (kind, asset, partition, data version of the checked materialization). Then the
sensor is evaluated for real, the correlation job is executed, and the incident, its cause and
the run tags are asserted.
"""

import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner

from dagster_corrmon import instance_api
from dagster_corrmon.cli.main import cli
from dagster_corrmon.core.incident import IncidentClass
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.correlation.definitions import CORRELATION_JOB_NAME
from dagster_corrmon.correlation.engine import (
    AT_RISK_TAG,
    CAUSE_TAG,
    INCIDENT_TAG,
    flag_at_risk,
    lineage_from_provenance,
    upstream_fault_signals,
)
from dagster_corrmon.correlation.sensor import SensorCursor, load_cursor
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests.correlation_project import (
    DAYS,
    FAULT_DAY,
    MODEL,
    build_defs,
    day,
    is_faulty,
    materialize_history,
)


def _tick(sensor: dg.SensorDefinition, history, cursor: str | None = None):
    defs, instance, _, resource = history
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"corrmon": resource}, cursor=cursor
    ) as context:
        return sensor.evaluate_tick(context)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("correlation")
    resource = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
    defs = build_defs(store=resource)
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        store = CorrmonStore(resource.database_url)
        materialize_history(instance, store)
        yield defs, instance, store, resource
        store.close()


def test_sensor_requests_one_correlation_run_and_is_idempotent(history) -> None:
    defs = history[0]
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    first = _tick(sensor, history)
    assert first.run_requests is not None and len(first.run_requests) == 1
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
    assert recovered.run_requests is not None
    assert [r.run_key for r in recovered.run_requests] == [request.run_key]
    assert load_cursor("{not json") == SensorCursor()


def test_correlation_job_attributes_the_fault_and_tags_exactly_the_affected_runs(history) -> None:
    defs, instance, store, _ = history
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    requests = _tick(sensor, history).run_requests
    assert requests
    request = requests[0]
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
    assert incident.onset_partition == day(FAULT_DAY)

    # Exactly the runs that consumed a faulty raw version: features and predictions/evaluation
    # runs of the faulty days — and none of the healthy days.
    faulty_raw_versions = {
        r.data_version
        for r in instance_api.all_materializations(instance, dg.AssetKey("raw"))
        if r.partition and is_faulty(r.partition)
    }
    expected: set[str] = set()
    for asset in ("features", "predictions", "evaluation"):
        for record in instance_api.all_materializations(instance, dg.AssetKey(asset)):
            if record.partition and is_faulty(record.partition):
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
    assert {s.partition for s in faults} == {day(i) for i in range(FAULT_DAY, DAYS)}
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
    # ... and it shows on the model's Checks tab, as a WARN (nothing is confirmed yet)
    shown = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("model"), "corrmon_incident")]
    )[dg.AssetCheckKey(dg.AssetKey("model"), "corrmon_incident")]
    assert shown.event is not None and shown.event.dagster_event is not None
    evaluation = shown.event.dagster_event.event_specific_data
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert evaluation.metadata["corrmon/incident"].value == risk.id
    assert not evaluation.passed and evaluation.severity is dg.AssetCheckSeverity.WARN
    # Seen again later through a moving look-back window: the fault still began where it began.
    again = flag_at_risk(
        instance=instance,
        store=store,
        model=MODEL,
        lineage=lineage,
        faults=faults[-2:],
        now=dt.datetime(2024, 2, 2, tzinfo=dt.UTC),
    )
    assert again is not None and again.id == risk.id
    assert again.onset_partition == day(FAULT_DAY)
    assert {run.run_id for run in again.affected_runs} == expected


_FEED_VALUE = {"current": "a"}
_TWO_DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03")


@dg.asset(partitions_def=_TWO_DAYS)
def redelivered_feed() -> dg.Output:
    value = _FEED_VALUE["current"]
    return dg.Output(value, data_version=dg.DataVersion(value))


@dg.asset(deps=[redelivered_feed])
def redelivered_model() -> int:
    return 1


@dg.asset(partitions_def=_TWO_DAYS, deps=[redelivered_feed, redelivered_model])
def redelivered_evaluation() -> int:
    return 1


def test_a_re_delivery_is_compared_with_the_materialization_just_before_it(tmp_path) -> None:
    """A data-version change is judged against the partition's previous materialization, even
    after more than fifty of them (the sensor used to read only the oldest fifty)."""
    from dagster_corrmon.correlation.definitions import build_corrmon_defs
    from dagster_corrmon.correlation.model import MonitoredModel

    resource = CorrmonResource(database_url=f"sqlite:///{tmp_path}/corrmon.db")
    watched = MonitoredModel(
        model=redelivered_model.key, evaluation=redelivered_evaluation.key, metric="roc_auc"
    )
    defs = dg.Definitions.merge(
        dg.Definitions(assets=[redelivered_feed, redelivered_model, redelivered_evaluation]),
        build_corrmon_defs(models=[watched], store=resource),
    )
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    partition = "2024-01-01"

    def deliver(value: str, times: int = 1) -> None:
        _FEED_VALUE["current"] = value
        for _ in range(times):
            assert dg.materialize([redelivered_feed], instance=instance, partition_key=partition)

    def changes() -> list[str]:
        with CorrmonStore(resource.database_url) as store:
            found = store.read_signals(kind=SignalKind.DATA_VERSION_CHANGE)
        return [f"{s.metadata['previous']}->{s.data_version}" for s in found]

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        history = (defs, instance, None, resource)
        deliver("a")
        cursor = _tick(sensor, history).cursor  # the first sight of the asset sets the cursor
        deliver("a", times=50)
        cursor = _tick(sensor, history, cursor).cursor
        assert changes() == []  # the same data again and again is no change
        deliver("b")
        cursor = _tick(sensor, history, cursor).cursor
        assert changes() == ["a->b"]
        deliver("b")
        _tick(sensor, history, cursor)
        assert changes() == ["a->b"]  # b again after b: compared with the one just before
    _FEED_VALUE["current"] = "a"
