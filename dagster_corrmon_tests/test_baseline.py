"""core.baseline: exact alarm indices, Monte-Carlo ARLs, robust scale oracle, exclusion, seasons."""

import datetime as dt
import doctest
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from dagster_corrmon.core import baseline
from dagster_corrmon.core.baseline import (
    CUSUM,
    EWMA,
    DriftDetector,
    RollingMedianMAD,
    alarm_direction,
    alarm_indices,
    fit_baseline,
    robust_center_scale,
)
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

NORMAL_MAD_SCALE = float(scipy.stats.norm.ppf(0.75))  # scipy's scale="normal"


def _step_series(seed: int, *, n: int = 200, at: int = 100, shift: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, n) + np.where(np.arange(n) >= at, shift, 0.0)


# --- independent reference loops (straight from the textbook formulas) -----------------------


def _reference_ewma(values, lam, limit, mean, std, *, side="both", exact=False, start=0):
    alarms, z, t = [], mean, 0
    for index in range(start, len(values)):
        t += 1
        z = lam * values[index] + (1 - lam) * z
        factor = lam / (2 - lam) * ((1 - (1 - lam) ** (2 * t)) if exact else 1.0)
        standardised = (z - mean) / (std * math.sqrt(factor))
        hit = {
            "both": abs(standardised) > limit,
            "increase": standardised > limit,
            "decrease": standardised < -limit,
        }[side]
        if hit:
            alarms.append(index)
            z, t = mean, 0
    return alarms


def _reference_cusum(values, k, h, mean, std, *, side="both"):
    alarms, upper, lower = [], 0.0, 0.0
    for index, value in enumerate(values):
        s = (value - mean) / std
        upper, lower = max(0.0, upper + s - k), max(0.0, lower - s - k)
        hit = {
            "both": upper > h or lower > h,
            "increase": upper > h,
            "decrease": lower > h,
        }[side]
        if hit:
            alarms.append(index)
            upper = lower = 0.0
    return alarms


# --- known answers ------------------------------------------------------------------------------


def test_ewma_flags_a_one_sigma_step_at_an_exact_index() -> None:
    series = _step_series(7)
    alarms = alarm_indices(EWMA(0.1, 2.814, mean=0.0, std=1.0), series)
    assert alarms == _reference_ewma(series, 0.1, 2.814, 0.0, 1.0)
    # one false alarm before the 1σ step at index 100 (ARL0 ≈ 500), then a delay of 11
    # windows (ARL1 ≈ 10.3) and renewed alarms while the shift persists
    assert alarms == [33, 110, 132, 142, 158, 178, 187, 195]


def test_cusum_flags_a_one_sigma_step_at_an_exact_index() -> None:
    series = _step_series(7)
    alarms = alarm_indices(CUSUM(0.5, 5.0, mean=0.0, std=1.0), series)
    assert alarms == _reference_cusum(series, 0.5, 5.0, 0.0, 1.0)
    assert alarms == [26, 109, 120, 135, 149, 171, 185, 192, 197]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_sided_charts_alarm_only_on_the_bad_direction(seed: int) -> None:
    upward = _step_series(seed, shift=1.5)
    downward = _step_series(seed, shift=-1.5)
    bad_for_auc = alarm_direction(higher_is_better=True)
    assert bad_for_auc == "decrease"
    for make, reference in (
        (
            lambda: EWMA(0.1, 2.814, mean=0.0, std=1.0, direction=bad_for_auc),
            lambda v: _reference_ewma(v, 0.1, 2.814, 0.0, 1.0, side="decrease"),
        ),
        (
            lambda: CUSUM(0.5, 5.0, mean=0.0, std=1.0, direction=bad_for_auc),
            lambda v: _reference_cusum(v, 0.5, 5.0, 0.0, 1.0, side="decrease"),
        ),
    ):
        down_alarms = alarm_indices(make(), downward)
        assert down_alarms == reference(downward)
        assert down_alarms and 100 <= down_alarms[0] <= 115
        assert alarm_indices(make(), upward) == reference(upward)
        assert not [index for index in alarm_indices(make(), upward) if index >= 100]


def test_exact_time_varying_limits_match_reference() -> None:
    series = _step_series(11, shift=2.0)
    detector = EWMA(0.2, 2.86, mean=0.0, std=1.0, exact_limits=True)
    assert alarm_indices(detector, series) == _reference_ewma(
        series, 0.2, 2.86, 0.0, 1.0, exact=True
    )


