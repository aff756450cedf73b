"""core/drift against scipy and textbook values, Evidently's choice rules, and the profile path's
stated error bounds."""

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from dagster_corrmon.core.drift import (
    CATEGORICAL,
    METHODS,
    NUMERICAL,
    P_VALUE_AT_OR_BELOW,
    P_VALUE_BELOW,
    STATISTIC_AT_OR_ABOVE,
    DriftResult,
    _sturges_edges,
    choose_method,
    detect_drift,
    detect_drift_from_profile,
)
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError


def _one(reference, current, **options) -> DriftResult:
    (result,) = detect_drift(
        pd.DataFrame({"v": reference}), pd.DataFrame({"v": current}), **options
    )
    return result


# --------------------------------------------------------------------- statistics vs oracles


@pytest.mark.parametrize("sizes", [(40, 60), (900, 700), (12_000, 15_000)])
def test_ks_is_scipy_ks_2samp(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    reference, current = rng.normal(size=sizes[0]), rng.normal(0.05, 1.1, size=sizes[1])
    result = _one(reference, current, method="ks")
    oracle: Any = stats.ks_2samp(reference, current)
    assert result.statistic == oracle.statistic
    assert result.p_value == oracle.pvalue
    assert result.decision == P_VALUE_AT_OR_BELOW and not result.approximate


@pytest.mark.parametrize("integers", [False, True])
@pytest.mark.parametrize("current_rows", [3000, 4000])
def test_wasserstein_is_scipy_normed_by_reference_std(integers: bool, current_rows: int) -> None:
    rng = np.random.default_rng(11)
    reference = rng.gamma(2.0, 3.0, 4000)
    current = rng.gamma(2.2, 3.0, current_rows)
    if integers:  # many ties
        reference, current = np.round(reference), np.round(current)
    result = _one(reference, current)
    assert result.method == "wasserstein"
    oracle = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert result.statistic == pytest.approx(oracle, rel=1e-9)
    assert result.p_value is None and result.decision == STATISTIC_AT_OR_ABOVE


def test_wasserstein_of_a_constant_reference_uses_evidentlys_norm_floor() -> None:
    result = _one(np.full(2000, 5.0), np.full(2000, 5.002), method="wasserstein")
    assert result.statistic == pytest.approx(0.002 / 0.001)


def test_chisquare_is_scipy_chisquare() -> None:
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    current = ["a"] * 30 + ["b"] * 40 + ["c"] * 30
    result = _one(reference, current)
    assert result.method == "chisquare" and result.column_type == CATEGORICAL
    oracle = stats.chisquare([30, 40, 30], [50 * 1.0, 30.0, 20.0])
    assert result.statistic == pytest.approx(oracle.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-12)
    assert result.decision == P_VALUE_BELOW


def test_chisquare_with_a_category_the_reference_never_saw() -> None:
    result = _one(["a", "b"] * 50, ["a", "b", "new"] * 30)
    assert result.method == "chisquare"
    assert result.statistic == math.inf and result.p_value == 0.0 and result.drifted
    assert result.to_dict()["statistic"] is None  # strict JSON


def test_z_test_matches_the_uncorrected_two_by_two_chi_square() -> None:
    reference = [True] * 120 + [False] * 380
    current = [True] * 160 + [False] * 340
    result = _one(reference, current)
    assert result.method == "z"
    table = np.array([[120, 380], [160, 340]])
    oracle: Any = stats.chi2_contingency(table, correction=False)
    assert result.statistic**2 == pytest.approx(oracle.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-9)


def test_jensenshannon_is_scipy_jensenshannon() -> None:
    reference = ["a"] * 700 + ["b"] * 200 + ["c"] * 300
    current = ["a"] * 300 + ["b"] * 500 + ["d"] * 400
    result = _one(reference, current)
    assert result.method == "jensenshannon"
    oracle = distance.jensenshannon([700, 200, 300, 0], [300, 500, 0, 400])
    assert result.statistic == pytest.approx(oracle, rel=1e-12)


def test_psi_known_answer() -> None:
    # shares 0.5/0.5 → 0.25/0.75: (0.25)·ln 2 + (−0.25)·ln(2/3)
    result = _one(["a", "b"] * 200, ["a"] * 100 + ["b"] * 300, method="psi")
    assert result.statistic == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(2 / 3))
    assert result.decision == STATISTIC_AT_OR_ABOVE and result.drifted


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.integers(min_value=-1000, max_value=1000),
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=300,
    ),
    integer=st.booleans(),
)
def test_sturges_edges_equal_numpy(values: list[float], integer: bool) -> None:
    data = np.array([round(v) for v in values], dtype=np.int64) if integer else np.array(values)
    expected = np.histogram_bin_edges(data, bins="sturges")
    actual = _sturges_edges(float(data.min()), float(data.max()), len(data), integer)
    np.testing.assert_array_equal(actual, expected)


