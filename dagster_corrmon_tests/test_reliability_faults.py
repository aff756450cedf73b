"""Fault injection: a correlation pass killed at any effect step ends, once the sensor and a normal
pass have run, in exactly the state of a clean run — the same incident, the same run tags, one
``corrmon_incident`` check evaluation, one observation, one retrain decision, no duplicates.

The failure goes through the job's real ``on_effect`` seam (an observer called after each step),
in a real Dagster instance and a real SQLite store; the pipeline's history is built once and
copied for each case, so every case starts from the same runs and run ids.
"""

import dataclasses
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_corrmon import instance_api
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.correlation.annotation import (
    EFFECTS,
    INCIDENT_CHECK_NAME,
    INCIDENT_WRITTEN,
)
from dagster_corrmon.correlation.definitions import (
    CORRELATION_JOB_NAME,
    build_correlation_job,
    build_incident_checks,
)
from dagster_corrmon.correlation.sensor import (
    SensorCursor,
    build_correlation_sensor,
    load_cursor,
    parse_cursor,
)
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import correlation_project as project

SENSOR = "corrmon_correlation_sensor"
INCIDENT_CHECK = dg.AssetCheckKey(dg.AssetKey("model"), INCIDENT_CHECK_NAME)


class InjectedFault(RuntimeError):
    """What the fault hook raises: a worker dying right after an effect step."""


@pytest.fixture(scope="module")
def history_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's materialized history (Dagster storage + corrmon store), built once."""
    folder = tmp_path_factory.mktemp("faults_history")
    with (
        dg.instance_for_test(temp_dir=str(folder)) as instance,
        CorrmonStore(f"sqlite:///{folder}/corrmon.db") as store,
    ):
        project.materialize_history(instance, store)
    return folder


class World:
    """A copy of the history, opened: instance, store, the normal definitions."""

    def __init__(self, folder: Path, instance: dg.DagsterInstance) -> None:
        self.folder = folder
        self.instance = instance
        self.resource = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
        self.store = CorrmonStore(self.resource.database_url)
        self.defs = project.build_defs(store=self.resource)

    def tick(
        self, cursor: str | None = None, sensor: dg.SensorDefinition | None = None
    ) -> dg.SensorResult:
        sensor = sensor or self.defs.resolve_sensor_def(SENSOR)
        with dg.build_sensor_context(
            instance=self.instance,
            definitions=self.defs,
            resources={"corrmon": self.resource},
            cursor=cursor,
        ) as context:
            result = sensor.evaluate_tick(context)
        return result  # type: ignore[return-value]

    def run(self, request: dg.RunRequest, job: dg.JobDefinition | None = None) -> bool:
        job = job or self.defs.resolve_job_def(CORRELATION_JOB_NAME)
        result = job.execute_in_process(
            instance=self.instance,
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )
        return result.success

    def faulty_job(self, at: str) -> dg.JobDefinition:
        """The correlation job of the same project, whose worker dies after step ``at``."""

        def die(effect: str, subject: str) -> None:
            if effect == at:
                raise InjectedFault(f"killed after {effect} of {subject}")

        defs = dg.Definitions(
            assets=[
                project.raw,
                project.features,
                project.model,
                project.predictions,
                project.evaluation,
            ],
            asset_checks=[project.temp_complete, *build_incident_checks(models=[project.MODEL])],
            jobs=[build_correlation_job(models=[project.MODEL], on_effect=die)],
            resources={"corrmon": self.resource},
        )
        return defs.resolve_job_def(CORRELATION_JOB_NAME)


@pytest.fixture
def world(history_folder: Path, tmp_path: Path) -> Iterator[World]:
    folder = tmp_path / "world"
    shutil.copytree(history_folder, folder)
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        opened = World(folder, instance)
        yield opened
        opened.store.close()


