"""Adaptive baselines: when is a metric value abnormal, and how fast do we notice a shift?

Two families, for two jobs:

* **Online detectors** (:class:`EWMA`, :class:`CUSUM`, :class:`RollingMedianMAD`) watch one metric
  series window by window. They share river's tiny protocol (:class:`DriftDetector`):
  ``update(x)`` then read ``drift_detected``. ``drift_detected`` is true only right after the
  update that raised the alarm; the next update first restarts the chart statistic (EWMA back to
  the in-control mean, CUSUM sums back to 0), so the numbers of windows between alarms are the
  run lengths the ARL tables describe. In-control parameters are never re-estimated from points
  after the warm-up: a slow drift must not teach the baseline that it is normal.
* **Batch baselines** (:func:`fit_baseline` -> :class:`Baseline`) summarise a history once —
  robust median/MAD (or mean/std), optionally per season (day of week, hour of day, or a seasonal
  lag) and *without* known incident windows — and score new values with ``Baseline.score``.

Choosing a chart: false alarms versus detection delay. For a unit-variance Gaussian statistic
(average run lengths from a Brook & Evans Markov chain, matching Montgomery's tables)::

    scheme                              ARL0 (windows between   ARL1 at 1σ   ARL at 0.5σ
                                        false alarms)           (delay)
    Shewhart 3σ (NannyML/WhyLabs style)  370                     43.9         155
    EWMA λ=0.10, L=2.814                 500                     10.3         31.3
    EWMA λ=0.05, L=2.615                 500                     11.4         28.8
    CUSUM k=0.5, h=4 (two-sided)         168                      8.4          —
    CUSUM k=0.5, h=5 (two-sided)         465                     10.4          —

At the false-alarm rate of a 3σ rule, EWMA and CUSUM notice a sustained 1σ shift about four
times sooner. Smaller λ (or k) trades speed on large shifts for speed on small ones.

Direction. A metric only degrades one way: :func:`alarm_direction` maps ``higher_is_better`` to
the direction worth alarming on (``"decrease"`` for ROC-AUC, ``"increase"`` for latency). A
one-sided chart with the two-sided limit has about twice the ARL0 (EWMA λ=0.1, L=2.814: ≈1000 by
Monte Carlo; CUSUM k=0.5, h=5: ≈930) with the same delay on the watched side.

Missing and excluded windows. ``update(nan)`` and ``update(x, exclude=True)`` leave the
detector's state untouched (a seasonal detector still advances its phase: the window happened),
so confirmed incident windows never become part of the baseline. :func:`fit_baseline` takes the
same windows as ``exclude=[(start, end), ...]``.

References:
    Roberts (1959) Technometrics 1:239–250; Lucas & Saccucci (1990) Technometrics 32:1–12;
    Page (1954) Biometrika 41:100–115; Brook & Evans (1972) Biometrika 59:539–549;
    Iglewicz & Hoaglin (1993) How to Detect and Handle Outliers; Leys et al. (2013) JESP 49:764.
"""

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

Direction = Literal["both", "increase", "decrease"]
BaselineMethod = Literal["median_mad", "mean_std"]
CalendarSeasonality = Literal["day_of_week", "weekly", "hour_of_day", "hour_of_week"]

#: Φ⁻¹(3/4): MAD / this is a consistent estimate of σ for Gaussian data (= MAD · 1.4826).
#: Iglewicz & Hoaglin's modified z-score 0.6745 · (x - median) / MAD is (x - median) / (MAD / this).
MAD_TO_SIGMA_DIVISOR = 0.6744897501960817
#: E|X - μ| = σ·√(2/π) for Gaussian X: the fallback scale when more than half the values tie.
MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2.0)

_DEFAULT_THRESHOLDS: Mapping[str, float] = {"median_mad": 3.5, "mean_std": 3.0}
_SEASON_COUNTS: Mapping[str, int] = {"day_of_week": 7, "hour_of_day": 24, "hour_of_week": 168}


def alarm_direction(*, higher_is_better: bool) -> Direction:
    """The only direction in which a metric can degrade.

    Examples:
        >>> alarm_direction(higher_is_better=True)
        'decrease'
    """
    return "decrease" if higher_is_better else "increase"