# --------------------------------------------------------------------- Evidently's choice


@pytest.mark.parametrize(
    ("column_type", "rows", "n_unique", "expected"),
    [
        (NUMERICAL, 1000, 6, "ks"),
        (NUMERICAL, 1000, 5, "chisquare"),
        (NUMERICAL, 1000, 3, "chisquare"),
        (NUMERICAL, 1000, 2, "z"),
        (CATEGORICAL, 1000, 3, "chisquare"),
        (CATEGORICAL, 1000, 2, "z"),
        (NUMERICAL, 1001, 6, "wasserstein"),
        (NUMERICAL, 1001, None, "wasserstein"),
        (NUMERICAL, 1001, 5, "jensenshannon"),
        (CATEGORICAL, 1001, 2, "jensenshannon"),
        (CATEGORICAL, 5000, None, "jensenshannon"),
    ],
)
def test_choose_method_follows_evidently(column_type, rows, n_unique, expected) -> None:
    assert choose_method(column_type, rows, n_unique) == expected


def test_choice_counts_rows_without_nulls_and_uniques_over_both_samples() -> None:
    rng = np.random.default_rng(5)
    reference = np.r_[rng.normal(size=1000), [np.nan] * 50]  # 1050 rows, 1000 usable
    assert _one(reference, rng.normal(size=300)).method == "ks"
    assert _one(np.r_[reference, 0.5], rng.normal(size=300)).method == "wasserstein"
    # the reference alone has 2 values; with the current's third, Z becomes χ²
    assert _one(["a", "b"] * 10, ["a", "b"] * 10).method == "z"
    assert _one(["a", "b"] * 10, ["a", "c"] * 10).method == "chisquare"


def test_integer_columns_with_few_current_values_are_categorical() -> None:
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 8, 3000)
    result = _one(reference, rng.integers(0, 8, 3000))
    assert (result.column_type, result.method) == (CATEGORICAL, "jensenshannon")
    floats = _one(reference.astype(float), rng.integers(0, 8, 3000).astype(float))
    assert (floats.column_type, floats.method) == (NUMERICAL, "wasserstein")
    wide = _one(rng.integers(0, 50, 3000), rng.integers(0, 50, 3000))
    assert (wide.column_type, wide.method) == (NUMERICAL, "wasserstein")


def test_overrides_global_and_per_column() -> None:
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    current = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    results = detect_drift(
        reference,
        current,
        method="psi",
        per_column_method={"b": "wasserstein"},
        threshold=0.3,
        per_column_threshold={"b": 0.05},
    )
    assert [(r.column, r.method, r.threshold) for r in results] == [
        ("a", "psi", 0.3),
        ("b", "wasserstein", 0.05),
    ]
    assert [r.column for r in detect_drift(reference, current, columns=["b"])] == ["b"]