def end_state(world: World) -> dict[str, Any]:
    """Everything the correlation pipeline writes, comparable across two copies of one history."""
    store, instance = world.store, world.instance
    incidents = {
        incident.id: (
            incident.status.value,
            incident.classification.value,
            incident.consequential,
            incident.onset_partition,
            tuple(sorted((run.run_id, run.at_risk) for run in incident.affected_runs)),
            incident.summary,
            tuple((h.from_status, h.to_status) for h in store.incident_history(incident.id)),
        )
        for incident in store.list_incidents()
    }
    tags = {
        run.run_id: {key: value for key, value in run.tags.items() if key.startswith("corrmon/")}
        for run in instance.get_runs()
        if run.job_name != CORRELATION_JOB_NAME
    }
    evaluations = [
        (
            record.evaluation.passed,
            record.evaluation.severity,
            record.evaluation.metadata["corrmon/incident"].value,
        )
        for record in instance_api.check_executions_after(instance, INCIDENT_CHECK, after_id=0)
    ]
    observations = [
        record.asset_observation.metadata["corrmon/incident"].value
        for record in instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("model")), limit=1000
        ).records
        if record.asset_observation is not None
    ]
    decisions = [
        (s.partition, s.metadata.get("decision"), s.metadata.get("reason"))
        for s in store.read_signals(kind=SignalKind.RETRAIN_DECISION)
    ]
    return {
        "incidents": incidents,
        "tags": tags,
        "evaluations": evaluations,
        "observations": observations,
        "decisions": decisions,
        "signals": len(store.read_signals()),
    }


