"""How much do all corrmon checks add to one daily partition? (issue 3's overhead target)

One daily partition of a generic table — 1000 rows × 15 columns (10 numeric, 3 categorical, an id,
a timestamp) — plus a 1000-row predictions table, materialized in a real Dagster instance with the
in-process executor, first without checks, then with every factory attached:

    completeness (all columns, 3 with limits) · validity (5 GX rules) · volume · a 6-expectation GX
    suite · schema contract · freshness · drift (15 columns vs a 3000-row reference profile,
    importance-weighted) · model performance (7 classification + 4 serving metrics, 1000 bootstrap
    resamples)

Reported: the median wall time per partition of both runs after warm-up (GX imported, baselines
fed), their difference (the overhead as a user sees it, Dagster's per-step cost included), each
check step's duration, and — for calibration — the duration of a no-op check step that only loads
the partition (Dagster's own floor per check). The one-off GX import is reported separately.

    .venv/bin/python dagster_corrmon_tests/bench_checks_overhead.py [--partitions 8]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon.checks import (
    AllowedValues,
    BaselinePolicy,
    InRange,
    MatchesRegex,
    Unique,
    build_data_quality_checks,
    build_drift_checks,
    build_freshness_checks,
    build_model_evaluation_checks,
    build_schema_contract_checks,
    bundle_checks,
)
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.resource import CorrmonResource

ROWS = 1000
daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
NUMERIC = [f"x{i}" for i in range(10)]


def make_table(seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(i, 1 + i / 5, rows) for i, name in enumerate(NUMERIC)})
    frame["region"] = rng.choice(["north", "south", "east", "west"], rows)
    frame["tier"] = rng.choice(["a", "b", "c"], rows, p=[0.6, 0.3, 0.1])
    frame["channel"] = rng.choice(["web", "app", "store", "phone", "partner"], rows)
    frame["event_id"] = [f"e-{seed:05d}-{i:05d}" for i in range(rows)]
    frame["event_time"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        rng.integers(0, 86_400, rows), unit="s"
    )
    frame.loc[rng.random(rows) < 0.02, "x3"] = np.nan
    return frame


def seed_of(key: str) -> int:
    return int(key.replace("-", "")) % 100_000


@dg.asset(partitions_def=daily)
def events(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return make_table(seed_of(context.partition_key))


@dg.asset(partitions_def=daily)
def scores(context: dg.AssetExecutionContext) -> pd.DataFrame:
    rng = np.random.default_rng(seed_of(context.partition_key))
    label = rng.integers(0, 2, ROWS)
    return pd.DataFrame(
        {
            "label": label,
            "score": np.clip(0.35 * label + 0.65 * rng.random(ROWS), 0, 1),
            "latency_ms": rng.gamma(3.0, 8.0, ROWS),
            "failed": (rng.random(ROWS) < 0.01).astype(int),
        }
    )


@dg.asset_check(asset=events, partitions_def=daily)
def noop_check(events: pd.DataFrame) -> dg.AssetCheckResult:
    """Calibration: a check that loads the partition and does nothing — Dagster's per-step floor."""
    return dg.AssetCheckResult(passed=True)