def test_threshold_direction_matches_evidently_per_method() -> None:
    rng = np.random.default_rng(4)
    reference, current = rng.normal(size=200), rng.normal(0.2, size=200)
    ks = _one(reference, current)
    assert ks.p_value is not None
    assert _one(reference, current, threshold=ks.p_value).drifted  # KS: p ≤ threshold
    chi = _one(["a", "b", "c"] * 40, ["a"] * 50 + ["b", "c"] * 35)
    assert chi.p_value is not None
    assert not _one(
        ["a", "b", "c"] * 40, ["a"] * 50 + ["b", "c"] * 35, threshold=chi.p_value
    ).drifted
    js = _one(["a", "b"] * 1000, ["a"] * 1500 + ["b"] * 500)
    assert _one(["a", "b"] * 1000, ["a"] * 1500 + ["b"] * 500, threshold=js.statistic).drifted


def test_nan_and_infinity_are_dropped_like_evidently() -> None:
    rng = np.random.default_rng(6)
    reference, current = rng.normal(size=3000), rng.normal(size=2000)
    dirty_reference = np.r_[reference, np.nan, np.inf]
    dirty_current = np.r_[current, -np.inf, np.nan, np.nan]
    clean = _one(reference, current)
    dirty = _one(dirty_reference, dirty_current)
    assert dirty.statistic == pytest.approx(clean.statistic, rel=1e-12)
    assert (dirty.reference_rows, dirty.current_rows) == (3000, 2000)
    assert dirty.current_null_fraction == pytest.approx(3 / 2003)
    assert dirty.current_mean == pytest.approx(current.mean())


# ------------------------------------------------------------------------------ properties


_samples = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=60
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_samples, method=st.sampled_from(METHODS))
def test_identical_samples_never_drift(values: list[float], method: str) -> None:
    result = _one(values, list(values), method=method)
    assert not result.drifted
    if result.p_value is not None:
        assert result.p_value == pytest.approx(1.0)
    else:
        assert result.statistic == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=_samples, current=_samples, method=st.sampled_from(METHODS))
def test_p_values_are_probabilities_and_distances_non_negative(
    reference: list[float], current: list[float], method: str
) -> None:
    result = _one(reference, current, method=method)
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0
    else:
        assert result.statistic >= 0.0  # PSI, JS and Wasserstein are never negative


@settings(max_examples=30, deadline=None)
@given(
    reference=st.lists(st.sampled_from("abcde"), min_size=1, max_size=80),
    current=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=80),
)
def test_psi_of_categories_is_non_negative(reference: list[str], current: list[str]) -> None:
    assert _one(reference, current, method="psi").statistic >= 0.0


# --------------------------------------------------------------------------- profile path


def test_profile_path_is_exact_for_a_small_reference() -> None:
    rng = np.random.default_rng(8)
    reference = pd.DataFrame(
        {"x": rng.normal(size=800), "k": rng.integers(0, 4, 800), "c": rng.choice(list("pqr"), 800)}
    )
    current = pd.DataFrame(
        {
            "x": rng.normal(0.2, size=700),
            "k": rng.integers(0, 5, 700),
            "c": rng.choice(list("pqs"), 700),
        }
    )
    exact = detect_drift(reference, current)
    from_profile = detect_drift_from_profile(build_reference_profile(reference), current)
    assert [r.method for r in exact] == ["ks", "chisquare", "chisquare"]
    for left, right in zip(exact, from_profile, strict=True):
        assert not right.approximate
        assert right.method == left.method
        assert right.statistic == pytest.approx(left.statistic, rel=1e-12)
        assert right.p_value == pytest.approx(left.p_value, rel=1e-9)
        assert right.drifted == left.drifted


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    family=st.sampled_from(["normal", "exponential", "lognormal", "integers"]),
    shift=st.floats(min_value=0.0, max_value=0.5),
)
def test_binned_wasserstein_and_ks_stay_within_their_stated_bounds(
    seed: int, family: str, shift: float
) -> None:
    rng = np.random.default_rng(seed)

    def draw(size: int, offset: float) -> np.ndarray:
        if family == "integers":
            return rng.integers(0, 3000, size) + round(offset * 800)
        return getattr(rng, family)(size=size) + offset

    reference = pd.DataFrame({"v": draw(6000, 0.0)})
    current = pd.DataFrame({"v": draw(4000, shift)})
    profile = build_reference_profile(reference, bins=50)
    for method in ("wasserstein", "ks"):
        (exact,) = detect_drift(reference, current, method=method)
        (estimate,) = detect_drift_from_profile(profile, current, method=method)
        assert estimate.approximate and estimate.error_bound is not None
        # Both estimates are lower bounds with a rigorous gap to the exact statistic.
        assert estimate.statistic <= exact.statistic + 1e-9
        assert exact.statistic <= estimate.statistic + estimate.error_bound + 1e-9


