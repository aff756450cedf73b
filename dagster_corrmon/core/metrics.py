"""Model performance metrics with seeded bootstrap confidence intervals.

Every metric is registered once in :data:`METRICS` as a :class:`MetricSpec` with a stable ``name``
(it is stored in databases for years: never rename one), whether higher values are better, its
task (``"classification"``, ``"regression"`` or ``"serving"``) and two implementations of the same
arithmetic: ``function`` for one sample and ``batch_function`` for many bootstrap resamples at once
(rows of a 2-D array). The scalar function *is* the batch function applied to one row, so point
estimates and bootstrap replicates can never disagree.

Input policy (a monitoring system must not crash on an unlucky day):

* **Malformed input raises** :class:`~dagster_corrmon.errors.InputDataError` naming the metric and
  the argument: arrays that are not one-dimensional, of different lengths, containing NaN or
  infinity, labels that are not 0/1, probabilities outside [0, 1], negative latencies.
* **Well-formed but degenerate input is data, not an exception.** A metric that is undefined on
  the sample (ROC-AUC with one class, precision with no predicted positive, R² of a constant
  target, anything on an empty sample) is ``nan`` from the scalar functions and a
  :class:`MetricValue` with ``value=None`` and a ``reason`` from the ``evaluate_*`` helpers. Each
  spec's ``undefined_when`` says exactly when that happens.

Conventions that differ between libraries, pinned here:

* Binary classification takes ``y_true`` in {0, 1} and ``y_score`` = the predicted probability of
  class 1. Threshold metrics predict 1 when ``y_score >= threshold``.
* ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` with ``eps`` the float64 machine epsilon,
  exactly as scikit-learn does.
* ``ece`` (expected calibration error, Guo et al. 2017) bins the predicted probability of class 1
  into ``n_bins`` (default 10) bins and averages ``|mean(y_true) - mean(y_score)|`` over non-empty
  bins weighted by bin size: ``sum_b |sum_{i in b} (y_i - p_i)| / n``. Equal-width bins are
  ``[0, 1/M], (1/M, 2/M], ..., ((M-1)/M, 1]`` (right-closed, as in Guo et al. and scikit-learn's
  ``calibration_curve``); ``binning="equal_mass"`` puts the edges at the sample's quantiles
  (``numpy.percentile``, linear interpolation), scikit-learn's ``strategy="quantile"``. This is
  the reliability-diagram ECE of the positive class, not the "top-label" ECE of multi-class work.
* ``mape`` is a fraction (0.1 = 10 %), like scikit-learn. Rows whose ``y_true`` is exactly 0 have
  no percentage error and are **left out** (scikit-learn instead divides by machine epsilon and
  returns ~1e15); when every ``y_true`` is 0 the MAPE is undefined.
* ``r2`` of a constant ``y_true`` is undefined (scikit-learn returns 1.0 or 0.0 by fiat).
* Latency percentiles use ``numpy.percentile``'s default linear interpolation. ``error_rate`` is
  the fraction of requests flagged as failed.
"""

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dagster_corrmon.errors import ConfigError, InputDataError

Task = Literal["classification", "regression", "serving"]
EceBinning = Literal["equal_width", "equal_mass"]

FloatArray = NDArray[np.float64]
BatchFunction = Callable[..., FloatArray]

#: Bootstrap resamples are evaluated in chunks of at most this many cells (rows x observations),
#: so memory stays bounded (~64 MB per float64 working array) whatever the sample size.
_CHUNK_CELLS = 2_000_000

#: If more than this fraction of bootstrap resamples leaves the metric undefined (for example a
#: resample without any positive), the interval is not reported.
_MAX_UNDEFINED_FRACTION = 0.5