def _check_direction(direction: str) -> Direction:
    if direction == "both":
        return "both"
    if direction == "increase":
        return "increase"
    if direction == "decrease":
        return "decrease"
    raise ConfigError(f"direction must be 'both', 'increase' or 'decrease', got {direction!r}")


def _alarms(z: float, limit: float, direction: Direction) -> bool:
    if direction == "increase":
        return z > limit
    if direction == "decrease":
        return z < -limit
    return abs(z) > limit


def _finite_or_missing(x: float, *, where: str) -> float | None:
    value = float(x)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise InputDataError(f"{where}: value {value} is infinite")
    return value


def robust_center_scale(values: ArrayLike) -> tuple[float, float]:
    """Median and a robust σ estimate: MAD / Φ⁻¹(3/4), falling back to mean |x - median| · √(π/2).

    The fallback (used when more than half the values are equal, so MAD = 0) keeps the scale
    positive unless every value is equal. Returns ``(nan, nan)`` for no values.

    Examples:
        >>> robust_center_scale([1.0, 2.0, 3.0, 4.0, 100.0])
        (3.0, 1.482602218505602)
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    center = float(np.median(array))
    deviations = np.abs(array - center)
    mad = float(np.median(deviations))
    if mad > 0.0:
        return center, mad / MAD_TO_SIGMA_DIVISOR
    return center, float(deviations.mean()) * MEAN_AD_TO_SIGMA


# ---------------------------------------------------------------------------------------------
# Online detectors
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class DriftDetector(Protocol):
    """river's detector protocol: feed one value per window, then ask whether it alarmed."""

    def update(self, x: float, *, exclude: bool = False) -> None:
        """Take the next window's value; ``exclude=True`` (or NaN) skips it."""
        ...

    @property
    def drift_detected(self) -> bool:
        """True right after the update that raised an alarm."""
        ...

    @property
    def statistic(self) -> float:
        """The current chart statistic (NaN while warming up)."""
        ...

    @property
    def n_seen(self) -> int:
        """Values incorporated so far (excluded and missing ones are not counted)."""
        ...


class _WarmedUpChart:
    """Shared machinery of EWMA and CUSUM: warm-up, exclusion, restart after an alarm."""

    def __init__(
        self, *, mean: float | None, std: float | None, warmup: int, direction: str
    ) -> None:
        if std is not None and not std > 0.0:
            raise ConfigError(f"std must be > 0, got {std}")
        if (mean is None or std is None) and warmup < 2:
            raise ConfigError(f"warmup must be >= 2 to estimate mean/std, got {warmup}")
        self.mean = mean
        self.std = std
        self.warmup = warmup
        self.direction: Direction = _check_direction(direction)
        self._given_mean = mean
        self._given_std = std
        self._warmup_values: list[float] = []
        self._ready = mean is not None and std is not None
        self._drift_detected = False
        self._restart_pending = False
        self._n_seen = 0
        self._steps = 0  # in-control steps since the (re)start of the chart

    @property
    def drift_detected(self) -> bool:
        return self._drift_detected

    @property
    def n_seen(self) -> int:
        return self._n_seen

    @property
    def in_control_mean(self) -> float | None:
        """μ₀: given, or estimated from the warm-up (None until the warm-up is complete)."""
        return self.mean if self._ready else None

    @property
    def in_control_std(self) -> float | None:
        """σ₀: given, or the warm-up's sample standard deviation (ddof=1)."""
        return self.std if self._ready else None

    def update(self, x: float, *, exclude: bool = False) -> None:
        self._drift_detected = False
        if self._restart_pending:
            self._restart()
            self._restart_pending = False
        value = _finite_or_missing(x, where=f"{type(self).__name__}.update")
        if exclude or value is None:
            return
        self._n_seen += 1
        if not self._ready:
            self._warm_up(value)
            return
        self._steps += 1
        if self._step(value):
            self._drift_detected = True
            self._restart_pending = True

    def _warm_up(self, value: float) -> None:
        self._warmup_values.append(value)
        if len(self._warmup_values) < self.warmup:
            return
        sample = np.asarray(self._warmup_values)
        std = self._given_std if self._given_std is not None else float(sample.std(ddof=1))
        if not std > 0.0:
            return  # a constant warm-up cannot define σ: keep warming up until it can
        self.mean = self._given_mean if self._given_mean is not None else float(sample.mean())
        self.std = std
        self._ready = True
        self._warmup_values = []
        self._restart()

    def _restart(self) -> None:
        raise NotImplementedError

    def _step(self, value: float) -> bool:
        raise NotImplementedError


