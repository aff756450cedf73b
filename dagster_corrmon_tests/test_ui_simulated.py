"""The Dagster UI shows a *simulated* corrmon history: read back through Dagster's GraphQL API.

``test_ui_graphql`` does this for a hand-written project; here the history comes from
``corrmon simulate`` and the UI is the code location ``dagster_corrmon.scenarios.ui`` (what
``dagster dev -m dagster_corrmon.scenarios.ui`` serves with ``CORRMON_SCENARIO`` and
``DAGSTER_HOME`` set), loaded the way ``dagster dev`` loads it: a ``workspace.yaml`` naming a
``python_module``, served by a real code server subprocess.

The scenario (weekly flights, one training week, five scored weeks; ~40 s on 2 cores, simulated
once per session even under xdist): the departures batch of the week of 2013-02-03 never arrives
(``missing_batch``), so the feed's completeness check fails there and the scored ROC-AUC drops from
about 0.9 to about 0.55 once labels arrive; the weather feed's run of the following week fails
(``upstream_run_failure``). corrmon opens an incident on the model and tags the runs it affected.
What the UI must show is derived from ``report.json`` and the corrmon store, never written here:

* the injected feed's Checks tab: failed evaluations in the injected partitions, passing ones in
  the clean partitions, the same verdicts (and runs) as the store's check signals;
* the model's Checks tab: the latest ``corrmon_incident`` evaluation names the report's incident;
* the Runs page filtered by ``corrmon/incident=<id>``: exactly the report's affected runs;
* the failed run: status FAILURE, with its job and partition.
"""

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster_graphql.test.utils import define_out_of_process_context
from filelock import FileLock

from dagster_corrmon.cli.main import main
from dagster_corrmon.correlation.engine import (
    AT_RISK_TAG,
    CAUSE_TAG,
    INCIDENT_CHECK_NAME,
    INCIDENT_TAG,
    tag_value,
)
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import graphql_ui as gq

BASE = Path(__file__).resolve().parent.parent / "dagster_corrmon" / "examples" / "flights"
LOCATION = "corrmon_simulated_ui"
UI_MODULE = "dagster_corrmon.scenarios.ui"  # importing it loads the definitions: named only
SCENARIO_ENV = "CORRMON_SCENARIO"  # the documented variable, spelled out
NAME = "ui_history"

# Weekly partitions keyed by their Sunday: 2013-01-06 trains; 01-13 .. 02-10 are scored.
# min_reference 3: three clean labelled weeks are enough history for the metric baseline.
# The weather failure comes last so that it leaves no hole in that history.
SCENARIO = f"""
base: {BASE / "flights_at_departure.yaml"}
name: {NAME}
partitioning: {{cadence: weekly, start: 2013-01-01, end: 2013-02-17}}
training: {{start: 2013-01-01, end: 2013-01-13}}
simulation: {{min_reference: 3}}
incidents:
  - id: departures_missing
    kind: missing_batch
    source: departures
    start: 2013-02-03
    end: 2013-02-09
  - id: weather_down
    kind: upstream_run_failure
    source: weather
    start: 2013-02-10
"""


@dataclass(frozen=True)
class SimulatedUi:
    """A GraphQL context over the scenario's code location, and what the simulation wrote."""

    graphql: WorkspaceRequestContext
    report: dict[str, Any]
    store: CorrmonStore  # the location's default store: $DAGSTER_HOME/corrmon.db


def _simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario simulated once per test session (under xdist: once for all workers)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this session's base folder, shared by its workers
    folder = root / "ui_simulated"
    out = folder / "out"
    with FileLock(str(root / "ui_simulated.lock")):
        if not (out / "report.json").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a half-written attempt is not reused
            folder.mkdir()
            scenario = folder / "scenario.yaml"
            scenario.write_text(SCENARIO)
            main(["simulate", str(scenario), "--out", str(out)])  # exits only on error
    return folder


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedUi]:
    folder = _simulated(tmp_path_factory)
    home = folder / "out" / "dagster_home"
    report = json.loads((folder / "out" / "report.json").read_text())
    workspace = gq.write_workspace(
        tmp_path_factory.mktemp("ui_simulated") / "workspace.yaml",
        module=UI_MODULE,
        location=LOCATION,
    )
    with pytest.MonkeyPatch.context() as env:
        # Set before the code server subprocess starts: it inherits them. The location's store
        # is left at its default ($DAGSTER_HOME/corrmon.db): a CI-wide store URL must not leak in.
        env.delenv("CORRMON_DATABASE_URL", raising=False)
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv(SCENARIO_ENV, str(folder / "scenario.yaml"))
        store = CorrmonStore()
        assert Path(store.database_url.removeprefix("sqlite:///")) == home / "corrmon.db"
        try:
            with (
                dg.DagsterInstance.from_config(str(home)) as instance,
                define_out_of_process_context(str(workspace), None, instance) as graphql,
            ):
                yield SimulatedUi(graphql=graphql, report=report, store=store)
        finally:
            store.close()


def _incident(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's one performance incident (what the model's incident check reports)."""
    found = [i for i in report["incidents"] if not i["provisional"]]
    assert len(found) == 1, report["incidents"]
    incident = found[0]
    assert incident["affected_runs"], "the scenario must raise an incident that annotates runs"
    return incident


def _cause_label(cause: Mapping[str, Any] | None) -> str:
    if cause is None:
        return "none"
    return f"{cause['asset']}.{cause['column']}" if cause["column"] else cause["asset"]


def _date(partition: str) -> dt.date:
    return dt.date.fromisoformat(partition[:10])


def _ranges(statuses: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Consecutive partitions with one status, as the Checks tab's partition bar groups them."""
    ranges: list[tuple[str, str, str]] = []
    for partition, status in sorted(statuses.items()):
        if ranges and ranges[-1][2] == status:
            ranges[-1] = (ranges[-1][0], partition, status)
        else:
            ranges.append((partition, partition, status))
    return ranges


