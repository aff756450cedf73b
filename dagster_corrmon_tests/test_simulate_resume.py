"""`corrmon simulate` into a folder that is not empty: refused, started afresh, or resumed.

The fast tests check the refusals (one line, exit 2, nothing deleted). The slow one kills a real
`corrmon simulate` process with SIGKILL mid-way, resumes it, and compares the result with an
uninterrupted simulation of the same scenario: the same signals once each, no run left STARTED,
the same report.
"""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_corrmon.scenarios.simulate import CHECKPOINT_FILE, simulate
from dagster_corrmon.scenarios.spec import load_scenario
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests.cli_run import corrmon
from dagster_corrmon_tests.test_simulate import SCENARIO

CORRMON = [sys.executable, "-m", "dagster_corrmon.cli.main"]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "smoke.yaml"
    path.write_text(SCENARIO)
    return path


def test_a_non_empty_out_is_refused_in_one_line(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, printed = corrmon("simulate", str(scenario), "--out", str(out))
    assert code == 2
    assert printed.strip().count("\n") == 0
    assert printed.startswith("corrmon: error: --out ") and "--resume" in printed
    # --overwrite deletes only what a simulation wrote: a folder of other files is refused
    code, printed = corrmon("simulate", str(scenario), "--out", str(out), "--overwrite")
    assert code == 2 and "notes.txt" in printed and "refusing" in printed
    assert (out / "notes.txt").read_text() == "mine"
    code, printed = corrmon("simulate", str(scenario), "--out", str(out), "--resume")
    assert code == 2 and CHECKPOINT_FILE in printed
    code, printed = corrmon("simulate", str(scenario), "--out", str(out), "--resume", "--overwrite")
    assert code == 2 and "exclude each other" in printed


def test_a_checkpoint_of_another_scenario_is_not_resumed(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "dagster_home").mkdir(parents=True)
    (out / CHECKPOINT_FILE).write_text(json.dumps({"fingerprint": "another", "next_index": 1}))
    code, printed = corrmon("simulate", str(scenario), "--out", str(out), "--resume")
    assert code == 2 and "another scenario" in printed


def test_negative_max_partitions_is_refused(scenario: Path, tmp_path: Path) -> None:
    code, printed = corrmon(
        "simulate", str(scenario), "--out", str(tmp_path / "o"), "--max-partitions", "-1"
    )
    assert code == 2 and "max-partitions" in printed
    assert not (tmp_path / "o").exists()


def _wall_clock(signal: Any) -> bool:
    """Lateness and serving latency are measured on the wall clock: they differ between runs."""
    return signal.kind.value == "freshness" or signal.name.startswith("latency")


def _signals(out: Path) -> Counter[tuple[Any, ...]]:
    with CorrmonStore(f"sqlite:///{out / 'dagster_home' / 'corrmon.db'}") as store:
        return Counter(
            (
                s.kind.value,
                s.asset_key,
                s.name,
                s.partition,
                s.column,
                None if s.value is None or _wall_clock(s) else round(s.value, 9),
                s.passed,
            )
            for s in store.read_signals()
        )


def _runs(out: Path) -> Counter[tuple[str, str, str]]:
    with dg.DagsterInstance.from_config(str(out / "dagster_home")) as instance:
        return Counter(
            (run.job_name, run.tags.get("dagster/partition", ""), run.status.value)
            for run in instance.get_runs()
        )


def _report(out: Path) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("run_id", "elapsed_seconds")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    report = json.loads((out / "report.json").read_text())
    report["scoring_runs"] = sorted(report["scoring_runs"])  # partition -> run id
    for decision in report["retrain_decisions"]:
        if decision["partition"] is None:  # decided before any label: stamped with the clock
            decision.pop("event_time")
    stripped = strip(report)
    for incident in stripped["incidents"]:  # ordered by run id, which differs between runs
        incident["affected_runs"].sort(key=lambda run: json.dumps(run, sort_keys=True))
    return stripped


@pytest.mark.reliability
def test_a_killed_simulation_resumes_exactly_where_it_stopped(
    scenario: Path, tmp_path: Path
) -> None:
    clean = tmp_path / "clean"
    simulate(load_scenario(scenario), out_dir=clean, progress=lambda _: None)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*CORRMON, "simulate", str(scenario), "--out", str(killed)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "[1/4]" in line:  # the first scored partition is done; the second is starting
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "report.json").exists()

    code, printed = corrmon("simulate", str(scenario), "--out", str(killed))
    assert code == 2 and "--resume" in printed  # an interrupted simulation is not mixed into
    simulate(load_scenario(scenario), out_dir=killed, progress=lambda _: None, existing="resume")

    assert _signals(killed) == _signals(clean)
    runs = _runs(killed)
    assert not [run for run in runs if run[2] in ("STARTED", "STARTING", "QUEUED")]
    assert runs == _runs(clean)
    assert _report(killed) == _report(clean)
