"""Check factories without running Dagster: argument validation, metadata casting, the pure parts
(schema diff, importance weighting, history baselines) — against known answers."""

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dagster_corrmon import metadata as md
from dagster_corrmon.checks import (
    AllowedValues,
    BaselinePolicy,
    InRange,
    MatchesRegex,
    Unique,
    Volume,
    build_data_quality_checks,
    build_drift_checks,
    build_freshness_checks,
    build_model_evaluation_checks,
    build_schema_contract_checks,
    freshness_policy_for,
)
from dagster_corrmon.checks._baseline import judge_against_history
from dagster_corrmon.checks._common import history_points
from dagster_corrmon.checks.drift import classify_drift, importance_shares
from dagster_corrmon.checks.schema import column_sketch, diff_schema, dtype_family, load_contract
from dagster_corrmon.core.baseline import fit_baseline
from dagster_corrmon.core.incident import Incident, IncidentClass, IncidentStatus
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=daily)
def table() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0]})


# ----------------------------------------------------------------------------- metadata casting


def test_numpy_and_pandas_scalars_become_values_dagster_accepts() -> None:
    raw = {
        "int": np.int64(3),
        "bool": np.bool_(True),
        "float32": np.float32(0.25),
        "nan": float("nan"),
        "naive_ts": pd.Timestamp("2024-01-02 03:00"),
        "aware_ts": pd.Timestamp("2024-01-02 03:00", tz="Europe/Paris"),
        "nat": pd.NaT,
        "dt64": np.datetime64("2024-01-02T03:00"),
        "none": None,
        "nested": {"a": np.int64(1), "b": [np.float64(0.5), float("nan")], "c": {np.str_("k")}},
        "key": dg.AssetKey(["raw", "weather"]),
        "severity": Severity.ERROR,
        "span": timedelta(hours=2),
        "path": Path("/tmp/x.json"),
        "array": np.array([1, 2]),
    }
    metadata = md.to_metadata(raw)
    # Dagster itself validates: this raises on anything it does not accept.
    result = dg.AssetCheckResult(passed=bool(np.bool_(True)), metadata=metadata)
    values: dict[str, Any] = {key: value.value for key, value in result.metadata.items()}
    assert values["int"] == 3 and type(values["int"]) is int
    assert values["bool"] is True
    assert values["float32"] == 0.25
    assert math.isnan(values["nan"])
    assert values["naive_ts"] == datetime(2024, 1, 2, 3, tzinfo=UTC).timestamp()
    assert values["aware_ts"] == datetime(2024, 1, 2, 2, tzinfo=UTC).timestamp()
    assert values["nat"] is None and values["none"] is None
    assert values["dt64"] == values["naive_ts"]
    assert values["nested"] == {"a": 1, "b": [0.5, None], "c": ["k"]}
    assert values["key"] == dg.AssetKey(["raw", "weather"])
    assert values["severity"] == "error"
    assert values["span"] == 7200.0
    assert values["array"] == [1, 2]


def test_to_plain_is_strict_json() -> None:
    plain = md.to_plain(
        {
            "x": np.float64("inf"),
            "t": pd.Timestamp("2024-01-01"),
            "k": dg.AssetKey("a"),
            "frame": pd.DataFrame({"a": [1, None]}),
        }
    )
    text = json.dumps(plain, allow_nan=False)  # raises on NaN/inf or non-JSON types
    assert json.loads(text) == {
        "x": None,
        "t": "2024-01-01T00:00:00+00:00",
        "k": "a",
        "frame": [{"a": 1.0}, {"a": None}],
    }


def test_key_helpers() -> None:
    assert md.column_key("null_fraction", "temp") == "corrmon/null_fraction/temp"
    assert md.metric_key("f1") == "corrmon/f1"
    assert md.metric_key("f1", "ci_low") == "corrmon/f1_ci_low"
    constants = [v for k, v in vars(md).items() if k.isupper() and isinstance(v, str)]
    assert all(c.startswith(md.PREFIX) for c in constants)


# ----------------------------------------------------------------------------- factories


