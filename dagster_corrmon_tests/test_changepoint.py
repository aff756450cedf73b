"""core.changepoint: exact onsets, PELT against brute force, calibrated permutation p-values."""

import doctest
import itertools
import math

import numpy as np
import pytest
import scipy.stats

from dagster_corrmon.core import changepoint
from dagster_corrmon.core.changepoint import (
    ChangePointMethod,
    default_penalty,
    detect_change_points,
    estimate_noise_scale,
    latest_onset,
    segmentation_cost,
)
from dagster_corrmon.errors import ConfigError, InputDataError

METHODS: tuple[ChangePointMethod, ...] = ("pelt", "binseg")


def _steps(seed: int, *, n: int = 200, at: tuple[int, ...] = (), sizes: tuple[float, ...] = ()):
    values = np.random.default_rng(seed).normal(0.0, 1.0, n)
    for onset, size in zip(at, sizes, strict=True):
        values[onset:] += size
    return values


def _sse(values: np.ndarray, onsets) -> float:
    """Independent cost: squared deviations from each segment's own numpy mean."""
    bounds = [0, *onsets, values.size]
    return float(
        sum(((values[a:b] - values[a:b].mean()) ** 2).sum() for a, b in itertools.pairwise(bounds))
    )


def _brute_force(values: np.ndarray, penalty: float, min_size: int) -> float:
    """Minimum penalised cost over every segmentation (2^(n-1) of them)."""
    n = values.size
    best = math.inf
    for count in range(n):
        for onsets in itertools.combinations(range(1, n), count):
            bounds = [0, *onsets, n]
            if min(b - a for a, b in itertools.pairwise(bounds)) < min_size:
                continue
            best = min(best, _sse(values, onsets) + penalty * count)
    return best