def test_warm_up_estimates_mean_and_std_and_never_alarms() -> None:
    rng = np.random.default_rng(5)
    series = np.r_[rng.normal(10.0, 2.0, 150), rng.normal(13.0, 2.0, 100)]
    series[10] = 50.0  # a wild value inside the warm-up cannot alarm
    detector = EWMA(0.1, 2.814, warmup=50)
    alarms = alarm_indices(detector, series)
    mean, std = float(series[:50].mean()), float(series[:50].std(ddof=1))
    assert detector.in_control_mean == pytest.approx(mean, abs=1e-12)
    assert detector.in_control_std == pytest.approx(std, abs=1e-12)
    assert alarms == _reference_ewma(series, 0.1, 2.814, mean, std, start=50)
    assert alarms and alarms[0] >= 150
    assert detector.n_seen == series.size


def test_statistic_is_nan_while_warming_up() -> None:
    detector = CUSUM(warmup=5)
    for value in [1.0, 2.0, 3.0]:
        detector.update(value)
    assert math.isnan(detector.statistic)
    assert detector.in_control_mean is None


def test_constant_warm_up_keeps_warming_up_until_sigma_is_defined() -> None:
    detector = EWMA(warmup=3)
    for value in [5.0, 5.0, 5.0, 5.0]:
        detector.update(value)
    assert detector.in_control_std is None
    detector.update(6.0)
    assert detector.in_control_std == pytest.approx(np.std([5.0] * 4 + [6.0], ddof=1))


def test_excluded_and_missing_windows_leave_detector_state_untouched() -> None:
    series = _step_series(3, shift=0.0)
    incident = np.zeros(series.size, dtype=bool)
    incident[60:70] = True
    with_gap = series.copy()
    with_gap[60:70] = 25.0  # a confirmed incident: would alarm if it were seen
    with_gap[80] = np.nan  # a missing window
    for make in (
        lambda: EWMA(0.1, 2.814, mean=0.0, std=1.0),
        lambda: CUSUM(0.5, 5.0, mean=0.0, std=1.0),
    ):
        skipped = make()
        seen_alarms = alarm_indices(skipped, with_gap, exclude=incident)
        kept = np.flatnonzero(~incident & ~np.isnan(with_gap))
        expected = [int(kept[i]) for i in alarm_indices(make(), with_gap[kept])]
        assert seen_alarms == expected
        assert skipped.n_seen == kept.size
        assert not [index for index in seen_alarms if 60 <= index < 70]


def test_detectors_follow_the_river_protocol() -> None:
    for detector in (EWMA(mean=0, std=1), CUSUM(mean=0, std=1), RollingMedianMAD()):
        assert isinstance(detector, DriftDetector)
        assert detector.drift_detected is False
    detector = CUSUM(0.5, 1.0, mean=0.0, std=1.0)
    detector.update(5.0)
    assert detector.drift_detected and detector.statistic == pytest.approx(4.5)
    detector.update(0.0)  # restarts first, then incorporates 0
    assert not detector.drift_detected and detector.statistic == 0.0


def test_infinite_value_is_bad_input() -> None:
    with pytest.raises(InputDataError, match=r"EWMA\.update"):
        EWMA(mean=0, std=1).update(math.inf)


@pytest.mark.parametrize(
    "make",
    [
        lambda: EWMA(0.0),
        lambda: EWMA(0.1, -1.0),
        lambda: EWMA(std=0.0, mean=0.0),
        lambda: EWMA(warmup=1),
        lambda: CUSUM(-0.1),
        lambda: CUSUM(0.5, 0.0),
        lambda: CUSUM(direction="down"),  # type: ignore[arg-type]
        lambda: RollingMedianMAD(window=1),
        lambda: RollingMedianMAD(min_periods=50),
        lambda: RollingMedianMAD(period=0),
    ],
)
def test_bad_parameters_raise_config_error(make) -> None:
    with pytest.raises(ConfigError):
        make()


# --- Monte Carlo: run lengths agree with the published ARL tables ----------------------------


def _stream_arl0(make, seed: int, steps: int) -> float:
    rng = np.random.default_rng(seed)
    alarms = alarm_indices(make(), rng.standard_normal(steps))
    return (alarms[-1] + 1) / len(alarms)  # run lengths sum to the last alarm's position + 1