@pytest.fixture(scope="module")
def clean_state(history_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The state after one sensor tick and one uninterrupted correlation pass."""
    folder = tmp_path_factory.mktemp("clean") / "world"
    shutil.copytree(history_folder, folder)
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        world = World(folder, instance)
        requests = world.tick().run_requests or []
        assert len(requests) == 1
        assert world.run(requests[0])
        state = end_state(world)
        world.store.close()
    assert len(state["incidents"]) == 1
    assert len(state["evaluations"]) == len(state["observations"]) == 1
    assert len(state["decisions"]) == 1
    assert sum(1 for t in state["tags"].values() if "corrmon/incident" in t) > 0
    return state


def test_a_pass_killed_right_after_the_incident_write_is_finished_by_the_next_pass(
    world: World, clean_state: dict[str, Any]
) -> None:
    first = world.tick()
    request = (first.run_requests or [])[0]
    assert not world.run(request, world.faulty_job(INCIDENT_WRITTEN))
    # The op's own retries already finish the annotation (each starts by reconciling) ...
    tagged = world.instance.get_run_records(
        dg.RunsFilter(tags={"corrmon/incident": next(iter(clean_state["incidents"]))})
    )
    assert tagged
    # ... and a normal pass, with no new trigger, completes the rest: exactly a clean run.
    assert world.run(request)
    assert end_state(world) == clean_state


@pytest.mark.parametrize(
    "step",
    # one step in `make test`; every step in `make reliability`
    [
        step if step == "incident_check" else pytest.param(step, marks=pytest.mark.reliability)
        for step in EFFECTS
    ],
)
def test_a_pass_killed_at_any_step_ends_like_a_clean_run_after_the_sensor(
    world: World, clean_state: dict[str, Any], step: str
) -> None:
    first = world.tick()
    request = (first.run_requests or [])[0]
    assert not world.run(request, world.faulty_job(step))
    # The cursor has moved past every trigger; the sensor still sees the pass did not finish,
    # completes the incident's annotation itself and requests a new pass.
    second = world.tick(first.cursor)
    repairs = second.run_requests or []
    assert len(repairs) == 1
    config = repairs[0].run_config["ops"]["corrmon_correlate"]["config"]
    assert [t.split(":")[0] for t in config["triggers"]] == ["reconcile"]
    after_tick = end_state(world)
    for key in ("incidents", "tags", "evaluations", "observations"):
        assert after_tick[key] == clean_state[key], key
    assert world.run(repairs[0])
    assert end_state(world) == clean_state
    # Finished now: the next tick requests nothing.
    assert not world.tick(second.cursor).run_requests


def test_a_repeated_pass_writes_no_second_check_evaluation(
    world: World, clean_state: dict[str, Any]
) -> None:
    request = (world.tick().run_requests or [])[0]
    for _ in range(3):
        assert world.run(request)
    assert end_state(world) == clean_state


# --------------------------------------------------------------------- the sensor's cursor

CORRUPTIONS: dict[str, Any] = {
    "string storage id": ("mat", "raw", "12"),
    "null storage id": ("mat", "raw", None),
    "negative storage id": ("mat", "raw", -5),
    "boolean storage id": ("mat", "features", True),
    "float storage id": ("mat", "evaluation", 3.5),
    "materializations not an object": ("mat", None, ["raw"]),
    "numeric code version": ("code", "raw", 7),
    "code versions not an object": ("code", None, "1"),
    "null check id": ("checks", "raw:temp_complete", None),
    "string check id": ("checks", "raw:temp_complete", "3"),
    "checks not an object": ("checks", None, 42),
    "string failure timestamp": ("failures_ts", None, "2024-01-01T00:00:00"),
    "boolean failure timestamp": ("failures_ts", None, True),
    "negative failure timestamp": ("failures_ts", None, -1.0),
    "version as a string": ("v", None, "1"),
    "missing field": ("mat", "<delete>", None),
}


def _corrupt(cursor: str, field: str, key: str | None, value: Any) -> str:
    data = json.loads(cursor)
    if key == "<delete>":
        del data[field]
    elif key is None:
        data[field] = value
    else:
        data[field][key] = value
    return json.dumps(data)


# one corruption per field in `make test`; all of them in `make reliability`
FAST_CORRUPTIONS = {"string storage id", "null check id", "string failure timestamp"}


@pytest.mark.parametrize(
    "corruption",
    [
        name if name in FAST_CORRUPTIONS else pytest.param(name, marks=pytest.mark.reliability)
        for name in sorted(CORRUPTIONS)
    ],
)
def test_a_cursor_with_a_wrong_typed_field_is_rebuilt_and_the_tick_goes_on(
    world: World, corruption: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = world.tick().cursor
    assert good is not None
    _, problems = parse_cursor(good)
    assert problems == ()
    bad = _corrupt(good, *CORRUPTIONS[corruption])
    with caplog.at_level(logging.WARNING):
        load_cursor(bad, logging.getLogger("corrmon-test"))
    assert "invalid sensor cursor" in caplog.text or "starting afresh" in caplog.text
    result = world.tick(bad)  # raised on every tick before
    rebuilt, problems = parse_cursor(result.cursor)
    assert problems == ()
    # What the corrupt entry tracked is read again, up to where the good cursor stood.
    assert rebuilt == parse_cursor(good)[0]
    # ... and that is stable: the next tick neither moves the cursor nor requests anything new.
    again = world.tick(result.cursor)
    assert parse_cursor(again.cursor)[0] == rebuilt


def test_the_cursor_is_a_typed_frozen_record() -> None:
    cursor, problems = parse_cursor(
        json.dumps(
            {
                "v": 1,
                "mat": {"raw": 12},
                "code": {"raw": "1"},
                "checks": {"raw:ok": 4},
                "failures_ts": 1700000000,
            }
        )
    )
    assert problems == ()
    assert cursor == SensorCursor(
        materializations={"raw": 12},
        code_versions={"raw": "1"},
        checks={"raw:ok": 4},
        failures_ts=1700000000.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cursor.failures_ts = None  # type: ignore[misc]
    assert parse_cursor(cursor.to_json()) == (cursor, ())
    # an asset's storage id and code version go together: one bad, both re-read
    half, problems = parse_cursor(
        json.dumps({"v": 1, "mat": {"raw": "x"}, "code": {"raw": "1"}, "checks": {}})
    )
    assert problems and half.materializations == {} and half.code_versions == {}


def test_a_tick_over_its_time_budget_stops_early_with_a_consistent_cursor(world: World) -> None:
    unbudgeted = world.tick()
    full = parse_cursor(unbudgeted.cursor)[0]
    sensor = build_correlation_sensor(models=[project.MODEL], tick_budget_seconds=0)
    cursor: str | None = None
    triggers: set[str] = set()
    steps = 0
    while True:
        result = world.tick(cursor, sensor)
        for request in result.run_requests or []:
            triggers |= set(request.run_config["ops"]["corrmon_correlate"]["config"]["triggers"])
        steps += 1
        if result.cursor == cursor:
            break
        read = parse_cursor(result.cursor)[0]
        # each tick reads one more asset or check key: never more than the full tick did
        assert set(read.materializations) <= set(full.materializations)
        assert set(read.checks) <= set(full.checks)
        cursor = result.cursor
        assert steps < 20
    assert steps > 2  # the budget did split the work
    assert parse_cursor(cursor)[0] == full
    expected = set(
        (unbudgeted.run_requests or [])[0].run_config["ops"]["corrmon_correlate"]["config"][
            "triggers"
        ]
    )
    assert triggers == expected