class EWMA(_WarmedUpChart):
    """Exponentially weighted moving average chart (Roberts 1959).

    ``z_t = λ·x_t + (1 - λ)·z_{t-1}``, ``z_0 = μ₀``; alarm when the standardised statistic
    ``(z_t - μ₀) / (σ₀·√(λ / (2 - λ)))`` leaves ``[-L, L]`` (only the watched side when
    ``direction`` is one-sided). Asymptotic limits by default, as in the ARL tables; with
    ``exact_limits=True`` the σ of z_t uses the factor ``√(1 - (1 - λ)^{2t})``, which makes early
    alarms after a (re)start a little more likely.

    Trade-off (two-sided, unit-variance Gaussian, Lucas & Saccucci 1990): λ=0.1, L=2.814 gives
    ARL0 ≈ 500 windows between false alarms and ARL1 ≈ 10.3 windows to detect a 1σ shift (31.3
    for 0.5σ); λ=0.05, L=2.615: ARL0 ≈ 500, ARL1 ≈ 11.4 (28.8 at 0.5σ). One-sided with the same
    L: ARL0 ≈ 1000, ARL1 ≈ 10.3.

    Args:
        smoothing: λ in (0, 1].
        limit: L, the control-limit width in standard deviations of z.
        mean, std: in-control μ₀ and σ₀; if either is None it is estimated from the first
            ``warmup`` incorporated values (sample mean, sample std), which raise no alarm.
        warmup: number of warm-up values when estimating.
        direction: ``"both"``, ``"increase"`` or ``"decrease"`` (see :func:`alarm_direction`).
        exact_limits: use time-varying limits instead of asymptotic ones.

    Examples:
        A 1σ upward step at index 100 of seeded noise is flagged 18 windows later; the chart
        then restarts and, the shift persisting, alarms again about every ARL1 windows:

        >>> import numpy as np
        >>> rng = np.random.default_rng(42)
        >>> series = rng.normal(0.0, 1.0, 200) + np.r_[np.zeros(100), np.ones(100)]
        >>> alarm_indices(EWMA(0.1, 2.814, mean=0.0, std=1.0), series)
        [118, 125, 138, 149, 162, 176, 183, 190]
    """

    def __init__(
        self,
        smoothing: float = 0.1,
        limit: float = 2.814,
        *,
        mean: float | None = None,
        std: float | None = None,
        warmup: int = 30,
        direction: Direction = "both",
        exact_limits: bool = False,
    ) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ConfigError(f"EWMA smoothing λ must be in (0, 1], got {smoothing}")
        if not limit > 0.0:
            raise ConfigError(f"EWMA limit L must be > 0, got {limit}")
        self.smoothing = smoothing
        self.limit = limit
        self.exact_limits = exact_limits
        self._z = math.nan
        self._statistic = math.nan
        super().__init__(mean=mean, std=std, warmup=warmup, direction=direction)
        if self._ready:
            self._restart()

    @property
    def statistic(self) -> float:
        """``(z - μ₀) / σ_z``: the EWMA in standard deviations of itself (NaN while warming up)."""
        return self._statistic

    @property
    def ewma(self) -> float:
        """The current EWMA ``z`` on the metric's own scale."""
        return self._z

    def _restart(self) -> None:
        assert self.mean is not None
        self._z = self.mean
        self._statistic = 0.0
        self._steps = 0

    def _step(self, value: float) -> bool:
        assert self.mean is not None and self.std is not None
        lam = self.smoothing
        self._z = lam * value + (1.0 - lam) * self._z
        variance_factor = lam / (2.0 - lam)
        if self.exact_limits:
            variance_factor *= 1.0 - (1.0 - lam) ** (2 * self._steps)
        self._statistic = (self._z - self.mean) / (self.std * math.sqrt(variance_factor))
        return _alarms(self._statistic, self.limit, self.direction)