def _optimal_partitioning(values: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """Jackson et al. (2005) O(n²) dynamic programme: PELT without pruning."""
    n = values.size
    best = [-penalty] + [math.inf] * n
    last = [0] * (n + 1)
    for t in range(min_size, n + 1):
        for tau in [0, *range(min_size, t - min_size + 1)]:
            candidate = best[tau] + _sse(values[tau:t], []) + penalty
            if candidate < best[t]:
                best[t], last[t] = candidate, tau
    onsets, t = [], n
    while t > 0:
        t = last[t]
        if t > 0:
            onsets.append(t)
    return onsets[::-1]


# --- exact onsets on seeded series --------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 4])
def test_single_three_sigma_step_is_found_at_its_exact_index(method, seed: int) -> None:
    found = detect_change_points(_steps(seed, at=(100,), sizes=(3.0,)), method=method)
    assert [cp.index for cp in found] == [100]
    assert found[0].significance == pytest.approx(1 / 1000)
    assert found[0].mean_after - found[0].mean_before == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize("method", METHODS)
def test_two_steps_are_found_at_their_exact_indices(method) -> None:
    values = _steps(0, at=(60, 140), sizes=(3.0, -3.0))
    found = detect_change_points(values, method=method)
    assert [cp.index for cp in found] == [60, 140]
    first, second = found
    assert first.mean_before == pytest.approx(values[:60].mean(), abs=1e-12)
    assert first.mean_after == pytest.approx(values[60:140].mean(), abs=1e-12)
    assert second.mean_before == pytest.approx(values[60:140].mean(), abs=1e-12)
    assert second.mean_after == pytest.approx(values[140:].mean(), abs=1e-12)
    assert second.shift < 0 < first.shift


@pytest.mark.parametrize("method", METHODS)
def test_no_change_gives_an_empty_list(method) -> None:
    assert detect_change_points(_steps(0), method=method) == []
    assert latest_onset(_steps(0), method=method) is None


def test_least_squares_onset_can_differ_from_the_injected_one_and_is_still_optimal() -> None:
    # A 2σ step at 120 whose first four post-step values happen to sit near the new level
    # early: the penalised least-squares optimum puts the onset at 116, and so must we.
    values = np.random.default_rng(0).normal(0, 1, 200) + np.r_[np.zeros(120), np.full(80, 2.0)]
    found = detect_change_points(values)
    assert [cp.index for cp in found] == [116]
    assert [cp.index for cp in found] == _optimal_partitioning(values, default_penalty(values), 2)


# --- optimality ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_size", [1, 2, 3])
def test_pelt_reaches_the_brute_force_optimum_on_tiny_series(seed: int, min_size: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, 10) + np.r_[np.zeros(4), np.full(6, rng.normal(0, 2))]
    for penalty in (0.05, 0.5, 2.0, default_penalty(values), 50.0):
        found = detect_change_points(values, penalty=penalty, min_size=min_size, n_permutations=9)
        onsets = [cp.index for cp in found]
        bounds = [0, *onsets, values.size]
        assert min(b - a for a, b in itertools.pairwise(bounds)) >= min_size
        achieved = _sse(values, onsets) + penalty * len(onsets)
        assert achieved == pytest.approx(_brute_force(values, penalty, min_size), abs=1e-9)
        assert segmentation_cost(values, onsets, penalty=penalty) == pytest.approx(
            achieved, abs=1e-9
        )


@pytest.mark.parametrize("min_size", [1, 2, 5])
def test_pruned_pelt_equals_unpruned_optimal_partitioning(min_size: int) -> None:
    values = _steps(5, n=160, at=(30, 70, 71, 120), sizes=(1.5, -2.5, 2.0, 1.0))
    for penalty in (0.5, 3.0, default_penalty(values)):
        found = detect_change_points(values, penalty=penalty, min_size=min_size, n_permutations=9)
        assert [cp.index for cp in found] == _optimal_partitioning(values, penalty, min_size)


def test_binary_segmentation_never_beats_the_optimum_and_respects_a_cap() -> None:
    values = _steps(6, n=300, at=(50, 60, 200), sizes=(2.0, -2.0, 1.0))
    penalty = default_penalty(values)
    optimal = [cp.index for cp in detect_change_points(values, penalty=penalty)]
    greedy = [cp.index for cp in detect_change_points(values, method="binseg", penalty=penalty)]
    assert _sse(values, greedy) + penalty * len(greedy) >= (
        _sse(values, optimal) + penalty * len(optimal) - 1e-9
    )
    capped = detect_change_points(values, method="binseg", penalty=0.0, max_change_points=2)
    assert len(capped) == 2


@pytest.mark.parametrize("method", METHODS)
def test_min_size_is_respected(method) -> None:
    values = _steps(7, n=100, at=(50, 53), sizes=(6.0, -6.0))  # a 3-point spike
    for min_size in (2, 3, 5):
        found = [cp.index for cp in detect_change_points(values, method=method, min_size=min_size)]
        bounds = [0, *found, values.size]
        assert min(b - a for a, b in itertools.pairwise(bounds)) >= min_size
        if method == "pelt" and min_size <= 3:
            assert found == [50, 53]
        # (binary segmentation's first, greedy split of a spike lands beside it: WBS's motive)


# --- noise scale and penalty ------------------------------------------------------------------


def test_noise_scale_is_the_mad_of_first_differences_and_ignores_level_shifts() -> None:
    values = _steps(8, n=2000, at=(500, 1500), sizes=(20.0, -35.0))
    differences = np.diff(values)
    expected = scipy.stats.median_abs_deviation(
        differences, scale=float(scipy.stats.norm.ppf(0.75))
    ) / math.sqrt(2)
    assert estimate_noise_scale(values) == pytest.approx(expected, rel=1e-12)
    assert estimate_noise_scale(values) == pytest.approx(1.0, abs=0.1)
    assert values.std() > 10
    assert default_penalty(values) == pytest.approx(2 * expected**2 * math.log(2000))


def test_constant_and_short_series_have_no_change_points() -> None:
    assert detect_change_points(np.full(50, 3.0)) == []
    assert detect_change_points([1.0, 5.0, 9.0]) == []  # fewer than 2 * min_size values
    assert detect_change_points([]) == []
    piecewise = np.r_[np.zeros(20), np.full(20, 5.0)]  # noise-free steps: MAD of diffs is 0
    assert [cp.index for cp in detect_change_points(piecewise)] == [20]


# --- significance -------------------------------------------------------------------------------


def test_p_values_are_reproducible_with_the_seed_and_never_zero() -> None:
    values = _steps(9, n=120, at=(70,), sizes=(0.8,))
    first = detect_change_points(values, penalty=2.0, seed=1, n_permutations=199)
    again = detect_change_points(values, penalty=2.0, seed=1, n_permutations=199)
    other = detect_change_points(values, penalty=2.0, seed=2, n_permutations=199)
    assert first == again
    assert [cp.index for cp in first] == [cp.index for cp in other]
    assert all(1 / 200 <= cp.significance <= 1.0 for cp in first + other)
    assert [cp.significance for cp in first] != [cp.significance for cp in other]


def test_p_value_of_a_forced_split_on_noise_is_uniform() -> None:
    # Penalty 0 and one split forces a "change" into every pure-noise series. Because the test
    # statistic maximises over all splits, exactly as the search did, p stays uniform.
    p_values = []
    for seed in range(200):
        values = np.random.default_rng(10_000 + seed).normal(0.0, 1.0, 60)
        (forced,) = detect_change_points(
            values, method="binseg", penalty=0.0, max_change_points=1, seed=seed, n_permutations=99
        )
        p_values.append(forced.significance)
    p_values = np.array(p_values)
    assert 0.02 <= np.mean(p_values <= 0.05) <= 0.10
    assert 0.06 <= np.mean(p_values <= 0.10) <= 0.16
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 0.01


def test_alpha_keeps_false_onsets_on_noise_rare() -> None:
    onsets = [
        latest_onset(
            np.random.default_rng(20_000 + seed).normal(0.0, 1.0, 100),
            alpha=0.01,
            n_permutations=199,
        )
        for seed in range(150)
    ]
    assert sum(onset is not None for onset in onsets) <= 5  # ≈ 1 % expected, 150 series


def test_block_permutation_tempers_autocorrelation() -> None:
    def ar1(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        values = np.empty(120)
        values[0] = rng.normal()
        for t in range(1, values.size):
            values[t] = 0.8 * values[t - 1] + rng.normal()
        return values

    def forced_p(values: np.ndarray, block_size: int) -> float:
        (forced,) = detect_change_points(
            values,
            method="binseg",
            penalty=0.0,
            max_change_points=1,
            n_permutations=99,
            block_size=block_size,
        )
        return forced.significance

    plain = np.array([forced_p(ar1(seed), 1) for seed in range(80)])
    blocked = np.array([forced_p(ar1(seed), 12) for seed in range(80)])
    assert np.mean(plain <= 0.05) > 0.3  # iid shuffles are anti-conservative under AR(1)
    assert np.mean(blocked <= 0.05) < np.mean(plain <= 0.05) / 2
    # one block holding the whole window cannot be shuffled at all: p = 1
    assert forced_p(ar1(0), 10_000) == 1.0


# --- NaN handling, latest onset, argument errors ------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_nans_are_skipped_and_indices_refer_to_the_original_array(method) -> None:
    values = _steps(0, at=(60, 140), sizes=(3.0, -3.0))
    holes = values.copy()
    holes[[5, 59, 60, 61, 100]] = np.nan  # values 60 and 61, the first after the step, are missing
    found = detect_change_points(holes, method=method)
    assert [cp.index for cp in found] == [62, 140]  # the first non-missing value of the new level
    assert found[0].mean_before == pytest.approx(np.nanmean(holes[:62]), abs=1e-12)
    assert found[0].mean_after == pytest.approx(np.nanmean(holes[62:140]), abs=1e-12)
    assert detect_change_points(np.full(10, np.nan), method=method) == []


def test_latest_onset_is_the_most_recent_significant_shift() -> None:
    values = _steps(0, at=(60, 140), sizes=(3.0, -3.0))
    onset = latest_onset(values)
    assert onset is not None and onset.index == 140 and onset.shift < 0
    # One real 3σ step at 50; binary segmentation forced to split twice adds a spurious split.
    one_step = _steps(2, at=(50,), sizes=(3.0,))
    forced = {"method": "binseg", "penalty": 0.0, "max_change_points": 2, "n_permutations": 199}
    every = detect_change_points(one_step, **forced)  # type: ignore[arg-type]
    assert [(cp.index, cp.significance) for cp in every] == [(50, 0.005), (57, 0.67)]
    last = latest_onset(one_step, **forced)  # type: ignore[arg-type]
    assert last is not None and last.index == 57
    significant = latest_onset(one_step, alpha=0.01, **forced)  # type: ignore[arg-type]
    assert significant is not None and significant.index == 50


def test_bad_input_and_arguments_raise_clear_errors() -> None:
    with pytest.raises(InputDataError, match=r"infinite at positions \[3\]"):
        detect_change_points([0.0, 1.0, 2.0, math.inf, 1.0])
    with pytest.raises(InputDataError, match="one-dimensional"):
        detect_change_points([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ConfigError, match="method"):
        detect_change_points([1.0] * 10, method="bocpd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="penalty"):
        detect_change_points([1.0] * 10, penalty=-1.0)
    with pytest.raises(ConfigError, match="min_size"):
        detect_change_points([1.0] * 10, min_size=0)
    with pytest.raises(ConfigError, match="alpha"):
        latest_onset([1.0] * 10, alpha=0.0)


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(changepoint, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted > 10
    assert outcome.failed == 0