_EPS = float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric on one sample, with its bootstrap confidence interval.

    ``value`` is ``None`` (never NaN) when the metric is undefined on the sample; ``reason`` then
    says why. ``ci_low``/``ci_high`` are ``None`` when no interval was computed (``n_resamples=0``,
    undefined value, or too many undefined resamples — ``reason`` says which).
    """

    name: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    higher_is_better: bool
    confidence: float = 0.95
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """A percentile bootstrap interval; ``low``/``high`` are ``None`` (with a reason) if unknown."""

    low: float | None
    high: float | None
    confidence: float
    n_resamples: int
    n_valid: int  # resamples on which the statistic was defined
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: stable identifier, stored in the signal store.
        higher_is_better: direction of "good"; baselines alarm only on the bad direction.
        task: ``"classification"``, ``"regression"`` or ``"serving"``.
        function: the metric on one sample (1-D arrays) -> ``float`` (``nan`` when undefined).
        batch_function: the same arithmetic on the rows of 2-D arrays, shape ``(resamples, n)``
            -> ``(resamples,)``; what :func:`bootstrap_ci` calls. It skips input validation:
            call ``function`` or an ``evaluate_*`` helper on untrusted data.
        parameters: keyword parameters ``function``/``batch_function`` accept (e.g. ``threshold``).
        undefined_when: when the value is NaN/None on well-formed input.
    """

    name: str
    higher_is_better: bool
    task: Task
    function: Callable[..., float]
    batch_function: BatchFunction
    parameters: tuple[str, ...] = ()
    undefined_when: str = "the sample is empty"
    description: str = ""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _as_1d(values: ArrayLike, *, metric: str, argument: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputDataError(f"{metric}: {argument} is not numeric ({error})") from error
    if array.ndim != 1:
        raise InputDataError(
            f"{metric}: {argument} must be one-dimensional, got shape {array.shape}"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        positions = np.flatnonzero(bad)
        shown = ", ".join(str(int(p)) for p in positions[:5])
        raise InputDataError(
            f"{metric}: {argument} has {positions.size} NaN/infinite value(s) "
            f"(positions {shown}{', ...' if positions.size > 5 else ''}); "
            "drop or impute them before evaluating"
        )
    return array


def _same_length(metric: str, **arrays: FloatArray) -> None:
    lengths = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise InputDataError(f"{metric}: arrays differ in length ({described})")


def _binary_labels(values: ArrayLike, *, metric: str, argument: str = "y_true") -> FloatArray:
    array = _as_1d(values, metric=metric, argument=argument)
    if array.size and not np.isin(array, (0.0, 1.0)).all():
        odd = np.unique(array[~np.isin(array, (0.0, 1.0))])[:5]
        raise InputDataError(
            f"{metric}: {argument} must hold binary labels 0/1 (or booleans); found {odd.tolist()}"
        )
    return array


def _probabilities(values: ArrayLike, *, metric: str, argument: str = "y_score") -> FloatArray:
    array = _as_1d(values, metric=metric, argument=argument)
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise InputDataError(
            f"{metric}: {argument} must be probabilities of class 1 in [0, 1]; "
            f"found values in [{array.min():.6g}, {array.max():.6g}]"
        )
    return array


def _classification_inputs(
    y_true: ArrayLike, y_score: ArrayLike, *, metric: str, probabilities: bool = True
) -> tuple[FloatArray, FloatArray]:
    labels = _binary_labels(y_true, metric=metric)
    if probabilities:
        scores = _probabilities(y_score, metric=metric)
    else:
        scores = _as_1d(y_score, metric=metric, argument="y_score")
    _same_length(metric, y_true=labels, y_score=scores)
    return labels, scores


def _regression_inputs(
    y_true: ArrayLike, y_pred: ArrayLike, *, metric: str
) -> tuple[FloatArray, FloatArray]:
    truth = _as_1d(y_true, metric=metric, argument="y_true")
    predicted = _as_1d(y_pred, metric=metric, argument="y_pred")
    _same_length(metric, y_true=truth, y_pred=predicted)
    return truth, predicted


def _latencies(latencies_ms: ArrayLike, *, metric: str) -> FloatArray:
    latencies = _as_1d(latencies_ms, metric=metric, argument="latencies_ms")
    if latencies.size and latencies.min() < 0.0:
        raise InputDataError(f"{metric}: latencies_ms has negative values (min {latencies.min()})")
    return latencies


def _serving_inputs(
    latencies_ms: ArrayLike, errors: ArrayLike, *, metric: str
) -> tuple[FloatArray, FloatArray]:
    latencies = _latencies(latencies_ms, metric=metric)
    failed = _binary_labels(errors, metric=metric, argument="errors")
    _same_length(metric, latencies_ms=latencies, errors=failed)
    return latencies, failed


def _check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    return float(threshold)


def _check_bins(n_bins: int, binning: str) -> None:
    if n_bins < 1:
        raise ConfigError(f"ece: n_bins must be >= 1, got {n_bins}")
    if binning not in ("equal_width", "equal_mass"):
        raise ConfigError(f"ece: binning must be 'equal_width' or 'equal_mass', got {binning!r}")


# ---------------------------------------------------------------------------------------------
# Batch implementations: rows are samples, shape (B, n) -> (B,)
# ---------------------------------------------------------------------------------------------


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """Elementwise ratio, NaN where the denominator is 0 (no warning)."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _confusion(
    y_true: FloatArray, y_score: FloatArray, threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    predicted = np.atleast_2d(y_score >= threshold)
    actual = np.atleast_2d(y_true == 1.0)
    tp = np.sum(predicted & actual, axis=1, dtype=np.float64)
    fp = np.sum(predicted & ~actual, axis=1, dtype=np.float64)
    fn = np.sum(~predicted & actual, axis=1, dtype=np.float64)
    return np.asarray(tp), np.asarray(fp), np.asarray(fn)


def _precision_batch(y_true: FloatArray, y_score: FloatArray, *, threshold: float = 0.5):
    tp, fp, _ = _confusion(y_true, y_score, threshold)
    return _divide(tp, tp + fp)


def _recall_batch(y_true: FloatArray, y_score: FloatArray, *, threshold: float = 0.5):
    tp, _, fn = _confusion(y_true, y_score, threshold)
    return _divide(tp, tp + fn)


def _f1_batch(y_true: FloatArray, y_score: FloatArray, *, threshold: float = 0.5):
    # 2TP / (2TP + FP + FN): equals the harmonic mean of precision and recall where both are
    # defined, and is 0 (not undefined) when positives exist but none is predicted.
    tp, fp, fn = _confusion(y_true, y_score, threshold)
    return _divide(2.0 * tp, 2.0 * tp + fp + fn)


def _roc_auc_batch(y_true: FloatArray, y_score: FloatArray) -> FloatArray:
    """Mann–Whitney AUC from average ranks, computed row-wise without a Python loop.

    Sort each row once; a tie group occupying sorted positions [a, e) gets the average rank
    (a + e + 1) / 2. The sum of positives' ranks then gives U = R+ - n+(n+ + 1)/2 and
    AUC = U / (n+ n-), which equals the trapezoidal ROC area (ties count one half).
    """
    y_true = np.atleast_2d(y_true)
    y_score = np.atleast_2d(y_score)
    rows, n = y_score.shape
    if n == 0:
        return np.full(rows, np.nan)
    order = np.argsort(y_score, axis=1, kind="stable")
    scores = np.take_along_axis(y_score, order, axis=1)
    labels = np.take_along_axis(y_true, order, axis=1)
    positions = np.broadcast_to(np.arange(n), (rows, n))
    new_group = np.ones((rows, n), dtype=bool)
    new_group[:, 1:] = scores[:, 1:] != scores[:, :-1]
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0), axis=1)
    ends_group = np.ones((rows, n), dtype=bool)
    ends_group[:, :-1] = new_group[:, 1:]
    # the last position of each group, propagated backwards with a reversed running minimum
    group_end = np.minimum.accumulate(np.where(ends_group, positions, n)[:, ::-1], axis=1)[:, ::-1]
    ranks = (group_start + group_end + 2) / 2.0  # 1-based average rank
    n_pos = labels.sum(axis=1)
    n_neg = n - n_pos
    u_statistic = (ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return _divide(u_statistic, n_pos * n_neg)


def _log_loss_batch(y_true: FloatArray, y_score: FloatArray) -> FloatArray:
    clipped = np.clip(y_score, _EPS, 1.0 - _EPS)
    losses = -(y_true * np.log(clipped) + (1.0 - y_true) * np.log1p(-clipped))
    return _mean_rows(losses)


def _brier_batch(y_true: FloatArray, y_score: FloatArray) -> FloatArray:
    return _mean_rows((y_score - y_true) ** 2)


def _row_bincount(bins: NDArray[np.intp], n_bins: int, weights: FloatArray | None = None):
    """Per-row bincount of a (B, n) matrix of bin ids in [0, n_bins), as one flat bincount."""
    rows = bins.shape[0]
    flat = (bins + (np.arange(rows) * n_bins)[:, None]).ravel()
    flat_weights = None if weights is None else weights.ravel()
    counts = np.bincount(flat, weights=flat_weights, minlength=rows * n_bins)
    return counts.reshape(rows, n_bins)


def _ece_batch(
    y_true: FloatArray,
    y_score: FloatArray,
    *,
    n_bins: int = 10,
    binning: EceBinning = "equal_width",
) -> FloatArray:
    y_true = np.atleast_2d(y_true)
    y_score = np.atleast_2d(y_score)
    rows, n = y_score.shape
    if n == 0:
        return np.full(rows, np.nan)
    if binning == "equal_width":
        inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        bins = np.searchsorted(inner_edges, y_score, side="left")
    else:
        # Per-row quantile edges (scikit-learn's strategy="quantile"). searchsorted needs 1-D
        # edges, so loop over rows: B cheap calls, exact (no offset tricks that lose precision).
        quantiles = np.linspace(0.0, 1.0, n_bins + 1) * 100.0
        edges = np.percentile(y_score, quantiles, axis=1).T  # (rows, n_bins + 1)
        bins = np.empty((rows, n), dtype=np.intp)
        for row in range(rows):
            bins[row] = np.searchsorted(edges[row, 1:-1], y_score[row], side="left")
    residual = _row_bincount(bins, n_bins, weights=y_true - y_score)
    return np.abs(residual).sum(axis=1) / n


def _mean_rows(values: FloatArray) -> FloatArray:
    values = np.atleast_2d(values)
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    return values.mean(axis=1)


def _mae_batch(y_true: FloatArray, y_pred: FloatArray) -> FloatArray:
    return _mean_rows(np.abs(y_true - y_pred))


def _rmse_batch(y_true: FloatArray, y_pred: FloatArray) -> FloatArray:
    return np.sqrt(_mean_rows((y_true - y_pred) ** 2))


def _r2_batch(y_true: FloatArray, y_pred: FloatArray) -> FloatArray:
    y_true = np.atleast_2d(y_true)
    if y_true.shape[1] == 0:
        return np.full(y_true.shape[0], np.nan)
    residual = ((y_true - y_pred) ** 2).sum(axis=1)
    total = ((y_true - y_true.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return 1.0 - _divide(residual, total)


def _mape_batch(y_true: FloatArray, y_pred: FloatArray) -> FloatArray:
    y_true = np.atleast_2d(y_true)
    nonzero = y_true != 0.0
    ratio = np.zeros(np.broadcast(y_true, y_pred).shape)
    np.divide(np.abs(y_true - y_pred), np.abs(y_true), out=ratio, where=nonzero)
    return _divide(ratio.sum(axis=1), nonzero.sum(axis=1).astype(np.float64))


def _percentile_batch(q: float) -> BatchFunction:
    def latency_percentile(latencies_ms: FloatArray, errors: FloatArray | None = None):
        del errors  # same signature as every serving metric
        latencies_ms = np.atleast_2d(latencies_ms)
        if latencies_ms.shape[1] == 0:
            return np.full(latencies_ms.shape[0], np.nan)
        return np.percentile(latencies_ms, q, axis=1)

    return latency_percentile


def _error_rate_batch(latencies_ms: FloatArray, errors: FloatArray) -> FloatArray:
    del latencies_ms
    return _mean_rows(errors)


# ---------------------------------------------------------------------------------------------
# Public scalar functions
# ---------------------------------------------------------------------------------------------


def _one(batch: FloatArray) -> float:
    return float(batch[0])


def precision(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = 0.5) -> float:
    """Precision TP / (TP + FP) with class 1 predicted when ``y_score >= threshold``.

    ``nan`` when nothing is predicted positive.

    Examples:
        >>> precision([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.7])
        0.5
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="precision")
    return _one(_precision_batch(labels[None], scores[None], threshold=_check_threshold(threshold)))


def recall(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = 0.5) -> float:
    """Recall TP / (TP + FN); ``nan`` when ``y_true`` has no positive.

    Examples:
        >>> recall([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.7])
        0.5
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="recall")
    return _one(_recall_batch(labels[None], scores[None], threshold=_check_threshold(threshold)))


def f1(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = 0.5) -> float:
    """F1 = 2TP / (2TP + FP + FN); ``nan`` only when there is no positive, actual or predicted.

    Examples:
        >>> f1([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.7])
        0.5
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="f1")
    return _one(_f1_batch(labels[None], scores[None], threshold=_check_threshold(threshold)))


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half); ``nan`` when ``y_true`` has one class.

    ``y_score`` may be any real-valued score here (only its order matters).

    Examples:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="roc_auc", probabilities=False)
    return _one(_roc_auc_batch(labels[None], scores[None]))


