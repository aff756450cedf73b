"""Attribution engine: statistics against oracles, then seeded synthetic incidents end to end."""

import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dagster_corrmon.core.attribution import (
    AttributionConfig,
    AttributionResult,
    CandidateEvent,
    CandidateSeries,
    MetricSeries,
    RepairOutcome,
    RepairRequest,
    attribute_performance_shift,
    benjamini_yekutieli,
    circular_shift_pvalues,
    explain_attribution,
    precedence_score,
    resolve_feature_importance,
    robust_shift,
)
from dagster_corrmon.core.incident import IncidentClass
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.errors import ConfigError, InputDataError

# --------------------------------------------------------------------------------------------
# Statistics against oracles
# --------------------------------------------------------------------------------------------


def _ar1(shape: tuple[int, ...], phi: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shape)
    series = np.empty(shape)
    series[..., 0] = noise[..., 0] / math.sqrt(1 - phi**2)
    for t in range(1, shape[-1]):
        series[..., t] = phi * series[..., t - 1] + noise[..., t]
    return series


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy's Pearson r and its plain (independence-assuming) p-value."""
    result: Any = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    result: Any = stats.spearmanr(x, y)
    return float(result.statistic)


def test_circular_shift_pvalues_equal_a_naive_loop_over_rotations() -> None:
    rng = np.random.default_rng(7)
    n = 30
    target = _ar1((n,), 0.6, rng)
    candidates = np.vstack([_ar1((4, n), 0.6, rng), target + 0.3 * rng.standard_normal(n)])
    candidates[1, :5] = candidates[1, 5]  # ties, as in null fractions that sit at zero
    for max_lag in (0, 2):
        p_values, observed, rotations = circular_shift_pvalues(candidates, target, max_lag=max_lag)
        shifts = range(max_lag + 1, n - max_lag)  # overlapping lag windows are left out
        assert rotations == len(shifts)
        for row, x in enumerate(candidates):

            def statistic(k: int, x: np.ndarray = x, lags: int = max_lag) -> float:
                return max(
                    max(abs(_spearman(rolled, target)), abs(_pearson(rolled, target)[0]))
                    for rolled in (np.roll(x, k + lag) for lag in range(lags + 1))
                )

            stat0 = statistic(0)
            exceed = sum(statistic(k) >= stat0 - 1e-9 for k in shifts)
            assert observed[row] == pytest.approx(stat0, abs=1e-9)
            assert p_values[row] == pytest.approx((exceed + 1) / (len(shifts) + 1))
        # The candidate built from the target is found: the smallest attainable p-value.
        assert p_values[-1] == pytest.approx(1 / (len(shifts) + 1))


def test_circular_shift_subsampling_is_seeded_and_never_zero() -> None:
    rng = np.random.default_rng(3)
    target = rng.standard_normal(200)
    candidates = np.vstack([target, rng.standard_normal(200)])
    first, _, m = circular_shift_pvalues(candidates, target, n_permutations=49, seed=11)
    again, _, _ = circular_shift_pvalues(candidates, target, n_permutations=49, seed=11)
    assert m == 49
    np.testing.assert_array_equal(first, again)
    assert first[0] == pytest.approx(1 / 50)  # (b + 1) / (m + 1), b = 0: never zero
    assert 0 < first[1] <= 1


def test_constant_candidates_get_p_one() -> None:
    target = np.arange(10.0)
    p_values, observed, _ = circular_shift_pvalues(np.ones((1, 10)), target)
    assert p_values[0] == 1.0
    assert observed[0] == 0.0


def test_circular_shift_holds_its_level_on_autocorrelated_noise_where_pearson_does_not() -> None:
    """Independent AR(1) series (φ = 0.8): circular-shift p-values are close to uniform, while
    plain Pearson p-values — NannyML's ranker — reject far more often than the nominal level.
    (At φ = 0.9 on 60 partitions the circular test runs slightly liberal, ~5.8 % at 5 %: the
    wrap-around joins two unrelated ends of a very persistent series.)"""
    rng = np.random.default_rng(2024)
    n, per_replicate, replicates = 60, 20, 150
    circular: list[np.ndarray] = []
    pearson: list[float] = []
    for _ in range(replicates):
        target = _ar1((n,), 0.8, rng)
        candidates = _ar1((per_replicate, n), 0.8, rng)
        circular.append(circular_shift_pvalues(candidates, target)[0])
        pearson.extend(_pearson(x, target)[1] for x in candidates)
    p_circular = np.concatenate(circular)
    p_pearson = np.asarray(pearson)
    for level in (0.05, 0.1, 0.2):
        assert abs(float(np.mean(p_circular <= level)) - level) < 0.03, level
    assert float(np.mean(p_pearson <= 0.05)) > 0.15  # three times the nominal rate, or more
    # Uniform overall: a KS test against U(0, 1) on the discrete p-values does not reject.
    assert stats.kstest(p_circular, "uniform").statistic < 0.05


