"""The Dagster UI shows what corrmon wrote: read back through Dagster's own GraphQL API.

The webserver's pages are GraphQL queries. This test builds a real corrmon history (the
hand-written pipeline of ``correlation_project``: twenty daily partitions with a null spike in
``raw.temp`` from ``FAULT_DAY``, signals in the store, the correlation sensor evaluated, the
correlation job executed), then loads the code location ``dagster_corrmon_tests.ui_defs`` the way
``dagster dev`` does — a ``workspace.yaml`` naming a ``python_module``, served by a real code
server subprocess — and asks the GraphQL schema the questions the UI's pages ask:

* the model asset's Checks tab lists the declared ``corrmon_incident`` check, and its latest
  evaluation is FAILED with the incident's explanation and suspected cause;
* the Runs page, filtered by the tag ``corrmon/incident=<id>``, lists exactly the affected runs,
  each tagged with the suspected cause;
* the raw feed's Checks tab shows the failed ``temp_complete`` evaluations, partition by partition.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster_graphql.test.utils import define_out_of_process_context

from dagster_corrmon.core.incident import Incident, IncidentClass
from dagster_corrmon.correlation.definitions import CORRELATION_JOB_NAME
from dagster_corrmon.correlation.engine import AT_RISK_TAG, CAUSE_TAG, INCIDENT_TAG
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import graphql_ui as gq
from dagster_corrmon_tests import ui_defs
from dagster_corrmon_tests.correlation_project import (
    DAYS,
    FAULT_DAY,
    day,
    is_faulty,
    materialize_history,
)

LOCATION = "corrmon_ui_test"
# The documented names (DESIGN §1.7), spelled out: a renamed constant must fail this test.
INCIDENT_CHECK_NAME = "corrmon_incident"


@dataclass(frozen=True)
class UiHistory:
    """A GraphQL context over the code location, and the incident the store holds."""

    graphql: WorkspaceRequestContext
    incident: Incident
    correlation_run_id: str


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiHistory]:
    folder = tmp_path_factory.mktemp("ui_graphql")
    workspace = gq.write_workspace(
        folder / "workspace.yaml", module=ui_defs.__name__, location=LOCATION
    )
    with pytest.MonkeyPatch.context() as env:
        # The location's store resource is left at its default, $DAGSTER_HOME/corrmon.db: the
        # instance below sets DAGSTER_HOME, and a CI-wide store URL must not leak in.
        env.delenv("CORRMON_DATABASE_URL", raising=False)
        home = folder / "dagster_home"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            store = CorrmonStore()
            assert Path(store.database_url.removeprefix("sqlite:///")) == home / "corrmon.db"
            materialize_history(instance, store)

            defs = ui_defs.defs
            sensor = defs.resolve_sensor_def("corrmon_correlation_sensor")
            with dg.build_sensor_context(
                instance=instance, definitions=defs, resources={"corrmon": CorrmonResource()}
            ) as context:
                requests = sensor.evaluate_tick(context).run_requests
            assert requests is not None and len(requests) == 1
            result = defs.resolve_job_def(CORRELATION_JOB_NAME).execute_in_process(
                instance=instance, run_config=requests[0].run_config, tags=requests[0].tags
            )
            assert result.success
            incidents = [
                i for i in store.list_incidents(model_asset="model") if i.id.startswith("inc-")
            ]
            store.close()
            assert len(incidents) == 1

            with define_out_of_process_context(str(workspace), None, instance) as graphql:
                yield UiHistory(
                    graphql=graphql, incident=incidents[0], correlation_run_id=result.run_id
                )


def test_model_checks_tab_shows_the_failed_incident_check_with_its_explanation(
    ui: UiHistory,
) -> None:
    checks = gq.checks(ui.graphql, "model")
    assert INCIDENT_CHECK_NAME in checks  # declared in code, so the Checks tab lists it
    latest = checks[INCIDENT_CHECK_NAME]["executionForLatestMaterialization"]
    assert latest is not None, "the runless evaluation does not show as the latest one"
    assert latest["status"] == "FAILED"
    evaluation = latest["evaluation"]
    assert evaluation["success"] is False
    assert evaluation["severity"] == "ERROR"  # consequential: the metric did drop
    metadata = gq.metadata(evaluation)
    incident = ui.incident
    assert metadata["corrmon/incident"] == incident.id
    assert metadata["corrmon/suspected_cause"] == "raw.temp"
    assert metadata["corrmon/classification"] == IncidentClass.DATA_FAULT.value
    assert metadata["corrmon/onset_partition"] == day(FAULT_DAY)
    assert metadata["corrmon/affected_runs"] == len(incident.affected_runs)
    assert metadata["corrmon/runbook"].endswith("null_spike.md")  # a link in the Checks tab
    explanation = metadata["corrmon/explanation"]
    assert incident.summary and explanation == incident.summary
    assert "raw" in explanation and "temp" in explanation

    history = gq.check_history(ui.graphql, "model", INCIDENT_CHECK_NAME)
    # Reported runless by the correlation job: no run id, one evaluation per incident.
    assert [(e["status"], e["runId"]) for e in history] == [("FAILED", "")]


def test_runs_page_filters_the_affected_runs_by_incident_tag(ui: UiHistory) -> None:
    incident = ui.incident
    tagged = gq.runs_tagged(ui.graphql, INCIDENT_TAG, incident.id)
    expected = {run.run_id for run in incident.affected_runs}
    assert expected and {run["runId"] for run in tagged} == expected
    for run in tagged:
        tags = gq.tags(run)
        assert tags[CAUSE_TAG] == "raw.temp"
        assert tags[AT_RISK_TAG] == "false"  # confirmed by the metric, not merely at risk
        assert is_faulty(tags["dagster/partition"]), tags  # never a healthy day's run
        assert run["status"] == "SUCCESS"
    assert not gq.runs_tagged(ui.graphql, INCIDENT_TAG, "inc-does-not-exist")
    by_cause = gq.runs_tagged(ui.graphql, CAUSE_TAG, "raw.temp")
    assert {run["runId"] for run in by_cause} == expected
    correlation = gq.runs_tagged(ui.graphql, "corrmon/model", "model")
    assert [(r["runId"], r["jobName"]) for r in correlation] == [
        (ui.correlation_run_id, CORRELATION_JOB_NAME)
    ]


def test_raw_checks_tab_shows_the_failed_data_quality_evaluations(ui: UiHistory) -> None:
    check = gq.checks(ui.graphql, "raw")["temp_complete"]
    latest = check["executionForLatestMaterialization"]
    assert latest is not None
    assert (latest["status"], latest["partition"]) == ("FAILED", day(DAYS - 1))
    assert latest["evaluation"]["success"] is False
    assert gq.metadata(latest["evaluation"])["null_fraction"] > 0.2

    statuses = check["partitionStatuses"]
    assert statuses["__typename"] == "AssetCheckTimePartitionStatuses"
    assert [(r["startKey"], r["endKey"], r["status"]) for r in statuses["ranges"]] == [
        (day(0), day(FAULT_DAY - 1), "SUCCEEDED"),
        (day(FAULT_DAY), day(DAYS - 1), "FAILED"),
    ]

    for index, expected in ((FAULT_DAY - 1, "SUCCEEDED"), (FAULT_DAY, "FAILED")):
        history = gq.check_history(ui.graphql, "raw", "temp_complete", partition=day(index))
        assert [(e["status"], e["partition"]) for e in history] == [(expected, day(index))]
        evaluation = history[0]["evaluation"]
        assert evaluation["success"] is (expected == "SUCCEEDED")
        null_fraction = gq.metadata(evaluation)["null_fraction"]
        assert (null_fraction < 0.2) is (expected == "SUCCEEDED")