def _config_error(match: str, build, **kwargs) -> None:
    with pytest.raises(ConfigError, match=match):
        build(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"assets": []}, "assets must name at least one asset"),
        ({"assets": ["a", "a"]}, "named twice"),
        ({"assets": [42]}, "assets must be asset keys"),
        ({"assets": ["a"], "completeness": {"x": 1.5}}, r"completeness\['x'\]"),
        ({"assets": ["a"], "completeness": {}}, "completeness must be a non-empty mapping"),
        (
            {"assets": ["a"], "validity": [{"rule": "range", "column": "x"}]},
            "needs min_value or max_value",
        ),
        (
            {"assets": ["a"], "validity": [InRange(column="x", min_value=3, max_value=1)]},
            "min_value 3 > max_value 1",
        ),
        (
            {"assets": ["a"], "validity": [MatchesRegex(column="x", pattern="(")]},
            "invalid pattern",
        ),
        ({"assets": ["a"], "validity": [{"rule": "nope"}]}, "needs 'rule'"),
        (
            {"assets": ["a"], "validity": [AllowedValues(column="x", values=())]},
            "non-empty collection",
        ),
        (
            {"assets": ["a"], "validity": [InRange(column="x", max_value=1, mostly=2)]},
            "mostly",
        ),
        ({"assets": ["a"], "validity": "x > 0"}, "validity must be a list"),
        ({"assets": ["a"], "engine": "spark"}, "engine must be"),
        ({"assets": ["a"], "severity": "fatal"}, "severity must be 'warn' or 'error'"),
        ({"assets": ["a"], "volume": Volume(min_rows=10, max_rows=5)}, "min_rows 10 > max_rows 5"),
        ({"assets": ["a"], "volume": "lots"}, "volume must be"),
        ({"assets": ["a"], "baseline": {"min_history": 1}}, "baseline.min_history"),
        ({"assets": ["a"], "baseline": {"colour": "red"}}, "baseline:"),
        ({"assets": ["a"], "suite": "/nonexistent/suite.json"}, "does not exist"),
        ({"assets": ["a"], "name_prefix": "bad name"}, "name_prefix"),
        (
            {"assets": [table], "partitions_def": dg.DailyPartitionsDefinition("2023-01-01")},
            "differs from the partitioning",
        ),
    ],
)
def test_data_quality_arguments_are_validated_at_definition_time(kwargs, match) -> None:
    _config_error(match, build_data_quality_checks, **kwargs)


def test_suite_files_are_validated(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    _config_error("not valid JSON", build_data_quality_checks, assets=["a"], suite=broken)
    no_list = tmp_path / "no_list.json"
    no_list.write_text(json.dumps({"name": "s"}))
    _config_error("no 'expectations' list", build_data_quality_checks, assets=["a"], suite=no_list)
    bad_item = tmp_path / "bad_item.json"
    bad_item.write_text(json.dumps({"name": "s", "expectations": [{"kwargs": {}}]}))
    _config_error("#0 needs a 'type'", build_data_quality_checks, assets=["a"], suite=bad_item)


def test_quality_factory_builds_named_partitioned_checks(tmp_path: Path) -> None:
    suite = tmp_path / "s.json"
    suite.write_text(
        json.dumps(
            {
                "name": "s",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}}
                ],
            }
        )
    )
    checks = build_data_quality_checks(
        assets=[table, "other"],
        completeness={"x": 0.1},
        validity=[{"rule": "unique", "column": "x"}, Unique(columns=("x", "y"))],
        suite=suite,
    )
    keys = {(next(iter(c.check_keys)).asset_key, next(iter(c.check_keys)).name) for c in checks}
    expected_names = {"corrmon_completeness", "corrmon_validity", "corrmon_volume"}
    expected_names.add("corrmon_expectation_suite")
    assert keys == {
        (key, name) for key in (table.key, dg.AssetKey("other")) for name in expected_names
    }
    partitioned = [c for c in checks if next(iter(c.check_keys)).asset_key == table.key]
    assert all(c.partitions_def == daily for c in partitioned)
    others = [c for c in checks if next(iter(c.check_keys)).asset_key != table.key]
    assert all(c.partitions_def is None for c in others)
    assert build_data_quality_checks(assets=["a"], track_all_columns=False, volume=None) == []


