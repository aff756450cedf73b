"""Great Expectations-backed checks: results against a pandas oracle, one context per process,
user suites (GX 1.x and 0.x JSON) run as checks in a real Dagster instance."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.checks import (
    AllowedValues,
    InRange,
    MatchesRegex,
    Unique,
    _gx,
    build_data_quality_checks,
)
from dagster_corrmon.checks.quality import null_fractions
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    """The evaluation's metadata as plain values."""
    return {key: value.value for key, value in evaluation.metadata.items()}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 300
    values = rng.normal(10, 3, n)
    values[rng.random(n) < 0.1] = np.nan
    codes = rng.choice(["a", "b", "c"], n).astype(object)
    codes[:7] = None
    stamps = pd.Series(pd.date_range("2024-01-01", periods=n, freq="h"))
    stamps[rng.random(n) < 0.05] = pd.NaT
    ids = [f"id-{i:04d}" for i in range(n)]
    ids[5] = "bad id"
    ids[9] = ids[8]
    return pd.DataFrame(
        {"value": values, "code": codes, "stamp": stamps, "id": ids, "count": rng.integers(0, 5, n)}
    )


def test_validity_rules_match_a_pandas_oracle(frame: pd.DataFrame) -> None:
    rules = [
        InRange(column="value", min_value=5, max_value=15),
        AllowedValues(column="code", values=("a", "b")),
        MatchesRegex(column="id", pattern=r"^id-\d{4}$"),
        Unique(columns=("id",)),
        Unique(columns=("id", "count")),
    ]
    outcomes = _gx.validate_frame(frame, [rule.expectation() for rule in rules])
    present = frame["value"].dropna()
    out_of_range = int(((present < 5) | (present > 15)).sum())
    codes = frame["code"].dropna()
    assert outcomes[0].unexpected_count == out_of_range
    assert outcomes[0].unexpected_fraction == pytest.approx(out_of_range / len(present))
    assert outcomes[1].unexpected_count == int((~codes.isin(["a", "b"])).sum())
    assert outcomes[2].unexpected_count == 1 and outcomes[2].unexpected_sample == ["bad id"]
    assert outcomes[3].unexpected_count == 2  # both rows of the duplicated id
    expected_compound = int(frame.duplicated(["id", "count"], keep=False).sum())
    assert outcomes[4].unexpected_count == expected_compound
    assert [o.success for o in outcomes] == [
        out_of_range == 0,
        False,
        False,
        False,
        expected_compound == 0,
    ]


def test_both_completeness_engines_agree(frame: pd.DataFrame) -> None:
    columns = list(frame.columns)
    by_pandas = null_fractions(frame, columns, engine="pandas")
    by_gx = null_fractions(frame, columns, engine="great_expectations")
    assert by_gx == pytest.approx(by_pandas)
    assert by_pandas["code"] == pytest.approx(7 / len(frame))
    assert by_pandas["count"] == 0.0
    # The GX volume path reads the row count from the same expectation it would run.
    (rows,) = _gx.validate_frame(
        frame, [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}}]
    )
    assert rows.observed_value == len(frame)


def test_context_is_created_once_per_process(frame: pd.DataFrame) -> None:
    _gx.validate_frame(frame, [{"type": "expect_column_to_exist", "kwargs": {"column": "id"}}])
    context = _gx.gx_context()
    for _ in range(3):
        _gx.validate_frame(
            frame, [{"type": "expect_column_to_exist", "kwargs": {"column": "value"}}]
        )
    assert _gx.gx_context() is context
    assert list(context.data_sources.all()) == [_gx._DATASOURCE]