def log_loss(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean negative log-likelihood (natural log), probabilities clipped to [eps, 1 - eps].

    Examples:
        >>> round(log_loss([0, 1], [0.5, 0.5]), 6)
        0.693147
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="log_loss")
    return _one(_log_loss_batch(labels[None], scores[None]))


def brier_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean squared difference between the probability of class 1 and the 0/1 outcome.

    Examples:
        >>> round(brier_score([0, 1], [0.2, 0.6]), 12)
        0.1
    """
    labels, scores = _classification_inputs(y_true, y_score, metric="brier_score")
    return _one(_brier_batch(labels[None], scores[None]))


def expected_calibration_error(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    n_bins: int = 10,
    binning: EceBinning = "equal_width",
) -> float:
    """Expected calibration error: bin-size-weighted mean of |observed rate - mean probability|.

    See the module docstring for the exact bins. Undefined (``nan``) only on an empty sample.

    Examples:
        Two bins, (0, 0.5] holding p = 0.2, 0.4 with outcomes 0, 1 (|0.5 - 0.3| = 0.2) and
        (0.5, 1] holding p = 0.9 with outcome 1 (|1 - 0.9| = 0.1): ECE = (2·0.2 + 1·0.1) / 3.

        >>> round(expected_calibration_error([0, 1, 1], [0.2, 0.4, 0.9], n_bins=2), 12)
        0.166666666667
    """
    _check_bins(n_bins, binning)
    labels, scores = _classification_inputs(y_true, y_score, metric="ece")
    return _one(_ece_batch(labels[None], scores[None], n_bins=n_bins, binning=binning))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of ``|y_true - y_pred|``.

    Examples:
        >>> mean_absolute_error([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
        0.5
    """
    truth, predicted = _regression_inputs(y_true, y_pred, metric="mae")
    return _one(_mae_batch(truth[None], predicted[None]))