def test_building_checks_does_not_import_great_expectations(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from dagster_corrmon.checks import build_data_quality_checks, InRange\n"
        "build_data_quality_checks(assets=['a'], validity=[InRange(column='x', max_value=1)])\n"
        "assert 'great_expectations' not in sys.modules, 'GX imported at definition time'\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    ("build", "kwargs", "match"),
    [
        (build_schema_contract_checks, {"assets": ["a"], "contract": {"x": "banana"}}, "banana"),
        (build_schema_contract_checks, {"assets": ["a"], "contract": "/no/such.yaml"}, "exist"),
        (build_schema_contract_checks, {"assets": ["a"], "contract": {}}, "non-empty mapping"),
        (build_schema_contract_checks, {"assets": ["a"], "rename_tolerance": -1}, "rename_tol"),
        (build_freshness_checks, {"assets": ["a"]}, "pass max_age="),
        (build_freshness_checks, {"assets": [table], "lookback_partitions": -1}, "lookback"),
        (build_freshness_checks, {"assets": [table], "allowed_lateness": 5}, "allowed_lateness"),
        (build_drift_checks, {"assets": ["a"], "reference": "/no/profile.json"}, "does not exist"),
        (
            build_drift_checks,
            {
                "assets": ["a"],
                "reference": build_reference_profile(pd.DataFrame({"x": [1.0, 2.0]})),
                "feature_importance": "from_reference_asset",
            },
            "needs reference= a model",
        ),
        (
            build_drift_checks,
            {"assets": ["a"], "reference": dg.AssetKey("model"), "blocking": True},
            "blocking=True",
        ),
        (
            build_drift_checks,
            {"assets": ["a"], "reference": dg.AssetKey("model"), "method": "magic"},
            "unknown drift method",
        ),
        (
            build_drift_checks,
            {"assets": ["a"], "reference": dg.AssetKey("model"), "consequential_importance": 2},
            "consequential_importance",
        ),
        (
            build_drift_checks,
            {"assets": ["a"], "reference": dg.AssetKey("model"), "feature_importance": {"x": "a"}},
            "feature_importance must be",
        ),
        (
            build_model_evaluation_checks,
            {"asset": "e", "label_column": "y", "score_column": "p", "metrics": ["accuracy"]},
            "accuracy",
        ),
        (build_model_evaluation_checks, {"asset": "e", "label_column": "y"}, "score_column"),
        (
            build_model_evaluation_checks,
            {"asset": "e", "label_column": "y", "score_column": "p", "metrics": ["latency_p95"]},
            "latency_column",
        ),
        (
            build_model_evaluation_checks,
            {"asset": "e", "label_column": "y", "score_column": "p", "limits": {"mae": 1}},
            r"limits\['mae'\]",
        ),
        (
            build_model_evaluation_checks,
            {"asset": "e", "label_column": "y", "score_column": "p", "confidence": 1.0},
            "confidence",
        ),
        (
            build_model_evaluation_checks,
            {"asset": "e", "task": "ranking", "label_column": "y", "score_column": "p"},
            "task must be",
        ),
    ],
)
def test_other_factories_validate_arguments(build, kwargs, match) -> None:
    _config_error(match, build, **kwargs)


def test_model_evaluation_takes_one_asset_by_key_path() -> None:
    (check,) = build_model_evaluation_checks(
        asset=["ml", "evaluation"], label_column="y", score_column="p"
    )
    assert check.check_keys == {
        dg.AssetCheckKey(dg.AssetKey(["ml", "evaluation"]), "corrmon_model_performance")
    }


def test_model_evaluation_metric_selection() -> None:
    (check,) = build_model_evaluation_checks(
        asset="evaluation", label_column="y", prediction_column="yhat"
    )
    # Hard predictions only: the threshold metrics, never ROC-AUC on 0/1 "scores".
    assert "precision, recall, f1" in (
        check.get_spec_for_check_key(next(iter(check.check_keys))).description or ""
    )


def test_freshness_policy_matches_partition_period() -> None:
    built = freshness_policy_for(daily, allowed_lateness=timedelta(hours=6))
    assert isinstance(built, dg.FreshnessPolicy)
    policy: Any = built  # the time-window subclass's fields are not on the base class
    assert policy.fail_window.to_timedelta() == timedelta(days=1, hours=6)
    assert policy.warn_window.to_timedelta() == timedelta(days=1)
    with pytest.raises(ConfigError, match="no time dimension"):
        freshness_policy_for(dg.StaticPartitionsDefinition(["a"]))


# ----------------------------------------------------------------------------- schema (pure)


def test_dtype_families() -> None:
    cases = {
        "integer": pd.Series([1, 2], dtype="int64"),
        "float": pd.Series([1.0, np.nan]),
        "bool": pd.Series([True, False]),
        "datetime": pd.Series(pd.to_datetime(["2024-01-01"])),
        "string": pd.Series(["a", None]),
        "empty": pd.Series([None, None], dtype=object),
    }
    for family, series in cases.items():
        assert dtype_family(series) == family, family
    assert dtype_family(pd.Series(["a", "b"], dtype="category")) == "string"
    assert dtype_family(pd.Series([1, 2], dtype="Int32")) == "integer"


def test_contract_types_normalise(tmp_path: Path) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text("columns:\n  a: int64\n  b: float\n  c: object\n  d: datetime64[ns]\n")
    assert load_contract(contract) == {
        "a": "integer",
        "b": "float",
        "c": "string",
        "d": "datetime",
    }