def test_profile_path_flags_a_capped_categorical_reference_as_approximate() -> None:
    reference = pd.DataFrame({"c": list("aaaabbbccd") * 5})
    profile = build_reference_profile(reference, max_categories=2)
    (result,) = detect_drift_from_profile(profile, pd.DataFrame({"c": list("aabbccddee")}))
    assert result.approximate and result.method == "chisquare"
    (exact,) = detect_drift_from_profile(
        build_reference_profile(reference), pd.DataFrame({"c": list("aabbccddee")})
    )
    assert not exact.approximate


# ---------------------------------------------------------------------------------- errors


def test_bad_options_are_config_errors() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    with pytest.raises(ConfigError, match="unknown drift method 'kl'"):
        detect_drift(frame, frame, method="kl")
    with pytest.raises(ConfigError, match="positive number"):
        detect_drift(frame, frame, threshold=-1)
    with pytest.raises(ConfigError, match="must be in \\(0, 1\\]"):
        detect_drift(frame, frame, columns=["x"], method="ks", threshold=2.0)
    with pytest.raises(ConfigError, match="per_column_method names column 'y'"):
        detect_drift(frame, frame, per_column_method={"y": "ks"})
    with pytest.raises(ConfigError, match="'ks' needs a numerical column; 'c' is categorical"):
        detect_drift(frame, frame, per_column_method={"c": "ks"})


def test_bad_data_is_an_input_data_error_naming_the_column() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    with pytest.raises(InputDataError, match="current data has no rows"):
        detect_drift(frame, frame.iloc[:0])
    with pytest.raises(InputDataError, match="column 'z' is not in the reference"):
        detect_drift(frame, frame, columns=["z"])
    with pytest.raises(InputDataError, match="column 'c' of the reference is missing from"):
        detect_drift(frame, frame.loc[:, ["x"]])
    with pytest.raises(InputDataError, match="'x' is numeric in the reference but categorical"):
        detect_drift(frame, frame.assign(x=["1", "2", "3"]))
    with pytest.raises(InsufficientDataError, match="'x' has no non-null values in the current"):
        detect_drift(frame, frame.assign(x=[None, None, None]))
    # an all-NaN float column is a null spike, not a type change of the categorical 'c'
    with pytest.raises(InsufficientDataError, match="'c' has no non-null values in the current"):
        detect_drift(frame, frame.assign(c=[np.nan] * 3))
    profile = build_reference_profile(frame)
    with pytest.raises(InputDataError, match="'c' is categorical in the reference but numeric"):
        detect_drift_from_profile(profile, frame.assign(c=[1.0, 2.0, 3.0]))
    with pytest.raises(InputDataError, match="column 'x' of the reference profile is missing"):
        detect_drift_from_profile(profile, frame.loc[:, ["c"]])


def test_results_are_frozen_and_serialise_in_the_documented_order() -> None:
    result = _one([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0, 7.0])
    with pytest.raises(AttributeError):
        result.drifted = True  # type: ignore[misc]
    keys = list(result.to_dict())
    assert keys[:6] == ["column", "method", "statistic", "p_value", "threshold", "drifted"]
    assert result.score == result.p_value
