"""`corrmon simulate` end to end on a short real scenario (the fast subset of the scenario lab).

Two weekly training partitions, four scored ones, and an upstream run failure of the weather feed
in the third: the failed run is recorded, the correlation sensor turns it into a ``run_failure``
signal on the feed, correlation jobs run, and the report holds every documented key.
"""

import contextlib
import io
import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from dagster_corrmon.cli.main import main
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.scenarios.simulate import (
    interrupt_latch,
    retrain_policy,
    scenario_definitions,
    stop_if_interrupted,
)
from dagster_corrmon.scenarios.spec import load_scenario
from dagster_corrmon.store import CorrmonStore

BASE = Path(__file__).resolve().parent.parent / "dagster_corrmon" / "examples" / "flights"

SCENARIO = f"""
base: {BASE / "flights_at_departure.yaml"}
name: smoke
partitioning: {{cadence: weekly, start: 2013-01-07, end: 2013-02-17}}
training: {{start: 2013-01-07, end: 2013-01-21}}
incidents:
  - id: weather_down
    kind: upstream_run_failure
    source: weather
    start: 2013-02-03
    end: 2013-02-09
expect:
  incidents: []
"""


# simulate() points DAGSTER_HOME at the simulated home while it runs, and must put it back.
DAGSTER_HOME_BEFORE = os.environ.get("DAGSTER_HOME")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("simulate")
    scenario = folder / "smoke.yaml"
    scenario.write_text(SCENARIO)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        main(["simulate", str(scenario), "--out", str(folder / "out")])  # exits only on error
    (folder / "out" / "printed.txt").write_text(printed.getvalue())
    return folder / "out"


def test_an_injected_failure_is_one_progress_line_not_a_traceback(simulated: Path) -> None:
    printed = (simulated / "printed.txt").read_text()
    failed = [line for line in printed.splitlines() if "failed (run " in line]
    assert len(failed) == 1, printed
    assert "2013-02-03: smoke_score failed" in failed[0]
    assert "step raw_weather: " in failed[0]
    assert "InjectedFailure: weather_down: injected upstream failure" in failed[0]
    assert "Traceback" not in printed and "Stack Trace" not in printed


def test_report_has_the_documented_shape(simulated: Path) -> None:
    report = json.loads((simulated / "report.json").read_text())
    for key in (
        "scenario",
        "partitions",
        "injected",
        "incidents",
        "retrain_decisions",
        "failed_runs",
        "scoring_runs",
    ):
        assert key in report
    assert report["scenario"] == "smoke"
    # weekly partitions keyed by their Sunday; 2013-01-13 is the only one inside training
    assert report["partitions"] == ["2013-01-20", "2013-01-27", "2013-02-03", "2013-02-10"]
    assert report["injected"] == [
        {
            "id": "weather_down",
            "kind": "upstream_run_failure",
            "source": "weather",
            "asset": "raw_weather",
            "column": None,
            "start": "2013-02-03",
            "end": "2013-02-09",
        }
    ]
    # The injected failure failed exactly the scoring run of its partition (and nothing was
    # labelled where nothing was predicted).
    assert [(r["job"], r["partition"]) for r in report["failed_runs"]] == [
        ("smoke_score", "2013-02-03")
    ]
    assert report["correlation_runs"] >= 1
    assert set(report["scoring_runs"]) == {"2013-01-20", "2013-01-27", "2013-02-10"}


def test_the_failure_reached_the_store_and_the_instance(simulated: Path) -> None:
    home = simulated / "dagster_home"
    with CorrmonStore(f"sqlite:///{home / 'corrmon.db'}") as store:
        failures = store.read_signals(kind=SignalKind.RUN_FAILURE)
    assert {(s.asset_key, s.partition) for s in failures} >= {("raw_weather", "2013-02-03")}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert len(runs) == 1
        correlation = instance.get_run_records(dg.RunsFilter(job_name="corrmon_correlation_job"))
        assert correlation and all(
            r.dagster_run.tags["corrmon/model"] == "model" for r in correlation
        )


def test_simulating_leaves_dagster_home_as_it_was(simulated: Path) -> None:
    assert (simulated / "dagster_home" / "corrmon.db").exists()
    assert os.environ.get("DAGSTER_HOME") == DAGSTER_HOME_BEFORE


def test_the_ui_location_shows_the_simulation_without_acting_on_it(tmp_path: Path) -> None:
    scenario = tmp_path / "smoke.yaml"
    scenario.write_text(SCENARIO)
    defs = scenario_definitions(load_scenario(scenario))
    sensors = {s.name: s.default_status for s in defs.sensors or []}
    assert sensors == {
        "corrmon_correlation_sensor": dg.DefaultSensorStatus.STOPPED,
        "corrmon_retrain_sensor": dg.DefaultSensorStatus.STOPPED,
    }
    # and a correlation run launched from it decides retraining under the scenario's policy
    spec = load_scenario(scenario)
    assert retrain_policy(spec).cooldown == timedelta(weeks=spec.retraining.cooldown_partitions)


def test_ctrl_c_in_a_step_stops_the_simulation_instead_of_counting_as_a_failure() -> None:
    @dg.asset
    def interrupted() -> int:
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, mid-step
        time.sleep(5)  # Dagster interrupts the step before this ends
        return 1

    @dg.asset
    def broken() -> int:
        raise ValueError("an injected failure")

    defs = dg.Definitions(
        assets=[interrupted, broken],
        jobs=[
            dg.define_asset_job("interrupted_job", selection=[interrupted]),
            dg.define_asset_job("broken_job", selection=[broken]),
        ],
    )
    with dg.instance_for_test() as instance:
        failed = defs.resolve_job_def("broken_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not failed.success
        stop_if_interrupted(failed)  # an ordinary failure is the simulation's business
        stopped = defs.resolve_job_def("interrupted_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not stopped.success  # Dagster turned the interrupt into a failed run ...
        with pytest.raises(KeyboardInterrupt):
            stop_if_interrupted(stopped)  # ... which the simulator turns back into Ctrl-C


def test_ctrl_c_between_steps_is_not_lost() -> None:
    from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

    @dg.asset
    def quiet() -> int:
        return 1

    job = dg.Definitions(
        assets=[quiet], jobs=[dg.define_asset_job("quiet_job", selection=[quiet])]
    ).resolve_job_def("quiet_job")
    with dg.instance_for_test() as instance, interrupt_latch():
        ran = job.execute_in_process(instance=instance)
        stop_if_interrupted(ran)  # nothing was pressed
        # What execute_in_process does around a whole run: a Ctrl-C outside any step is only
        # a flag, and Dagster clears it when the run ends ...
        with capture_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert check_captured_interrupt()
        assert not check_captured_interrupt()
        # ... so a run that succeeded carries no trace of it; the latch does.
        with pytest.raises(KeyboardInterrupt, match="interrupted while Dagster was running"):
            stop_if_interrupted(ran)
        stop_if_interrupted(ran)  # raised once, not forever
