"""core.metrics against scikit-learn, a hand-computed ECE, and bootstrap behaviour."""

import doctest
import functools
import math
import time

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve

from dagster_corrmon.core import metrics
from dagster_corrmon.core.metrics import (
    METRICS,
    EceBinning,
    bootstrap_ci,
    evaluate_classification,
    evaluate_regression,
    evaluate_serving,
    expected_calibration_error,
)
from dagster_corrmon.errors import ConfigError, InputDataError

TOL = 1e-9


def _classification_data(seed: int, n: int = 600, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1.0 / (1.0 + np.exp(-(1.2 * y - 0.6 + rng.normal(0.0, 1.0, n))))
    if ties:
        score = np.round(score, 1)  # many exact ties, and values on bin edges
    return y, score


def _regression_data(seed: int, n: int = 500):
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    return y, y + rng.normal(0.5, 2.0, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_classification_metrics_match_sklearn(seed: int, ties: bool, threshold: float) -> None:
    y, score = _classification_data(seed, ties=ties)
    predicted = (score >= threshold).astype(int)
    assert metrics.precision(y, score, threshold=threshold) == pytest.approx(
        skm.precision_score(y, predicted), abs=TOL
    )
    assert metrics.recall(y, score, threshold=threshold) == pytest.approx(
        skm.recall_score(y, predicted), abs=TOL
    )
    assert metrics.f1(y, score, threshold=threshold) == pytest.approx(
        skm.f1_score(y, predicted), abs=TOL
    )
    assert metrics.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=TOL)
    assert metrics.log_loss(y, score) == pytest.approx(skm.log_loss(y, y_proba=score), abs=TOL)
    assert metrics.brier_score(y, score) == pytest.approx(skm.brier_score_loss(y, score), abs=TOL)


def test_log_loss_clips_like_sklearn_at_certain_wrong_predictions() -> None:
    y = np.array([0, 1, 1, 0])
    score = np.array([0.0, 1.0, 0.0, 1.0])  # two confident mistakes: log(eps) territory
    assert metrics.log_loss(y, score) == pytest.approx(skm.log_loss(y, y_proba=score), abs=TOL)


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=2, max_size=40).filter(
        lambda rows: len({label for label, _ in rows}) == 2
    )
)
@settings(max_examples=60, deadline=None)
def test_rank_auc_equals_sklearn_on_heavily_tied_scores(rows: list[tuple[int, int]]) -> None:
    y = np.array([label for label, _ in rows])
    score = np.array([value for _, value in rows], dtype=float)
    assert metrics.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=TOL)


def test_batch_auc_rows_equal_sklearn_per_row() -> None:
    y, score = _classification_data(3, n=300, ties=True)
    rng = np.random.default_rng(7)
    indices = rng.integers(0, y.size, size=(25, y.size))
    batch = METRICS["roc_auc"].batch_function(y[indices].astype(float), score[indices])
    expected = [skm.roc_auc_score(y[row], score[row]) for row in indices]
    np.testing.assert_allclose(batch, expected, atol=TOL, rtol=0)


