"""Per-column distribution drift: the tests Evidently 0.7 uses, chosen the way Evidently chooses.

Two entry points:

* :func:`detect_drift` compares a raw reference frame with a raw current frame. Every statistic is
  exact: KS is ``scipy.stats.ks_2samp`` itself, the others reproduce Evidently's
  ``legacy/calculations/stattests`` (binning, epsilon, thresholds) to floating-point precision.
* :func:`detect_drift_from_profile` compares a stored
  :class:`~dagster_corrmon.core.profile.DatasetProfile` with a raw current frame and never needs
  the raw reference. It is exact wherever the profile kept exact counts, and says so per result
  (``approximate``, ``error_bound``) where it did not.

Automatic choice (Evidently's ``_get_default_stattest``; ``n_unique`` counts the distinct
non-null values of reference and current together, reference rows are its non-null rows):

==================  ==============================  ================================
reference rows      numerical column                categorical column
==================  ==============================  ================================
≤ 1000              n_unique > 5: ``ks``;           n_unique > 2: ``chisquare``;
                    3–5: ``chisquare``; ≤ 2: ``z``  ≤ 2: ``z``
> 1000              n_unique > 5: ``wasserstein``;  ``jensenshannon``
                    ≤ 5: ``jensenshannon``
==================  ==============================  ================================

A column is *categorical* when it holds strings, categories or booleans — or, like Evidently's
type inference, integers with at most 10 distinct values in the current batch. Floats, other
integers and datetimes (as epoch seconds) are *numerical*. (Evidently treats high-cardinality
string columns as text and runs a classifier; here they stay categorical.)

Which way each threshold reads is explicit in :attr:`DriftResult.decision` — a p-value test
drifts when the p-value is *small*, a distance when the statistic is *large*.

Method identifiers are stable strings (they are stored): ``"ks"``, ``"chisquare"``, ``"z"``,
``"wasserstein"``, ``"jensenshannon"``, ``"psi"``.
"""

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from dagster_corrmon.core.profile import (
    CATEGORICAL_KINDS,
    BatchStatistics,
    CategoricalColumnProfile,
    CategoryCounts,
    CategoryTail,
    ColumnProfile,
    DatasetProfile,
    DatasetSketch,
    NumericColumnProfile,
    RecentStatistics,
    category_counts,
    column_kind,
    column_series,
    compatible_kind,
    histogram_on_edges,
    is_integer_column,
    numeric_values,
    sorted_distinct,
)
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

KS = "ks"
CHISQUARE = "chisquare"
Z = "z"
WASSERSTEIN = "wasserstein"
JENSENSHANNON = "jensenshannon"
PSI = "psi"
METHODS: tuple[str, ...] = (KS, CHISQUARE, Z, WASSERSTEIN, JENSENSHANNON, PSI)

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    KS: 0.05,
    CHISQUARE: 0.05,
    Z: 0.05,
    WASSERSTEIN: 0.1,
    JENSENSHANNON: 0.1,
    PSI: 0.1,
}

P_VALUE_BELOW = "p_value_below_threshold"
P_VALUE_AT_OR_BELOW = "p_value_at_or_below_threshold"
STATISTIC_AT_OR_ABOVE = "statistic_at_or_above_threshold"
DECISIONS: Mapping[str, str] = {
    KS: P_VALUE_AT_OR_BELOW,  # Evidently: p <= threshold for KS, p < threshold for chi²/Z
    CHISQUARE: P_VALUE_BELOW,
    Z: P_VALUE_BELOW,
    WASSERSTEIN: STATISTIC_AT_OR_ABOVE,
    JENSENSHANNON: STATISTIC_AT_OR_ABOVE,
    PSI: STATISTIC_AT_OR_ABOVE,
}

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
SMALL_REFERENCE_ROWS = 1000  # Evidently's switch from tests to distances
INTEGER_CARDINALITY_LIMIT = 10  # Evidently: integer columns with ≤ 10 values are categorical
_WASSERSTEIN_MIN_NORM = 0.001  # Evidently's floor for the reference std
_OTHER = "\x00other"  # the bucket of categories a capped reference profile did not keep