class CUSUM(_WarmedUpChart):
    """Tabular CUSUM chart on standardised values (Page 1954).

    With ``s_t = (x_t - μ₀) / σ₀``: ``C⁺_t = max(0, C⁺_{t-1} + s_t - k)`` and
    ``C⁻_t = max(0, C⁻_{t-1} - s_t - k)``; alarm when the watched sum exceeds ``h``. ``k`` is
    half the shift (in σ) the chart is tuned to detect fastest.

    Trade-off (unit-variance Gaussian): two-sided k=0.5, h=5 gives ARL0 ≈ 465 windows between
    false alarms and ARL1 ≈ 10.4 windows for a 1σ shift; h=4 gives ARL0 ≈ 168, ARL1 ≈ 8.4.
    One-sided with h=5: ARL0 ≈ 930.

    Args:
        k: reference value (allowance) in σ units, >= 0.
        h: decision interval in σ units, > 0.
        mean, std, warmup, direction: as for :class:`EWMA`.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(42)
        >>> series = rng.normal(0.0, 1.0, 200) + np.r_[np.zeros(100), np.ones(100)]
        >>> alarm_indices(CUSUM(0.5, 5.0, mean=0.0, std=1.0), series)
        [117, 123, 138, 149, 162, 176, 183, 190]
    """

    def __init__(
        self,
        k: float = 0.5,
        h: float = 5.0,
        *,
        mean: float | None = None,
        std: float | None = None,
        warmup: int = 30,
        direction: Direction = "both",
    ) -> None:
        if not k >= 0.0:
            raise ConfigError(f"CUSUM k must be >= 0, got {k}")
        if not h > 0.0:
            raise ConfigError(f"CUSUM h must be > 0, got {h}")
        self.k = k
        self.h = h
        self._upper = 0.0
        self._lower = 0.0
        super().__init__(mean=mean, std=std, warmup=warmup, direction=direction)

    @property
    def upper(self) -> float:
        """C⁺, evidence of an increase."""
        return self._upper

    @property
    def lower(self) -> float:
        """C⁻, evidence of a decrease (a non-negative number)."""
        return self._lower

    @property
    def statistic(self) -> float:
        """The watched sum (the larger of the two when two-sided); NaN while warming up."""
        if not self._ready:
            return math.nan
        if self.direction == "increase":
            return self._upper
        if self.direction == "decrease":
            return self._lower
        return max(self._upper, self._lower)

    def _restart(self) -> None:
        self._upper = 0.0
        self._lower = 0.0
        self._steps = 0

    def _step(self, value: float) -> bool:
        assert self.mean is not None and self.std is not None
        standardised = (value - self.mean) / self.std
        self._upper = max(0.0, self._upper + standardised - self.k)
        self._lower = max(0.0, self._lower - standardised - self.k)
        if self.direction == "increase":
            return self._upper > self.h
        if self.direction == "decrease":
            return self._lower > self.h
        return self._upper > self.h or self._lower > self.h