def test_injected_feed_checks_fail_in_the_injected_partitions_only(ui: SimulatedUi) -> None:
    (injected,) = [i for i in ui.report["injected"] if i["kind"] == "missing_batch"]
    asset = injected["asset"]
    start = dt.date.fromisoformat(injected["start"])
    end = dt.date.fromisoformat(injected["end"]) if injected["end"] else dt.date.max

    checks = gq.checks(ui.graphql, asset)
    failing: set[str] = set()
    for name in checks:
        # What the store recorded per partition for this check: its verdict and the run.
        recorded = {
            s.partition: ("SUCCEEDED" if s.passed else "FAILED", s.run_id)
            for s in ui.store.read_signals(asset_key=asset, name=name)
            if s.partition is not None
        }
        assert recorded, f"{asset}: no signal of check {name} in the store"
        shown = {
            e["partition"]: (e["status"], e["runId"])
            for e in gq.check_history(ui.graphql, asset, name)
        }
        assert shown == recorded, name
        statuses = {partition: status for partition, (status, _) in shown.items()}
        bar = checks[name]["partitionStatuses"]
        assert bar["__typename"] == "AssetCheckTimePartitionStatuses", bar
        assert [(r["startKey"], r["endKey"], r["status"]) for r in bar["ranges"]] == _ranges(
            statuses
        ), name
        if "FAILED" in statuses.values():
            failing.add(name)
            for partition, status in statuses.items():
                inside = start <= _date(partition) <= end
                assert (status == "FAILED") is inside, (name, partition, status)

    # The empty batch is caught where it was injected, and clean weeks stay green.
    assert failing, f"no check of {asset} failed in the injected window"
    injected_partitions = {p for p in ui.report["scoring_runs"] if start <= _date(p) <= end}
    assert injected_partitions
    for name in failing:
        history = gq.check_history(ui.graphql, asset, name)
        for partition in injected_partitions:
            (execution,) = [e for e in history if e["partition"] == partition]
            assert execution["evaluation"]["success"] is False
            assert execution["runId"] == ui.report["scoring_runs"][partition]


def test_model_checks_tab_names_the_reported_incident(ui: SimulatedUi) -> None:
    incident = _incident(ui.report)
    checks = gq.checks(ui.graphql, "model")
    assert INCIDENT_CHECK_NAME in checks  # declared by the scenario's code location
    latest = checks[INCIDENT_CHECK_NAME]["executionForLatestMaterialization"]
    assert latest is not None, "the runless incident evaluation does not show as the latest one"
    # Reported runlessly by the correlation job, after the training run's own evaluation.
    assert latest["runId"] == ""
    open_ = incident["status"] in ("open", "acknowledged")
    assert latest["status"] == ("FAILED" if open_ else "SUCCEEDED")
    evaluation = latest["evaluation"]
    assert evaluation["severity"] == ("ERROR" if incident["consequential"] else "WARN")
    metadata = gq.metadata(evaluation)
    assert metadata["corrmon/incident"] == incident["id"]
    assert metadata["corrmon/classification"] == incident["classification"]
    assert metadata["corrmon/consequential"] is incident["consequential"]
    assert metadata["corrmon/onset_partition"] == incident["onset_partition"]
    assert metadata["corrmon/suspected_cause"] == _cause_label(incident["suspected_cause"])
    assert metadata["corrmon/affected_runs"] == len(incident["affected_runs"])
    assert metadata["corrmon/explanation"] == incident["summary"]

    stored = ui.store.get_incident(incident["id"])
    assert stored is not None and stored.summary == incident["summary"]


def test_runs_page_filters_exactly_the_incidents_affected_runs(ui: SimulatedUi) -> None:
    incident = _incident(ui.report)
    expected = {run["run_id"]: run for run in incident["affected_runs"]}
    stored = ui.store.get_incident(incident["id"])
    assert stored is not None
    assert {run.run_id for run in stored.affected_runs} == set(expected)

    tagged = gq.runs_tagged(ui.graphql, INCIDENT_TAG, tag_value(incident["id"]))
    assert {run["runId"] for run in tagged} == set(expected)
    cause = tag_value(_cause_label(incident["suspected_cause"]))
    for run in tagged:
        tags = gq.tags(run)
        affected = expected[run["runId"]]
        assert tags[CAUSE_TAG] == cause
        assert tags[AT_RISK_TAG] == ("true" if affected["at_risk"] else "false")
        assert tags["corrmon/classification"] == incident["classification"]
        assert tags["dagster/partition"] == affected["partition"]
        assert run["status"] == "SUCCESS"  # a failed run consumed nothing
    assert not gq.runs_tagged(ui.graphql, INCIDENT_TAG, "inc-does-not-exist")


def test_failed_run_shows_as_failed_with_its_partition(ui: SimulatedUi) -> None:
    failed = {run["run_id"]: run for run in ui.report["failed_runs"]}
    assert failed, "the scenario's injected run failure is in the report"
    shown = gq.runs(ui.graphql, {"statuses": ["FAILURE"]})
    assert {run["runId"] for run in shown} == set(failed)
    for run in shown:
        expected = failed[run["runId"]]
        assert run["jobName"] == expected["job"]
        assert gq.tags(run)["dagster/partition"] == expected["partition"]