def test_benjamini_yekutieli_matches_scipy_and_the_textbook_formula() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    q = benjamini_yekutieli(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="by"))
    # Textbook: q_(i) = min_{j >= i} min(1, p_(j) m c(m) / j), c(m) = Σ 1/k.
    m = p.size
    c = sum(1 / k for k in range(1, m + 1))
    raw = np.minimum(1, p * m * c / np.arange(1, m + 1))
    expected = np.minimum.accumulate(raw[::-1])[::-1]
    np.testing.assert_allclose(q, expected)
    assert benjamini_yekutieli([]).size == 0


def test_robust_shift_is_in_iqr_units_with_a_floor_for_constant_references() -> None:
    before = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan])  # median 3, IQR 2
    shift, median_before, median_after, scale = robust_shift(before, np.array([7.0, 9.0, 11.0]))
    assert (shift, median_before, median_after, scale) == (3.0, 3.0, 9.0, 2.0)
    # A null fraction stuck at zero, then 30 %: huge but finite, never a division by zero.
    shift, _, _, scale = robust_shift(np.zeros(20), np.full(5, 0.3))
    assert scale == 1e-6
    assert shift == pytest.approx(3e5)
    # MAD takes over when the IQR is zero but the reference is not constant.
    values = np.array([0.0] * 8 + [1.0, -1.0])
    assert robust_shift(values, np.array([1.0]))[3] == pytest.approx(1.349 * np.std(values))
    assert math.isnan(robust_shift(np.array([np.nan]), np.array([1.0]))[0])


def test_precedence_rewards_causes_that_start_just_before_the_onset() -> None:
    def score(lead: int | None) -> float:
        return precedence_score(lead, window=3, tolerance=1)

    assert [score(lead) for lead in (0, 1, 3)] == [1.0, 1.0, 1.0]
    assert score(-1) == 0.5  # one partition late: within the onset's uncertainty
    assert score(-2) == 0.0  # after the effect: not a cause
    assert score(4) == pytest.approx(2 / 3)  # present before the window: decays ...
    assert score(6) == 0.0  # ... to nothing for a defect present through healthy partitions
    assert score(None) == 0.0


def test_feature_importance_resolves_by_name_and_through_column_lineage() -> None:
    importances = {"temp": 0.5, "temp_diff": 0.2, "hour": 0.3}
    lineage = {"temp_diff": ["raw_weather.temp", "raw_weather.dewp"], "hour": ["dep_time"]}
    resolve = resolve_feature_importance
    kwargs = {"importances": importances, "column_lineage": lineage}
    assert resolve("raw_weather", "temp", **kwargs) == pytest.approx(0.7)  # both features
    assert resolve("raw_weather", "dewp", **kwargs) == pytest.approx(0.2)
    assert resolve("raw_flights", "dep_time", **kwargs) == pytest.approx(0.3)
    assert resolve("raw_flights", "carrier", **kwargs) is None
    assert resolve("raw_flights", None, **kwargs) is None
    assert resolve("x", "hour", importances=importances) == pytest.approx(0.3)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(InputDataError, match="3 partitions but 2 values"):
        MetricSeries(name="f1", partitions=["a", "b", "c"], values=[1, 2], higher_is_better=True)
    with pytest.raises(InputDataError, match="repeat"):
        MetricSeries(name="f1", partitions=["a", "a"], values=[1, 2], higher_is_better=True)
    with pytest.raises(InputDataError, match="feature_importance"):
        CandidateSeries(
            asset_key="a", name="n", partitions=["a"], values=[1.0], feature_importance=-1
        )
    with pytest.raises(ConfigError, match="weight_repair"):
        AttributionConfig(weight_repair=1.5)


