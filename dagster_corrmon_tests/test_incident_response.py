"""Incident response end to end: a real correlation job alerts a local webhook once per step, and
``corrmon postmortem`` / ``corrmon retrospective`` read the same catalog.

The pipeline is ``correlation_project`` (a null spike in ``raw.temp`` from ``FAULT_DAY``) with
owners declared on the raw feed, so the alert is routed to the cause asset's owners.
"""

import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner

from dagster_corrmon.alerts import Alerting, AlertRoute, RetryPolicy, WebhookChannel, dispatch
from dagster_corrmon.alerts.owners import directory_from_repository
from dagster_corrmon.alerts.retrospective import build_retrospective
from dagster_corrmon.cli.main import cli
from dagster_corrmon.core.incident import Cause, Incident, IncidentClass
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.definitions import CORRELATION_JOB_NAME, build_corrmon_defs
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import correlation_project as project
from dagster_corrmon_tests.alert_servers import http_sink

OWNERS = ["data-eng@example.com", "team:ingest"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("incident_response")
    resource = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
    owned_raw = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(owners=OWNERS), [project.raw]
    )
    with http_sink() as sink:
        route = AlertRoute(
            name="hook",
            channel=WebhookChannel(url=sink.url),
            retry=RetryPolicy(attempts=2, backoff_s=0),
        )
        defs = dg.Definitions.merge(
            dg.Definitions(
                assets=[
                    *owned_raw,
                    project.features,
                    project.model,
                    project.predictions,
                    project.evaluation,
                ]
            ),
            build_corrmon_defs(
                models=[project.MODEL],
                data_checks=[project.temp_complete],
                store=resource,
                alerts=Alerting(routes=[route], ui_base_url="http://localhost:3000"),
            ),
        )
        with dg.instance_for_test(temp_dir=str(folder)) as instance:
            store = CorrmonStore(resource.database_url)
            project.materialize_history(instance, store)
            yield defs, instance, store, resource, sink
            store.close()


def _correlate(pipeline) -> None:
    defs, instance, _, resource, _ = pipeline
    sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"corrmon": resource}
    ) as context:
        requests = sensor.evaluate_tick(context).run_requests
    assert requests
    job = defs.resolve_job_def(CORRELATION_JOB_NAME)
    for request in requests:
        result = job.execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert result.success


def test_the_correlation_job_alerts_each_step_once_and_the_postmortem_tells_it(pipeline) -> None:
    _, _, store, resource, sink = pipeline
    url = ["--database-url", resource.database_url]
    runner = CliRunner()
    for _ in range(2):  # a re-run of the pass (a retry, the next tick) alerts nothing new
        _correlate(pipeline)
    (incident,) = [i for i in store.list_incidents(model_asset="model") if i.id.startswith("inc-")]
    assert [(r["incident_id"], r["step"], r["severity"]) for r in sink.delivered] == [
        (incident.id, "opened", "critical")
    ]
    opened = sink.delivered[0]
    assert opened["cause"] == "raw.temp (data_quality)"
    # An in-process run has no repository, so no owners; a daemon-launched run has (see below).
    assert opened["owners"] == []
    assert opened["affected_runs"] == len(incident.affected_runs) > 0
    assert opened["links"]["cause"] == "http://localhost:3000/assets/raw"
    assert opened["runbook"]["kind"] == "null_spike"

    _, instance, *_ = pipeline
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("model"), "corrmon_incident")
    )
    assert check is not None and isinstance(check.evaluation, dg.AssetCheckEvaluation)
    assert check.evaluation.metadata["corrmon/runbook"].value == opened["runbook"]["link"]
    explained = runner.invoke(cli, ["explain", "model", *url]).output
    assert f"Runbook (null_spike): {opened['runbook']['link']}" in explained
    assert (
        runner.invoke(cli, ["incidents", "ack", incident.id, "--actor", "sam", *url]).exit_code == 0
    )
    result = runner.invoke(
        cli, ["incidents", "resolve", incident.id, "--note", "backfilled raw", *url]
    )
    assert result.exit_code == 0, result.output
    _correlate(pipeline)
    _correlate(pipeline)
    steps = [(r["incident_id"], r["step"]) for r in sink.delivered]
    assert steps[:2] == [(incident.id, "opened"), (incident.id, "resolved")], steps
    # A resolved incident stays resolved; the still-faulty data may open a new one, alerted once.
    assert len(set(steps)) == len(steps) == len(sink.requests)
    for later in {i for i, _ in steps[2:]}:
        assert store.get_incident(later) is not None

    result = runner.invoke(cli, ["postmortem", incident.id, *url])
    assert result.exit_code == 0, result.output
    draft = result.output
    stored = store.get_incident(incident.id)
    assert stored is not None and stored.baseline_value is not None
    assert f"# Postmortem (draft): incident {incident.id}" in draft
    assert f"baseline {stored.baseline_value:.4g}" in draft
    assert f"Affected runs: {len(stored.affected_runs)}" in draft
    assert "95% CI [" in draft
    assert "alert `opened` (critical) sent to route `hook`" in draft
    assert "alert `resolved` (info) sent to route `hook`" in draft
    assert "open → acknowledged by sam" in draft
    assert "acknowledged → resolved" in draft and "backfilled raw" in draft
    assert "first upstream event: raw.temp (data_quality)" in draft
    assert f"partition {project.day(project.FAULT_DAY)}" in draft
    assert "- [ ] Raise the completeness check to ERROR severity" in draft  # from the runbook
    page = runner.invoke(cli, ["postmortem", incident.id, "--format", "html", *url]).output
    assert page.startswith("<!doctype html>") and "<h2>Timeline</h2>" in page

    retro = runner.invoke(cli, ["retrospective", "--since", "30d", "--format", "json", *url])
    assert retro.exit_code == 0, retro.output
    data = json.loads(retro.output)
    assert data["by_asset_and_kind"] == {"raw / null_spike": len(store.list_incidents())}
    assert data["mttr_hours"]["null_spike"] >= 0
    missing = runner.invoke(cli, ["postmortem", "inc-nope", *url])
    assert isinstance(missing.exception, ConfigError)
    assert "no incident 'inc-nope'" in str(missing.exception)


