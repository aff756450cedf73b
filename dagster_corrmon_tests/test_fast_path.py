"""The fast evaluation path agrees with the full ``corrmon simulate`` path."""

from pathlib import Path

from dagster_corrmon.scenarios.evaluate import incident_signature
from dagster_corrmon.scenarios.fast import simulate_fast
from dagster_corrmon.scenarios.generate import generate
from dagster_corrmon.scenarios.simulate import simulate
from dagster_corrmon.scenarios.spec import load_scenario
from dagster_corrmon_tests.test_generate import SEATTLE


def test_fast_and_full_paths_agree_on_small_generated_scenarios(tmp_path: Path) -> None:
    """Same incidents — detection partition, classification, consequential flag, top cause —
    on two generated scenarios (short windows: 3 clean partitions, then 3 for injections)."""
    manifest = generate(
        SEATTLE, n=2, seed=5, out_dir=tmp_path / "specs", lead=3, body=3, progress=lambda _: None
    )
    compared = 0
    signatures = []
    for name, entry in manifest["scenarios"].items():
        scenario = load_scenario(tmp_path / "specs" / entry["file"])
        assert scenario.incidents  # both are injected scenarios (every sixth is a control)
        fast = simulate_fast(scenario, out_dir=tmp_path / "fast" / name, progress=lambda _: None)
        full = simulate(scenario, out_dir=tmp_path / "full" / name, progress=lambda _: None)
        assert fast["partitions"] == full["partitions"]
        assert incident_signature(fast) == incident_signature(full), name
        signatures += incident_signature(full)
        assert fast["correlation_runs"] == full["correlation_runs"]
        compared += 1
    assert compared == 2
    assert signatures  # the schema change (the first kind drawn) raises at least an at-risk one