def root_mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Square root of the mean squared error.

    Examples:
        >>> root_mean_squared_error([1.0, 3.0], [3.0, 1.0])
        2.0
    """
    truth, predicted = _regression_inputs(y_true, y_pred, metric="rmse")
    return _one(_rmse_batch(truth[None], predicted[None]))


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot; ``nan`` when ``y_true`` is constant.

    Examples:
        >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
        0.5
    """
    truth, predicted = _regression_inputs(y_true, y_pred, metric="r2")
    return _one(_r2_batch(truth[None], predicted[None]))


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of ``|y_true - y_pred| / |y_true|`` over rows with ``y_true != 0`` (a fraction).

    Rows with ``y_true == 0`` are left out; ``nan`` when every ``y_true`` is 0.

    Examples:
        >>> mean_absolute_percentage_error([0.0, 2.0, 4.0], [1.0, 1.0, 5.0])
        0.375
    """
    truth, predicted = _regression_inputs(y_true, y_pred, metric="mape")
    return _one(_mape_batch(truth[None], predicted[None]))


def latency_percentile(latencies_ms: ArrayLike, q: float) -> float:
    """The ``q``-th percentile (0-100) of latencies, linear interpolation; ``nan`` when empty.

    Examples:
        >>> latency_percentile([10.0, 20.0, 30.0, 40.0, 50.0], 95)
        48.0
    """
    if not 0.0 <= q <= 100.0:
        raise ConfigError(f"latency_percentile: q must be in [0, 100], got {q}")
    latencies = _latencies(latencies_ms, metric=f"latency_p{q:g}")
    return _one(_percentile_batch(q)(latencies[None]))


def error_rate(errors: ArrayLike) -> float:
    """Fraction of requests that failed (``errors`` is 0/1 or boolean per request).

    Examples:
        >>> error_rate([False, True, False, False])
        0.25
    """
    failed = _binary_labels(errors, metric="error_rate", argument="errors")
    return _one(_mean_rows(failed[None]))


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def _latency_function(q: float) -> Callable[..., float]:
    def function(latencies_ms: ArrayLike, errors: ArrayLike | None = None) -> float:
        del errors
        return latency_percentile(latencies_ms, q)

    return function


def _error_rate_function(latencies_ms: ArrayLike | None, errors: ArrayLike) -> float:
    del latencies_ms
    return error_rate(errors)


_THRESHOLD = ("threshold",)
_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="precision",
        higher_is_better=True,
        task="classification",
        function=precision,
        batch_function=_precision_batch,
        parameters=_THRESHOLD,
        undefined_when="no row is predicted positive at the threshold",
        description="TP / (TP + FP)",
    ),
    MetricSpec(
        name="recall",
        higher_is_better=True,
        task="classification",
        function=recall,
        batch_function=_recall_batch,
        parameters=_THRESHOLD,
        undefined_when="y_true has no positive",
        description="TP / (TP + FN)",
    ),
    MetricSpec(
        name="f1",
        higher_is_better=True,
        task="classification",
        function=f1,
        batch_function=_f1_batch,
        parameters=_THRESHOLD,
        undefined_when="there is no positive, actual or predicted",
        description="2TP / (2TP + FP + FN)",
    ),
    MetricSpec(
        name="roc_auc",
        higher_is_better=True,
        task="classification",
        function=roc_auc,
        batch_function=_roc_auc_batch,
        undefined_when="y_true holds only one class",
        description="area under the ROC curve (Mann–Whitney U / (n+ n-))",
    ),
    MetricSpec(
        name="log_loss",
        higher_is_better=False,
        task="classification",
        function=log_loss,
        batch_function=_log_loss_batch,
        undefined_when="the sample is empty",
        description="mean negative log-likelihood, natural log, clipped at float64 eps",
    ),
    MetricSpec(
        name="brier_score",
        higher_is_better=False,
        task="classification",
        function=brier_score,
        batch_function=_brier_batch,
        description="mean squared error of the probability of class 1",
    ),
    MetricSpec(
        name="ece",
        higher_is_better=False,
        task="classification",
        function=expected_calibration_error,
        batch_function=_ece_batch,
        parameters=("n_bins", "binning"),
        description="expected calibration error, bin-size weighted (default 10 equal-width bins)",
    ),
    MetricSpec(
        name="mae",
        higher_is_better=False,
        task="regression",
        function=mean_absolute_error,
        batch_function=_mae_batch,
        description="mean absolute error",
    ),
    MetricSpec(
        name="rmse",
        higher_is_better=False,
        task="regression",
        function=root_mean_squared_error,
        batch_function=_rmse_batch,
        description="root mean squared error",
    ),
    MetricSpec(
        name="r2",
        higher_is_better=True,
        task="regression",
        function=r2_score,
        batch_function=_r2_batch,
        undefined_when="y_true is constant",
        description="coefficient of determination",
    ),
    MetricSpec(
        name="mape",
        higher_is_better=False,
        task="regression",
        function=mean_absolute_percentage_error,
        batch_function=_mape_batch,
        undefined_when="every y_true is 0 (rows with y_true == 0 are left out)",
        description="mean absolute percentage error as a fraction, over rows with y_true != 0",
    ),
    *(
        MetricSpec(
            name=f"latency_p{q}",
            higher_is_better=False,
            task="serving",
            function=_latency_function(q),
            batch_function=_percentile_batch(q),
            description=f"{q}th percentile of request latency in ms (linear interpolation)",
        )
        for q in (50, 95, 99)
    ),
    MetricSpec(
        name="error_rate",
        higher_is_better=False,
        task="serving",
        function=_error_rate_function,
        batch_function=_error_rate_batch,
        description="fraction of failed requests",
    ),
)

#: Every metric by its stable name.
METRICS: Mapping[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def get_metric(name: str) -> MetricSpec:
    """The registered :class:`MetricSpec` called ``name``; :class:`ConfigError` if unknown.

    Examples:
        >>> get_metric("roc_auc").higher_is_better
        True
    """
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise ConfigError(f"unknown metric {name!r}; known metrics: {known}") from None


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 0:
        raise ConfigError(f"n_resamples must be >= 0, got {n_resamples}")


def _bootstrap_replicates(
    statistics: Mapping[str, BatchFunction],
    samples: Sequence[FloatArray],
    *,
    n_resamples: int,
    seed: int,
) -> dict[str, FloatArray]:
    """Evaluate every statistic on the same ``n_resamples`` paired resamples of the rows.

    Resample b draws n row indices uniformly with replacement; all samples are indexed with the
    same indices (pairs stay pairs). Resamples are drawn and evaluated in chunks of at most
    ``_CHUNK_CELLS`` cells; the chunking depends only on (n, n_resamples), so results depend only
    on (data, n_resamples, seed).
    """
    n = samples[0].shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(n, 1)))
    replicates: dict[str, list[FloatArray]] = {name: [] for name in statistics}
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        indices = rng.integers(0, n, size=(size, n))
        resampled = [sample[indices] for sample in samples]
        for name, statistic in statistics.items():
            replicates[name].append(np.asarray(statistic(*resampled), dtype=np.float64))
        done += size
    return {
        name: np.concatenate(parts) if parts else np.empty(0) for name, parts in replicates.items()
    }


def _percentile_interval(
    replicates: FloatArray, *, confidence: float, n_resamples: int
) -> ConfidenceInterval:
    valid = replicates[np.isfinite(replicates)]
    if n_resamples == 0:
        return ConfidenceInterval(None, None, confidence, 0, 0, "no bootstrap resamples requested")
    if valid.size < (1.0 - _MAX_UNDEFINED_FRACTION) * n_resamples or valid.size == 0:
        return ConfidenceInterval(
            None,
            None,
            confidence,
            n_resamples,
            int(valid.size),
            f"the statistic was undefined on {n_resamples - valid.size} of {n_resamples} "
            "bootstrap resamples",
        )
    alpha = 1.0 - confidence
    low, high = np.quantile(valid, [alpha / 2.0, 1.0 - alpha / 2.0])
    return ConfidenceInterval(float(low), float(high), confidence, n_resamples, int(valid.size))


def bootstrap_ci(
    statistic: BatchFunction,
    *samples: ArrayLike,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ConfidenceInterval:
    """Seeded percentile bootstrap confidence interval of a vectorised statistic.

    Method (Efron's percentile bootstrap): draw ``n_resamples`` resamples of the n rows with
    replacement from ``numpy.random.default_rng(seed)`` — the same row indices for every array in
    ``samples``, so (y_true, y_score) pairs stay together — evaluate the statistic on each, and
    report the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the replicates
    (``numpy.quantile``, linear interpolation). Resamples on which the statistic is undefined
    (NaN, e.g. a resample with one class for ROC-AUC) are dropped; if more than half are, no
    interval is given (``low``/``high`` None, with a reason). Rows are assumed exchangeable:
    this interval describes sampling noise of a batch, not autocorrelation between batches.

    Args:
        statistic: maps arrays of shape ``(resamples, n)`` to shape ``(resamples,)``, e.g. a
            :class:`MetricSpec`'s ``batch_function`` (bind parameters with ``functools.partial``).
        *samples: 1-D arrays of equal length n; NaNs are not allowed.
        confidence: two-sided coverage, in (0, 1).
        n_resamples: number of resamples (0 returns an interval of ``None``).
        seed: the random seed; the same seed and data give the same interval.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 500)
        >>> score = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
        >>> ci = bootstrap_ci(METRICS["roc_auc"].batch_function, y, score, n_resamples=200)
        >>> ci.low < roc_auc(y, score) < ci.high, ci.n_valid
        (True, 200)
    """
    _check_bootstrap_args(confidence, n_resamples)
    if not samples:
        raise ConfigError("bootstrap_ci needs at least one sample")
    arrays = [
        _as_1d(sample, metric="bootstrap_ci", argument=f"sample {i}")
        for i, sample in enumerate(samples)
    ]
    _same_length("bootstrap_ci", **{f"sample {i}": a for i, a in enumerate(arrays)})
    if arrays[0].shape[0] == 0:
        return ConfidenceInterval(None, None, confidence, n_resamples, 0, "the sample is empty")
    replicates = _bootstrap_replicates(
        {"statistic": statistic}, arrays, n_resamples=n_resamples, seed=seed
    )
    return _percentile_interval(
        replicates["statistic"], confidence=confidence, n_resamples=n_resamples
    )


# ---------------------------------------------------------------------------------------------
# Evaluate a whole task at once
# ---------------------------------------------------------------------------------------------


def _selected(task: Task, metrics: Sequence[str] | None) -> list[MetricSpec]:
    if metrics is None:
        return [spec for spec in _SPECS if spec.task == task]
    chosen = [get_metric(name) for name in metrics]
    for spec in chosen:
        if spec.task != task:
            raise ConfigError(f"metric {spec.name!r} is a {spec.task} metric, not {task}")
    return chosen


def _evaluate(
    specs: Sequence[MetricSpec],
    samples: Sequence[FloatArray],
    parameters: Mapping[str, Any],
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> dict[str, MetricValue]:
    _check_bootstrap_args(confidence, n_resamples)
    n = samples[0].shape[0]
    bound: dict[str, BatchFunction] = {
        spec.name: functools.partial(
            spec.batch_function,
            **{key: parameters[key] for key in spec.parameters if key in parameters},
        )
        for spec in specs
    }

    points = {name: float(fn(*(s[None] for s in samples))[0]) for name, fn in bound.items()}
    defined = {name: fn for name, fn in bound.items() if math.isfinite(points[name])}
    replicates = (
        _bootstrap_replicates(defined, samples, n_resamples=n_resamples, seed=seed)
        if n and defined and n_resamples
        else {}
    )

    results: dict[str, MetricValue] = {}
    for spec in specs:
        point = points[spec.name]
        if n == 0 or not math.isfinite(point):
            reason = "the sample is empty" if n == 0 else f"undefined: {spec.undefined_when}"
            results[spec.name] = MetricValue(
                spec.name, None, None, None, n, spec.higher_is_better, confidence, reason
            )
            continue
        if n_resamples == 0:
            interval = ConfidenceInterval(None, None, confidence, 0, 0, "n_resamples=0")
        else:
            interval = _percentile_interval(
                replicates[spec.name], confidence=confidence, n_resamples=n_resamples
            )
        results[spec.name] = MetricValue(
            spec.name,
            point,
            interval.low,
            interval.high,
            n,
            spec.higher_is_better,
            confidence,
            interval.reason if n_resamples else None,
        )
    return results


def evaluate_classification(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    ece_bins: int = 10,
    ece_binning: EceBinning = "equal_width",
    metrics: Sequence[str] | None = None,
) -> dict[str, MetricValue]:
    """Every classification metric (or the named ``metrics``) with paired bootstrap intervals.

    All metrics share the same resamples (drawn as in :func:`bootstrap_ci` with ``seed``), so
    ``bootstrap_ci(spec.batch_function, ...)`` with the same seed reproduces each interval.
    A metric undefined on this sample (e.g. ROC-AUC on a day with one class) comes back with
    ``value=None`` and a ``reason`` instead of raising; malformed input raises
    :class:`~dagster_corrmon.errors.InputDataError`.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 1000)
        >>> score = np.clip(0.4 * y + 0.6 * rng.random(1000), 0, 1)
        >>> result = evaluate_classification(y, score, n_resamples=200)
        >>> sorted(result)
        ['brier_score', 'ece', 'f1', 'log_loss', 'precision', 'recall', 'roc_auc']
        >>> auc = result["roc_auc"]
        >>> round(auc.value, 4), auc.ci_low < auc.value < auc.ci_high, auc.higher_is_better
        (0.9351, True, True)
        >>> evaluate_classification([1, 1], [0.9, 0.8], n_resamples=0)["roc_auc"].reason
        'undefined: y_true holds only one class'
    """
    _check_threshold(threshold)
    _check_bins(ece_bins, ece_binning)
    specs = _selected("classification", metrics)
    labels, scores = _classification_inputs(y_true, y_score, metric="evaluate_classification")
    parameters = {"threshold": threshold, "n_bins": ece_bins, "binning": ece_binning}
    return _evaluate(
        specs,
        [labels, scores],
        parameters,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def evaluate_regression(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
) -> dict[str, MetricValue]:
    """MAE, RMSE, R² and MAPE (or the named ``metrics``) with paired bootstrap intervals.

    Examples:
        >>> result = evaluate_regression([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8], n_resamples=0)
        >>> round(result["mae"].value, 6), result["mae"].higher_is_better
        (0.15, False)
    """
    specs = _selected("regression", metrics)
    truth, predicted = _regression_inputs(y_true, y_pred, metric="evaluate_regression")
    return _evaluate(
        specs, [truth, predicted], {}, confidence=confidence, n_resamples=n_resamples, seed=seed
    )


def evaluate_serving(
    latencies_ms: ArrayLike,
    errors: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
) -> dict[str, MetricValue]:
    """Latency p50/p95/p99 and error rate of one window of requests, with bootstrap intervals.

    ``latencies_ms[i]`` and ``errors[i]`` describe request i (``errors`` is 0/1 or boolean).

    Examples:
        >>> result = evaluate_serving([12.0, 15.0, 11.0, 90.0], [0, 0, 1, 0], n_resamples=0)
        >>> result["latency_p50"].value, result["error_rate"].value
        (13.5, 0.25)
    """
    specs = _selected("serving", metrics)
    latencies, failed = _serving_inputs(latencies_ms, errors, metric="evaluate_serving")
    return _evaluate(
        specs, [latencies, failed], {}, confidence=confidence, n_resamples=n_resamples, seed=seed
    )


__all__ = [
    "METRICS",
    "ConfidenceInterval",
    "EceBinning",
    "MetricSpec",
    "MetricValue",
    "Task",
    "bootstrap_ci",
    "brier_score",
    "error_rate",
    "evaluate_classification",
    "evaluate_regression",
    "evaluate_serving",
    "expected_calibration_error",
    "f1",
    "get_metric",
    "latency_percentile",
    "log_loss",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "precision",
    "r2_score",
    "recall",
    "roc_auc",
    "root_mean_squared_error",
]