def test_ece_hand_computed_textbook_example() -> None:
    # Ten predictions, 10 equal-width bins, right-closed (Guo et al. 2017):
    #   (0.0,0.1]: p=.05 y=0            -> n=1, |0 - .05|    = .05
    #   (0.1,0.2]: p=.15,.15 y=0,1      -> n=2, |.5 - .15|   = .35
    #   (0.4,0.5]: p=.45 y=0            -> n=1, |0 - .45|    = .45
    #   (0.5,0.6]: p=.55 y=1            -> n=1, |1 - .55|    = .45
    #   (0.6,0.7]: p=.65 y=1            -> n=1, |1 - .65|    = .35
    #   (0.8,0.9]: p=.85 y=1            -> n=1, |1 - .85|    = .15
    #   (0.9,1.0]: p=.95 x3 y=1,1,0     -> n=3, |2/3 - .95|  = .28333...
    # ECE = (.05 + 2*.35 + .45 + .45 + .35 + .15 + 3*.28333) / 10 = 3.0 / 10 = 0.30
    score = [0.05, 0.15, 0.15, 0.45, 0.55, 0.65, 0.85, 0.95, 0.95, 0.95]
    y = [0, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    assert expected_calibration_error(y, score) == pytest.approx(0.30, abs=1e-12)


def _ece_from_calibration_curve(y, score, n_bins: int, strategy: str) -> float:
    """ECE from scikit-learn's per-bin rates, with bin sizes counted by an independent loop."""
    prob_true, prob_pred = calibration_curve(y, score, n_bins=n_bins, strategy=strategy)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.percentile(score, np.linspace(0.0, 1.0, n_bins + 1) * 100)
    counts = []
    for b in range(n_bins):
        low, high = edges[b], edges[b + 1]
        inside = (score <= high) if b == 0 else ((score > low) & (score <= high))
        if b == n_bins - 1:
            inside = score > low if b > 0 else np.ones_like(score, dtype=bool)
        counts.append(int(inside.sum()))
    counts = np.array([c for c in counts if c > 0])
    return float(np.sum(counts * np.abs(prob_true - prob_pred)) / len(score))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_bins", [5, 10, 15])
@pytest.mark.parametrize("ties", [False, True])
def test_ece_matches_sklearn_calibration_curve(seed: int, n_bins: int, ties: bool) -> None:
    y, score = _classification_data(seed, ties=ties)
    pairs: tuple[tuple[str, EceBinning], ...] = (
        ("uniform", "equal_width"),
        ("quantile", "equal_mass"),
    )
    for strategy, binning in pairs:
        if ties and strategy == "quantile":
            continue  # duplicate quantile edges make sklearn's bins and bin counts misalign
        assert expected_calibration_error(
            y, score, n_bins=n_bins, binning=binning
        ) == pytest.approx(_ece_from_calibration_curve(y, score, n_bins, strategy), abs=TOL)


def test_ece_of_a_perfectly_calibrated_binned_forecaster_is_zero() -> None:
    score = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, score) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_match_sklearn(seed: int) -> None:
    y, predicted = _regression_data(seed)
    assert metrics.mean_absolute_error(y, predicted) == pytest.approx(
        skm.mean_absolute_error(y, predicted), abs=TOL
    )
    assert metrics.root_mean_squared_error(y, predicted) == pytest.approx(
        skm.root_mean_squared_error(y, predicted), abs=TOL
    )
    assert metrics.r2_score(y, predicted) == pytest.approx(skm.r2_score(y, predicted), abs=TOL)
    assert metrics.mean_absolute_percentage_error(y, predicted) == pytest.approx(
        skm.mean_absolute_percentage_error(y, predicted), abs=TOL
    )


def test_mape_leaves_out_zero_targets() -> None:
    y, predicted = _regression_data(4, n=200)
    y[::7] = 0.0
    nonzero = y != 0.0
    assert metrics.mean_absolute_percentage_error(y, predicted) == pytest.approx(
        skm.mean_absolute_percentage_error(y[nonzero], predicted[nonzero]), abs=TOL
    )
    assert math.isnan(metrics.mean_absolute_percentage_error([0.0, 0.0], [1.0, 2.0]))
    result = evaluate_regression([0.0, 0.0, 0.0], [1.0, 2.0, 0.0], n_resamples=0)
    assert result["mape"].value is None
    assert result["mape"].reason is not None and "every y_true is 0" in result["mape"].reason
    assert result["mae"].value == pytest.approx(1.0)


def test_serving_metrics_match_numpy_percentiles() -> None:
    rng = np.random.default_rng(5)
    latencies = rng.lognormal(3.0, 0.6, 2000)
    errors = rng.random(2000) < 0.03
    result = evaluate_serving(latencies, errors, n_resamples=100)
    for q in (50, 95, 99):
        value = result[f"latency_p{q}"]
        assert value.value == pytest.approx(np.percentile(latencies, q), abs=TOL)
        assert value.value is not None and value.ci_low is not None and value.ci_high is not None
        assert value.ci_low <= value.value <= value.ci_high
        assert value.higher_is_better is False
    assert result["error_rate"].value == pytest.approx(errors.mean(), abs=TOL)


def test_registry_declares_direction_and_task_for_every_metric() -> None:
    expected_higher_is_better = {
        "precision": True,
        "recall": True,
        "f1": True,
        "roc_auc": True,
        "log_loss": False,
        "brier_score": False,
        "ece": False,
        "mae": False,
        "rmse": False,
        "r2": True,
        "mape": False,
        "latency_p50": False,
        "latency_p95": False,
        "latency_p99": False,
        "error_rate": False,
    }
    assert {name: spec.higher_is_better for name, spec in METRICS.items()} == (
        expected_higher_is_better
    )
    assert all(spec.name == name for name, spec in METRICS.items())
    assert {spec.task for spec in METRICS.values()} == {"classification", "regression", "serving"}
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        metrics.get_metric("auc")


