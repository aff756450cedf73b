"""How long ``corrmon simulate`` takes, and where the time goes, per Dagster job.

Simulates a scenario (default: the flights-at-departure model, **daily** partitions, trained on
January 2013, scored from February, nothing injected) and prints the wall time per job and sensor
tick: mean, total, count. Run on demand, not in CI::

    .venv/bin/python benchmarks/simulate_speed.py                  # a daily year
    .venv/bin/python benchmarks/simulate_speed.py --partitions 30  # a daily month
    .venv/bin/python benchmarks/simulate_speed.py --no-monitoring  # Dagster's floor: no checks
    .venv/bin/python benchmarks/simulate_speed.py \
        --scenario dagster_corrmon/scenarios/builtin/flights_year.yaml  # the demo

Results and the commands that produced them: ``docs/benchmarks.md``.
"""

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from dagster_corrmon.scenarios import simulate as sim
from dagster_corrmon.scenarios.spec import load_scenario

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "dagster_corrmon" / "examples" / "flights" / "flights_at_departure.yaml"


def _daily_scenario(folder: Path, *, monitoring: bool) -> Path:
    body: dict[str, Any] = {
        "base": str(BASE),
        "name": "daily_speed",
        "training": {"start": "2013-01-01", "end": "2013-02-01"},
    }
    if not monitoring:
        body["monitoring"] = {"enabled": False}
    path = folder / "daily_speed.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="How long corrmon simulate takes, per job.")
    parser.add_argument("--scenario", type=Path, help="a scenario YAML (default: daily flights)")
    parser.add_argument("--partitions", type=int, default=None, help="score at most N partitions")
    parser.add_argument("--no-monitoring", action="store_true", help="no corrmon checks at all")
    args = parser.parse_args()

    timings: dict[str, list[float]] = defaultdict(list)
    execute = dg.JobDefinition.execute_in_process

    def timed_execute(self: dg.JobDefinition, *a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(self, *a, **k)
        finally:
            timings[f"job {self.name}"].append(time.perf_counter() - started)

    tick = sim._tick  # pyright: ignore[reportPrivateUsage]

    def timed_tick(defs: Any, name: str, *a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return tick(defs, name, *a, **k)
        finally:
            timings[f"tick {name}"].append(time.perf_counter() - started)

    dg.JobDefinition.execute_in_process = timed_execute  # type: ignore[method-assign]
    sim._tick = timed_tick  # pyright: ignore[reportPrivateUsage]
    with tempfile.TemporaryDirectory() as folder:
        path = args.scenario or _daily_scenario(Path(folder), monitoring=not args.no_monitoring)
        spec = load_scenario(path)
        started = time.perf_counter()
        report = sim.simulate(
            spec,
            out_dir=Path(folder) / "out",
            max_partitions=args.partitions,
            progress=lambda line: print(line, flush=True),
            existing="overwrite",
        )
        total = time.perf_counter() - started
    scored = len(report["partitions"])
    print()
    print(f"scenario {spec.name}: {scored} scored partitions, {total:.0f} s in all")
    print(f"{'stage':<44} {'count':>6} {'mean s':>8} {'total s':>8}")
    for stage, values in sorted(timings.items(), key=lambda item: -sum(item[1])):
        mean = sum(values) / len(values)
        print(f"{stage:<44} {len(values):>6} {mean:>8.3f} {sum(values):>8.1f}")


if __name__ == "__main__":
    main()