def test_schema_diff_finds_renames_by_profile_and_retypes() -> None:
    rng = np.random.default_rng(0)
    before = pd.DataFrame(
        {
            "temp": rng.normal(50, 10, 500),
            "wind": rng.gamma(4, 3, 500),
            "n": rng.integers(0, 9, 500),
        }
    )
    after = pd.DataFrame(
        {
            "temperature": rng.normal(50, 10, 500),  # same values, new name
            "wind": rng.gamma(4, 3, 500),
            "n": rng.integers(0, 9, 500).astype(float),  # int -> float
            "gust": rng.normal(200, 3, 500),  # added, unrelated values
        }
    )
    old_columns = {str(c): pd.Series(before[c]) for c in before.columns}
    new_columns = {str(c): pd.Series(after[c]) for c in after.columns}
    contract = {c: dtype_family(series) for c, series in old_columns.items()}
    observed = {c: dtype_family(series) for c, series in new_columns.items()}
    diff = diff_schema(
        contract,
        observed,
        observed_sketches={c: column_sketch(s, observed[c]) for c, s in new_columns.items()},
        known_sketches={c: column_sketch(s, contract[c]) for c, s in old_columns.items()},
        rename_tolerance=0.25,
    )
    assert [(old, new) for old, new, _ in diff.renamed] == [("temp", "temperature")]
    assert diff.added == ("gust",)
    assert diff.removed == ()
    assert diff.retyped == (("n", "integer", "float"),)


def test_schema_diff_does_not_pair_unrelated_columns() -> None:
    rng = np.random.default_rng(1)
    old = pd.Series(rng.normal(0, 1, 300))
    new = pd.Series(rng.normal(5, 1, 300))
    diff = diff_schema(
        {"a": "float"},
        {"b": "float"},
        observed_sketches={"b": column_sketch(new, "float")},
        known_sketches={"a": column_sketch(old, "float")},
        rename_tolerance=0.25,
    )
    assert diff.renamed == () and diff.removed == ("a",) and diff.added == ("b",)


# ----------------------------------------------------------------------------- drift weighting


def test_importance_shares_and_consequence() -> None:
    shares = importance_shares({"wind": 0.3, "temp": 0.1, "humidity": -0.01})
    assert shares == pytest.approx({"wind": 0.75, "temp": 0.25, "humidity": 0.0})
    importances = {"wind": 0.3, "temp": 0.1, "humidity": -0.01}
    assert (
        classify_drift(
            "wind", shares=shares, importances=importances, consequential_importance=0.5
        )[0]
        == "consequential"
    )
    assert (
        classify_drift(
            "temp", shares=shares, importances=importances, consequential_importance=0.5
        )[0]
        == "benign"
    )
    assert (
        classify_drift(
            "station", shares=shares, importances=importances, consequential_importance=0.5
        )[0]
        == "benign"
    )
    assert classify_drift("x", shares=None, importances=None, consequential_importance=0.5)[0] == (
        "unknown"
    )


# ----------------------------------------------------------------------------- history baselines


def _signal(day: int, value: float, *, observed: int = 0, partition: str | None = None) -> Signal:
    moment = datetime(2024, 1, day, tzinfo=UTC)
    return Signal(
        kind=SignalKind.DATA_QUALITY,
        asset_key="weather",
        name="null_fraction",
        column="temp",
        event_time=moment,
        observed_at=moment + timedelta(hours=observed),
        value=value,
        partition=partition or moment.date().isoformat(),
        run_id=f"run-{day}-{observed}",
    )


def test_history_keeps_one_point_per_partition() -> None:
    values, times = history_points([_signal(1, 0.1), _signal(1, 0.3, observed=5), _signal(2, 0.2)])
    assert values == [0.3, 0.2]
    assert times == [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]