def _scipy_stats() -> Any:
    """``scipy.stats``, imported on first use: the import alone takes over a second, and the
    distances (Wasserstein, Jensen–Shannon, PSI) that score large references never need it."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class DriftResult:
    """The drift verdict for one column.

    ``statistic`` is the test statistic (KS D, χ², Z, normed Wasserstein, Jensen–Shannon distance,
    PSI); ``p_value`` is set for the three tests and None for distances. ``decision`` names the
    rule that produced ``drifted`` from ``threshold``. ``approximate`` is True when the
    statistic was estimated from a binned reference profile; ``error_bound`` then bounds
    ``|statistic - exact statistic|`` where a rigorous bound is known (KS, Wasserstein).
    ``current_null_fraction`` and ``current_mean`` are small per-batch summaries for attribution.

    ``threshold`` is the one the decision used: the ``configured_threshold`` (the option, or the
    method's default), raised to ``batch_floor`` when the reference profile carries batch
    statistics for the column (see :func:`calibrate_profile`); ``reference_batches`` is how many
    reference batches that floor came from (0: not calibrated).
    """

    column: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    decision: str
    column_type: str
    reference_rows: int
    current_rows: int
    approximate: bool = False
    error_bound: float | None = None
    current_null_fraction: float = 0.0
    current_mean: float | None = None
    configured_threshold: float | None = None
    batch_floor: float | None = None
    reference_batches: int = 0

    @property
    def score(self) -> float:
        """The number the threshold is compared with (Evidently's ``drift_score``)."""
        return self.p_value if self.p_value is not None else self.statistic

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python, strict-JSON-safe dict; the first six keys are the CLI's contract.

        An infinite statistic (χ² with a category the reference never saw) becomes None.
        """
        return {
            "column": self.column,
            "method": self.method,
            "statistic": self.statistic if math.isfinite(self.statistic) else None,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "decision": self.decision,
            "column_type": self.column_type,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "approximate": self.approximate,
            "error_bound": self.error_bound,
            "current_null_fraction": self.current_null_fraction,
            "current_mean": self.current_mean,
            "configured_threshold": self.configured_threshold,
            "batch_floor": self.batch_floor,
            "reference_batches": self.reference_batches,
        }


def choose_method(column_type: str, reference_rows: int, n_unique: int | None) -> str:
    """Evidently 0.7's default test for a column (``None`` n_unique means "many")."""
    more_than_five = n_unique is None or n_unique > 5
    more_than_two = n_unique is None or n_unique > 2
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if column_type == NUMERICAL and more_than_five:
            return KS
        return CHISQUARE if more_than_two else Z
    if column_type == NUMERICAL and more_than_five:
        return WASSERSTEIN
    return JENSENSHANNON


# ------------------------------------------------------------------------------ the statistics


def decide(method: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    """Whether ``method``'s statistic (or p-value) is on the drift side of ``threshold``."""
    decision = DECISIONS[method]
    if decision == STATISTIC_AT_OR_ABOVE:
        return statistic >= threshold
    assert p_value is not None
    if decision == P_VALUE_AT_OR_BELOW:
        return p_value <= threshold
    return p_value < threshold


def _chisquare(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Evidently's χ² goodness of fit of current counts to reference shares (scipy.chisquare)."""
    if len(reference_counts) < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    expected = reference_counts * (current_counts.sum() / reference_counts.sum())
    if np.any(expected == 0):
        # A category the reference never saw: infinite statistic, p = 0 (scipy's limit).
        return math.inf, 0.0
    result = _scipy_stats().chisquare(current_counts, expected)
    return float(result.statistic), float(result.pvalue)


def _z_test(
    keys: np.ndarray, reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float]:
    """Evidently's two-proportion Z test: the first of the ascending ``keys`` against the rest."""
    reference_present = reference_counts > 0
    current_present = current_counts > 0
    if (
        reference_present.sum() == 1
        and current_present.sum() == 1
        and np.array_equal(reference_present, current_present)
    ):
        return 0.0, 1.0
    del keys  # ascending by construction: the first key is index 0
    n1, n2 = float(reference_counts.sum()), float(current_counts.sum())
    p1 = (n1 - reference_counts[0]) / n1
    p2 = (n2 - current_counts[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    p_value = 2 * (1 - _scipy_stats().norm.cdf(abs(z)))  # Evidently's formula, kept for parity
    return float(z), float(p_value)


def _jensenshannon(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon (natural log), clamped at 0 against rounding."""
    p = reference_share / reference_share.sum()
    q = current_share / current_share.sum()
    m = (p + q) / 2.0
    js = _relative_entropy(p, m) + _relative_entropy(q, m)
    return math.sqrt(max(js, 0.0) / 2.0)


def _relative_entropy(p: np.ndarray, m: np.ndarray) -> float:
    """``Σ scipy.special.rel_entr(p, m)`` for ``m > 0`` wherever ``p > 0`` (0 · log 0 = 0)."""
    positive = p > 0
    return float(np.sum(p[positive] * np.log(p[positive] / m[positive])))


def _js_lumped_bound(statistic: float, reference_share: float, current_share: float) -> float:
    """How far the Jensen–Shannon distance can exceed ``statistic`` when one cell lumps a tail.

    The divergence is a sum over categories of ``f(p, q) = ½ [p ln(2p/(p+q)) + q ln(2q/(p+q))]``.
    Lumping the categories of a cell into one (shares ``P``, ``Q``) can only lower that sum
    (``f`` is jointly convex and 1-homogeneous: the data-processing inequality), and the cell's
    categories contribute at most ``½ (P + Q) ln 2`` (reached when no category is on both
    sides). So ``statistic² ≤ D ≤ statistic² − f(P, Q) + ½ (P + Q) ln 2``.
    """
    p, q = reference_share, current_share
    total = p + q
    if total <= 0:
        return 0.0
    lumped = 0.5 * sum(x * math.log(2 * x / total) for x in (p, q) if x > 0)
    upper = statistic * statistic - lumped + 0.5 * total * math.log(2)
    return max(math.sqrt(max(upper, 0.0)) - statistic, 0.0)


def _fill_zeroes(shares: np.ndarray) -> np.ndarray:
    """Evidently's epsilon for empty bins before PSI's logarithm."""
    nonzero = shares[shares != 0]
    smallest = float(nonzero.min())
    epsilon = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, epsilon, shares)


def _psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    reference_share = _fill_zeroes(reference_share)
    current_share = _fill_zeroes(current_share)
    return float(
        np.sum((reference_share - current_share) * np.log(reference_share / current_share))
    )


def _wasserstein_sorted(
    u_values: np.ndarray,
    v_values: np.ndarray,
    u_counts: np.ndarray | None = None,
    v_counts: np.ndarray | None = None,
) -> float:
    """Exact first Wasserstein distance of two ascending samples (optionally value + count).

    Same quantity as ``scipy.stats.wasserstein_distance``, computed as ∫|Q_u − Q_v| over the
    quantile functions instead of ∫|F_u − F_v| over a re-sorted concatenation: the quantile
    steps sit at the known fractions i/n and j/m, so on the integer scale n·m their merge is a
    sort of integers and each step's sample index is an integer division. Equal-size unweighted
    samples reduce to mean |u_(i) − v_(i)|.
    """
    if u_counts is None and v_counts is None and len(u_values) == len(v_values):
        return float(np.mean(np.abs(u_values - v_values)))
    n = len(u_values) if u_counts is None else int(u_counts.sum())
    m = len(v_values) if v_counts is None else int(v_counts.sum())
    u_steps = np.arange(1, n + 1, dtype=np.int64) if u_counts is None else np.cumsum(u_counts)
    v_steps = np.arange(1, m + 1, dtype=np.int64) if v_counts is None else np.cumsum(v_counts)
    u_steps = u_steps.astype(np.int64) * m  # quantile step ends on the scale n·m
    v_steps = v_steps.astype(np.int64) * n
    breaks = np.concatenate([u_steps, v_steps])
    breaks.sort()
    widths = np.diff(breaks, prepend=0)  # duplicated breaks give zero-width steps
    if u_counts is None:
        u_index = (breaks - 1) // m
    else:
        u_index = np.searchsorted(u_steps, breaks, side="left")
    if v_counts is None:
        v_index = (breaks - 1) // n
    else:
        v_index = np.searchsorted(v_steps, breaks, side="left")
    del breaks
    gaps = np.abs(u_values[u_index] - v_values[v_index])
    return float(np.dot(widths, gaps)) / (float(n) * float(m))


def _compressed(side: "_NumericSide") -> tuple[np.ndarray, np.ndarray | None]:
    """(values, counts) of a side: distinct values when they repeat a lot, else the sample."""
    if side.exact_values is not None and side.exact_counts is not None:
        return side.exact_values, side.exact_counts
    assert side.sorted_values is not None
    distinct_count = side.distinct_count
    if distinct_count is not None and distinct_count * 4 <= side.count:
        distinct = side.distinct
        assert distinct is not None
        return distinct
    return side.sorted_values, None


def _sturges_edges(low: float, high: float, size: int, integer: bool) -> np.ndarray:
    """``np.histogram_bin_edges(combined, bins="sturges")`` from the combined min, max and size."""
    width = (high - low) / (np.log2(size) + 1.0)  # from the data's range, before widening
    if low == high:
        low, high = low - 0.5, high + 0.5
    if width:
        if integer and width < 1:
            width = 1.0
        bins = int(np.ceil((high - low) / width))
    else:
        bins = 1
    return np.linspace(low, high, bins + 1, endpoint=True, dtype=np.float64)


# ---------------------------------------------------------------------- one side of a column


class _NumericSide:
    """The finite values of one side of a numeric column: raw, exact counts, or a histogram."""

    def __init__(
        self,
        *,
        rows: int,
        count: int,
        integer: bool,
        minimum: float,
        maximum: float,
        mean: float,
        std: float,
        sorted_values: np.ndarray | None = None,
        exact_values: np.ndarray | None = None,
        exact_counts: np.ndarray | None = None,
        edges: np.ndarray | None = None,
        histogram: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
    ) -> None:
        self.rows = rows
        self.count = count
        self.integer = integer
        self.minimum = minimum
        self.maximum = maximum
        self.mean = mean
        self.std = std
        self.sorted_values = sorted_values
        self.exact_values = exact_values
        self.exact_counts = exact_counts
        self.edges = edges
        self.histogram = histogram
        self.offsets = offsets

    @classmethod
    def from_series(
        cls, series: pd.Series, *, kind: str, column: str, where: str
    ) -> "_NumericSide":
        values, _, _ = numeric_values(series, kind=kind)
        if len(values) == 0:
            raise InsufficientDataError(
                f"column {column!r} has no non-null finite values in the {where}; "
                "drift cannot be computed"
            )
        sorted_values = np.sort(values)
        return cls(
            rows=len(series),
            count=len(sorted_values),
            integer=is_integer_column(series),
            minimum=float(sorted_values[0]),
            maximum=float(sorted_values[-1]),
            mean=float(np.mean(sorted_values)),
            std=math.nan,  # computed on demand (only the reference's is ever needed)
            sorted_values=sorted_values,
        )

    @classmethod
    def from_profile(
        cls, profile: NumericColumnProfile, *, where: str = "reference profile"
    ) -> "_NumericSide":
        if profile.count == 0 or profile.minimum is None or profile.maximum is None:
            raise InsufficientDataError(
                f"column {profile.name!r} has no finite values in the {where}; "
                "drift cannot be computed"
            )
        exact = profile.exact_values is not None and profile.exact_counts is not None
        return cls(
            rows=profile.rows,
            count=profile.count,
            integer=profile.integer,
            minimum=profile.minimum,
            maximum=profile.maximum,
            mean=profile.mean,
            std=profile.std,
            exact_values=np.asarray(profile.exact_values, dtype=np.float64) if exact else None,
            exact_counts=np.asarray(profile.exact_counts, dtype=np.int64) if exact else None,
            edges=np.asarray(profile.edges, dtype=np.float64),
            histogram=np.asarray(profile.histogram, dtype=np.int64),
            offsets=np.asarray(profile.offsets, dtype=np.float64),
        )

    @cached_property
    def spread(self) -> float:
        """Population standard deviation (ddof=0), like ``np.std`` in Evidently."""
        if math.isnan(self.std):
            assert self.sorted_values is not None
            return float(np.std(self.sorted_values))
        return self.std

    @cached_property
    def distinct_count(self) -> int | None:
        """Number of distinct values, or None when only a capped histogram is known."""
        if self.sorted_values is not None:
            values = self.sorted_values
            return 1 + int(np.count_nonzero(values[1:] != values[:-1]))
        return None if self.exact_values is None else len(self.exact_values)

    @property
    def exact(self) -> bool:
        return self.sorted_values is not None or self.exact_values is not None

    @cached_property
    def distinct(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Ascending distinct values and counts, or None when only a histogram is known."""
        if self.sorted_values is not None:
            return sorted_distinct(self.sorted_values)
        if self.exact_values is not None and self.exact_counts is not None:
            return self.exact_values, self.exact_counts
        return None

    def sample(self) -> np.ndarray:
        """The exact sample, expanded from counts if needed (only valid when ``exact``)."""
        if self.sorted_values is not None:
            return self.sorted_values
        assert self.exact_values is not None and self.exact_counts is not None
        return np.repeat(self.exact_values, self.exact_counts)

    def counts_on(self, keys: np.ndarray) -> np.ndarray:
        """Counts of each of the ascending ``keys`` (which must include every distinct value)."""
        distinct = self.distinct
        assert distinct is not None
        values, counts = distinct
        result = np.zeros(len(keys), dtype=np.float64)
        result[np.searchsorted(keys, values)] = counts
        return result

    def histogram_counts(self, edges: np.ndarray) -> np.ndarray:
        """``np.histogram`` counts on ``edges`` (exact when the values are known)."""
        if self.sorted_values is not None:
            return np.histogram(self.sorted_values, edges)[0].astype(np.float64)
        if self.exact_values is not None and self.exact_counts is not None:
            return np.histogram(self.exact_values, edges, weights=self.exact_counts)[0]
        # Binned reference: mass read from the in-bin linear CDF (an approximation).
        xs, ys = self.cdf_knots()
        left = _cdf_limits(xs, ys, edges, right=False)
        left[-1] = _cdf_limits(xs, ys, edges[-1:], right=True)[0]  # last bin is closed
        return np.diff(left) * self.count

    def cdf_knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Knots of the CDF that is linear inside each occupied bin, within [min, max]."""
        assert self.edges is not None and self.histogram is not None
        return _cdf_knots(self.edges, self.histogram, self.minimum, self.maximum)


def _cdf_knots(
    edges: np.ndarray, histogram: np.ndarray, minimum: float, maximum: float
) -> tuple[np.ndarray, np.ndarray]:
    lower = np.maximum(np.r_[-np.inf, edges], minimum)
    upper = np.minimum(np.r_[edges, np.inf], maximum)
    cumulative = np.r_[0, np.cumsum(histogram)] / histogram.sum()
    occupied = histogram > 0
    xs = np.column_stack([lower[occupied], upper[occupied]]).ravel()
    ys = np.column_stack([cumulative[:-1][occupied], cumulative[1:][occupied]]).ravel()
    return xs, ys


def _cdf_limits(xs: np.ndarray, ys: np.ndarray, at: np.ndarray, *, right: bool) -> np.ndarray:
    """Right (or left) limits at ``at`` of the piecewise-linear CDF through knots (xs, ys).

    Knots may repeat an x (a jump); the side decides which of the repeated values applies.
    """
    index = np.searchsorted(xs, at, side="right" if right else "left")
    inside = (index > 0) & (index < len(xs))
    result = np.where(index == 0, 0.0, 1.0)
    k = index[inside]
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    result[inside] = y0 + (y1 - y0) * (at[inside] - x0) / (x1 - x0)
    return result


def _binned_wasserstein(reference: _NumericSide, current: _NumericSide) -> tuple[float, float]:
    """W1 from two histograms on the same edges with per-bin offsets, and its error bound.

    Counts and offsets make ``∫_bin (F_ref − F_cur) dx`` exact for every bin (see
    :func:`~dagster_corrmon.core.profile.histogram_on_edges`), so
    ``Σ_j |∫_bin_j (F_ref − F_cur)|`` is exact — and a lower bound of W1 = ∫|F_ref − F_cur| —
    unless the two CDFs cross inside a bin. Inside bin j the gap stays within
    ``[g_j − c_j, g_j + r_j]`` (``g_j`` its value at the left edge, ``r_j``, ``c_j`` the bin's
    shares); when that range straddles 0, the part of the gap with the minority sign adds at
    most ``2 · w_j · min(g_j + r_j, c_j − g_j)`` (``w_j`` the bin's width within the data's
    range). The bound is the sum of those terms: zero when no bin can hold a crossing.
    """
    assert reference.edges is not None
    assert reference.histogram is not None and reference.offsets is not None
    assert current.histogram is not None and current.offsets is not None
    edges = reference.edges
    ref_share = reference.histogram / reference.count
    cur_share = current.histogram / current.count
    gap_at_right = np.cumsum(ref_share - cur_share)  # F_ref − F_cur just below each right edge
    offset_gap = reference.offsets / reference.count - current.offsets / current.count
    integral = np.empty(len(ref_share), dtype=np.float64)
    integral[0] = offset_gap[0]  # ∫_{-inf}^{e_1} F = Σ (e_1 − x) / n
    integral[1:-1] = np.diff(edges) * gap_at_right[1:-1] - offset_gap[1:-1]
    integral[-1] = -offset_gap[-1]  # ∫_{e_k}^{inf} (1 − F) = Σ (x − e_k) / n
    lower = float(np.sum(np.abs(integral)))
    gap_at_left = np.r_[0.0, gap_at_right[:-1]]
    low, high = gap_at_left - cur_share, gap_at_left + ref_share
    straddles = (low < 0) & (high > 0)
    data_low = min(reference.minimum, current.minimum)
    data_high = max(reference.maximum, current.maximum)
    widths = np.minimum(np.r_[edges, np.inf], data_high) - np.maximum(
        np.r_[-np.inf, edges], data_low
    )
    widths = np.maximum(widths, 0.0)
    slack = 2.0 * widths * np.minimum(high, -low)
    return lower, float(np.sum(slack[straddles]))


def _binned_ks(reference: _NumericSide, current: _NumericSide) -> tuple[float, float, float]:
    """KS D read at the reference edges (a lower bound), the gap to its upper bound, p-value.

    Both CDFs are exact at the edges, so D ≥ max_e |F_ref(e) − F_cur(e)|; inside bin j the gap
    can move at most by the bin's share of either side, which gives the upper bound.
    """
    assert reference.histogram is not None and current.histogram is not None
    ref_share = reference.histogram / reference.histogram.sum()
    cur_share = current.histogram / current.histogram.sum()
    gap_before = np.r_[0.0, np.cumsum(ref_share - cur_share)[:-1]]  # at each bin's left edge
    lower = float(np.max(np.abs(gap_before)))
    upper = float(
        np.max(np.maximum(np.abs(gap_before - cur_share), np.abs(gap_before + ref_share)))
    )
    upper = min(upper, 1.0)
    n1, n2 = float(reference.count), float(current.count)
    p_value = float(_scipy_stats().kstwo.sf(lower, np.round(n1 * n2 / (n1 + n2))))
    return lower, upper - lower, p_value


# ------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class _Options:
    method: str | None
    per_column_method: Mapping[str, str]
    threshold: float | None
    per_column_threshold: Mapping[str, float]

    @classmethod
    def build(
        cls,
        *,
        columns: Sequence[str],
        method: str | None,
        per_column_method: Mapping[str, str] | None,
        threshold: float | None,
        per_column_threshold: Mapping[str, float] | None,
    ) -> "_Options":
        per_column_method = dict(per_column_method or {})
        per_column_threshold = dict(per_column_threshold or {})
        for name in (method, *per_column_method.values()):
            if name is not None and name not in METHODS:
                raise ConfigError(
                    f"unknown drift method {name!r}; known methods: {', '.join(METHODS)}"
                )
        for value in (threshold, *per_column_threshold.values()):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(f"drift threshold must be a positive number, got {value!r}")
        for option, mapping in (
            ("per_column_method", per_column_method),
            ("per_column_threshold", per_column_threshold),
        ):
            for column in mapping:
                if column not in columns:
                    raise ConfigError(
                        f"{option} names column {column!r}, which is not being checked "
                        f"(columns: {', '.join(columns)})"
                    )
        return cls(method, per_column_method, threshold, per_column_threshold)

    def method_for(self, column: str) -> str | None:
        return self.per_column_method.get(column, self.method)

    def threshold_for(self, column: str, method: str) -> float:
        value = self.per_column_threshold.get(column, self.threshold)
        if value is None:
            return DEFAULT_THRESHOLDS[method]
        if DECISIONS[method] != STATISTIC_AT_OR_ABOVE and value > 1:
            raise ConfigError(
                f"threshold {value} for column {column!r} is not a significance level: "
                f"method {method!r} compares p-values, so the threshold must be in (0, 1]"
            )
        return float(value)


# ---------------------------------------------------------------------------------- scoring


def _result(
    column: str,
    method: str,
    statistic: float,
    p_value: float | None,
    threshold: float,
    *,
    column_type: str,
    reference_rows: int,
    current_rows: int,
    null_fraction: float,
    mean: float | None,
    approximate: bool = False,
    error_bound: float | None = None,
) -> DriftResult:
    return DriftResult(
        column=column,
        method=method,
        statistic=float(statistic),
        p_value=None if p_value is None else float(p_value),
        threshold=threshold,
        drifted=bool(decide(method, statistic, p_value, threshold)),
        decision=DECISIONS[method],
        column_type=column_type,
        reference_rows=reference_rows,
        current_rows=current_rows,
        approximate=approximate,
        error_bound=error_bound,
        current_null_fraction=null_fraction,
        current_mean=mean,
        configured_threshold=threshold,
    )


def _counts_statistic(
    method: str, keys: np.ndarray, reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float | None]:
    if method == CHISQUARE:
        return _chisquare(reference_counts, current_counts)
    if method == Z:
        return _z_test(keys, reference_counts, current_counts)
    reference_share = reference_counts / reference_counts.sum()
    current_share = current_counts / current_counts.sum()
    if method == JENSENSHANNON:
        return _jensenshannon(reference_share, current_share), None
    return _psi(reference_share, current_share), None


def _score_numeric(
    column: str, reference: _NumericSide, current: _NumericSide, options: _Options
) -> DriftResult:
    requested = options.method_for(column)
    reference_distinct = reference.distinct_count  # None: more than the profile's cap
    current_distinct = current.distinct_count  # None: a sketch past its cap (many values)
    # Evidently infers integer columns with ≤ 10 values (in the current batch) as categorical;
    # that needs the reference's value counts, which a binned profile no longer has.
    column_type = NUMERICAL
    if (
        current.integer
        and current_distinct is not None
        and current_distinct <= INTEGER_CARDINALITY_LIMIT
        and reference_distinct is not None
    ):
        column_type = CATEGORICAL
    keys: np.ndarray | None = None
    if reference.exact:
        keys = _union_keys(reference, current)
    # The automatic choice only asks whether n_unique exceeds 2 or 5.
    n_unique = None if keys is None else len(keys)
    method = requested or choose_method(column_type, reference.count, n_unique)
    threshold = options.threshold_for(column, method)

    def emit(
        statistic: float,
        p_value: float | None,
        *,
        approximate: bool = False,
        error_bound: float | None = None,
    ) -> DriftResult:
        return _result(
            column,
            method,
            statistic,
            p_value,
            threshold,
            column_type=column_type,
            reference_rows=reference.count,
            current_rows=current.count,
            null_fraction=1.0 - current.count / current.rows,
            mean=current.mean,
            approximate=approximate,
            error_bound=error_bound,
        )

    if method == KS:
        if reference.exact:
            with warnings.catch_warnings():
                # scipy falls back from its exact p-value to the asymptotic one for some tied
                # samples and says so; the p-value is still scipy's own, so stay quiet.
                warnings.filterwarnings(
                    "ignore", message="ks_2samp: Exact calculation unsuccessful"
                )
                ks = _scipy_stats().ks_2samp(reference.sample(), current.sample())
            return emit(float(ks.statistic), float(ks.pvalue))  # type: ignore[attr-defined]
        statistic, bound, p_value = _binned_ks(reference, _bin_like(current, reference))
        return emit(statistic, p_value, approximate=True, error_bound=bound)
    if method == WASSERSTEIN:
        norm = max(reference.spread, _WASSERSTEIN_MIN_NORM)
        if reference.exact:
            reference_values, reference_counts = _compressed(reference)
            current_values, current_counts = _compressed(current)
            distance = _wasserstein_sorted(
                reference_values, current_values, reference_counts, current_counts
            )
            return emit(distance / norm, None)
        estimate, bound = _binned_wasserstein(reference, _bin_like(current, reference))
        return emit(estimate / norm, None, approximate=True, error_bound=bound / norm)
    # Counting methods. Evidently bins JS/PSI of numerical columns with > 20 reference values
    # on Sturges edges over reference + current; χ², Z and the rest count distinct values.
    sturges = (
        method in (JENSENSHANNON, PSI)
        and column_type == NUMERICAL
        and (reference_distinct is None or reference_distinct > 20)
    )
    if sturges:
        edges = _sturges_edges(
            min(reference.minimum, current.minimum),
            max(reference.maximum, current.maximum),
            reference.count + current.count,
            reference.integer and current.integer,
        )
        statistic, p_value = _counts_statistic(
            method, edges, reference.histogram_counts(edges), current.histogram_counts(edges)
        )
        return emit(statistic, p_value, approximate=not reference.exact)
    if keys is None and reference.exact:
        keys = _union_keys(reference, current, force=True)
    if keys is not None:
        statistic, p_value = _counts_statistic(
            method, keys, reference.counts_on(keys), current.counts_on(keys)
        )
        return emit(statistic, p_value)
    # A test on counts forced onto a binned numeric reference: its quantile bins are the keys.
    current_binned = _bin_like(current, reference)
    assert reference.histogram is not None and current_binned.histogram is not None
    occupied = (reference.histogram + current_binned.histogram) > 0
    statistic, p_value = _counts_statistic(
        method,
        np.flatnonzero(occupied).astype(np.float64),
        reference.histogram[occupied].astype(np.float64),
        current_binned.histogram[occupied].astype(np.float64),
    )
    return emit(statistic, p_value, approximate=True)


def _union_keys(
    reference: _NumericSide, current: _NumericSide, *, force: bool = False
) -> np.ndarray | None:
    """Distinct values of reference and current together, or None when there are many.

    Unless forced, skips the work when the reference alone has more than 20 distinct values
    (and the column is not an integer one Evidently calls categorical): then no rule
    (n_unique ≤ 5, ≤ 2) and no counting of distinct values applies.
    """
    reference_count = reference.distinct_count
    current_count = current.distinct_count
    small_integer = current.integer and current_count is not None and current_count <= 10
    if not force and not small_integer and (reference_count is None or reference_count > 20):
        return None
    reference_distinct, current_distinct = reference.distinct, current.distinct
    if reference_distinct is None or current_distinct is None:
        return None
    return np.union1d(reference_distinct[0], current_distinct[0])


def _bin_like(current: _NumericSide, reference: _NumericSide) -> _NumericSide:
    """The current side with its histogram on the reference's edges (one pass, sorted).

    A current side read from a sketch already has it (sketches use the reference's edges).
    """
    if current.sorted_values is None and current.histogram is not None:
        return current
    assert reference.edges is not None and current.sorted_values is not None
    current.edges = reference.edges
    current.histogram, current.offsets = histogram_on_edges(current.sorted_values, reference.edges)
    return current


def _score_categorical(
    column: str,
    reference_counts: Mapping[str, int],
    reference_other: int,
    current_counts: Mapping[str, int],
    *,
    reference_rows: int,
    current_rows: int,
    current_total: int,
    options: _Options,
    reference_tail: CategoryTail | None = None,
) -> DriftResult:
    requested = options.method_for(column)
    if requested in (KS, WASSERSTEIN):
        raise ConfigError(
            f"method {requested!r} needs a numerical column; {column!r} is categorical"
        )
    merged_current = dict(current_counts)
    if reference_other:
        # The reference profile lumped its rarest categories. A current category it did not keep
        # is either one of those (lumped alike) or never seen — certainly so when the tail's
        # filter says so (no false negatives): those keep their own key, with reference share 0,
        # exactly as against the raw reference. Without a filter every one may be in the tail.
        unknown = [key for key in current_counts if key not in reference_counts]
        maybe_in_tail = (
            np.ones(len(unknown), dtype=bool)
            if reference_tail is None
            else reference_tail.might_contain(unknown)
        )
        merged_current = {k: v for k, v in current_counts.items() if k in reference_counts}
        merged_current[_OTHER] = 0
        for key, in_tail in zip(unknown, maybe_in_tail.tolist(), strict=True):
            if in_tail:
                merged_current[_OTHER] += current_counts[key]
            else:
                merged_current[key] = current_counts[key]
        reference_counts = {**reference_counts, _OTHER: reference_other}
    keys = sorted(
        key
        for key in set(reference_counts) | set(merged_current)
        if reference_counts.get(key, 0) + merged_current.get(key, 0) > 0
    )
    key_array = np.array(keys, dtype=object)
    reference_array = np.array([reference_counts.get(key, 0) for key in keys], dtype=np.float64)
    current_array = np.array([merged_current.get(key, 0) for key in keys], dtype=np.float64)
    reference_total = int(reference_array.sum())
    method = requested or choose_method(CATEGORICAL, reference_total, len(keys))
    threshold = options.threshold_for(column, method)
    statistic, p_value = _counts_statistic(method, key_array, reference_array, current_array)
    error_bound = None
    if reference_other and method == JENSENSHANNON:
        error_bound = _js_lumped_bound(
            statistic,
            reference_other / reference_array.sum(),
            merged_current[_OTHER] / current_array.sum(),
        )
    return _result(
        column,
        method,
        statistic,
        p_value,
        threshold,
        column_type=CATEGORICAL,
        reference_rows=reference_total,
        current_rows=current_total,
        null_fraction=1.0 - current_total / current_rows if current_rows else 0.0,
        mean=None,
        approximate=bool(reference_other),
        error_bound=error_bound,
    )


# ------------------------------------------------------------------------------ entry points


def _check_frame(frame: pd.DataFrame, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"the {what} must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InputDataError(f"the {what} has no rows")


def _resolve_columns(
    available: Sequence[str], current: pd.DataFrame, columns: Sequence[str] | None, what: str
) -> list[str]:
    names = list(available) if columns is None else list(columns)
    if not names:
        raise InputDataError("no columns to check for drift")
    for name in names:
        if name not in available:
            raise InputDataError(
                f"column {name!r} is not in the {what} (columns: {', '.join(map(str, available))})"
            )
        if name not in current.columns:
            raise InputDataError(
                f"column {name!r} of the {what} is missing from the current data "
                f"(columns: {', '.join(map(str, current.columns))})"
            )
    return names


def _current_kind(series: pd.Series, name: str, reference_kind: str) -> str:
    kind = compatible_kind(series, reference_kind, column=name, where="current data")
    if kind == "empty":
        raise InsufficientDataError(
            f"column {name!r} has no non-null values in the current data; drift cannot be computed"
        )
    return kind


def _score_categorical_series(
    name: str,
    reference_counts: Mapping[str, int],
    reference_other: int,
    series: pd.Series,
    options: _Options,
    *,
    reference_tail: CategoryTail | None = None,
) -> DriftResult:
    return _score_category_counts(
        name,
        reference_counts,
        reference_other,
        category_counts(series),
        rows=len(series),
        options=options,
        reference_tail=reference_tail,
    )


def _score_category_counts(
    name: str,
    reference_counts: Mapping[str, int],
    reference_other: int,
    counts: Mapping[str, int],
    *,
    rows: int,
    options: _Options,
    reference_tail: CategoryTail | None,
) -> DriftResult:
    total = sum(counts.values())
    for where, size in (("reference", sum(reference_counts.values())), ("current data", total)):
        if size == 0:
            raise InsufficientDataError(
                f"column {name!r} has no non-null values in the {where}; drift cannot be computed"
            )
    return _score_categorical(
        name,
        reference_counts,
        reference_other,
        counts,
        reference_rows=sum(reference_counts.values()) + reference_other,
        current_rows=rows,
        current_total=total,
        options=options,
        reference_tail=reference_tail,
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    per_column_method: Mapping[str, str] | None = None,
    threshold: float | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
) -> list[DriftResult]:
    """Test every column (default: all of the reference's) for drift, exactly.

    NaN and ±inf are dropped before testing (as Evidently does). ``method`` /
    ``per_column_method`` override the automatic choice; ``threshold`` /
    ``per_column_threshold`` override the method's default threshold. Raises
    :class:`InputDataError` for an empty frame, an unknown column, incompatible dtypes between
    reference and current, and :class:`InsufficientDataError` for a column with no values.
    """
    _check_frame(reference, "reference")
    _check_frame(current, "current data")
    names = _resolve_columns([str(c) for c in reference.columns], current, columns, "reference")
    options = _Options.build(
        columns=names,
        method=method,
        per_column_method=per_column_method,
        threshold=threshold,
        per_column_threshold=per_column_threshold,
    )
    results: list[DriftResult] = []
    for name in names:
        reference_series = column_series(reference, name)
        current_series = column_series(current, name)
        reference_kind = column_kind(reference_series, column=name)
        if reference_kind == "empty":
            raise InsufficientDataError(
                f"column {name!r} has no non-null values in the reference; drift cannot be computed"
            )
        kind = _current_kind(current_series, name, reference_kind)
        if kind in CATEGORICAL_KINDS:
            reference_counts = category_counts(reference_series)
            result = _score_categorical_series(name, reference_counts, 0, current_series, options)
        else:
            result = _score_numeric(
                name,
                _NumericSide.from_series(
                    reference_series, kind=kind, column=name, where="reference"
                ),
                _NumericSide.from_series(
                    current_series, kind=kind, column=name, where="current data"
                ),
                options,
            )
        results.append(result)
    return results


def detect_drift_from_profile(
    reference: DatasetProfile,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    per_column_method: Mapping[str, str] | None = None,
    threshold: float | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    calibrated: bool = True,
) -> list[DriftResult]:
    """Test the current batch against a stored reference profile; the raw reference is not needed.

    Same options, same automatic choice and same statistics as :func:`detect_drift` — exactly
    so (up to float summation order) wherever the profile kept exact counts:

    * categorical/boolean columns whose reference kept every category (``other == 0``);
    * numeric columns with at most ``max_exact_values`` distinct reference values (default
      1000) — which includes every reference of ≤ 1000 rows, so every automatically chosen KS,
      χ² and Z test is exact.

    Otherwise the result says ``approximate=True``:

    * **Wasserstein** (numeric, many values): the profile keeps, per reference quantile bin,
      the count and the sum of distances to the bin's edge, which makes ``∫ (F_ref − F_cur)``
      over every bin exact. ``statistic = Σ_bins |∫_bin (F_ref − F_cur)| / max(σ_ref, 0.001)``
      is therefore exact unless the two CDFs cross inside a bin, and never above the exact
      value. ``error_bound`` is rigorous: ``exact − statistic ≤ error_bound =
      Σ_j 2 · w_j · min(g_j + r_j, c_j − g_j) / max(σ_ref, 0.001)`` over the bins j where
      the gap ``g_j`` at the bin's left edge could change sign inside it (``r_j``, ``c_j`` the
      bin's shares of reference and current, ``w_j`` its width within the data's range). With
      the default 1000 bins plus tail quantiles the bound is a few thousandths of σ for
      normal or exponential data, ~0.02 σ for lognormal; the observed error is ~1e-4 σ.
    * **KS** (forced on a binned reference): ``statistic`` is the largest CDF gap at the
      reference's edges, where both CDFs are exact — a lower bound of D — and
      ``D ≤ statistic + error_bound`` (the gap moves inside bin j by at most the bin's share
      of either side). The p-value uses Smirnov's asymptotic distribution, as scipy's
      ``method="asymp"`` does, at that statistic (so it is an upper bound: conservative).
    * **Jensen–Shannon / PSI** on > 20 distinct values: the reference's mass in Evidently's
      Sturges bins is read from the in-bin linear CDF; no rigorous bound (``error_bound`` None).
    * χ² / Z forced on a binned numeric reference use its quantile bins as categories.
    * a categorical reference that overflowed ``max_categories`` compares its kept categories
      plus one bucket for the rest. A current value outside the kept ones that the bucket's
      Bloom filter (:class:`~dagster_corrmon.core.profile.CategoryTail`) rules out is new: it
      keeps its own key with reference share 0, as against the raw reference; the rest join the
      bucket. For Jensen–Shannon the statistic is then a lower bound (lumping categories never
      raises an f-divergence) and ``error_bound`` is rigorous (:func:`_js_lumped_bound`).

    Integer columns with ≤ 10 current values are categorical (as in :func:`detect_drift`) only
    when the reference profile has exact value counts; otherwise they stay numerical.

    With ``calibrated`` (the default) and a profile that carries batch statistics
    (:func:`calibrate_profile`), a distance's threshold is raised to the reference batches' noise
    floor — see there. ``calibrated=False`` gives Evidently's decision exactly.
    """
    if not isinstance(reference, DatasetProfile):
        raise InputDataError(f"reference must be a DatasetProfile, got {type(reference).__name__}")
    _check_frame(current, "current data")
    names = _resolve_columns(list(reference.columns), current, columns, "reference profile")
    options = _Options.build(
        columns=names,
        method=method,
        per_column_method=per_column_method,
        threshold=threshold,
        per_column_threshold=per_column_threshold,
    )
    results: list[DriftResult] = []
    for name in names:
        profile = reference.columns[name]
        current_series = column_series(current, name)
        kind = _current_kind(current_series, name, profile.kind)
        if isinstance(profile, CategoricalColumnProfile):
            result = _score_categorical_series(
                name,
                _kept_counts(profile),
                profile.other,
                current_series,
                options,
                reference_tail=profile.tail,
            )
        else:
            result = _score_numeric(
                name,
                _NumericSide.from_profile(profile),
                _NumericSide.from_series(
                    current_series, kind=kind, column=name, where="current data"
                ),
                options,
            )
        if calibrated:
            result = _with_batch_floor(result, reference.batch_statistics.get(name))
        results.append(result)
    return results


def _kept_counts(profile: CategoricalColumnProfile) -> dict[str, int]:
    """The reference profile's non-zero kept categories (an empty profile cannot be a reference)."""
    if profile.count == 0:
        raise InsufficientDataError(
            f"column {profile.name!r} has no values in the reference profile"
        )
    return {category: count for category, count in profile.category_counts().items() if count}


def sketch_needs_values(
    reference: DatasetProfile, current: DatasetSketch, column: str, *, method: str | None = None
) -> bool:
    """Whether scoring ``column`` from the sketch needs the current batch's raw values.

    A sketch keeps a numeric column's exact values only up to the reference's cap. Past it, the
    statistics that read the current's values themselves cannot come from the sketch: those of
    an exactly profiled reference (exact Wasserstein, KS, counts on the union of values) and
    Evidently's Jensen–Shannon/PSI on Sturges bins. The caller then reads that one column
    (:func:`detect_drift_from_profile`); every other case is scored from the sketch.
    """
    sketch = current.columns[column]
    profile = reference.column(column)
    if not isinstance(sketch, NumericColumnProfile) or not isinstance(
        profile, NumericColumnProfile
    ):
        return False
    if sketch.exact_values is not None or sketch.count == 0:
        return False
    return profile.exact_values is not None or method in (JENSENSHANNON, PSI)


def detect_drift_from_sketch(
    reference: DatasetProfile,
    current: DatasetSketch,
    *,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    calibrated: bool = True,
) -> list[DriftResult]:
    """:func:`detect_drift_from_profile` with the current batch given as a merged sketch.

    Same tests and the same numbers as on the raw current frame (up to float summation order:
    moments and bin offsets are merged per record batch), for every column where
    :func:`sketch_needs_values` is False; such a column here is an :class:`InputDataError`.
    """
    names = list(current.columns) if columns is None else list(columns)
    for name in names:
        reference.column(name)
        if name not in current.columns:
            raise InputDataError(f"column {name!r} is not in the current batch's sketch")
    options = _Options.build(
        columns=names,
        method=method,
        per_column_method=None,
        threshold=threshold,
        per_column_threshold=None,
    )
    results: list[DriftResult] = []
    for name in names:
        profile, sketch = reference.columns[name], current.columns[name]
        if sketch_needs_values(reference, current, name, method=method):
            raise InputDataError(
                f"column {name!r}: the current sketch lost the exact values this test needs; "
                "score the column from its raw values"
            )
        if isinstance(profile, CategoricalColumnProfile) and isinstance(sketch, CategoryCounts):
            result = _score_category_counts(
                name,
                _kept_counts(profile),
                profile.other,
                sketch.counts,
                rows=sketch.rows,
                options=options,
                reference_tail=profile.tail,
            )
        elif isinstance(profile, NumericColumnProfile) and isinstance(sketch, NumericColumnProfile):
            result = _score_numeric(
                name,
                _NumericSide.from_profile(profile),
                _NumericSide.from_profile(sketch, where="current data"),
                options,
            )
        else:
            raise InputDataError(f"column {name!r}: the sketch's kind differs from the profile's")
        if calibrated:
            result = _with_batch_floor(result, reference.batch_statistics.get(name))
        results.append(result)
    return results


# ---------------------------------------------------------------- calibration on reference batches

#: Fewest reference batches a noise floor is estimated from (below: no floor, Evidently's rule).
MIN_CALIBRATION_BATCHES = 5
#: The floor is the batches' mean statistic plus this many standard deviations (NannyML's rule
#: for thresholds learned on reference chunks).
CALIBRATION_SIGMAS = 3.0
#: The floor applies to a current batch within this factor of the reference batches' median size.
CALIBRATION_SIZE_RATIO = 4.0


def batch_noise_floor(values: Sequence[float]) -> float:
    """``mean + 3 · std`` (sample std, ddof=1) of the reference batches' statistics."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean() + CALIBRATION_SIGMAS * array.std(ddof=1))


def calibrate_profile(
    profile: DatasetProfile,
    batches: Iterable[pd.DataFrame],
    *,
    columns: Sequence[str] | None = None,
) -> DatasetProfile:
    """The profile with, per column, the drift statistic of each reference batch against it.

    Evidently's distances (Wasserstein, Jensen–Shannon, PSI — chosen for references of more than
    1000 rows) compare a batch with a fixed threshold of 0.1 whatever the batch. But a batch is
    rarely a random sample of the reference: a day of flights shares a few hours of weather, a day
    of the week, a route mix; a small batch of a many-category column is far from the reference
    by sampling noise alone. Such columns "drift" on every batch, the reference's own included.

    ``batches`` are the reference cut at the grain the data will be checked at (e.g. the training
    partitions, each a frame). Each is tested against the whole profile with the automatic method;
    for every column where that is a distance and at least :data:`MIN_CALIBRATION_BATCHES` batches
    could be tested, the statistics are stored (:class:`BatchStatistics`, kept in the profile's
    JSON). :func:`detect_drift_from_profile` then raises that column's threshold to the
    *noise floor* ``mean + 3 σ`` of those statistics (:func:`batch_noise_floor`) — the rule NannyML
    applies to thresholds learned on reference chunks — when the floor is above the configured
    threshold and the current batch is within a factor of :data:`CALIBRATION_SIZE_RATIO` of the
    batches' median size. A drift must then exceed both the practical threshold and what the
    reference's own batches show. p-value tests (references of ≤ 1000 rows) are left alone: they
    already account for sample size, and so few rows rarely make enough batches.

    Each batch is part of the reference it is compared with, so its statistic is slightly low
    (for Wasserstein exactly by the factor ``1 − w``, ``w`` the batch's share of the reference);
    with :data:`MIN_CALIBRATION_BATCHES` or more batches that is a few percent at most, towards
    flagging more, not less. Batches that cannot be tested for a column (missing, all null) are
    skipped for that column; a batch with no rows is skipped.

    For every column (whatever its method) the profile also gets :class:`RecentStatistics`: each
    batch's distance from the pooled sketches of the batches before it — ``batches`` must then be
    in time order — the batches' sketches, their leave-one-out novelty (categorical columns) and
    how many were entirely null; :func:`detect_recent_drift` and :func:`novel_categories` judge
    later batches with them.
    """
    names = list(profile.columns) if columns is None else list(columns)
    for name in names:
        profile.column(name)  # InputDataError naming the known columns
    values: dict[str, list[tuple[str, float, int]]] = {name: [] for name in names}
    sketches: dict[str, list[Mapping[str, Any]]] = {name: [] for name in names}
    seen: dict[str, list[dict[str, int]]] = {name: [] for name in names}
    empty: Counter[str] = Counter()
    for index, batch in enumerate(batches):
        if not isinstance(batch, pd.DataFrame):
            raise InputDataError(
                f"reference batch {index} must be a pandas DataFrame, got {type(batch).__name__}"
            )
        if len(batch) == 0:
            continue
        for name in names:
            if name not in batch.columns:
                continue
            column = profile.columns[name]
            series = column_series(batch, name)
            try:
                compatible_kind(series, column.kind, column=name, where="reference batch")
            except InputDataError:
                continue
            sketch = batch_sketch(series, column)
            if sketch is None:
                empty[name] += 1
                continue
            sketches[name].append(sketch)
            if isinstance(column, CategoricalColumnProfile):
                seen[name].append(category_counts(series))
        for name in names:
            if name not in batch.columns:
                continue
            try:
                (result,) = detect_drift_from_profile(
                    profile, batch, columns=[name], calibrated=False
                )
            except (InputDataError, InsufficientDataError):
                continue
            if DECISIONS[result.method] == STATISTIC_AT_OR_ABOVE and math.isfinite(
                result.statistic
            ):
                values[name].append((result.method, result.statistic, result.current_rows))
    statistics: dict[str, BatchStatistics] = {}
    for name, entries in values.items():
        if not entries:
            continue
        method = Counter(m for m, _, _ in entries).most_common(1)[0][0]
        kept = [(v, rows) for m, v, rows in entries if m == method]
        if len(kept) >= MIN_CALIBRATION_BATCHES:
            statistics[name] = BatchStatistics(
                method=method,
                values=tuple(v for v, _ in kept),
                rows=tuple(rows for _, rows in kept),
            )
    recent = {
        name: replace(
            _recent_statistics(profile.columns[name], sketches[name], seen[name]),
            empty_batches=empty[name],
        )
        for name in names
        if sketches[name]
    }
    return replace(profile, batch_statistics=statistics, recent_statistics=recent)


def _with_batch_floor(result: DriftResult, batches: BatchStatistics | None) -> DriftResult:
    """The result judged against the reference batches' noise floor, where one applies."""
    if (
        batches is None
        or batches.method != result.method
        or DECISIONS[result.method] != STATISTIC_AT_OR_ABOVE
        or len(batches.values) < MIN_CALIBRATION_BATCHES
    ):
        return result
    median_rows = float(np.median(batches.rows))
    ratio = result.current_rows / median_rows if median_rows > 0 else 0.0
    if not (1 / CALIBRATION_SIZE_RATIO <= ratio <= CALIBRATION_SIZE_RATIO):
        return result
    floor = batch_noise_floor(batches.values)
    threshold = max(result.threshold, floor)
    return replace(
        result,
        threshold=threshold,
        drifted=bool(decide(result.method, result.statistic, result.p_value, threshold)),
        batch_floor=floor,
        reference_batches=len(batches.values),
    )


# ------------------------------------------------------------- against the recent batches

#: How many preceding batches make the *recent reference* of a batch.
RECENT_PARTITIONS = 4
#: A numeric batch is sketched by this many quantiles (the midpoints of equal-mass slices).
SKETCH_QUANTILES = 20
#: A categorical batch sketch keeps its most frequent categories; the rest pool in one bucket.
SKETCH_CATEGORIES = 64
#: Fewest batch-to-recent distances a recent noise floor is learned from.
MIN_RECENT_BATCHES = 4

RECENT_METHOD_NUMERIC = WASSERSTEIN
RECENT_METHOD_CATEGORICAL = JENSENSHANNON


def batch_sketch(series: pd.Series, reference: ColumnProfile) -> dict[str, Any] | None:
    """A few numbers that stand for one batch of a column in a later recent reference.

    Numeric: the values at the ``(i + 0.5) / SKETCH_QUANTILES`` quantiles and the count;
    categorical: the counts of the ``SKETCH_CATEGORIES`` most frequent categories and the count.
    None when the batch has no value of the column (an all-null batch has no distribution).
    """
    if isinstance(reference, CategoricalColumnProfile):
        counts = category_counts(series)
        total = sum(counts.values())
        if total == 0:
            return None
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = dict(ranked[:SKETCH_CATEGORIES])
        rest = total - sum(kept.values())
        if rest:
            kept[_OTHER] = rest
        return {"counts": kept, "n": int(total)}
    values, _, _ = numeric_values(series, kind=reference.kind)
    if len(values) == 0:
        return None
    levels = (np.arange(SKETCH_QUANTILES) + 0.5) / SKETCH_QUANTILES
    return {"quantiles": [float(q) for q in np.quantile(values, levels)], "n": len(values)}


def sketch_distance(
    current: Mapping[str, Any], recent: Sequence[Mapping[str, Any]], *, scale: float
) -> float:
    """Distance of a batch sketch from the pool of the recent batches' sketches.

    Numeric: the first Wasserstein distance between the two quantile sketches, each quantile
    weighted by its batch's share of the pool, normed by ``scale`` (the reference's standard
    deviation, floored at 0.001 as Evidently floors it). Categorical: the Jensen–Shannon
    distance between the category shares (the pooled "other" buckets as one category).
    """
    if "quantiles" in current:
        pooled = [q for sketch in recent for q in sketch["quantiles"]]
        weights = [
            float(sketch["n"]) / len(sketch["quantiles"])
            for sketch in recent
            for _ in sketch["quantiles"]
        ]
        distance = _scipy_stats().wasserstein_distance(current["quantiles"], pooled, None, weights)
        return float(distance) / max(scale, _WASSERSTEIN_MIN_NORM)
    pooled_counts: Counter[str] = Counter()
    for sketch in recent:
        pooled_counts.update(sketch["counts"])
    keys = sorted(set(pooled_counts) | set(current["counts"]))
    left = np.array([float(current["counts"].get(k, 0)) for k in keys])
    right = np.array([float(pooled_counts.get(k, 0)) for k in keys])
    return _jensenshannon(left, right)


def _scale_of(reference: ColumnProfile) -> float:
    return reference.std if isinstance(reference, NumericColumnProfile) else 1.0


def _recent_statistics(
    reference: ColumnProfile,
    sketches: Sequence[Mapping[str, Any]],
    seen: Sequence[Mapping[str, int]],
) -> RecentStatistics:
    scale = _scale_of(reference)
    values: list[float] = []
    rows: list[int] = []
    for index in range(1, len(sketches)):
        before = sketches[max(0, index - RECENT_PARTITIONS) : index]
        values.append(sketch_distance(sketches[index], before, scale=scale))
        rows.append(int(sketches[index]["n"]))
    novel: list[float] = []
    if len(seen) >= 2:
        occurrences: Counter[str] = Counter()
        for counts in seen:
            occurrences.update(counts.keys())
        for counts in seen:
            total = sum(counts.values())
            # leave-one-out: categories no *other* reference batch has
            alone = sum(count for category, count in counts.items() if occurrences[category] == 1)
            novel.append(alone / total if total else 0.0)
    return RecentStatistics(
        values=tuple(values),
        rows=tuple(rows),
        sketches=tuple(sketches),
        novel_values=tuple(novel),
    )


@dataclass(frozen=True)
class RecentDrift:
    """One batch of a column against its *recent reference* (the batches just before it).

    ``statistic`` is ``method``'s distance from the pooled sketches of ``partitions`` recent
    batches; ``threshold`` the noise floor learned on the reference's own consecutive batches
    (:func:`calibrate_profile`), widened by ``√(median rows / rows)`` for a batch smaller than
    the reference batches (a distance's sampling noise shrinks as ``1/√n``). ``drifted`` when
    the statistic exceeds it.
    """

    method: str
    statistic: float
    threshold: float
    drifted: bool
    partitions: int
    reference_batches: int
    nearest_reference_batch: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "recent_nearest_reference_batch": (
                nearest if math.isfinite(nearest := self.nearest_reference_batch) else None
            ),
            "recent_method": self.method,
            "recent_statistic": self.statistic,
            "recent_threshold": self.threshold,
            "recent_drifted": self.drifted,
            "recent_partitions": self.partitions,
            "recent_reference_batches": self.reference_batches,
        }


def prediction_bound(values: Sequence[float]) -> float:
    """Upper 3-σ-equivalent prediction bound for one more draw of what produced ``values``.

    ``mean + t · sd · √(1 + 1/n)`` with Student's ``t`` at ``Φ(3)`` (0.99865) and ``n − 1``
    degrees of freedom: the normal prediction interval for a new observation when mean and sd
    are estimated from ``n`` values. It tends to ``mean + 3 sd`` for many batches and widens for
    few (×2 at n = 6), where ``mean + 3 sd`` of a handful of batches under-covers.
    """
    array = np.asarray(values, dtype=np.float64)
    n = len(array)
    stats = _scipy_stats()
    t = float(stats.t.ppf(stats.norm.cdf(CALIBRATION_SIGMAS), n - 1))
    return float(array.mean() + t * array.std(ddof=1) * math.sqrt(1 + 1 / n))


def recent_noise_floor(
    statistics: RecentStatistics, rows: int, accepted: Sequence[float] = ()
) -> float | None:
    """The batch-to-recent distance beyond which a batch of ``rows`` values has changed.

    ``accepted``: the batch-to-recent distances of the partitions checked since that passed —
    how much consecutive partitions differ *now* (summer weeks vary more than winter ones); a
    failed partition never widens the floor.
    """
    if len(statistics.values) < MIN_RECENT_BATCHES:
        return None
    floor = prediction_bound([*statistics.values, *accepted])
    median_rows = float(np.median(statistics.rows))
    if 0 < rows < median_rows:
        floor *= math.sqrt(median_rows / rows)
    return floor


def detect_recent_drift(
    reference: DatasetProfile,
    column: str,
    sketch: Mapping[str, Any],
    recent: Sequence[Mapping[str, Any]],
    accepted: Sequence[float] = (),
) -> RecentDrift | None:
    """``sketch`` (a batch, :func:`batch_sketch`) against the pool of ``recent`` sketches.

    ``recent`` are the sketches of the batches checked just before this one (oldest first);
    when none are given, the last reference batches stand in. ``accepted``: see
    :func:`recent_noise_floor`. None when the profile has no
    recent noise floor for the column (fewer than :data:`MIN_RECENT_BATCHES` calibrated
    batches): the caller then has only the reference's verdict.
    """
    statistics = reference.recent_statistics.get(column)
    if statistics is None:
        return None
    floor = recent_noise_floor(statistics, int(sketch["n"]), accepted)
    if floor is None:
        return None
    same_kind = [
        s for s in (*recent, *statistics.sketches) if ("quantiles" in s) == ("quantiles" in sketch)
    ]
    if not same_kind:
        return None
    pool = [s for s in recent if ("quantiles" in s) == ("quantiles" in sketch)]
    pool = pool[-RECENT_PARTITIONS:] or [
        s
        for s in statistics.sketches[-RECENT_PARTITIONS:]
        if ("quantiles" in s) == ("quantiles" in sketch)
    ]
    scale = _scale_of(reference.column(column))
    statistic = sketch_distance(sketch, pool, scale=scale) if pool else math.inf
    # A season the reference covers comes back: the batch is then close to one reference
    # batch (January next year and January in training) though far from the months before.
    nearest = min(
        (
            sketch_distance(sketch, [s], scale=scale)
            for s in statistics.sketches
            if ("quantiles" in s) == ("quantiles" in sketch)
        ),
        default=math.inf,
    )
    return RecentDrift(
        method=RECENT_METHOD_NUMERIC if "quantiles" in sketch else RECENT_METHOD_CATEGORICAL,
        statistic=min(statistic, nearest),
        threshold=floor,
        # strictly above: a floor with no spread (every reference batch at the distance's
        # maximum, e.g. a calendar column) can never be exceeded
        drifted=bool(min(statistic, nearest) > floor),
        partitions=len(pool),
        reference_batches=len(statistics.values),
        nearest_reference_batch=nearest,
    )


@dataclass(frozen=True)
class NovelCategories:
    """The share of a batch's values in categories the reference never had."""

    share: float
    threshold: float
    categories: tuple[str, ...]
    substantial: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "novel_share": self.share,
            "novel_threshold": self.threshold,
            "novel_categories": list(self.categories),
            "novel_substantial": self.substantial,
        }


def novel_categories(reference: DatasetProfile, column: str, series: pd.Series) -> NovelCategories:
    """Values of a categorical column in categories unknown to its reference, and whether
    they are a *substantial* share of the batch — a new state of the column, whatever its
    distance says.

    Substantial: above both the share an average reference category has (``1 / categories``:
    a new level larger than a typical existing one changes what the column holds) and what the
    reference's own batches show — the noise floor of their leave-one-out novelty (values in
    categories no other reference batch has) plus three binomial standard errors at this batch's
    size (with the Jeffreys ``+½`` so a reference that never saw novelty still has a scale).
    A reference that capped its categories cannot tell unseen from rare: nothing is novel then.
    """
    profile = reference.column(column)
    if not isinstance(profile, CategoricalColumnProfile):
        raise InputDataError(f"column {column!r} is not categorical in the reference profile")
    counts = category_counts(series)
    total = sum(counts.values())
    known = set(profile.categories)
    unseen = {c: n for c, n in counts.items() if c not in known}
    share = sum(unseen.values()) / total if total else 0.0
    statistics = reference.recent_statistics.get(column)
    history = statistics.novel_values if statistics is not None else ()
    expected = float(np.mean(history)) if history else 0.0
    floor = batch_noise_floor(history) if len(history) >= 2 else expected
    smoothed = (expected * total + 0.5) / (total + 1) if total else 0.5
    sampling = 3.0 * math.sqrt(smoothed * (1 - smoothed) / max(total, 1))
    levels = max(sum(1 for n in profile.counts if n), 1)
    threshold = max(1.0 / levels, floor + sampling)
    ranked = sorted(unseen.items(), key=lambda item: (-item[1], item[0]))
    return NovelCategories(
        share=share,
        threshold=threshold,
        categories=tuple(c for c, _ in ranked[:10]),
        substantial=bool(profile.other == 0 and total > 0 and share > threshold),
    )