class RollingMedianMAD:
    """Modified z-score of each value against the median/MAD of the previous ``window`` values.

    ``z = (x - median) / (MAD / 0.6745)`` (Iglewicz & Hoaglin 1993); alarm when ``|z| > 3.5`` on
    the watched side. The value is scored *before* it joins the window, so a shift never hides
    in its own baseline. Anomalous values do join the window (the median tolerates up to half
    of them and the baseline adapts to a new level after ``window / 2`` windows); windows known to
    be incidents are kept out with ``exclude=True``. If more than half the window ties (MAD = 0)
    the scale falls back to mean absolute deviation · √(π/2) (:func:`robust_center_scale`); if
    the whole window is constant, any different value scores ±inf.

    With ``period=p`` the baseline is seasonal by lag: value t is compared with values
    t - p, t - 2p, ... (e.g. ``period=7`` on daily windows compares Mondays with Mondays).
    Every update, even a missing or excluded one, advances the season.

    Args:
        window: how many past values (per season) form the baseline.
        threshold: modified z-score cut-off.
        min_periods: values needed (per season) before scoring; default ``min(window, 10)``.
        direction: ``"both"``, ``"increase"`` or ``"decrease"``.
        period: seasonal lag in updates, or None.

    Examples:
        >>> detector = RollingMedianMAD(window=5, min_periods=5)
        >>> for value in [10.0, 11.0, 9.0, 10.0, 10.5, 30.0]:
        ...     detector.update(value)
        >>> detector.drift_detected, round(detector.statistic, 2)
        (True, 26.98)
    """

    def __init__(
        self,
        window: int = 30,
        threshold: float = 3.5,
        *,
        min_periods: int | None = None,
        direction: Direction = "both",
        period: int | None = None,
    ) -> None:
        if window < 2:
            raise ConfigError(f"RollingMedianMAD window must be >= 2, got {window}")
        if not threshold > 0.0:
            raise ConfigError(f"RollingMedianMAD threshold must be > 0, got {threshold}")
        if period is not None and period < 1:
            raise ConfigError(f"RollingMedianMAD period must be >= 1, got {period}")
        self.window = window
        self.threshold = threshold
        self.min_periods = min(window, 10) if min_periods is None else min_periods
        if not 2 <= self.min_periods <= window:
            raise ConfigError(f"min_periods must be in [2, window], got {self.min_periods}")
        self.direction: Direction = _check_direction(direction)
        self.period = period
        self._windows: dict[int, deque[float]] = {}
        self._position = 0
        self._drift_detected = False
        self._statistic = math.nan
        self._expected = math.nan
        self._scale = math.nan
        self._n_seen = 0

    @property
    def drift_detected(self) -> bool:
        return self._drift_detected

    @property
    def statistic(self) -> float:
        """Modified z-score of the last scored value (NaN before ``min_periods`` values)."""
        return self._statistic

    @property
    def expected(self) -> float:
        """The baseline median the last value was compared with."""
        return self._expected

    @property
    def scale(self) -> float:
        """The robust σ the last value was compared with."""
        return self._scale

    @property
    def n_seen(self) -> int:
        return self._n_seen

    def update(self, x: float, *, exclude: bool = False) -> None:
        self._drift_detected = False
        season = self._position % self.period if self.period else 0
        self._position += 1
        value = _finite_or_missing(x, where="RollingMedianMAD.update")
        if exclude or value is None:
            return
        self._n_seen += 1
        history = self._windows.setdefault(season, deque(maxlen=self.window))
        if len(history) >= self.min_periods:
            center, scale = robust_center_scale(np.fromiter(history, dtype=np.float64))
            self._expected, self._scale = center, scale
            self._statistic = _z_score(value, center, scale)
            self._drift_detected = _alarms(self._statistic, self.threshold, self.direction)
        else:
            self._statistic = math.nan
        history.append(value)


def binomial_scale_floor(proportion: float, rows: int) -> float:
    """The sampling standard error of a proportion observed on ``rows`` rows.

    ``√(p̃ (1 − p̃) / n)`` with the Jeffreys-smoothed ``p̃ = (p · n + ½) / (n + 1)``, so a
    proportion that never moved (0 or 1: a column never null, or always null) still has a
    positive scale. A baseline of a proportion whose own spread is below this has seen less
    variation than sampling alone makes: judging it on that spread calls every small wobble
    infinite, and a wholesale change (1.0 → 0.0) only as large as the spread it never had.

    Examples:
        >>> round(binomial_scale_floor(0.0, 100), 5)
        0.00702
        >>> round(binomial_scale_floor(0.5, 100), 5)
        0.05
    """
    if rows <= 0:
        raise InputDataError(f"binomial_scale_floor: rows must be positive, got {rows}")
    smoothed = (proportion * rows + 0.5) / (rows + 1)
    return math.sqrt(smoothed * (1 - smoothed) / rows)


def _z_score(value: float, center: float, scale: float) -> float:
    if scale > 0.0:
        return (value - center) / scale
    if value == center:
        return 0.0
    return math.inf if value > center else -math.inf