def test_baseline_leaves_out_resolved_incident_windows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    history = rng.normal(0.02, 0.005, 20).clip(0, 1)
    history[10:13] = 0.5  # an outage that was confirmed and fixed
    with CorrmonStore(f"sqlite:///{tmp_path}/c.db") as store:
        store.write_signals(_signal(day + 1, value) for day, value in enumerate(history))
        policy = BaselinePolicy(min_history=5)
        now = datetime(2024, 1, 25, tzinfo=UTC)

        def judge(value: float):
            return judge_against_history(
                store,
                asset_key="weather",
                name="null_fraction",
                kind=SignalKind.DATA_QUALITY,
                column="temp",
                value=value,
                event_time=now,
                direction="increase",
                policy=policy,
                incident_assets=["model"],
            )

        before = judge(0.2)
        store.upsert_incident(
            Incident(
                id="INC-1",
                model_asset="model",
                metric="roc_auc",
                classification=IncidentClass.DATA_FAULT,
                window_start=datetime(2024, 1, 11, tzinfo=UTC),
                window_end=datetime(2024, 1, 14, tzinfo=UTC),
            )
        )
        store.set_incident_status("INC-1", IncidentStatus.RESOLVED)
        after = judge(0.2)
    times = [datetime(2024, 1, d + 1) for d in range(20)]
    oracle = fit_baseline(
        history,
        np.array(times, dtype="datetime64[ns]"),
        exclude=[(datetime(2024, 1, 11, tzinfo=UTC), datetime(2024, 1, 14, tzinfo=UTC))],
        direction="increase",
        min_points=5,
    )
    assert before.excluded == 0 and after.excluded == 3
    assert after.expected == pytest.approx(oracle.overall.center)
    assert after.z == pytest.approx(oracle.score(0.2).z)
    assert after.anomalous
    # Below min_change nothing is anomalous, however flat the history.
    assert before.history_size == 20


def test_too_little_history_is_a_note_not_a_verdict(tmp_path: Path) -> None:
    with CorrmonStore(f"sqlite:///{tmp_path}/c.db") as store:
        store.write_signals([_signal(1, 0.0), _signal(2, 0.0)])
        verdict = judge_against_history(
            store,
            asset_key="weather",
            name="null_fraction",
            kind=SignalKind.DATA_QUALITY,
            column="temp",
            value=0.9,
            event_time=datetime(2024, 1, 5, tzinfo=UTC),
            direction="increase",
            policy=BaselinePolicy(min_history=3),
        )
        flat = judge_against_history(
            store,
            asset_key="weather",
            name="null_fraction",
            kind=SignalKind.DATA_QUALITY,
            column="temp",
            value=0.01,
            event_time=datetime(2024, 1, 5, tzinfo=UTC),
            direction="increase",
            policy=BaselinePolicy(min_history=2),
            min_change=0.02,
        )
    assert verdict.status == "insufficient_history" and not verdict.anomalous
    assert verdict.note is not None and "judges from 3" in verdict.note
    # History all zeros (MAD 0): a 1-point rise is infinitely many sigmas, but below min_change.
    assert flat.status == "normal" and flat.note is not None and "min_change" in flat.note


# ----------------------------------------------------------------------------- the resource


def test_resource_defaults_to_the_store_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_corrmon.resource import CorrmonResource

    monkeypatch.delenv("CORRMON_DATABASE_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    resource = CorrmonResource()
    store = resource.get_store()
    assert store.database_url == f"sqlite:///{tmp_path.resolve() / 'corrmon.db'}"
    assert resource.get_store() is store  # cached for the run
    monkeypatch.setenv("CORRMON_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert CorrmonResource().get_store().database_url == f"sqlite:///{tmp_path}/env.db"
    explicit = CorrmonResource(database_url=f"sqlite:///{tmp_path}/x.db")
    assert explicit.get_store().database_url.endswith("/x.db")
    store.close()


# ----------------------------------------------------------------------------- schema over time

_READINGS: dict[str, pd.DataFrame] = {}


@dg.asset(partitions_def=daily)
def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return _READINGS[context.partition_key]


def test_a_rename_is_recognised_against_the_columns_latest_observation(tmp_path: Path) -> None:
    """The contract was recorded when ``temp`` read ~0; it then moved to ~40 before being
    renamed ``temperature``. Only the observations since the contract (read from the store when
    a removed and an added column could be a rename) identify the new name as the old column."""
    rng = np.random.default_rng(7)
    days = [f"2024-01-0{d}" for d in range(1, 6)]
    for index, day in enumerate(days):
        temp = rng.normal(0.0 if index == 0 else 40.0, 1.0, 400)
        name = "temperature" if day == days[-1] else "temp"
        _READINGS[day] = pd.DataFrame({name: temp, "wind": rng.gamma(4, 3, 400)})
    checks = build_schema_contract_checks(assets=[readings], partitions_def=daily)
    resources = {"corrmon": CorrmonResource(database_url=f"sqlite:///{tmp_path / 's.db'}")}
    with dg.instance_for_test() as instance:
        for day in days:
            result = dg.materialize(
                [readings, *checks], instance=instance, partition_key=day, resources=resources
            )
        (evaluation,) = result.get_asset_check_evaluations()
    diff = evaluation.metadata[md.SCHEMA_DIFF].value
    assert isinstance(diff, dict)
    assert [(r["from"], r["to"]) for r in diff["renamed"]] == [("temp", "temperature")]
    assert diff["removed"] == [] and diff["added"] == []