def test_owners_and_groups_come_from_the_asset_graph(pipeline) -> None:
    defs, _, store, _, _ = pipeline
    directory = directory_from_repository(defs.get_repository_def())
    assert directory.info("raw").owners == tuple(OWNERS)
    assert directory.info("raw").group == "default"
    cause = _check_signal("raw", "null_fraction", 0, passed=False)
    incident = _incident("inc-owned", cause, detected_day=1)
    store.upsert_incident(incident)
    with http_sink() as sink:
        route = AlertRoute(
            name="ingest-team", channel=WebhookChannel(url=sink.url), owners=["team:ingest"]
        )
        dispatch(store, [incident], [route], now=dt.datetime.now(dt.UTC), directory=directory)
    (body,) = sink.delivered
    assert body["owners"] == OWNERS


T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def _check_signal(asset: str, name: str, day: int, *, passed: bool) -> Signal:
    return Signal(
        kind=SignalKind.DATA_QUALITY,
        asset_key=asset,
        name=name,
        column="c",
        event_time=T0 + dt.timedelta(days=day),
        value=0.5 if not passed else 0.0,
        passed=passed,
        severity=Severity.ERROR if not passed else Severity.INFO,
        partition=f"p{day}",
    )


def _incident(incident_id: str, cause: Signal, *, detected_day: int) -> Incident:
    return Incident(
        id=incident_id,
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        onset_time=cause.event_time,
        detected_time=T0 + dt.timedelta(days=detected_day),
        detected_partition=f"p{detected_day}",
        causes=(
            Cause(
                rank=1,
                kind="data_quality",
                asset_key=cause.asset_key,
                score=0.9,
                event_time=cause.event_time,
                signal_keys=(cause.idempotency_key,),
            ),
        ),
        created_at=T0 + dt.timedelta(days=detected_day),
    )


def test_retrospective_counts_patterns_from_a_store(tmp_path) -> None:
    with CorrmonStore(f"sqlite:///{tmp_path / 'corrmon.db'}") as store:
        fault_1 = _check_signal("feed", "null_fraction", 3, passed=False)
        fault_2 = _check_signal("feed", "null_fraction", 10, passed=False)
        quiet = _check_signal("other", "volume", 3, passed=True)
        release = Signal(
            kind=SignalKind.CODE_VERSION_CHANGE,
            asset_key="feed",
            name="code_version",
            event_time=T0 + dt.timedelta(days=9),
            code_version="v2",
        )
        store.write_signals([fault_1, fault_2, quiet, release])
        store.upsert_incident(_incident("inc-a", fault_1, detected_day=4))
        store.upsert_incident(_incident("inc-b", fault_2, detected_day=12))
        store.set_incident_status("inc-a", "false_positive", at=T0 + dt.timedelta(days=5))
        store.set_incident_status("inc-b", "resolved", at=T0 + dt.timedelta(days=13, hours=12))
        retro = build_retrospective(store, since=T0)
    assert retro.incidents == 2
    assert retro.by_asset_and_kind == {"feed / null_spike": 2}
    # Only the second fault followed the v2 release (within the 7-day window before it).
    assert retro.after_code_change == [
        {
            "incident": "inc-b",
            "asset": "feed",
            "code_version": "v2",
            "released": (T0 + dt.timedelta(days=9)).isoformat(),
        }
    ]
    assert retro.mttd_hours == {"null_spike": pytest.approx((24 + 48) / 2)}
    assert retro.mttr_hours == {"null_spike": pytest.approx((24 + 36) / 2)}
    (check,) = retro.checks
    assert (check.check, check.fired, check.false_positives) == ("feed:null_fraction", 2, 1)
    assert check.false_positive_rate == 0.5
    assert retro.never_fired == ["other:volume"]