def _mean_delay(make, seed: int, shift: float, runs: int) -> float:
    rng = np.random.default_rng(seed)
    delays = []
    for _ in range(runs):
        detector = make()
        for step in range(1, 10_000):
            detector.update(shift + rng.standard_normal())
            if detector.drift_detected:
                delays.append(step)
                break
    return float(np.mean(delays))


def test_ewma_empirical_arl0_and_arl1_match_lucas_saccucci() -> None:
    def make():
        return EWMA(0.1, 2.814, mean=0.0, std=1.0)

    # ~300 false alarms: standard error of the ARL0 estimate ≈ 500 / √300 ≈ 29
    assert 420 <= _stream_arl0(make, seed=2024, steps=150_000) <= 600
    assert 9.6 <= _mean_delay(make, seed=2025, shift=1.0, runs=1500) <= 11.0


def test_cusum_empirical_arl0_and_arl1_match_page() -> None:
    def make():
        return CUSUM(0.5, 5.0, mean=0.0, std=1.0)

    assert 390 <= _stream_arl0(make, seed=2026, steps=150_000) <= 560
    assert 9.7 <= _mean_delay(make, seed=2027, shift=1.0, runs=1500) <= 11.1


# --- robust statistics ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_robust_scale_matches_scipy_normal_scaled_mad(seed: int) -> None:
    values = np.random.default_rng(seed).standard_t(3, 101)
    center, scale = robust_center_scale(values)
    assert center == np.median(values)
    assert scale == pytest.approx(
        scipy.stats.median_abs_deviation(values, scale=NORMAL_MAD_SCALE), rel=1e-12
    )


def test_modified_z_score_is_iglewicz_hoaglin() -> None:
    values = np.array([2.1, 2.6, 2.4, 2.5, 2.3, 2.1, 2.3, 2.6, 8.2, 8.3])
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    detector = RollingMedianMAD(window=10, min_periods=10)
    for value in values:
        detector.update(value)
    detector.update(4.0)
    assert detector.statistic == pytest.approx(0.6745 * (4.0 - median) / mad, rel=1e-4)
    assert detector.drift_detected == (abs(0.6745 * (4.0 - median) / mad) > 3.5)


def test_rolling_median_mad_scores_before_admitting_and_uses_fallback_scale() -> None:
    detector = RollingMedianMAD(window=6, min_periods=6)
    for value in [1.0, 1.0, 1.0, 1.0, 2.0, 3.0]:  # MAD = 0: more than half tie at 1.0
        detector.update(value)
    detector.update(4.0)
    mean_ad = np.mean(np.abs(np.array([1.0, 1.0, 1.0, 1.0, 2.0, 3.0]) - 1.0))
    assert detector.expected == 1.0
    assert detector.scale == pytest.approx(mean_ad * math.sqrt(math.pi / 2))
    constant = RollingMedianMAD(window=3, min_periods=3)
    for value in [2.0, 2.0, 2.0, 2.0]:
        constant.update(value)
    assert constant.statistic == 0.0 and not constant.drift_detected
    constant.update(2.5)
    assert constant.statistic == math.inf and constant.drift_detected


def test_rolling_median_mad_known_answer_against_reference_loop() -> None:
    series = _step_series(19, shift=4.0, n=120, at=80)
    window, threshold = 20, 3.5
    expected = []
    for index in range(10, series.size):
        history = series[max(0, index - window) : index]
        median = np.median(history)
        scale = scipy.stats.median_abs_deviation(history, scale=NORMAL_MAD_SCALE)
        if abs(series[index] - median) / scale > threshold:
            expected.append(index)
    alarms = alarm_indices(RollingMedianMAD(window=window, min_periods=10), series)
    assert alarms == expected
    assert alarms[0] == 80


def _reference_seasonal_median_mad(values, *, window, min_periods, period, threshold=3.5):
    alarms = []
    for index in range(values.size):
        history = values[index % period : index : period][-window:]
        if history.size < min_periods:
            continue
        median = np.median(history)
        scale = scipy.stats.median_abs_deviation(history, scale=NORMAL_MAD_SCALE)
        if abs(values[index] - median) / scale > threshold:
            alarms.append(index)
    return alarms