def alarm_indices(
    detector: DriftDetector,
    values: Iterable[float],
    *,
    exclude: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> list[int]:
    """Feed ``values`` to ``detector`` one by one; the positions at which it alarmed.

    Examples:
        >>> alarm_indices(CUSUM(0.5, 2.0, mean=0.0, std=1.0), [0.0, 3.0, 0.0, 0.0, 2.0, 2.0])
        [1, 5]
    """
    alarms: list[int] = []
    for index, value in enumerate(values):
        skip = bool(exclude[index]) if exclude is not None else False
        detector.update(float(value), exclude=skip)
        if detector.drift_detected:
            alarms.append(index)
    return alarms


# ---------------------------------------------------------------------------------------------
# Batch baselines
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaselineStats:
    """Center and scale of one season (or of the whole history)."""

    center: float
    scale: float
    n: int


@dataclass(frozen=True, slots=True)
class BaselineScore:
    """How one value compares with its baseline.

    ``direction`` is the side the value lies on (``"increase"``, ``"decrease"`` or ``"none"``);
    ``anomalous`` is true only when ``|z| > threshold`` on a side the baseline watches.
    ``season`` is the season whose statistics were used (None: the whole history).
    """

    expected: float
    scale: float
    z: float
    anomalous: bool
    direction: Literal["increase", "decrease", "none"]
    threshold: float
    season: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """A fitted batch baseline (see :func:`fit_baseline`); immutable, cheap to keep and reuse."""

    method: BaselineMethod
    threshold: float
    direction: Direction
    seasonality: str | int | None
    overall: BaselineStats
    seasons: Mapping[int, BaselineStats] = field(default_factory=dict[int, BaselineStats])
    min_points: int = 5
    n_excluded: int = 0
    time_kind: Literal["datetime", "numeric"] = "numeric"

    def season_of(self, time: Any) -> int | None:
        """The season key of ``time`` under this baseline's seasonality (None if not seasonal)."""
        if self.seasonality is None:
            return None
        if time is None:
            raise InputDataError(
                f"Baseline.score: a time is needed to find the {self.seasonality!r} season"
            )
        kind, moment = _time_scalar(time, where="Baseline.score time")
        if kind != self.time_kind:
            raise InputDataError(
                f"Baseline.score: time {time!r} is {kind} but the baseline was fitted on "
                f"{self.time_kind} times"
            )
        return int(_seasons(np.array([moment]), self.seasonality, self.time_kind)[0])

    def score(self, value: float, time: Any = None) -> BaselineScore:
        """Score ``value`` observed at ``time`` (time is needed only for seasonal baselines).

        A season with fewer than ``min_points`` historical values falls back to the whole
        history. A NaN ``value`` raises :class:`~dagster_corrmon.errors.InputDataError`.
        """
        checked = _finite_or_missing(value, where="Baseline.score")
        if checked is None:
            raise InputDataError("Baseline.score: value is NaN; a missing metric has no score")
        season = self.season_of(time)
        stats = self.overall
        if season is not None and season in self.seasons:
            stats = self.seasons[season]
        else:
            season = None
        z = _z_score(checked, stats.center, stats.scale)
        side: Literal["increase", "decrease", "none"] = (
            "increase" if z > 0 else "decrease" if z < 0 else "none"
        )
        return BaselineScore(
            expected=stats.center,
            scale=stats.scale,
            z=z,
            anomalous=_alarms(z, self.threshold, self.direction),
            direction=side,
            threshold=self.threshold,
            season=season,
        )


def _time_scalar(value: Any, *, where: str) -> tuple[Literal["datetime", "numeric"], float]:
    """A time as ("numeric", float) or ("datetime", UTC epoch nanoseconds as float)."""
    if isinstance(value, bool):
        raise InputDataError(f"{where}: {value!r} is not a time")
    if isinstance(value, int | float | np.integer | np.floating):
        return "numeric", float(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise InputDataError(f"{where}: cannot read {value!r} as a time ({error})") from error
    if stamp is pd.NaT:
        raise InputDataError(f"{where}: time is missing (NaT)")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return "datetime", float(stamp.value)


def _time_array(
    times: ArrayLike, *, n: int
) -> tuple[Literal["datetime", "numeric"], NDArray[np.float64]]:
    array = np.asarray(times)
    if array.ndim != 1 or array.shape[0] != n:
        raise InputDataError(
            f"fit_baseline: times must be one-dimensional with one entry per value "
            f"({n}), got shape {array.shape}"
        )
    if array.dtype.kind in "iuf":
        numeric = array.astype(np.float64)
        if not np.isfinite(numeric).all():
            raise InputDataError("fit_baseline: times contain NaN or infinity")
        return "numeric", numeric
    if array.dtype.kind == "M":  # numpy datetimes (naive: UTC), without pandas' per-call cost
        if np.isnat(array).any():
            raise InputDataError("fit_baseline: times contain missing values (NaT)")
        return "datetime", array.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    try:
        stamps = pd.to_datetime(pd.Series(array), utc=True)
    except (TypeError, ValueError) as error:
        raise InputDataError(f"fit_baseline: cannot read times as datetimes ({error})") from error
    if stamps.isna().any():
        raise InputDataError("fit_baseline: times contain missing values (NaT)")
    nanoseconds = stamps.dt.as_unit("ns").astype("int64").to_numpy()
    return "datetime", nanoseconds.astype(np.float64)


_NS_PER_HOUR = 3_600 * 10**9


def _seasons(
    moments: NDArray[np.float64], seasonality: str | int, kind: Literal["datetime", "numeric"]
) -> NDArray[np.int64]:
    if isinstance(seasonality, int):
        if kind != "numeric":
            raise InputDataError(
                "an integer seasonality (seasonal lag) needs numeric times (positions)"
            )
        return np.floor(moments).astype(np.int64) % seasonality
    if kind != "datetime":
        raise InputDataError(f"seasonality {seasonality!r} needs datetime times")
    hours = np.floor_divide(moments.astype(np.int64), _NS_PER_HOUR)
    # 1970-01-01 was a Thursday: shift so that Monday is 0, as in datetime.weekday()
    if seasonality == "hour_of_day":
        return hours % 24
    days = np.floor_divide(hours, 24)
    day_of_week = (days + 3) % 7
    if seasonality == "day_of_week":
        return day_of_week
    return day_of_week * 24 + hours % 24  # hour_of_week


def _check_seasonality(seasonality: Any) -> str | int | None:
    if seasonality is None:
        return None
    if isinstance(seasonality, bool):
        raise ConfigError(f"seasonality must be a name or a positive int, got {seasonality!r}")
    if isinstance(seasonality, int | np.integer):
        if seasonality < 2:
            raise ConfigError(f"seasonal lag must be >= 2, got {seasonality}")
        return int(seasonality)
    if seasonality == "weekly":
        return "day_of_week"
    if seasonality in _SEASON_COUNTS:
        return str(seasonality)
    raise ConfigError(
        f"seasonality must be None, 'day_of_week' ('weekly'), 'hour_of_day', 'hour_of_week' "
        f"or an int seasonal lag, got {seasonality!r}"
    )


def _center_scale(values: NDArray[np.float64], method: BaselineMethod) -> tuple[float, float]:
    if method == "median_mad":
        return robust_center_scale(values)
    return float(values.mean()), float(values.std(ddof=1))


def fit_baseline(
    values: ArrayLike,
    times: ArrayLike | None = None,
    *,
    method: BaselineMethod = "median_mad",
    exclude: Sequence[tuple[Any, Any]] = (),
    seasonality: CalendarSeasonality | int | None = None,
    threshold: float | None = None,
    direction: Direction = "both",
    min_points: int = 5,
) -> Baseline:
    """Fit a robust baseline to a metric's history, leaving out known incident windows.

    Methods (stable ids): ``"median_mad"`` — median and MAD / 0.6745, so values are scored by
    Iglewicz & Hoaglin's modified z-score, default cut-off 3.5 (robust: up to half the history
    may be anomalous without moving it); ``"mean_std"`` — mean and sample std, cut-off 3.0 (the
    classic 3σ rule; use only on clean history).

    Args:
        values: the metric history, one value per window. NaNs (missing windows) are dropped.
        times: one time per value — datetimes (naive = UTC; pandas/numpy/stdlib all accepted) or
            numbers (e.g. partition ordinals). Needed for ``exclude`` and ``seasonality``;
            None means positions 0..n-1.
        exclude: incident windows ``(start, end)``, half-open ``[start, end)`` in the same kind
            of time as ``times``; ``end=None`` means still open. Values inside are left out.
        seasonality: None; ``"day_of_week"`` (alias ``"weekly"``), ``"hour_of_day"`` or
            ``"hour_of_week"`` of the UTC time (pass wall-clock times if seasons are local); or an
            int p: season = position mod p (a seasonal lag) with numeric times.
        threshold: |z| cut-off; default 3.5 for median_mad, 3.0 for mean_std.
        direction: which deviations are anomalous (see :func:`alarm_direction`).
        min_points: values needed overall (else
            :class:`~dagster_corrmon.errors.InsufficientDataError`) and per season (else that
            season uses the overall statistics).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> history = rng.normal(0.80, 0.01, 60)
        >>> history[40:45] = 0.60  # a confirmed incident
        >>> baseline = fit_baseline(history, np.arange(60), exclude=[(40, 45)],
        ...                         direction=alarm_direction(higher_is_better=True))
        >>> baseline.n_excluded, round(baseline.overall.center, 4)
        (5, 0.8004)
        >>> baseline.score(0.75, 60).anomalous, baseline.score(0.85, 61).anomalous
        (True, False)
    """
    if method not in _DEFAULT_THRESHOLDS:
        raise ConfigError(f"method must be 'median_mad' or 'mean_std', got {method!r}")
    cut_off = _DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    if not cut_off > 0.0:
        raise ConfigError(f"threshold must be > 0, got {threshold}")
    checked_direction = _check_direction(direction)
    season_rule = _check_seasonality(seasonality)
    if min_points < 2:
        raise ConfigError(f"min_points must be >= 2, got {min_points}")

    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InputDataError(f"fit_baseline: values must be one-dimensional, got {array.shape}")
    if np.isinf(array).any():
        raise InputDataError("fit_baseline: values contain infinity")
    if times is None:
        kind: Literal["datetime", "numeric"] = "numeric"
        moments = np.arange(array.shape[0], dtype=np.float64)
    else:
        kind, moments = _time_array(times, n=array.shape[0])

    keep = ~np.isnan(array)
    excluded = np.zeros(array.shape[0], dtype=bool)
    for window in exclude:
        try:
            start, end = window
        except (TypeError, ValueError) as error:
            raise ConfigError(f"exclude windows are (start, end) pairs, got {window!r}") from error
        start_kind, start_at = _time_scalar(start, where="fit_baseline exclude start")
        if start_kind != kind:
            raise InputDataError(
                f"fit_baseline: exclude window start {start!r} is {start_kind} but times are {kind}"
            )
        inside = moments >= start_at
        if end is not None:
            end_kind, end_at = _time_scalar(end, where="fit_baseline exclude end")
            if end_kind != kind:
                raise InputDataError(
                    f"fit_baseline: exclude window end {end!r} is {end_kind} but times are {kind}"
                )
            inside &= moments < end_at
        excluded |= inside
    n_excluded = int((excluded & keep).sum())
    keep &= ~excluded

    if keep.sum() < min_points:
        raise InsufficientDataError(
            f"fit_baseline: {int(keep.sum())} usable value(s) after dropping NaNs and excluded "
            f"windows; at least min_points={min_points} are needed"
        )
    kept_values = array[keep]
    center, scale = _center_scale(kept_values, method)
    overall = BaselineStats(center, scale, int(kept_values.size))

    seasons: dict[int, BaselineStats] = {}
    if season_rule is not None:
        season_ids = _seasons(moments[keep], season_rule, kind)
        for season in np.unique(season_ids):
            members = kept_values[season_ids == season]
            if members.size >= min_points:
                season_center, season_scale = _center_scale(members, method)
                seasons[int(season)] = BaselineStats(season_center, season_scale, int(members.size))

    return Baseline(
        method=method,
        threshold=cut_off,
        direction=checked_direction,
        seasonality=season_rule,
        overall=overall,
        seasons=seasons,
        min_points=min_points,
        n_excluded=n_excluded,
        time_kind=kind,
    )


__all__ = [
    "CUSUM",
    "EWMA",
    "MAD_TO_SIGMA_DIVISOR",
    "Baseline",
    "BaselineMethod",
    "BaselineScore",
    "BaselineStats",
    "Direction",
    "DriftDetector",
    "RollingMedianMAD",
    "alarm_direction",
    "alarm_indices",
    "fit_baseline",
    "robust_center_scale",
]