def test_bad_expectations_fail_instead_of_vanishing(frame: pd.DataFrame) -> None:
    outcomes = _gx.validate_frame(
        frame,
        [
            {"type": "expect_column_values_to_be_between", "kwargs": {"colum": "value"}},
            {"type": "expect_nonsense", "kwargs": {"column": "value"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ghost"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "count"}},
        ],
    )
    assert [o.success for o in outcomes] == [False, False, False, True]
    assert outcomes[0].error is not None and "invalid expectation" in outcomes[0].error
    assert outcomes[1].error is not None and "expect_nonsense" in outcomes[1].error
    assert outcomes[2].error is not None and "ghost" in outcomes[2].error


# ----------------------------------------------------------------------------- in Dagster


@dg.asset
def orders(context: dg.AssetExecutionContext) -> pd.DataFrame:
    broken = context.run.tags.get("test/broken") == "1"
    return pd.DataFrame(
        {
            "order_id": ["o-1", "o-2", "o-3", "o-3" if broken else "o-4"],
            "status": ["open", "shipped", "lost" if broken else "open", "open"],
            "amount": [10.0, 12.5, np.nan if broken else 9.0, 14.0],
        }
    )


def _suite_file(tmp_path: Path) -> Path:
    import great_expectations as gx
    from great_expectations.expectations.metadata_types import FailureSeverity

    gxe: Any = gx.expectations  # GX's package does not declare its re-exports to type checkers
    suite = gx.ExpectationSuite(
        name="orders_suite",
        expectations=[
            gxe.ExpectColumnValuesToBeUnique(column="order_id"),
            gxe.ExpectColumnValuesToBeInSet(
                column="status", value_set=["open", "shipped"], severity=FailureSeverity.WARNING
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="amount", severity=FailureSeverity.INFO),
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=100),
        ],
    )
    path = tmp_path / "orders_suite.json"
    path.write_text(json.dumps(suite.to_json_dict()))
    return path


def _run(checks, instance, url: str, *, broken: bool) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [orders, *checks],
        instance=instance,
        resources={"corrmon": CorrmonResource(database_url=url)},
        tags={"test/broken": "1" if broken else "0"},
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_user_suite_and_validity_run_as_checks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    legacy = tmp_path / "legacy.json"  # GX 0.x shape
    legacy.write_text(
        json.dumps(
            {
                "expectation_suite_name": "legacy",
                "expectations": [
                    {"expectation_type": "expect_column_to_exist", "kwargs": {"column": "ghost"}}
                ],
            }
        )
    )
    checks = [
        *build_data_quality_checks(
            assets=[orders],
            suite=_suite_file(tmp_path),
            validity=[
                AllowedValues(column="status", values=("open", "shipped"), severity="warn"),
                InRange(column="discount", max_value=1),  # no such column
            ],
            track_all_columns=False,
            volume=None,
        ),
        *build_data_quality_checks(
            assets=[orders],
            suite=legacy,
            name_prefix="legacy",
            track_all_columns=False,
            volume=None,
        ),
    ]
    with dg.instance_for_test() as instance:
        clean = _run(checks, instance, url, broken=False)
        broken = _run(checks, instance, url, broken=True)

    assert clean["corrmon_expectation_suite"].passed
    # GX severities map onto Dagster's: critical -> ERROR, warning -> WARN, info -> never fails.
    suite = broken["corrmon_expectation_suite"]
    assert not suite.passed and suite.severity == dg.AssetCheckSeverity.ERROR
    failed = meta(suite)["corrmon/failures"]
    assert {f["column"] for f in failed} == {"order_id", "status"}
    assert meta(suite)["corrmon/expectations_failed"] == 3

    # A rule naming a missing column fails ERROR and names column and asset; the rest still run.
    validity = clean["corrmon_validity"]
    assert not validity.passed and validity.severity == dg.AssetCheckSeverity.ERROR
    assert "'discount'" in (validity.description or "") and "'orders'" in (
        validity.description or ""
    )
    assert meta(validity)["corrmon/expectations_evaluated"] == 1

    legacy_result = clean["legacy_expectation_suite"]
    assert not legacy_result.passed and "ghost" in (legacy_result.description or "")

    with CorrmonStore(url) as store:
        stored = store.read_signals(asset_key="orders", kind=SignalKind.DATA_QUALITY)
    by_name = {(s.name, s.column, s.run_id): s for s in stored}
    broken_runs = {
        s.run_id for s in stored if s.name == "corrmon_expectation_suite" and not s.passed
    }
    (broken_run,) = broken_runs
    info = by_name[("gx:expect_column_values_to_not_be_null", "amount", broken_run)]
    assert info.passed is False and info.severity == Severity.INFO
    assert info.value == pytest.approx(0.25)
    warning = by_name[("gx:expect_column_values_to_be_in_set", "status", broken_run)]
    assert warning.severity == Severity.WARN and warning.metadata["unexpected_sample"] == ["lost"]
    missing = [s for s in stored if s.name == "validity_input"]
    assert {s.column for s in missing} == {"discount"} and all(
        s.severity == Severity.ERROR for s in missing
    )


@dg.asset
def not_a_table() -> dict[str, int]:
    return {"rows": 3}


@dg.asset
def sensor_batch() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame({"reading": rng.normal(5.0, 1.0, 200), "label": rng.integers(0, 2, 200)})


def test_inputs_a_check_cannot_judge_fail_with_error_and_a_signal(tmp_path: Path) -> None:
    from dagster_corrmon.checks import build_drift_checks, build_model_evaluation_checks
    from dagster_corrmon.core.profile import build_reference_profile

    profile_path = tmp_path / "reference.json"
    rng = np.random.default_rng(1)
    build_reference_profile(pd.DataFrame({"reading": rng.normal(5.0, 1.0, 500)})).save(profile_path)
    checks = [
        *build_data_quality_checks(assets=[not_a_table], volume=None),
        *build_drift_checks(assets=[sensor_batch], reference=profile_path),
        *build_model_evaluation_checks(
            asset=sensor_batch, label_column="label", score_column="probability"
        ),
    ]
    url = f"sqlite:///{tmp_path}/c.db"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [not_a_table, sensor_batch, *checks],
            instance=instance,
            resources={"corrmon": CorrmonResource(database_url=url)},
        )
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    table = evaluations[("not_a_table", "corrmon_completeness")]
    assert not table.passed and table.severity == dg.AssetCheckSeverity.ERROR
    assert "is a dict, not a pandas DataFrame" in (table.description or "")
    performance = evaluations[("sensor_batch", "corrmon_model_performance")]
    assert not performance.passed and performance.severity == dg.AssetCheckSeverity.ERROR
    assert "'probability'" in (performance.description or "")
    assert "'sensor_batch'" in (performance.description or "")
    # The profile file is a valid reference: same distribution, no drift.
    assert evaluations[("sensor_batch", "corrmon_drift")].passed
    with CorrmonStore(url) as store:
        errors = store.read_signals(asset_key="sensor_batch", name="model_performance_input")
    assert [(s.column, s.passed, s.severity) for s in errors] == [
        ("probability", False, Severity.ERROR)
    ]