def test_seasonal_lag_compares_like_with_like() -> None:
    rng = np.random.default_rng(8)
    weekly = np.tile([10.0, 10.0, 10.0, 10.0, 10.0, 4.0, 4.0], 16)
    series = weekly + rng.normal(0.0, 0.3, weekly.size)

    def seasonal_detector():
        return RollingMedianMAD(window=8, min_periods=8, period=7)

    plain = alarm_indices(RollingMedianMAD(window=28), series)
    seasonal = alarm_indices(seasonal_detector(), series)
    assert len(plain) == 30  # without seasonality every weekend day is "anomalous"
    assert seasonal == _reference_seasonal_median_mad(series, window=8, min_periods=8, period=7)
    assert seasonal == [79, 100, 107]  # the small-sample MAD's false alarms, not weekends
    broken = series.copy()
    broken[105] = 4.0  # 105 % 7 == 0: a weekday at weekend level
    assert alarm_indices(seasonal_detector(), broken) == [79, 100, 105, 107]


# --- batch baselines --------------------------------------------------------------------------


def _daily(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:  # 2024-01-01 is a Monday
    return pd.date_range(start, periods=n, freq="D", tz="UTC")


def test_fit_baseline_median_mad_and_mean_std_oracles() -> None:
    values = np.random.default_rng(3).normal(0.8, 0.02, 40)
    robust = fit_baseline(values, None)
    assert robust.overall.center == np.median(values)
    assert robust.overall.scale == pytest.approx(
        scipy.stats.median_abs_deviation(values, scale=NORMAL_MAD_SCALE), rel=1e-12
    )
    assert robust.threshold == 3.5 and robust.method == "median_mad"
    classic = fit_baseline(values, None, method="mean_std")
    assert classic.overall.center == pytest.approx(values.mean())
    assert classic.overall.scale == pytest.approx(values.std(ddof=1))
    assert classic.threshold == 3.0
    score = robust.score(0.7)
    assert score.z == pytest.approx((0.7 - robust.overall.center) / robust.overall.scale)
    assert score.anomalous and score.direction == "decrease" and score.expected == score.expected


def test_excluded_incident_windows_do_not_shape_the_baseline() -> None:
    rng = np.random.default_rng(4)
    times = _daily(90)
    values = rng.normal(100.0, 5.0, 90)
    values[30:45] = 20.0  # a confirmed incident covering a sixth of the history
    values[80:] = 300.0  # an incident still open
    window = (dt.datetime(2024, 1, 31), pd.Timestamp("2024-02-15", tz="UTC"))  # naive = UTC
    fitted = fit_baseline(values, times, exclude=[window, (times[80], None)], method="mean_std")
    clean = np.r_[values[:30], values[45:80]]
    assert fitted.n_excluded == 25
    assert fitted.overall.n == clean.size
    assert fitted.overall.center == pytest.approx(clean.mean())
    assert fitted.overall.scale == pytest.approx(clean.std(ddof=1))
    unexcluded = fit_baseline(values, times, method="mean_std")
    assert unexcluded.overall.scale > 5 * fitted.overall.scale


def test_day_of_week_seasonality_matches_pandas_weekdays() -> None:
    times = _daily(8 * 7)
    weekdays = pd.Series(times).dt.dayofweek.to_numpy()
    rng = np.random.default_rng(6)
    weekend = weekdays >= 5
    values = np.where(weekend, 40.0, 100.0) + rng.normal(0.0, 2.0, times.size)
    seasonal = fit_baseline(values, times, seasonality="weekly")
    assert seasonal.seasonality == "day_of_week"
    assert sorted(seasonal.seasons) == list(range(7))
    for day in range(7):
        assert seasonal.seasons[day].center == np.median(values[weekdays == day])
    saturday = pd.Timestamp("2024-03-02 12:00", tz="UTC")
    monday = pd.Timestamp("2024-03-04 12:00", tz="UTC")
    assert seasonal.season_of(saturday) == 5 and seasonal.season_of(monday) == 0
    assert not seasonal.score(41.0, saturday).anomalous
    assert seasonal.score(41.0, monday).anomalous
    flat = fit_baseline(values, times)
    assert flat.score(41.0, saturday).anomalous


def test_hourly_seasons_and_aware_times_in_other_zones() -> None:
    times = pd.date_range("2024-01-01", periods=24 * 14, freq="h", tz="UTC")
    values = pd.Series(times).dt.hour.to_numpy(dtype=float)
    fitted = fit_baseline(values, times, seasonality="hour_of_day")
    new_york = pd.Timestamp("2024-02-01 09:00", tz="America/New_York")  # 14:00 UTC
    assert fitted.season_of(new_york) == 14
    assert fitted.score(14.0, new_york).z == 0.0
    weekly_hours = fit_baseline(values, times, seasonality="hour_of_week", min_points=2)
    assert weekly_hours.season_of(dt.datetime(2024, 1, 2, 3)) == 24 + 3  # Tuesday 03:00


def test_integer_seasonal_lag_and_sparse_season_fallback() -> None:
    values = np.tile([1.0, 5.0, 9.0], 6) + np.tile([0.0, 0.1, -0.1], 6)
    fitted = fit_baseline(values, np.arange(18), seasonality=3, min_points=5)
    assert {season: stats.center for season, stats in fitted.seasons.items()} == {
        0: 1.0,
        1: 5.1,
        2: 8.9,
    }
    assert fitted.score(5.1, 19).z == 0.0
    sparse = fit_baseline(values[:14], np.arange(14), seasonality=3, min_points=5)
    assert 2 not in sparse.seasons  # only 4 points of season 2
    assert sparse.score(9.0, 20).season is None  # falls back to the overall baseline


def test_one_sided_baseline_only_flags_the_bad_direction() -> None:
    values = np.random.default_rng(9).normal(50.0, 1.0, 30)
    latency = fit_baseline(values, None, direction=alarm_direction(higher_is_better=False))
    assert latency.score(60.0).anomalous
    assert not latency.score(40.0).anomalous
    assert latency.score(40.0).direction == "decrease"


def test_fit_baseline_input_errors() -> None:
    with pytest.raises(InsufficientDataError, match="min_points=5"):
        fit_baseline([1.0, 2.0, np.nan, 3.0, 4.0], None)
    with pytest.raises(InputDataError, match="numeric"):
        fit_baseline(np.arange(10.0), _daily(10), exclude=[(2, 4)])
    with pytest.raises(InputDataError, match="one entry per value"):
        fit_baseline(np.arange(10.0), _daily(9))
    with pytest.raises(InputDataError, match="needs datetime times"):
        fit_baseline(np.arange(10.0), np.arange(10), seasonality="day_of_week")
    with pytest.raises(ConfigError, match="seasonality"):
        fit_baseline(np.arange(10.0), None, seasonality="monthly")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="method"):
        fit_baseline(np.arange(10.0), None, method="iqr")  # type: ignore[arg-type]
    seasonal = fit_baseline(np.arange(14.0), _daily(14), seasonality="day_of_week", min_points=2)
    with pytest.raises(InputDataError, match="a time is needed"):
        seasonal.score(3.0)
    with pytest.raises(InputDataError, match="NaN"):
        seasonal.score(math.nan, _daily(1)[0])