# --------------------------------------------------------------------------------------------
# Seeded synthetic incidents, end to end
# --------------------------------------------------------------------------------------------

N = 200  # daily partitions
ONSET = 140
PARTITIONS = [f"2013-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(N)]  # ordered keys


def _series(
    asset: str,
    column: str | None,
    name: str,
    values: np.ndarray,
    *,
    distance: int = 1,
    importance: float | None = None,
    kind: SignalKind = SignalKind.DATA_QUALITY,
) -> CandidateSeries:
    return CandidateSeries(
        asset_key=asset,
        column=column,
        name=name,
        kind=kind,
        partitions=PARTITIONS,
        values=values,
        lineage_distance=distance,
        feature_importance=importance,
    )


def _f1(values: np.ndarray) -> MetricSeries:
    return MetricSeries(name="f1", partitions=PARTITIONS, values=values, higher_is_better=True)


def _noise_candidates(rng: np.random.Generator, count: int, *, phi: float = 0.5) -> list:
    return [
        _series(
            "features",
            f"stable_{j}",
            "psi",
            0.05 + 0.01 * _ar1((N,), phi, rng),
            importance=0.2,
            kind=SignalKind.DRIFT,
        )
        for j in range(count)
    ]


def _step(level_before: float, level_after: float, at: int = ONSET) -> np.ndarray:
    return np.r_[np.full(at, level_before), np.full(N - at, level_after)]


def test_null_spike_on_an_important_feature_is_a_data_fault_with_a_significant_q_value() -> None:
    rng = np.random.default_rng(11)
    null_fraction = np.clip(_step(0.01, 0.30) + 0.004 * rng.standard_normal(N), 0, 1)
    null_fraction[ONSET:] += 0.05 * rng.standard_normal(N - ONSET)
    # The loss grows with the share of nulls: the model imputes the missing temperatures.
    f1 = 0.80 - 0.3 * null_fraction + 0.008 * rng.standard_normal(N)
    weather = CandidateSeries(
        asset_key="raw_weather",
        column="temp",
        name="null_fraction",
        partitions=PARTITIONS,
        values=null_fraction,
        lineage_distance=2,
        data_versions={key: f"w{index}" for index, key in enumerate(PARTITIONS)},
    )
    candidates = [weather, *_noise_candidates(rng, 3)]
    times = [datetime(2013, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(N)]
    result = attribute_performance_shift(
        MetricSeries(
            name="f1", partitions=PARTITIONS, values=f1, higher_is_better=True, times=times
        ),
        candidates,
        feature_importances={"temp": 0.4, "stable_0": 0.2, "stable_1": 0.2, "stable_2": 0.2},
    )
    assert result.shift is not None
    assert result.shift.onset_partition == PARTITIONS[ONSET]
    assert result.shift.detection_partition == PARTITIONS[ONSET]
    assert result.shift.change_point_index == ONSET
    assert result.shift.sustained
    assert result.consequential
    assert result.classification is IncidentClass.DATA_FAULT
    top = result.causes[0]
    assert (top.asset_key, top.column, top.kind) == ("raw_weather", "temp", "data_quality")
    assert top.partition == PARTITIONS[ONSET]
    assert top.event_time == times[ONSET]
    # Exactly the versions read while the feed was bad: annotation must not flag good reads.
    assert top.data_versions == tuple(f"w{index}" for index in range(ONSET, N))
    assert top.feature_importance == pytest.approx(0.4)  # resolved by name
    assert top.q_value is not None and top.q_value < 0.05
    assert top.shift_size is not None and top.shift_size > 10
    assert [cause.rank for cause in result.causes] == [1, 2, 3, 4]
    assert all(cause.score < 0.5 for cause in result.causes[1:])
    # q-values are Benjamini–Yekutieli over exactly the candidates' p-values.
    p_values = [cause.p_value for cause in result.causes]
    np.testing.assert_allclose(
        np.array([cause.q_value for cause in result.causes], dtype=float),
        stats.false_discovery_control(p_values, method="by"),
    )
    text = explain_attribution(result)
    assert "`raw_weather.temp`" in text
    assert "data fault" in text
    assert f"starting {PARTITIONS[ONSET]}" in text
    assert "backfill" in text


def _nannyml_pearson_ranking(
    candidates: Sequence[CandidateSeries], f1: np.ndarray, reference: int
) -> list[tuple[str, float]]:
    """NannyML's CorrelationRanker: Pearson r of each drift series with |perf - mean ref perf|."""
    change = np.abs(f1 - f1[:reference].mean())
    ranked = [
        (candidate.key, _pearson(np.asarray(candidate.values), change)[0])
        for candidate in candidates
    ]
    return sorted(ranked, key=lambda item: -item[1])


def test_the_repair_test_singles_out_the_cause_among_co_moving_drifting_columns() -> None:
    rng = np.random.default_rng(5)
    f1 = 0.80 - 0.07 * (np.arange(N) >= ONSET) + 0.008 * rng.standard_normal(N)
    # A new upstream source shifts twelve columns at the onset: clean, large drift the model
    # does not care about. The real cause (a unit change in temp) drifts less cleanly.
    co_moving = [
        _series(
            "raw_flights",
            f"col_{j}",
            "psi",
            _step(0.02, 0.40) + 0.01 * rng.standard_normal(N),
            importance=0.2,
            kind=SignalKind.DRIFT,
        )
        for j in range(12)
    ]
    cause = _series(
        "raw_weather",
        "temp",
        "psi",
        _step(0.02, 0.25) + 0.06 * np.abs(rng.standard_normal(N)),
        importance=0.2,
        kind=SignalKind.DRIFT,
    )
    candidates = [*co_moving, cause]

    pearson = _nannyml_pearson_ranking(candidates, f1, ONSET)
    assert pearson[0][0] != cause.key  # the naive ranking does not put the cause first ...
    top_r = [r for _, r in pearson[:12]]
    assert max(top_r) - min(top_r) < 0.05  # ... and cannot separate the co-moving columns
    assert all(r > 0.8 for r in top_r)

    calls: list[RepairRequest] = []

    def repair(request: RepairRequest) -> float:
        calls.append(request)
        gap = request.baseline_value - request.degraded_value
        if request.candidate.key == cause.key:  # restoring temp puts the model right again
            return request.degraded_value + 0.85 * gap
        return request.degraded_value + 0.02 * gap * float(rng.standard_normal())

    result = attribute_performance_shift(_f1(f1), candidates, repair=repair)
    assert len(calls) == len(candidates)
    assert all(call.partitions == result.shift.degraded_partitions for call in calls)  # type: ignore[union-attr]
    top = result.causes[0]
    assert (top.asset_key, top.column) == ("raw_weather", "temp")
    assert top.repair_recovery == pytest.approx(0.85, abs=1e-9)
    assert result.classification is IncidentClass.DATA_FAULT
    assert [cause.asset_key for cause in result.explaining_causes] == ["raw_weather"]
    assert top.score > 0.8 > max(cause.score for cause in result.causes[1:]) + 0.3
    assert "restoring it recovers 85% of the f1 loss" in explain_attribution(result)


def test_pure_concept_drift_is_classified_as_such_with_no_data_fault_cause() -> None:
    rng = np.random.default_rng(21)
    decay = np.clip(np.arange(N) - 120, 0, None) * (0.10 / 80)  # gradual decay from 120
    f1 = 0.80 - decay + 0.006 * rng.standard_normal(N)
    candidates: list[CandidateSeries | CandidateEvent] = [*_noise_candidates(rng, 6)]
    candidates.append(
        CandidateEvent(
            asset_key="features",
            kind=SignalKind.CODE_VERSION_CHANGE,
            partition=PARTITIONS[30],  # long before: not a cause
            name="code_version 1 -> 2",
            lineage_distance=1,
        )
    )

    def repair(request: RepairRequest) -> float:  # restoring inputs recovers nothing
        return request.degraded_value + 0.01 * (request.baseline_value - request.degraded_value)

    result = attribute_performance_shift(_f1(f1), candidates, repair=repair)
    assert result.shift is not None and result.shift.sustained
    assert 110 <= result.shift.onset_index <= 140  # where the decline began ...
    assert result.shift.detection_index >= result.shift.onset_index  # ... before it alarmed
    assert result.consequential
    assert result.classification is IncidentClass.CONCEPT_DRIFT
    assert result.explaining_causes == ()
    assert all(cause.repair_recovery is not None for cause in result.causes)
    assert "retrain" in explain_attribution(result)


def test_benign_drift_in_a_low_importance_feature_is_not_consequential() -> None:
    rng = np.random.default_rng(8)
    f1 = 0.80 + 0.008 * rng.standard_normal(N)
    minute_drift = _step(0.02, 0.5, at=120) + 0.01 * rng.standard_normal(N)
    candidates = [
        _series("features", "minute", "psi", minute_drift, importance=0.01, kind=SignalKind.DRIFT),
        *_noise_candidates(rng, 4),
    ]
    result = attribute_performance_shift(_f1(f1), candidates)
    assert not result.consequential
    assert result.classification is IncidentClass.BENIGN_DRIFT
    drifted = next(cause for cause in result.causes if cause.column == "minute")
    assert drifted.partition == PARTITIONS[120]
    assert drifted.shift_size is not None and drifted.shift_size > 10
    assert "no action needed" in explain_attribution(result)


def test_a_code_version_change_at_the_onset_is_a_code_change_and_its_symptom_ranks_second() -> None:
    rng = np.random.default_rng(3)
    f1 = 0.80 - 0.06 * (np.arange(N) >= ONSET) + 0.008 * rng.standard_normal(N)
    # The buggy transform shifts dep_hour's mean on the same asset: a symptom of the change.
    symptom = _step(13.0, 9.0) + 0.3 * rng.standard_normal(N)
    candidates: list[CandidateSeries | CandidateEvent] = [
        _series("features", "dep_hour", "mean", symptom, importance=0.3),
        *_noise_candidates(rng, 4),
        CandidateEvent(
            asset_key="features",
            kind=SignalKind.CODE_VERSION_CHANGE,
            partition=PARTITIONS[ONSET],
            name="code_version 2 -> 3",
            lineage_distance=1,
        ),
        CandidateEvent(
            asset_key="raw_planes",
            kind=SignalKind.CODE_VERSION_CHANGE,
            partition=PARTITIONS[40],
            name="code_version 7 -> 8",
            lineage_distance=2,
        ),
    ]
    result = attribute_performance_shift(_f1(f1), candidates)
    assert result.consequential
    assert result.classification is IncidentClass.CODE_CHANGE
    first, second = result.causes[:2]
    assert (first.kind, first.asset_key, first.partition) == (
        "code_version_change",
        "features",
        PARTITIONS[ONSET],
    )
    assert first.evidence["root_cause_of"] == "features.dep_hour:mean"
    assert (second.column, second.evidence["symptom_of"]) == (
        "dep_hour",
        first.evidence["candidate"],
    )
    old_change = next(cause for cause in result.causes if cause.asset_key == "raw_planes")
    assert old_change.score == 0.0  # long before the onset: precedence 0
    assert "roll back" in explain_attribution(result)


def test_a_failed_upstream_run_with_a_stale_batch_is_an_upstream_failure() -> None:
    rng = np.random.default_rng(4)
    at = N - 6  # the correlation job runs right after the bad batch: the latest episode
    f1 = 0.80 + 0.008 * rng.standard_normal(N)
    f1[at : at + 2] -= 0.12  # two partitions joined against missing weather
    null_fraction = np.clip(0.01 + 0.003 * rng.standard_normal(N), 0, 1)
    null_fraction[at : at + 2] = 1.0
    candidates: list[CandidateSeries | CandidateEvent] = [
        _series("features", "temp", "null_fraction", null_fraction, importance=0.4),
        *_noise_candidates(rng, 4),
        CandidateEvent(
            asset_key="raw_weather",
            kind=SignalKind.RUN_FAILURE,
            partition=PARTITIONS[at],
            name="run 1a2b failed",
            lineage_distance=2,
        ),
    ]
    lineage = {"features": ["raw_weather", "raw_flights"], "model": ["features"]}
    result = attribute_performance_shift(_f1(f1), candidates, lineage=lineage)
    assert result.shift is not None
    assert (result.shift.onset_index, result.shift.detection_index) == (at, at)
    assert result.shift.degraded_partitions[:2] == tuple(PARTITIONS[at : at + 2])
    assert not result.shift.sustained  # two partitions: consequential only because explained
    assert result.consequential
    assert result.classification is IncidentClass.UPSTREAM_FAILURE
    assert (result.causes[0].kind, result.causes[0].asset_key) == ("run_failure", "raw_weather")
    assert result.causes[1].column == "temp"


def _events(kind: SignalKind, partition: str, distances: dict[str, int]) -> list[CandidateEvent]:
    """The same event on several assets in one partition (``{asset: lineage distance}``)."""
    return [
        CandidateEvent(
            asset_key=asset, kind=kind, partition=partition, name=kind.value, lineage_distance=hops
        )
        for asset, hops in distances.items()
    ]


def test_a_cascade_of_version_changes_is_blamed_on_its_top() -> None:
    """A re-delivered feed re-materializes everything below it in the same partition: the
    data-version changes on the join and the features are consequences of the feed's."""
    rng = np.random.default_rng(4)
    at = N - 6
    f1 = 0.80 + 0.008 * rng.standard_normal(N)
    f1[at : at + 2] -= 0.12
    null_fraction = np.clip(0.01 + 0.003 * rng.standard_normal(N), 0, 1)
    null_fraction[at : at + 2] = 1.0
    chain = {"raw_departures": 3, "joined": 2, "features": 1}
    candidates: list[CandidateSeries | CandidateEvent] = [
        _series("features", "dep_delay", "null_fraction", null_fraction, importance=0.4),
        *_noise_candidates(rng, 4),
        *_events(SignalKind.DATA_VERSION_CHANGE, PARTITIONS[at], chain),
    ]
    lineage = {"features": ["joined"], "joined": ["raw_departures", "raw_weather"]}
    for graph in (lineage, None):  # declared lineage, or only the distances
        result = attribute_performance_shift(_f1(f1), candidates, lineage=graph)
        assert result.consequential
        top = result.causes[0]
        assert (top.kind, top.asset_key) == ("data_version_change", "raw_departures"), graph


def test_two_code_releases_in_one_deploy_are_not_a_cascade() -> None:
    """A deploy that changes the code of the feed and of the features is two changes: the one
    whose symptom shows stays the cause, however far up the other sits."""
    rng = np.random.default_rng(3)
    f1 = 0.80 - 0.06 * (np.arange(N) >= ONSET) + 0.008 * rng.standard_normal(N)
    symptom = _step(13.0, 9.0) + 0.3 * rng.standard_normal(N)
    candidates: list[CandidateSeries | CandidateEvent] = [
        _series("features", "dep_hour", "mean", symptom, importance=0.3),
        *_noise_candidates(rng, 4),
        *_events(
            SignalKind.CODE_VERSION_CHANGE, PARTITIONS[ONSET], {"features": 1, "raw_departures": 3}
        ),
    ]
    lineage = {"features": ["joined"], "joined": ["raw_departures"]}
    result = attribute_performance_shift(_f1(f1), candidates, lineage=lineage)
    assert result.classification is IncidentClass.CODE_CHANGE
    assert (result.causes[0].kind, result.causes[0].asset_key) == (
        "code_version_change",
        "features",
    )


def test_without_lineage_a_downstream_event_is_not_taken_as_the_root_of_an_upstream_symptom() -> (
    None
):
    rng = np.random.default_rng(4)
    f1 = 0.80 - 0.06 * (np.arange(N) >= ONSET) + 0.008 * rng.standard_normal(N)
    symptom = np.clip(_step(0.01, 0.3) + 0.003 * rng.standard_normal(N), 0, 1)
    candidates: list[CandidateSeries | CandidateEvent] = [
        _series("raw_weather", "temp", "null_fraction", symptom, distance=3, importance=0.4),
        CandidateEvent(
            asset_key="features",
            kind=SignalKind.CODE_VERSION_CHANGE,
            partition=PARTITIONS[ONSET],
            lineage_distance=1,  # nearer the model than the symptom: downstream of it
        ),
    ]
    result = attribute_performance_shift(_f1(f1), candidates)
    assert result.classification is IncidentClass.DATA_FAULT
    assert result.causes[0].column == "temp"


def test_a_clean_metric_raises_no_consequential_incident() -> None:
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        f1 = 0.80 + 0.01 * _ar1((N,), 0.3, rng)
        result = attribute_performance_shift(_f1(f1), _noise_candidates(rng, 5), seed=seed)
        assert not result.consequential, seed
        assert result.classification in {IncidentClass.UNKNOWN, IncidentClass.BENIGN_DRIFT}


def test_lower_is_better_metrics_and_excluded_windows() -> None:
    rng = np.random.default_rng(9)
    log_loss = 0.40 + 0.01 * rng.standard_normal(N)
    log_loss[40:60] += 0.3  # an earlier, confirmed incident
    log_loss[ONSET:] += 0.05
    metric = MetricSeries(
        name="log_loss", partitions=PARTITIONS, values=log_loss, higher_is_better=False
    )
    result = attribute_performance_shift(metric, [], exclude=[(PARTITIONS[40], PARTITIONS[59])])
    assert result.shift is not None
    assert abs(result.shift.onset_index - ONSET) <= 1
    assert result.shift.loss == pytest.approx(0.05, abs=0.01)  # positive = worse
    assert result.shift.baseline_value == pytest.approx(0.40, abs=0.01)
    assert result.classification is IncidentClass.CONCEPT_DRIFT
    assert result.causes == ()


def test_an_event_a_confirmed_incident_explained_is_not_blamed_again() -> None:
    # A release at partition 40 caused the confirmed (resolved) incident of 40..59; the later drop
    # at ONSET is a new episode, and the old release must not be re-opened as its cause.
    rng = np.random.default_rng(9)
    f1 = 0.80 + 0.008 * rng.standard_normal(N)
    f1[40:60] -= 0.2
    f1[ONSET:] -= 0.06
    release = CandidateEvent(
        asset_key="features",
        kind=SignalKind.CODE_VERSION_CHANGE,
        partition=PARTITIONS[40],
        name="code_version 2 -> 3",
        lineage_distance=1,
    )
    window = [(PARTITIONS[40], PARTITIONS[59])]
    result = attribute_performance_shift(_f1(f1), [release], exclude=window)
    assert result.shift is not None and abs(result.shift.onset_index - ONSET) <= 1
    assert result.causes == ()
    assert result.classification is IncidentClass.CONCEPT_DRIFT
    assert any("confirmed incident's window" in note for note in result.notes)
    # Without the confirmed window it is a candidate like any other event.
    assert [c.partition for c in attribute_performance_shift(_f1(f1), [release]).causes] == [
        PARTITIONS[40]
    ]


def test_a_seasonal_baseline_finds_the_shift_under_a_weekly_pattern() -> None:
    rng = np.random.default_rng(6)
    times = [datetime(2013, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(N)]
    weekend = np.array([0.02 if moment.weekday() >= 5 else 0.0 for moment in times])
    f1 = 0.80 - weekend + 0.004 * rng.standard_normal(N)
    f1[ONSET:] -= 0.03
    metric = MetricSeries(
        name="f1", partitions=PARTITIONS, values=f1, higher_is_better=True, times=times
    )
    seasonal = attribute_performance_shift(
        metric, [], config=AttributionConfig(seasonality="day_of_week")
    )
    assert seasonal.shift is not None
    assert abs(seasonal.shift.onset_index - ONSET) <= 1
    assert seasonal.shift.sustained
    assert seasonal.shift.loss == pytest.approx(0.03, abs=0.005)
    assert seasonal.classification is IncidentClass.CONCEPT_DRIFT


def test_no_shift_is_explained_as_such() -> None:
    wobble = 0.8 + 0.005 * np.sin(np.arange(N))  # never beyond ~1 robust σ of its median
    result = attribute_performance_shift(_f1(wobble), [])
    assert result.shift is None
    assert not result.consequential
    assert result.classification is IncidentClass.UNKNOWN
    assert explain_attribution(result).startswith("**f1: no adverse performance shift.**")


def test_repair_recovery_is_the_recovered_share_of_the_loss() -> None:
    rng = np.random.default_rng(12)
    f1 = 0.80 - 0.1 * (np.arange(N) >= ONSET) + 0.005 * rng.standard_normal(N)
    candidates = _noise_candidates(rng, 5)
    answers: dict[str, float | RepairOutcome | None] = {
        candidates[0].key: 0.9,  # overshoots the baseline: clipped to 100 %
        candidates[1].key: RepairOutcome(repaired_value=0.75, degraded_value=0.70),
        candidates[2].key: None,  # could not be repaired
        # measured by the callback, the partitions are no worse than the baseline: no verdict
        candidates[3].key: RepairOutcome(repaired_value=0.85, degraded_value=0.82),
    }

    def repair(request: RepairRequest) -> float | RepairOutcome | None:
        return answers.get(request.candidate.key, request.degraded_value - 0.5)

    result = attribute_performance_shift(_f1(f1), candidates, repair=repair)
    shift = result.shift
    assert shift is not None
    by_key = {cause.evidence["candidate"]: cause for cause in result.causes}
    gap = shift.baseline_value - shift.degraded_value
    raw = (0.9 - shift.degraded_value) / gap
    assert by_key[candidates[0].key].repair_recovery == 1.0
    assert by_key[candidates[0].key].evidence["repair_recovery_raw"] == pytest.approx(raw)
    assert by_key[candidates[1].key].repair_recovery == pytest.approx(
        0.05 / (shift.baseline_value - 0.70)
    )
    assert by_key[candidates[2].key].repair_recovery is None
    assert by_key[candidates[3].key].repair_recovery is None
    assert any("show no loss" in note for note in result.notes)
    assert by_key[candidates[4].key].repair_recovery == -1.0  # made it worse: clipped
    weight = AttributionConfig().weight_repair
    top = by_key[candidates[0].key]
    assert top.score == pytest.approx(weight + (1 - weight) * top.evidence["observational_score"])


def test_results_are_deterministic_and_validate_their_inputs() -> None:
    rng = np.random.default_rng(1)
    f1 = 0.80 - 0.05 * (np.arange(N) >= ONSET) + 0.008 * rng.standard_normal(N)
    candidates = _noise_candidates(rng, 3)
    config = AttributionConfig(n_permutations=50)
    first = attribute_performance_shift(_f1(f1), candidates, config=config, seed=3)
    again = attribute_performance_shift(_f1(f1), candidates, config=config, seed=3)
    assert first == again
    with pytest.raises(InputDataError, match="repeat"):
        attribute_performance_shift(_f1(f1), [candidates[0], candidates[0]])
    with pytest.raises(InputDataError, match="excluded window"):
        attribute_performance_shift(_f1(f1), [], exclude=[("1999-01-01", PARTITIONS[3])])
    with pytest.raises(InputDataError, match="usable partitions"):
        attribute_performance_shift(
            MetricSeries(
                name="f1", partitions=PARTITIONS[:10], values=f1[:10], higher_is_better=True
            ),
            [],
        )
    outside = CandidateEvent(asset_key="raw", kind=SignalKind.RUN_FAILURE, partition="1999-01-01")
    result = attribute_performance_shift(_f1(f1), [outside])
    assert result.causes == ()
    assert any("outside the metric's series" in note for note in result.notes)


def test_two_hundred_candidates_over_a_hundred_partitions_take_under_a_second() -> None:
    rng = np.random.default_rng(0)
    n = 100
    partitions = PARTITIONS[:n]
    f1 = 0.80 - 0.06 * (np.arange(n) >= 70) + 0.008 * rng.standard_normal(n)
    values = 0.05 + 0.01 * _ar1((200, n), 0.5, rng)
    candidates = [
        CandidateSeries(
            asset_key=f"asset_{j % 10}",
            column=f"col_{j}",
            name="psi",
            partitions=partitions,
            values=values[j],
            lineage_distance=1 + j % 3,
            feature_importance=float(j % 7) / 7,
        )
        for j in range(200)
    ]
    metric = MetricSeries(name="f1", partitions=partitions, values=f1, higher_is_better=True)
    attribute_performance_shift(metric, candidates)  # warm caches (imports, FFT plans)
    elapsed = min(_timed(lambda: attribute_performance_shift(metric, candidates)) for _ in range(2))
    assert elapsed < 1.0


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_result_type_is_frozen() -> None:
    result = AttributionResult(
        metric="f1",
        shift=None,
        classification=IncidentClass.UNKNOWN,
        consequential=False,
        causes=(),
    )
    with pytest.raises(AttributeError):
        result.metric = "x"  # type: ignore[misc]