def all_checks(workdir: Path) -> list[dg.AssetChecksDefinition]:
    reference = pd.concat([make_table(90_000 + i) for i in range(3)], ignore_index=True)
    profile = build_reference_profile(reference.drop(columns=["event_id", "event_time"]))
    suite = workdir / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "name": "events_suite",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x0"}},
                    {
                        "type": "expect_column_mean_to_be_between",
                        "kwargs": {"column": "x1", "min_value": 0, "max_value": 2},
                    },
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "x2", "min_value": -20, "max_value": 20},
                    },
                    {"type": "expect_column_to_exist", "kwargs": {"column": "channel"}},
                    {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {"min_value": 100, "max_value": 100_000},
                    },
                    {
                        "type": "expect_column_distinct_values_to_be_in_set",
                        "kwargs": {"column": "tier", "value_set": ["a", "b", "c"]},
                    },
                ],
            }
        )
    )
    baseline = BaselinePolicy(min_history=3)
    return [
        *build_data_quality_checks(
            assets=[events],
            completeness={"x0": 0.05, "x3": 0.05, "region": 0.0},
            validity=[
                InRange(column="x0", min_value=-10, max_value=10),
                InRange(column="x5", min_value=-30, max_value=30),
                AllowedValues(column="region", values=("north", "south", "east", "west")),
                MatchesRegex(column="event_id", pattern=r"^e-\d{5}-\d{5}$"),
                Unique(columns=("event_id",)),
            ],
            suite=suite,
            baseline=baseline,
        ),
        *build_schema_contract_checks(assets=[events]),
        *build_freshness_checks(assets=[events]),
        *build_drift_checks(
            assets=[events],
            reference=profile,
            feature_importance={name: 1.0 / (1 + i) for i, name in enumerate(profile.column_names)},
        ),
        *build_model_evaluation_checks(
            asset=scores,
            label_column="label",
            score_column="score",
            latency_column="latency_ms",
            error_column="failed",
            baseline=baseline,
        ),
    ]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--partitions", type=int, default=8, help="daily partitions per variant")
    parser.add_argument("--warmup", type=int, default=3, help="partitions left out of the medians")
    parser.add_argument(
        "--bundle", action="store_true", help="run each asset's checks in one step (bundle_checks)"
    )
    args = parser.parse_args(argv)

    gx_import, _ = timed(lambda: __import__("great_expectations"))
    with tempfile.TemporaryDirectory() as workdir, dg.instance_for_test() as instance:
        checks = all_checks(Path(workdir))
        if args.bundle:
            checks = bundle_checks(checks)
        resources = {"corrmon": CorrmonResource(database_url=f"sqlite:///{workdir}/c.db")}
        keys = daily.get_partition_keys()[: 2 * args.partitions]
        plain_times: list[float] = []
        checked_times: list[float] = []
        step_times: list[dict[str, float]] = []
        noop_times: list[float] = []
        own_times: list[dict[str, float]] = []
        for index in range(args.partitions):
            plain_key, checked_key = keys[2 * index], keys[2 * index + 1]
            plain, _ = timed(
                lambda k=plain_key: dg.materialize(
                    [events, scores], instance=instance, partition_key=k, resources=resources
                )
            )
            checked, result = timed(
                lambda k=checked_key: dg.materialize(
                    [events, scores, *checks, noop_check],
                    instance=instance,
                    partition_key=k,
                    resources=resources,
                )
            )
            evaluations = result.get_asset_check_evaluations()
            assert len(evaluations) == 9, [e.check_name for e in evaluations]
            per_check = {
                stat.step_key: (stat.end_time or 0.0) - (stat.start_time or 0.0)
                for stat in instance.get_run_step_stats(result.run_id)
                if stat.step_key not in ("events", "scores", "events_noop_check")
            }
            own = {
                e.check_name: float(e.metadata["corrmon/check_seconds"].value)  # type: ignore[arg-type]
                for e in evaluations
                if "corrmon/check_seconds" in e.metadata
            }
            floor = [
                (stat.end_time or 0.0) - (stat.start_time or 0.0)
                for stat in instance.get_run_step_stats(result.run_id)
                if stat.step_key == "events_noop_check"
            ]
            if index >= args.warmup:
                noop_times.extend(floor)
                plain_times.append(plain)
                checked_times.append(checked)
                step_times.append(per_check)
                own_times.append(own)
    plain_median = statistics.median(plain_times)
    checked_median = statistics.median(checked_times)
    print(f"GX import (once per process): {gx_import:.2f} s")
    print(f"partition, assets only:       {plain_median:.2f} s (median of {len(plain_times)})")
    print(f"partition, assets + 8 checks (+ 1 no-op calibration check): {checked_median:.2f} s")
    noop = statistics.median(noop_times)
    print(f"a no-op check step (Dagster's per-step floor): {noop:.3f} s")
    print(
        f"overhead of the 8 checks:     {checked_median - plain_median - noop:.2f} s per partition"
    )
    print("median per check: the check's own work (corrmon/check_seconds: judging + store")
    print("reads/writes) | the whole Dagster step (input loading and step overhead included)")
    own_medians = {name: statistics.median(run[name] for run in own_times) for name in own_times[0]}
    step_medians = {
        step: statistics.median(run[step] for run in step_times) for step in step_times[0]
    }
    for step, seconds in sorted(step_medians.items(), key=lambda item: -item[1]):
        name = step.split("_", 1)[1]
        if args.bundle:  # a step holds several checks: their own work is in the sum below
            print(f"  {step:32s} {'':>8} | {seconds:6.3f} s")
            continue
        print(f"  {name:32s} {own_medians.get(name, float('nan')):6.3f} s | {seconds:6.3f} s")
    print(f"  {'sum':32s} {sum(own_medians.values()):6.3f} s | {sum(step_medians.values()):6.3f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