def test_missing_values_are_dropped_from_the_history() -> None:
    values = np.array([1.0, np.nan, 2.0, 3.0, np.nan, 4.0, 5.0])
    fitted = fit_baseline(values, None)
    assert fitted.overall.n == 5 and fitted.overall.center == 3.0


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(baseline, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted > 10
    assert outcome.failed == 0


@pytest.mark.parametrize("unit", ["s", "us", "ns"])
@pytest.mark.parametrize("aware", [False, True])
def test_seasons_do_not_depend_on_the_times_resolution(unit: str, aware: bool) -> None:
    # pandas 2 keeps a column's resolution (parquet gives microseconds): a season computed from
    # microseconds read as nanoseconds put every point in the same weekday.
    times = pd.Series(pd.date_range("2024-01-01", periods=8 * 7, freq="D")).dt.as_unit(unit)
    if aware:
        times = times.dt.tz_localize("UTC")
    weekdays = times.dt.dayofweek.to_numpy()
    values = np.where(weekdays >= 5, 40.0, 100.0)
    fitted = fit_baseline(values, times.to_numpy(), seasonality="day_of_week")
    assert sorted(fitted.seasons) == list(range(7))
    assert [fitted.seasons[day].center for day in range(7)] == [100.0] * 5 + [40.0] * 2