def test_every_scalar_function_equals_its_batch_function_on_one_row() -> None:
    y, score = _classification_data(9, n=200)
    truth, predicted = _regression_data(9, n=200)
    latencies = np.abs(predicted) * 10
    errors = (score > 0.8).astype(float)
    arrays = {
        "classification": (y.astype(float), score),
        "regression": (truth, predicted),
        "serving": (latencies, errors),
    }
    for spec in METRICS.values():
        first, second = arrays[spec.task]
        assert spec.function(first, second) == spec.batch_function(first[None], second[None])[0]


# --- degenerate and malformed input -------------------------------------------------------------


def test_one_class_day_is_data_not_an_exception() -> None:
    result = evaluate_classification([1, 1, 1, 1], [0.9, 0.2, 0.7, 0.6], n_resamples=50)
    assert result["roc_auc"].value is None
    assert result["roc_auc"].reason == "undefined: y_true holds only one class"
    assert result["roc_auc"].ci_low is None
    assert result["recall"].value == pytest.approx(0.75)
    assert result["precision"].value == pytest.approx(1.0)
    assert result["log_loss"].value == pytest.approx(
        skm.log_loss([1, 1, 1, 1], [0.9, 0.2, 0.7, 0.6], labels=[0, 1])
    )
    assert math.isnan(metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))


def test_no_predicted_positive_gives_undefined_precision_but_zero_f1() -> None:
    result = evaluate_classification([0, 1, 1], [0.1, 0.2, 0.3], n_resamples=0)
    assert result["precision"].value is None
    assert result["precision"].reason is not None
    assert "no row is predicted positive" in result["precision"].reason
    assert result["f1"].value == 0.0
    assert result["recall"].value == 0.0


def test_empty_sample_gives_none_with_reason_for_every_metric() -> None:
    for result in (
        evaluate_classification([], [], n_resamples=10),
        evaluate_regression([], [], n_resamples=10),
        evaluate_serving([], [], n_resamples=10),
    ):
        assert result
        for value in result.values():
            assert value.value is None and value.n == 0
            assert value.reason == "the sample is empty"
    assert math.isnan(metrics.brier_score([], []))
    assert math.isnan(metrics.latency_percentile([], 95))


def test_constant_target_makes_r2_undefined_not_one() -> None:
    assert math.isnan(metrics.r2_score([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]))
    result = evaluate_regression([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], n_resamples=0)
    assert result["r2"].value is None
    assert result["rmse"].value == pytest.approx(math.sqrt(2 / 3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.roc_auc([0, 1, np.nan], [0.1, 0.2, 0.3]), r"roc_auc: y_true has 1 NaN"),
        (lambda: metrics.log_loss([0, 1], [0.1, np.nan]), r"log_loss: y_score has 1 NaN"),
        (lambda: metrics.f1([0, 1, 1], [0.1, 0.2]), r"f1: arrays differ in length"),
        (lambda: metrics.precision([0, 2], [0.1, 0.2]), r"precision: y_true must hold binary"),
        (lambda: metrics.brier_score([0, 1], [0.1, 1.2]), r"brier_score: y_score must be prob"),
        (lambda: metrics.mean_absolute_error([[1.0]], [[1.0]]), r"mae: y_true must be one-dim"),
        (
            lambda: evaluate_classification([0, 1], [0.2, "x"]),
            r"evaluate_classification: y_score is not numeric",
        ),
        (
            lambda: evaluate_serving([1.0, -2.0], [0, 0]),
            r"evaluate_serving: latencies_ms has negative",
        ),
    ],
)
def test_malformed_input_raises_input_data_error_naming_the_metric(call, message: str) -> None:
    with pytest.raises(InputDataError, match=message):
        call()


def test_bad_configuration_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        evaluate_classification([0, 1], [0.2, 0.8], threshold=1.5)
    with pytest.raises(ConfigError, match="binning"):
        evaluate_classification([0, 1], [0.2, 0.8], ece_binning="quantile")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is a regression metric"):
        evaluate_classification([0, 1], [0.2, 0.8], metrics=["mae"])
    with pytest.raises(ConfigError, match="confidence"):
        evaluate_regression([1.0], [1.0], confidence=95)


def test_roc_auc_accepts_unbounded_scores_but_evaluation_needs_probabilities() -> None:
    assert metrics.roc_auc([0, 1, 0, 1], [-3.0, 2.0, 0.5, 7.0]) == 1.0
    with pytest.raises(InputDataError, match="probabilities"):
        evaluate_classification([0, 1, 0, 1], [-3.0, 2.0, 0.5, 7.0])


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_population_auc_and_is_reproducible() -> None:
    # Binormal model: positives ~ N(1, 1), negatives ~ N(0, 1) => AUC = Phi(1 / sqrt 2).
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 3000)
    score = rng.normal(y.astype(float), 1.0)
    true_auc = scipy.stats.norm.cdf(1 / math.sqrt(2))
    auc = METRICS["roc_auc"].batch_function
    first = bootstrap_ci(auc, y, score, n_resamples=300, seed=3)
    again = bootstrap_ci(auc, y, score, n_resamples=300, seed=3)
    other = bootstrap_ci(auc, y, score, n_resamples=300, seed=4)
    assert first == again
    assert first != other
    assert first.low is not None and first.high is not None
    assert first.low < true_auc < first.high
    assert 0.01 < first.high - first.low < 0.06  # ~ 2 * 1.96 * SE(AUC) for n = 3000


def test_bootstrap_percentile_interval_agrees_with_scipy() -> None:
    rng = np.random.default_rng(12)
    values = rng.exponential(2.0, 400)
    ours = bootstrap_ci(lambda rows: rows.mean(axis=1), values, n_resamples=4000, seed=0)
    theirs = scipy.stats.bootstrap(
        (values,), np.mean, n_resamples=4000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.03)
    assert ours.high == pytest.approx(theirs.high, abs=0.03)


def test_bootstrap_coverage_is_near_nominal_on_seeded_data() -> None:
    rng = np.random.default_rng(13)
    rate = 0.2
    covered = 0
    trials = 200
    error_rate_fn = METRICS["error_rate"].batch_function
    for trial in range(trials):
        errors = (rng.random(400) < rate).astype(float)
        ci = bootstrap_ci(error_rate_fn, np.zeros(400), errors, n_resamples=200, seed=trial)
        assert ci.low is not None and ci.high is not None
        covered += ci.low <= rate <= ci.high
    assert 0.89 <= covered / trials <= 0.99


def test_evaluate_intervals_equal_bootstrap_ci_with_the_same_seed() -> None:
    y, score = _classification_data(21, n=800)
    result = evaluate_classification(y, score, threshold=0.4, n_resamples=150, seed=5)
    for name in ("roc_auc", "f1", "ece"):
        spec = METRICS[name]
        statistic = spec.batch_function
        if name == "f1":
            statistic = functools.partial(statistic, threshold=0.4)
        ci = bootstrap_ci(statistic, y, score, n_resamples=150, seed=5)
        assert (result[name].ci_low, result[name].ci_high) == (ci.low, ci.high)


def test_undefined_resamples_are_dropped_and_too_many_withhold_the_interval() -> None:
    y = np.zeros(400, dtype=int)
    y[0] = 1  # one positive: about (1 - 1/400)^400 = 37 % of resamples miss it
    score = np.linspace(0, 1, 400)
    rare = bootstrap_ci(METRICS["roc_auc"].batch_function, y, score, n_resamples=200)
    assert rare.low is not None and rare.reason is None
    assert 100 <= rare.n_valid < 200

    values = np.arange(50.0)

    def mean_unless_the_maximum_was_drawn(rows):  # undefined on ~63 % of resamples
        return np.where((rows == values.max()).any(axis=1), np.nan, rows.mean(axis=1))

    withheld = bootstrap_ci(mean_unless_the_maximum_was_drawn, values, n_resamples=200)
    assert withheld.low is None and withheld.high is None
    assert withheld.n_valid < 100
    assert withheld.reason is not None and "undefined on" in withheld.reason


def test_two_hundred_resamples_of_ten_thousand_rows_is_fast() -> None:
    y, score = _classification_data(30, n=10_000)
    start = time.perf_counter()
    result = evaluate_classification(y, score, n_resamples=200)
    elapsed = time.perf_counter() - start
    assert result["roc_auc"].ci_low is not None
    assert elapsed < 10.0, f"bootstrap of 200 x 10k took {elapsed:.2f}s"


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted > 10
    assert outcome.failed == 0
