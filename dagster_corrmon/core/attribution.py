"""Attribution: which upstream change or incident caused a model's performance shift.

Pure functions over plain series and events; the Dagster layer feeds them from the signal store
and the asset graph, and turns the result into an :class:`~dagster_corrmon.core.incident.Incident`.

The pipeline, in the order :func:`attribute_performance_shift` runs it:

1. **Detect the shift** on the model's metric series (:func:`detect_performance_shift`). A
   robust baseline (``core.baseline.fit_baseline``: median/MAD, optionally seasonal) is refitted
   on every prefix of the series, without excluded windows and earlier episodes, and scores the
   next partition. An adverse alarm opens an *episode* and freezes that baseline (an incident
   never leaks into its own baseline); the episode stays open while partitions stay degraded
   and closes once they have recovered (hysteresis). The latest episode is the shift: its first
   alarm is the *detection*. The *onset* — where the decline began, which for a gradual decay
   is well before the first alarm — comes from ``core.changepoint``: significant adverse change
   points in the residuals against the frozen baseline, walked back from the detection while
   the level before them was still degraded. The shift is *sustained* with enough alarms, a
   significant change point and a degraded mean; otherwise it counts only if a cause explains
   it (a lone alarm with no cause is most likely noise), and never when every degraded
   partition's bootstrap interval reaches the baseline (a blip within sampling noise).
   *Defect-anchored detection*: where a check failed (a quality rule, a schema contract: not
   drift) on a feature of at least ``min_importance``, and the metric there is worse than the
   baseline beyond its interval and by at least ``recovery_threshold`` robust σ, that is the
   shift — onset at the first failing partition, detection at the first measured loss — even
   with no alarm and no change point; the failing check explains it unless a repair test shows
   restoring it recovers at most ``concept_max_recovery`` (:func:`_defect_anchored_shift`).
2. **Evidence per candidate**, each candidate being a per-partition series on a lineage ancestor
   (null fraction, drift statistic, row count, ...) or a discrete event (code version change,
   run failure, missing batch, schema change, failed check):

   * *temporal precedence* ``P`` — the candidate's anomaly begins at or shortly before the onset
     (1), just after it, within the onset's uncertainty (0.5), or long before (decaying to 0 over
     one more window: a defect present through many healthy partitions is not the cause);
   * *association* ``A`` — a circular-shift permutation test of the correlation (the larger
     of |Pearson| and |Spearman|) between the candidate and the metric-loss series
     (:func:`circular_shift_pvalues`). Shifting one series against the other keeps both
     autocorrelations, which plain Pearson p-values ignore
     (NannyML's ranker reaches 15–43 % false positives at nominal 5 % on AR(1) series). The
     p-value is ``(b + 1) / (m + 1)`` (Phipson & Smyth 2010) and ``A = log(1/p) / log(m + 1)``
     maps it onto [0, 1], 1 being the smallest p-value the test can produce. An event enters
     the test as an indicator series: a step from its partition on for lasting changes (code,
     schema, data version), a pulse at its partition for one-off ones (run failure, missing or
     late batch, failed check);
   * *robust shift* ``S`` — BARO-style: the median of ``(x - median_before) / IQR_before`` over
     the degraded partitions, in IQR units, squashed as ``|z| / (|z| + shift_half)``;
   * *feature importance* ``I`` — the importance of the feature the column feeds, divided by the
     largest importance among the candidates;
   * *lineage* ``L`` — ``lineage_decay ** (hops - 1)``: every hop is a place where a defect can
     be absorbed, so nearer ancestors are a priori likelier;
   * *repair* ``R`` — the interventional test: the caller's ``repair`` callback re-scores the
     degraded partitions with the suspect column or feed restored, and
     ``R = (repaired - degraded) / (baseline - degraded)`` is the share of the loss recovered.

   q-values are Benjamini–Yekutieli across all candidates (valid under the arbitrary dependence
   of co-moving upstream signals).

3. **Score** in [0, 1]::

       E = Σ w_i c_i / Σ w_i   over the measured c_i ∈ {A, S, I, L}
       observational = P × E
       score = w_R × clip(R, 0, 1) + (1 − w_R) × observational   if R was measured
       score = observational                                      otherwise

   Why this shape: precedence multiplies because temporality is the one necessary condition for
   a cause (an association with the wrong timing is no evidence at all); the other observational
   components are averaged because each alone is weak and partial (importance and lineage are
   priors, association and shift are two views of the same coincidence); unmeasured components
   drop out rather than count as zero (an asset-level row count has no feature importance, an
   event has no shift size). The repair test gets the largest weight because it is an
   intervention: it separates a cause from the co-moving columns that share its timing, which no
   correlational statistic can. All weights are :class:`AttributionConfig` fields.

4. **Classify** (:class:`~dagster_corrmon.core.incident.IncidentClass`): a candidate *explains*
   the shift when its repair recovers at least ``min_repair_recovery`` of the loss, or — if it
   was not repaired — when it is timely (``P >= 0.5``), individually significant
   (``p <= significance_level``, or the smallest p-value the test can produce on a series too
   short to reach that level), scores at least ``explain_score`` and is not a feature of
   negligible importance. The *primary* cause is then chosen: an explaining series (an observed
   data defect) beats an event whose only evidence is its timing, but a timely event at or above
   that series in the lineage is its root cause and the series its symptom (a failed run shows up
   as nulls downstream; a buggy transform as a shifted feature). The primary cause decides: a run
   failure or missing/late batch → ``upstream_failure``; a code version change →
   ``code_change``; a data defect (series, schema change, failed check, data version) →
   ``data_fault``. No explanation for a sustained, significant loss, no timely upstream event
   and no repair recovering more than ``concept_max_recovery`` → ``concept_drift``; an input shift
   with no consequential loss → ``benign_drift``; anything else → ``unknown``.

5. **Rank**: the primary cause first, then by score. q-values are reported, not used to gate:
   with ``n`` partitions the circular-shift test cannot go below ``p = 1/n``, so under BY across
   ``m`` candidates no q-value can fall below ``m·(1 + 1/2 + … + 1/m)/n`` — with 200 candidates
   over 100 partitions that is above 1. A short history honestly cannot single out one of many
   candidates by correlation alone; that is what the repair test is for.

Every threshold is a documented field of :class:`AttributionConfig`; none is fitted to a dataset.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from dagster_corrmon.core.baseline import (
    Baseline,
    BaselineMethod,
    CalendarSeasonality,
    alarm_direction,
    fit_baseline,
)
from dagster_corrmon.core.changepoint import (
    ChangePoint,
    ChangePointMethod,
    detect_change_points,
    latest_onset,
)
from dagster_corrmon.core.incident import Cause, IncidentClass
from dagster_corrmon.core.markdown import escape_markdown, markdown_code
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

FloatArray = NDArray[np.float64]
#: Per-partition values as given: a sequence (``None`` or NaN = missing) or a numpy array.
Values = Sequence[float | None] | NDArray[Any]

# Events whose effect persists from the partition where they happen (a new code version stays
# deployed), versus events that hit one partition (a failed run, a missing batch).
PERSISTENT_EVENT_KINDS = frozenset(
    {
        SignalKind.CODE_VERSION_CHANGE,
        SignalKind.SCHEMA_CHANGE,
        SignalKind.DATA_VERSION_CHANGE,
    }
)
UPSTREAM_FAILURE_KINDS = frozenset({SignalKind.RUN_FAILURE, SignalKind.FRESHNESS})
CODE_CHANGE_KINDS = frozenset({SignalKind.CODE_VERSION_CHANGE})
# Checks whose failure is a *defect* of the data (a quality rule broken, a schema changed), not
# the world moving (drift): a failure of one on an important feature, where the metric shows a
# loss beyond its sampling noise, is a consequential data fault whatever the change-point test
# says (a one-partition defect has no change point to find).
DEFECT_ANCHOR_KINDS = frozenset({SignalKind.DATA_QUALITY, SignalKind.SCHEMA_CHANGE})

# Stable identifier of the statistics used, stored with results.
METHOD = "corrmon-attribution-v1"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _as_float_tuple(values: Values, *, what: str) -> tuple[float, ...]:
    try:
        return tuple(math.nan if value is None else float(value) for value in values)
    except (TypeError, ValueError) as error:
        raise InputDataError(f"{what}: values must be numbers or None ({error})") from error


def _check_partitions(partitions: Sequence[str], values: Values, *, what: str) -> None:
    if len(partitions) != len(values):
        raise InputDataError(
            f"{what}: {len(partitions)} partitions but {len(values)} values; they must pair up"
        )
    if len(set(partitions)) != len(partitions):
        raise InputDataError(f"{what}: partition keys repeat; each partition needs one value")


@dataclass(frozen=True, kw_only=True)
class MetricSeries:
    """One performance metric of one model, one value per partition, partitions in time order.

    ``values`` may hold NaN (or ``None``) where the metric could not be computed; those
    partitions are skipped. ``times`` (optional, aware datetimes, one per partition) let a
    seasonal baseline know the calendar.
    """

    name: str
    partitions: Sequence[str]
    values: Values
    higher_is_better: bool
    times: Sequence[datetime] | None = None
    model_asset: str | None = None
    #: Each partition's bootstrap confidence interval (``None``/NaN where none was computed):
    #: the metric's own sampling noise, against which a loss is *measured* (see
    #: :func:`loss_beyond_noise`).
    ci_low: Values | None = None
    ci_high: Values | None = None

    def __post_init__(self) -> None:
        what = f"metric {self.name!r}"
        object.__setattr__(self, "partitions", tuple(str(key) for key in self.partitions))
        object.__setattr__(self, "values", _as_float_tuple(self.values, what=what))
        _check_partitions(self.partitions, self.values, what=what)
        for bound in ("ci_low", "ci_high"):
            given = getattr(self, bound)
            if given is not None:
                object.__setattr__(self, bound, _as_float_tuple(given, what=f"{what} {bound}"))
                _check_partitions(self.partitions, getattr(self, bound), what=f"{what} {bound}")
        if self.times is not None:
            object.__setattr__(self, "times", tuple(self.times))
            if len(self.times) != len(self.partitions):
                raise InputDataError(f"{what}: {len(self.times)} times for {len(self.partitions)}")


@dataclass(frozen=True, kw_only=True)
class CandidateSeries:
    """A per-partition numeric signal on a lineage ancestor: a candidate cause.

    ``name`` is the signal (``"null_fraction"``, ``"psi"``, ``"row_count"``, ``"mean"``);
    ``kind`` its :class:`SignalKind`. ``partitions`` need not cover the metric's partitions: the
    series is aligned by key and partitions it lacks count as missing. ``data_versions`` maps a
    partition to the data version it was read from, so a cause can cite the faulty versions.
    """

    asset_key: str
    name: str
    partitions: Sequence[str]
    values: Values
    column: str | None = None
    kind: SignalKind = SignalKind.DATA_QUALITY
    lineage_distance: int | None = None
    feature_importance: float | None = None
    signal_keys: tuple[str, ...] = ()
    data_versions: Mapping[str, str] = field(default_factory=dict[str, str])
    #: Partitions where the check behind the series *failed* at ERROR severity (a defect the
    #: check itself judged, not merely a value): with a measured loss there, see
    #: :data:`DEFECT_ANCHOR_KINDS`.
    failed_partitions: Sequence[str] = ()

    def __post_init__(self) -> None:
        what = f"candidate {self.key!r}"
        object.__setattr__(self, "kind", SignalKind(self.kind))
        object.__setattr__(self, "partitions", tuple(str(key) for key in self.partitions))
        object.__setattr__(self, "failed_partitions", tuple(map(str, self.failed_partitions)))
        object.__setattr__(self, "values", _as_float_tuple(self.values, what=what))
        _check_partitions(self.partitions, self.values, what=what)
        _check_priors(self.lineage_distance, self.feature_importance, what=what)

    @property
    def key(self) -> str:
        """Stable identifier: ``asset[.column]:name``."""
        column = f".{self.column}" if self.column else ""
        return f"{self.asset_key}{column}:{self.name}"


@dataclass(frozen=True, kw_only=True)
class CandidateEvent:
    """A discrete upstream event at one partition: a candidate cause.

    ``kind`` is the :class:`SignalKind`: ``code_version_change``, ``data_version_change``,
    ``schema_change`` and ``data_quality`` (a failed check) mark data or code that changed;
    ``run_failure`` and ``freshness`` (a missing or late partition) mark an upstream failure.
    ``name`` says what happened (``"code_version 3 -> 4"``, ``"temp dropped"``).
    """

    asset_key: str
    kind: SignalKind
    partition: str
    name: str = ""
    column: str | None = None
    lineage_distance: int | None = None
    feature_importance: float | None = None
    signal_keys: tuple[str, ...] = ()
    data_versions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SignalKind(self.kind))
        object.__setattr__(self, "partition", str(self.partition))
        _check_priors(self.lineage_distance, self.feature_importance, what=f"event {self.key!r}")

    @property
    def key(self) -> str:
        """Stable identifier: ``asset[.column]:kind@partition[:name]``."""
        column = f".{self.column}" if self.column else ""
        name = f":{self.name}" if self.name else ""
        return f"{self.asset_key}{column}:{self.kind.value}@{self.partition}{name}"


Candidate = CandidateSeries | CandidateEvent


def _check_priors(distance: int | None, importance: float | None, *, what: str) -> None:
    if distance is not None and distance < 0:
        raise InputDataError(f"{what}: lineage_distance must be >= 0, got {distance}")
    if importance is not None and not (math.isfinite(importance) and importance >= 0):
        raise InputDataError(f"{what}: feature_importance must be finite and >= 0")


@dataclass(frozen=True, kw_only=True)
class RepairRequest:
    """What the ``repair`` callback is asked: re-score ``partitions`` with ``candidate`` restored.

    ``degraded_value`` is the mean of the metric series over ``partitions`` as observed and
    ``baseline_value`` the baseline level; a callback that aggregates the metric differently
    (pooling rows across partitions, say) should return a :class:`RepairOutcome` with its own
    degraded value so that both sides are measured alike.
    """

    candidate: Candidate
    partitions: tuple[str, ...]
    onset_partition: str
    degraded_value: float
    baseline_value: float


@dataclass(frozen=True, kw_only=True)
class RepairOutcome:
    """A repair result with the callback's own degraded value (same aggregation on both sides)."""

    repaired_value: float
    degraded_value: float


RepairFunction = Callable[[RepairRequest], "float | RepairOutcome | None"]


@dataclass(frozen=True, kw_only=True)
class AttributionConfig:
    """Every knob of attribution, with defaults that are conventions, not fits to a dataset.

    Shift detection:
        ``baseline_method``/``seasonality``: passed to ``core.baseline.fit_baseline``.
        ``min_reference``: partitions the baseline needs before it may raise an alarm.
        ``alarm_threshold``: the baseline score (robust z) beyond which a partition is adverse;
        ``None`` = the baseline method's default (3.5 for median/MAD, Iglewicz & Hoaglin's
        modified-z cut-off).
        ``recovery_threshold``: an open episode's partitions count as still degraded while
        they are at least this many robust σ worse than the frozen baseline (hysteresis: alarm
        at ``alarm_threshold``, recover below this);
        ``episode_gap``: the episode closes after more than this many recovered partitions in
        a row.
        ``onset_lookback``: how far apart (in partitions) the change points of one decline may
        be, walking back from the first alarm to where the decline began.
        ``changepoint_method``/``changepoint_penalty``/``min_segment``/
        ``changepoint_block_size``: passed to ``core.changepoint`` (a block size > 1 keeps the
        change point's permutation p-value honest on autocorrelated metrics).
        ``min_alarms``: a loss is *sustained* when its episode has at least this many alarms,
        a significant adverse change point marks it, and its mean is degraded (at least
        ``recovery_threshold`` robust σ worse than the baseline). A loss that is not sustained
        (one or two alarms: a blip, or a one-partition upstream failure) is consequential only
        when a candidate explains it — a lone alarm with no cause is most likely noise.
        ``min_effect``: the smallest loss, in metric units, that matters to the business (0 = any
        significant loss is consequential).
        ``significance_level``: for change points and q-values.

    Candidate evidence:
        ``precedence_window``: a cause may begin up to this many partitions before the onset;
        ``onset_tolerance``: ... or this many after it (the onset estimate's uncertainty).
        ``anomaly_threshold``: robust z (IQR units) above which a candidate partition is
        anomalous; 2.5 IQR ≈ 3.4 σ for normal data.
        ``shift_half``: the shift (IQR units) that gives half of the shift component.
        ``lineage_decay``: the lineage component's factor per extra hop.
        ``max_lag``: the association test also aligns the candidate up to this many partitions
        ahead of the metric (the maximum over lags is the statistic, so the test stays valid).
        ``n_permutations``: circular shifts used; ``None`` = all ``n - 1`` (exact, deterministic).
        ``max_repairs``: repair callbacks per analysis, in order of observational score.

    Score weights (see the module docstring): ``weight_association``, ``weight_shift``,
    ``weight_importance``, ``weight_lineage`` (averaged), ``weight_repair`` (share of the score
    given to the repair test when it was run).

    Classification:
        ``min_repair_recovery``: recovered loss share that makes a repaired candidate explain
        the shift; ``concept_max_recovery`` is the most any repair may recover for the loss to
        still count as concept drift.
        ``explain_score``: score at which an unrepaired, timely candidate explains the shift.
        ``min_importance``: below this normalised importance a feature cannot explain a loss
        without a repair test.

    Confidence: ``confidence_temperature`` is ``k`` in each cause's ``confidence``, a softmax
    over the candidates' scores with one more option, "none of them", scored at
    ``explain_score``: ``confidence_i = exp(k s_i) / (exp(k explain_score) + Σ_j exp(k s_j))``.
    It reads as the probability that candidate ``i`` is the cause: the candidates compete for
    it, and a top score below the explaining bar leaves most of it to "none". ``k`` is a
    convention, not a fit; its calibration is measured on generated scenario suites.
    """

    baseline_method: BaselineMethod = "median_mad"
    seasonality: CalendarSeasonality | int | None = None
    min_reference: int = 30
    alarm_threshold: float | None = None
    recovery_threshold: float = 1.0
    episode_gap: int = 2
    onset_lookback: int = 21
    changepoint_method: ChangePointMethod = "pelt"
    changepoint_penalty: float | None = None
    min_segment: int = 2
    changepoint_block_size: int = 1
    min_alarms: int = 3
    min_effect: float = 0.0
    significance_level: float = 0.05

    precedence_window: int = 3
    onset_tolerance: int = 1
    anomaly_threshold: float = 2.5
    shift_half: float = 2.0
    lineage_decay: float = 0.8
    max_lag: int = 0
    n_permutations: int | None = None
    max_repairs: int = 50

    weight_association: float = 0.35
    weight_shift: float = 0.25
    weight_importance: float = 0.25
    weight_lineage: float = 0.15
    weight_repair: float = 0.6

    confidence_temperature: float = 10.0

    min_repair_recovery: float = 0.5
    concept_max_recovery: float = 0.25
    explain_score: float = 0.6
    min_importance: float = 0.1

    def __post_init__(self) -> None:
        for name in ("min_reference", "min_segment", "min_alarms", "changepoint_block_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AttributionConfig.{name} must be >= 1")
        for name in (
            "episode_gap",
            "onset_lookback",
            "precedence_window",
            "onset_tolerance",
            "max_lag",
            "max_repairs",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"AttributionConfig.{name} must be >= 0")
        for name in (
            "weight_association",
            "weight_shift",
            "weight_importance",
            "weight_lineage",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"AttributionConfig.{name} must be >= 0")
        if not 0 <= self.weight_repair <= 1:
            raise ConfigError("AttributionConfig.weight_repair must be in [0, 1]")
        if not 0 < self.lineage_decay <= 1:
            raise ConfigError("AttributionConfig.lineage_decay must be in (0, 1]")
        if not 0 < self.significance_level < 1:
            raise ConfigError("AttributionConfig.significance_level must be in (0, 1)")
        if self.n_permutations is not None and self.n_permutations < 1:
            raise ConfigError("AttributionConfig.n_permutations must be >= 1 or None")
        if self.alarm_threshold is not None and self.alarm_threshold <= 0:
            raise ConfigError("AttributionConfig.alarm_threshold must be > 0")
        for name in ("anomaly_threshold", "shift_half", "confidence_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"AttributionConfig.{name} must be > 0")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ShiftDetection:
    """The performance shift: where it began, when it was detected, how large it is.

    ``loss`` is ``baseline_value - degraded_value`` oriented so that positive is worse (for a
    lower-is-better metric it is ``degraded - baseline``). ``degraded_partitions`` run from the
    onset to the last alarm of the episode.
    """

    metric: str
    higher_is_better: bool
    onset_index: int
    onset_partition: str
    detection_index: int
    detection_partition: str
    end_partition: str
    degraded_partitions: tuple[str, ...]
    baseline_value: float
    degraded_value: float
    loss: float
    alarm_count: int
    change_point_index: int | None
    change_point_significance: float | None
    sustained: bool  # min_alarms alarms and a significant change point: not a blip
    #: Whether a degraded partition's confidence interval excludes the baseline on the bad
    #: side (the loss is beyond the metric's sampling noise); ``None`` without intervals.
    measured_loss: bool | None = None
    #: The episode's last partition still worse than the baseline by ``recovery_threshold``
    #: robust σ (alarmed or not): the episode is over only after ``episode_gap`` partitions
    #: past it. ``None``: the end partition.
    last_degraded_partition: str | None = None
    #: The key of the failing defect check that anchored the detection (a measured loss in
    #: the partitions where a check on an important feature failed), if it did.
    anchor: str | None = None

    @property
    def relative_loss(self) -> float | None:
        """The loss as a share of the baseline level (``None`` when the baseline is 0)."""
        if self.baseline_value == 0:
            return None
        return self.loss / abs(self.baseline_value)


@dataclass(frozen=True, kw_only=True)
class AttributionResult:
    """What attribution concluded. ``shift`` is ``None`` when the metric did not shift."""

    metric: str
    shift: ShiftDetection | None
    classification: IncidentClass
    consequential: bool
    causes: tuple[Cause, ...]
    notes: tuple[str, ...] = ()
    method: str = METHOD

    @property
    def top_cause(self) -> Cause | None:
        return self.causes[0] if self.causes else None

    @property
    def explaining_causes(self) -> tuple[Cause, ...]:
        """The causes that met the classification's bar for explaining the shift."""
        return tuple(cause for cause in self.causes if cause.evidence.get("explains"))


# --------------------------------------------------------------------------------------------
# Statistics (public so that they can be tested against oracles on their own)
# --------------------------------------------------------------------------------------------


def circular_shift_pvalues(
    candidates: FloatArray,
    target: FloatArray,
    *,
    max_lag: int = 0,
    n_permutations: int | None = None,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray, int]:
    """Two-sided circular-shift permutation p-values of association with ``target``.

    ``candidates`` is ``(c, n)``, ``target`` ``(n,)``, both finite. The statistic is
    ``max_{0 <= lag <= max_lag} max(|pearson|, |spearman|)(roll(x, lag), target)``: Spearman for
    robustness to heavy tails, Pearson for power on short spikes. Its null distribution comes
    from rotating each candidate by ``k`` partitions (``k = 1 .. n-1``, less the ``2 max_lag``
    rotations whose lag window overlaps the observed one; or a seeded random ``n_permutations``
    of them), which keeps the candidate's autocorrelation intact — the
    dependence that makes ordinary correlation p-values far too small on time series. Under the
    null of a stationary candidate independent of the target, every rotation is equally likely,
    so ``p = (b + 1) / (m + 1)`` with ``b`` rotations at least as extreme among ``m`` is valid
    (Phipson & Smyth 2010: never zero). All rotations come from one FFT cross-correlation.

    Returns ``(p_values, statistics, m)``. A constant candidate (or target) gets p = 1, stat 0.
    """
    matrix = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    target = np.asarray(target, dtype=np.float64)
    n = matrix.shape[1]
    if target.shape != (n,):
        raise InputDataError(f"target has shape {target.shape}, candidates need ({n},)")
    if n < 3:
        raise InsufficientDataError(f"circular-shift test needs >= 3 partitions, got {n}")
    if max_lag < 0 or 2 * max_lag + 1 >= n:
        raise InputDataError(f"max_lag={max_lag} leaves no rotation to compare with (n={n})")
    if not (np.isfinite(matrix).all() and np.isfinite(target).all()):
        raise InputDataError("circular-shift test needs finite values (impute missing first)")

    ranks = _standardize(np.asarray(stats.rankdata(matrix, axis=1), dtype=np.float64))
    target_ranks = _standardize(np.asarray(stats.rankdata(target), dtype=np.float64)[None, :])[0]
    # Spearman is robust to heavy tails (drift statistics, row counts); Pearson keeps the power
    # that ranks throw away on a short spike (a null fraction of 1.0 for two partitions is just
    # two top ranks among hundreds). The larger of the two is the statistic — the same for every
    # rotation, so the test stays exact.
    correlation = np.maximum(
        _circular_correlation(ranks, target_ranks),
        _circular_correlation(_standardize(matrix), _standardize(target[None, :])[0]),
    )
    statistic = correlation.copy()
    for lag in range(1, max_lag + 1):
        statistic = np.maximum(statistic, np.roll(correlation, -lag, axis=1))

    # Rotations whose lag window overlaps the observed one share its terms and would tie with
    # it by construction; they are left out (for max_lag = 0 this excludes nothing).
    rotations = np.arange(max_lag + 1, n - max_lag)
    if n_permutations is not None and n_permutations < rotations.size:
        rotations = np.random.default_rng(seed).choice(
            rotations, size=n_permutations, replace=False
        )
    observed = statistic[:, 0]
    # A tolerance so that rotations tied with the observed value (common with step series) are
    # counted as ties despite floating-point noise in the FFT.
    exceed = (statistic[:, rotations] >= observed[:, None] - 1e-9).sum(axis=1)
    p_values = (exceed + 1.0) / (rotations.size + 1.0)
    constant = ~np.isfinite(ranks).all(axis=1) | (not np.isfinite(target_ranks).all())
    p_values[constant] = 1.0
    observed = np.where(constant, 0.0, observed)
    return p_values, observed, int(rotations.size)


def _circular_correlation(rows: FloatArray, target: FloatArray) -> FloatArray:
    """``|corr(roll(row, j), target)|`` for every row and every rotation ``j``, by FFT.

    Rows and target are standardised (mean 0, RMS 1), so ``mean_t x[t - j] * y[t]`` is the
    Pearson correlation of the rotated row with the target.
    """
    n = target.size
    spectrum = np.conj(np.fft.rfft(rows, axis=1)) * np.fft.rfft(target)[None, :]
    return np.abs(np.fft.irfft(spectrum, n=n, axis=1)) / n


def _standardize(rows: FloatArray) -> FloatArray:
    centred = rows - rows.mean(axis=1, keepdims=True)
    spread = np.sqrt((centred**2).mean(axis=1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 1e-12, centred / np.where(spread > 0, spread, 1.0), np.nan)


def benjamini_yekutieli(p_values: Sequence[float] | FloatArray) -> FloatArray:
    """Benjamini–Yekutieli adjusted p-values (q-values), valid under any dependence.

    Upstream signals co-move (one bad feed shifts many columns), so the positive-dependence
    assumption of Benjamini–Hochberg cannot be taken for granted; BY pays a ``Σ 1/i`` factor for
    that. Delegates to :func:`scipy.stats.false_discovery_control`.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    return np.asarray(stats.false_discovery_control(p, method="by"), dtype=np.float64)


def robust_shift(before: FloatArray, after: FloatArray) -> tuple[float, float, float, float]:
    """BARO-style shift of ``after`` against ``before``, in IQR units of ``before``.

    Returns ``(shift, median_before, median_after, scale)`` where ``shift`` is the median of
    ``(after - median(before)) / scale``; ``scale`` is the IQR of ``before``, or — when the
    reference is (nearly) constant, as a null fraction of zero is — twice its MAD, 1.349 × its
    standard deviation, and at last a floor of ``1e-6 × max(1, |median|)``, so a jump off a
    constant reads as a very large, finite shift. NaNs are ignored; an empty side gives NaN.
    """
    before = before[np.isfinite(before)]
    after = after[np.isfinite(after)]
    if before.size == 0 or after.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    median_before = float(np.median(before))
    scale = _robust_scale(before, median_before)
    z = (after - median_before) / scale
    return float(np.median(z)), median_before, float(np.median(after)), scale


def _robust_scale(reference: FloatArray, centre: float) -> float:
    q75, q25 = np.percentile(reference, [75, 25])
    for scale in (
        float(q75 - q25),
        2.0 * float(np.median(np.abs(reference - centre))),
        1.349 * float(np.std(reference)),
    ):
        if scale > 1e-12:
            return scale
    return 1e-6 * max(1.0, abs(centre))


def precedence_score(lead: int | None, *, window: int, tolerance: int) -> float:
    """Temporal precedence in [0, 1] from ``lead`` = onset index − candidate start index.

    1 for a start 0 … ``window`` partitions before the onset; 0.5 for up to ``tolerance`` after
    it (the onset estimate is uncertain by about that much); decaying linearly to 0 over one more
    ``window`` for starts further back (a defect that was already there during healthy
    partitions did not cause the shift); 0 for later starts or none.
    """
    if lead is None:
        return 0.0
    if 0 <= lead <= window:
        return 1.0
    if -tolerance <= lead < 0:
        return 0.5
    if lead > window:
        return max(0.0, 1.0 - (lead - window) / max(window, 1))
    return 0.0


def resolve_feature_importance(
    asset_key: str,
    column: str | None,
    *,
    importances: Mapping[str, float],
    column_lineage: Mapping[str, Sequence[str]] | None = None,
) -> float | None:
    """The importance of the model features a column feeds, or ``None`` if it feeds none.

    A column maps to a feature by name (the column *is* the feature) or through
    ``column_lineage``, ``{feature: [source columns]}``, whose sources are written ``column`` or
    ``asset_key.column``. A column feeding several features gets the sum of their importances:
    restoring it restores all of them.
    """
    if column is None:
        return None
    qualified = f"{asset_key}.{column}"
    features: set[str] = set()
    if column in importances:
        features.add(column)
    for feature, sources in (column_lineage or {}).items():
        if feature in importances and (qualified in sources or column in sources):
            features.add(feature)
    if not features:
        return None
    return float(sum(importances[feature] for feature in features))


# --------------------------------------------------------------------------------------------
# Shift detection
# --------------------------------------------------------------------------------------------


def detect_performance_shift(
    metric: MetricSeries,
    *,
    config: AttributionConfig = AttributionConfig(),
    exclude: Sequence[tuple[str, str]] = (),
    hold_out: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> ShiftDetection | None:
    """The latest adverse performance shift in ``metric``, or ``None``.

    ``exclude`` lists ``(first, last)`` partition-key windows (confirmed incidents) the baseline
    must not learn from. ``hold_out`` lists windows the baseline must not learn from either but
    that are still scored: an *open* incident's, so that a persistent change stays a shift
    against the level before it instead of becoming the baseline. See the module docstring for
    the procedure. Only the *latest* episode is analysed: to look at an earlier one, pass the
    series up to it.
    """
    return _detect_shift(metric, config=config, exclude=exclude, hold_out=hold_out, seed=seed)[0]


@dataclass
class _Episode:
    """An open or closed run of degraded partitions, scored against one frozen baseline."""

    baseline: Baseline
    first: int
    last: int  # last degraded partition (alarmed or not)
    alarm_indices: list[int]
    quiet: int = 0


def _detect_shift(
    metric: MetricSeries,
    *,
    config: AttributionConfig,
    exclude: Sequence[tuple[str, str]],
    seed: int,
    hold_out: Sequence[tuple[str, str]] = (),
) -> tuple[ShiftDetection | None, list[str]]:
    notes: list[str] = []
    values = np.asarray(metric.values, dtype=np.float64)
    n = values.size
    excluded = _excluded_mask(metric.partitions, exclude)
    usable = np.isfinite(values) & ~excluded
    held = _excluded_mask(metric.partitions, hold_out) & usable
    if int((usable & ~held).sum()) < config.min_reference + 1:
        raise InsufficientDataError(
            f"metric {metric.name!r}: {int((usable & ~held).sum())} usable partitions (finite, "
            f"not excluded or held out); detecting a shift needs at least min_reference + 1 = "
            f"{config.min_reference + 1}"
        )
    times: Sequence[Any] = metric.times if metric.times is not None else list(range(n))
    direction = alarm_direction(higher_is_better=metric.higher_is_better)
    orientation = 1.0 if metric.higher_is_better else -1.0

    # Expanding-window baseline with hysteresis. Outside an episode, partition t is scored
    # against everything usable before it (less earlier episodes); an alarm opens an episode
    # and freezes that baseline, so an ongoing incident never leaks into its own baseline
    # (Elementary's #1589). The episode stays open while partitions stay degraded — worse than
    # the frozen baseline by at least recovery_threshold robust σ — and closes after more than
    # episode_gap partitions in a row have recovered.
    history = np.where(usable & ~held, values, np.nan)
    episodes: list[_Episode] = []
    current: _Episode | None = None
    for t in range(n):
        if not usable[t]:
            continue
        if current is None:
            if int(np.isfinite(history[:t]).sum()) < config.min_reference:
                continue
            baseline = _metric_baseline(history[:t], times[:t], config, direction)
            score = baseline.score(float(values[t]), times[t])
            if score.anomalous:
                current = _Episode(baseline=baseline, first=t, last=t, alarm_indices=[t])
                episodes.append(current)
                history[t] = np.nan
            continue
        score = current.baseline.score(float(values[t]), times[t])
        history[t] = np.nan
        worse = -score.z if metric.higher_is_better else score.z
        if score.anomalous:
            current.alarm_indices.append(t)
        if score.anomalous or worse >= config.recovery_threshold:
            current.last, current.quiet = t, 0
            continue
        current.quiet += 1
        if current.quiet > config.episode_gap:
            for back in range(current.last + 1, t + 1):
                history[back] = values[back] if usable[back] and not held[back] else np.nan
            current = None
    if not episodes:
        return None, notes
    episode = episodes[-1]
    if len(episodes) > 1:
        notes.append(
            f"{len(episodes) - 1} earlier episode(s) before {metric.partitions[episode.first]} "
            "were not analysed"
        )
    # The degraded window ends at the last alarm: mildly degraded partitions after it kept the
    # episode open but are not clearly part of the loss.
    detection, end = episode.first, episode.alarm_indices[-1]
    frozen = episode.baseline
    # Residuals against the frozen baseline's expectation (its season's centre, if seasonal):
    # change points are sought in them, so a weekly pattern is not mistaken for level shifts.
    expected = np.full(n, np.nan)
    for t in np.flatnonzero(usable).tolist():
        expected[t] = frozen.score(float(values[t]), times[t]).expected
    residuals = np.where(usable, values - expected, np.nan)
    scale = frozen.overall.scale

    def degraded_level(residual: float) -> bool:
        z = -residual / scale if scale > 0 else -math.copysign(math.inf, residual)
        return orientation * z >= config.recovery_threshold

    # The onset: walk back from the detection through significant adverse change points whose
    # level before was still degraded (a gradual decay is a staircase of small steps), each
    # within onset_lookback of the next; the first with a healthy level before is the onset.
    change_points = detect_change_points(
        residuals,
        method=config.changepoint_method,
        penalty=config.changepoint_penalty,
        min_size=config.min_segment,
        seed=seed,
        block_size=config.changepoint_block_size,
    )
    significant = [
        change for change in change_points if change.significance <= config.significance_level
    ]

    def adverse(change: ChangePoint) -> bool:
        return orientation * (change.mean_before - change.mean_after) > 0

    near = [
        change
        for change in significant
        if adverse(change) and abs(change.index - detection) <= config.onset_lookback
    ]
    if near and all(change.index > detection + config.onset_tolerance for change in near):
        # The only adverse change comes after the first alarm: the early alarm(s) were noise
        # that happened to precede the real shift, which the episode then absorbed. Re-anchor
        # the detection on the first alarm at or after the change.
        later = min(change.index for change in near)
        detection = next(t for t in episode.alarm_indices if t >= later - config.onset_tolerance)
        notes.append(
            f"the first alarm(s) of the episode precede its change point at "
            f"{metric.partitions[later]}: detection re-anchored to {metric.partitions[detection]}"
        )
    onset_change: ChangePoint | None = None
    reach = detection
    for change in reversed(significant):
        if change.index > detection + config.onset_tolerance:
            continue
        if not adverse(change) or reach - change.index > config.onset_lookback:
            break
        onset_change, reach = change, change.index
        if not degraded_level(change.mean_before):
            break
    onset = min(onset_change.index, detection) if onset_change is not None else detection
    adverse_in_episode = any(
        adverse(change)
        for change in significant
        if detection - config.onset_lookback <= change.index <= end
    )
    significant_change = onset_change is not None or adverse_in_episode
    episode_alarms = sum(1 for t in episode.alarm_indices if t >= detection)

    degraded = [t for t in range(onset, end + 1) if usable[t]]
    baseline_value = float(np.mean(expected[degraded]))
    degraded_value = float(np.mean(values[degraded]))
    loss = orientation * (baseline_value - degraded_value)
    beyond = [
        measured
        for t in degraded
        if (measured := loss_beyond_noise(metric, t, float(expected[t]))) is not None
    ]
    shift = ShiftDetection(
        metric=metric.name,
        higher_is_better=metric.higher_is_better,
        onset_index=onset,
        onset_partition=metric.partitions[onset],
        detection_index=detection,
        detection_partition=metric.partitions[detection],
        end_partition=metric.partitions[end],
        degraded_partitions=tuple(metric.partitions[t] for t in degraded),
        baseline_value=baseline_value,
        degraded_value=degraded_value,
        loss=loss,
        alarm_count=episode_alarms,
        change_point_index=onset_change.index if onset_change is not None else None,
        change_point_significance=(onset_change.significance if onset_change is not None else None),
        sustained=(
            episode_alarms >= config.min_alarms
            and significant_change
            and degraded_level(degraded_value - baseline_value)
        ),
        measured_loss=any(beyond) if beyond else None,
        last_degraded_partition=metric.partitions[max(episode.last, end)],
    )
    return shift, notes


def _metric_baseline(
    history: FloatArray, times: Sequence[Any], config: AttributionConfig, direction: Any
) -> Baseline:
    """The metric's baseline over ``history`` (NaN = left out), as the config asks for it."""
    return fit_baseline(
        history,
        list(times),
        method=config.baseline_method,
        seasonality=config.seasonality,
        threshold=config.alarm_threshold,
        direction=direction,
        min_points=min(config.min_reference, 5),
    )


def loss_beyond_noise(metric: MetricSeries, index: int, expected: float) -> bool | None:
    """Whether partition ``index`` is worse than ``expected`` beyond its sampling noise.

    True when the partition's bootstrap confidence interval lies wholly on the bad side of the
    expected (baseline) level — its bound nearest to health is still worse — so the loss is not
    the luck of which rows the partition held. ``None`` when the partition has no interval.
    """
    bounds = metric.ci_high if metric.higher_is_better else metric.ci_low
    if bounds is None:
        return None
    bound = float(bounds[index])  # type: ignore[arg-type]
    if not (math.isfinite(bound) and math.isfinite(expected)):
        return None
    return bound < expected if metric.higher_is_better else bound > expected


def _defect_anchored_shift(
    metric: MetricSeries,
    evidence: Sequence["_Evidence"],
    *,
    config: AttributionConfig,
    excluded: np.ndarray,
    held: np.ndarray,
) -> ShiftDetection | None:
    """A shift detected by a failing defect check instead of by the metric's own alarms.

    The change-point detector needs several degraded partitions and a level change to call a
    loss sustained; a defect the checks caught in one partition (a null spike, a recoded
    category, a renamed column) has neither, yet it costs the partitions it hits. So: for each
    candidate whose check failed (:data:`DEFECT_ANCHOR_KINDS`) on a feature of at least
    ``min_importance`` (normalised), take its latest run of consecutive failing partitions and
    measure the metric there against a baseline fitted on the usable partitions before the run.
    A partition counts when its interval excludes the baseline (:func:`loss_beyond_noise`; the
    baseline's anomaly flag where no interval exists) *and* it is at least
    ``recovery_threshold`` robust σ worse — outside both the sampling noise of its rows and the
    usual partition-to-partition spread. The shift runs from the run's first failing partition
    (the onset) to its last measured loss; the first measured loss is the detection. The latest
    such shift wins (ties: the more important feature).
    """
    values = np.asarray(metric.values, dtype=np.float64)
    n = values.size
    usable = np.isfinite(values) & ~excluded
    times: Sequence[Any] = metric.times if metric.times is not None else list(range(n))
    position = {key: index for index, key in enumerate(metric.partitions)}
    orientation = 1.0 if metric.higher_is_better else -1.0
    direction = alarm_direction(higher_is_better=metric.higher_is_better)
    best: tuple[tuple[int, float], ShiftDetection] | None = None
    for item in evidence:
        candidate = item.candidate
        if candidate.kind not in DEFECT_ANCHOR_KINDS:
            continue
        if (item.importance_component or 0.0) < config.min_importance:
            continue
        if isinstance(candidate, CandidateSeries):
            failed = sorted(position[p] for p in candidate.failed_partitions if p in position)
        else:
            failed = [position[candidate.partition]]
        failed = [t for t in failed if usable[t]]
        if not failed:
            continue
        run = [failed[-1]]
        for t in reversed(failed[:-1]):
            if t != run[0] - 1 and bool(np.any(usable[t + 1 : run[0]])):
                break
            run.insert(0, t)
        first = run[0]
        history = np.where(usable & ~held, values, np.nan)[:first]
        if int(np.isfinite(history).sum()) < config.min_reference:
            continue
        baseline = _metric_baseline(history, times[:first], config, direction)
        expected: dict[int, float] = {}
        hits: list[int] = []
        alarms = 0
        for t in run:
            score = baseline.score(float(values[t]), times[t])
            expected[t] = score.expected
            worse = -score.z if metric.higher_is_better else score.z
            beyond = loss_beyond_noise(metric, t, score.expected)
            alarms += int(score.anomalous)
            if (score.anomalous if beyond is None else beyond) and (
                worse >= config.recovery_threshold
            ):
                hits.append(t)
        if not hits:
            continue
        degraded = [t for t in run if t <= hits[-1]]
        baseline_value = float(np.mean([expected[t] for t in degraded]))
        degraded_value = float(np.mean(values[degraded]))
        shift = ShiftDetection(
            metric=metric.name,
            higher_is_better=metric.higher_is_better,
            onset_index=first,
            onset_partition=metric.partitions[first],
            detection_index=hits[0],
            detection_partition=metric.partitions[hits[0]],
            end_partition=metric.partitions[hits[-1]],
            degraded_partitions=tuple(metric.partitions[t] for t in degraded),
            baseline_value=baseline_value,
            degraded_value=degraded_value,
            loss=orientation * (baseline_value - degraded_value),
            alarm_count=alarms,
            change_point_index=None,
            change_point_significance=None,
            sustained=False,
            measured_loss=True,
            anchor=candidate.key,
        )
        rank = (hits[-1], item.importance_component or 0.0)
        if best is None or rank > best[0]:
            best = (rank, shift)
    return best[1] if best is not None else None


def _latest_change(values: FloatArray, *, config: AttributionConfig, seed: int) -> int | None:
    """Index of the latest significant change in mean of a candidate series, if any."""
    change = latest_onset(
        values,
        method=config.changepoint_method,
        penalty=config.changepoint_penalty,
        min_size=config.min_segment,
        seed=seed,
        alpha=config.significance_level,
        n_permutations=199,
        block_size=config.changepoint_block_size,
    )
    return None if change is None else int(change.index)


# --------------------------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------------------------


@dataclass
class _Evidence:
    """Working record for one candidate while the analysis runs."""

    candidate: Candidate
    row: int  # row in the association matrix
    start_index: int | None = None
    lead: int | None = None
    precedence: float = 0.0
    shift: float | None = None
    median_before: float | None = None
    median_after: float | None = None
    p_value: float = 1.0
    p_floor: float = 0.0  # the smallest p-value the association test could produce
    statistic: float = 0.0
    q_value: float = 1.0
    association: float = 0.0
    importance: float | None = None
    importance_component: float | None = None
    lineage_component: float | None = None
    observational: float = 0.0
    repair_recovery: float | None = None
    repair_raw: float | None = None
    score: float = 0.0
    explains: bool = False
    primary: bool = False  # the cause the classification rests on: ranked first
    root_of: str | None = None  # this event is the root cause of that explaining symptom
    explained_by: str | None = None  # this symptom is explained by that event
    anomalous: NDArray[np.int_] | None = None  # partitions where the series is anomalous


def attribute_performance_shift(
    metric: MetricSeries,
    candidates: Sequence[Candidate],
    *,
    repair: RepairFunction | None = None,
    config: AttributionConfig = AttributionConfig(),
    feature_importances: Mapping[str, float] | None = None,
    column_lineage: Mapping[str, Sequence[str]] | None = None,
    lineage: Mapping[str, Sequence[str]] | None = None,
    exclude: Sequence[tuple[str, str]] = (),
    hold_out: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> AttributionResult:
    """Detect the shift in ``metric`` and rank ``candidates`` as its cause, with evidence.

    ``feature_importances`` (``{feature: importance}``) and ``column_lineage``
    (``{feature: [source columns]}``) fill in the importance of candidates that carry none (see
    :func:`resolve_feature_importance`). ``lineage`` (``{asset: [upstream assets]}``) lets an
    event be recognised as the root of a symptom on a downstream asset; without it, an event at
    least as far from the model as the symptom counts as upstream of it. ``repair`` is the
    interventional test (:class:`RepairRequest`); it runs only when a shift was found, for at
    most ``config.max_repairs`` candidates. ``exclude`` lists confirmed-incident windows
    ``(first, last)`` kept out of the baseline; a discrete event inside one is not a candidate
    (that incident explained it). ``hold_out`` lists open incidents' windows, scored but kept
    out of the baseline (see :func:`detect_performance_shift`). ``seed`` makes subsampled
    permutations and the change-point search reproducible.
    """
    shift, shift_notes = _detect_shift(
        metric, config=config, exclude=exclude, hold_out=hold_out, seed=seed
    )
    notes = list(shift_notes)
    partitions = tuple(metric.partitions)
    n = len(partitions)
    position = {key: index for index, key in enumerate(partitions)}
    excluded = _excluded_mask(partitions, exclude)

    series = [c for c in candidates if isinstance(c, CandidateSeries)]
    events: list[CandidateEvent] = []
    for event in (c for c in candidates if isinstance(c, CandidateEvent)):
        if event.partition not in position:
            notes.append(
                f"event {event.key} is at a partition outside the metric's series; not analysed"
            )
        elif excluded[position[event.partition]]:
            # A confirmed incident already explained it (and was resolved): a later episode
            # must find its own cause, not re-open that one.
            notes.append(
                f"event {event.key} lies in a confirmed incident's window; not a candidate again"
            )
        else:
            events.append(event)
    keys = [c.key for c in (*series, *events)]
    if len(set(keys)) != len(keys):
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        raise InputDataError(f"candidate keys repeat: {duplicates}; each candidate needs one key")

    matrix = np.full((len(series) + len(events), n), np.nan)
    for row, candidate in enumerate(series):
        for key, value in zip(candidate.partitions, candidate.values, strict=True):
            if key in position:
                matrix[row, position[key]] = value
    for offset, event in enumerate(events):
        at = position[event.partition]
        indicator = np.zeros(n)
        if event.kind in PERSISTENT_EVENT_KINDS:
            indicator[at:] = 1.0
        else:
            indicator[at] = 1.0
        matrix[len(series) + offset] = indicator

    evidence = [_Evidence(candidate=c, row=row) for row, c in enumerate((*series, *events))]
    for item in evidence[len(series) :]:
        assert isinstance(item.candidate, CandidateEvent)
        item.start_index = position[item.candidate.partition]
    _fill_priors(evidence, config, feature_importances, column_lineage)
    shift = _with_defect_anchor(
        shift, metric, evidence, config=config, excluded=excluded, hold_out=hold_out, notes=notes
    )
    _fill_association(evidence, matrix, metric, config=config, seed=seed, notes=notes)
    if shift is not None:
        end = position[shift.end_partition]
        _fill_timing(
            evidence,
            matrix=matrix,
            n_series=len(series),
            onset=shift.onset_index,
            end=end,
            excluded=excluded,
            config=config,
            notes=notes,
        )
    else:
        _fill_own_change(
            evidence,
            matrix=matrix,
            n_series=len(series),
            excluded=excluded,
            config=config,
            seed=seed,
        )
    for item in evidence:
        item.observational = _observational_score(item, config, gated=shift is not None)
        item.score = item.observational
    if shift is not None and repair is not None:
        _run_repairs(evidence, repair, shift, config, notes)
    for item in evidence:
        item.score = _final_score(item, config)

    classification, consequential = _classify(evidence, shift, config, lineage, notes, position)
    if not consequential:
        if shift is not None:
            # A blip is no anchor: judge the inputs on their own changes, as without a shift.
            for item in evidence:
                if isinstance(item.candidate, CandidateSeries):
                    item.start_index = item.shift = item.anomalous = None
                    item.median_before = item.median_after = None
                item.lead, item.precedence, item.explains = None, 0.0, False
            _fill_own_change(
                evidence,
                matrix=matrix,
                n_series=len(series),
                excluded=excluded,
                config=config,
                seed=seed,
            )
            for item in evidence:
                item.observational = _observational_score(item, config, gated=False)
                item.score = _final_score(item, config)
        drifted = [
            item.candidate.key
            for item in evidence
            if item.shift is not None and abs(item.shift) >= config.anomaly_threshold
        ]
        # Benign means the performance did not suffer: no shift, one within the metric's
        # sampling noise, or one below min_effect. A loss beyond the noise that is merely not
        # sustained or not explained is no evidence of harmlessness: it stays unknown.
        harmless = (
            shift is None
            or shift.loss <= 0
            or shift.loss < config.min_effect
            or shift.measured_loss is False
        )
        if drifted and harmless:
            classification = IncidentClass.BENIGN_DRIFT
            notes.append(f"inputs shifted without a consequential loss: {', '.join(drifted)}")
        elif drifted:
            notes.append(
                f"inputs shifted ({', '.join(drifted)}) and the metric lost ground beyond its "
                "noise, but the loss is neither sustained nor explained: not called benign"
            )
    ordered = sorted(
        evidence,
        key=lambda item: (
            not item.primary,
            -item.score,
            isinstance(item.candidate, CandidateSeries),
            item.candidate.lineage_distance if item.candidate.lineage_distance is not None else 99,
            item.candidate.key,
        ),
    )
    confidences = _confidences([item.score for item in ordered], config) if shift else None
    causes = tuple(
        _to_cause(item, rank, metric, confidences[rank - 1] if confidences else None)
        for rank, item in enumerate(ordered, start=1)
    )
    return AttributionResult(
        metric=metric.name,
        shift=shift,
        classification=classification,
        consequential=consequential,
        causes=causes,
        notes=tuple(notes),
    )


def _with_defect_anchor(
    shift: ShiftDetection | None,
    metric: MetricSeries,
    evidence: Sequence["_Evidence"],
    *,
    config: AttributionConfig,
    excluded: np.ndarray,
    hold_out: Sequence[tuple[str, str]],
    notes: list[str],
) -> ShiftDetection | None:
    """The shift to analyse, given what the failing defect checks say (see
    :func:`_defect_anchored_shift`).

    A defect-anchored shift replaces the detector's when the detector found none, found only a
    blip (not sustained), or found one that ended before the defect's measured loss (the defect
    is the latest episode). When the detector's sustained shift covers the defect's run, it is
    kept and only marked with the anchor: the failing check is then evidence for its cause.
    """
    held = _excluded_mask(metric.partitions, hold_out)
    anchored = _defect_anchored_shift(metric, evidence, config=config, excluded=excluded, held=held)
    if anchored is None:
        return shift
    position = {key: index for index, key in enumerate(metric.partitions)}
    if (
        shift is None
        or not shift.sustained
        or anchored.detection_index > position[shift.end_partition]
    ):
        notes.append(
            f"detected by the failing check {anchored.anchor}: a loss beyond the metric's "
            f"sampling noise from {anchored.detection_partition}"
        )
        return anchored
    window_start = shift.onset_index - config.precedence_window
    if window_start <= anchored.onset_index <= position[shift.end_partition]:
        return replace(shift, anchor=anchored.anchor)
    return shift


def _excluded_mask(partitions: Sequence[str], exclude: Sequence[tuple[str, str]]) -> np.ndarray:
    position = {key: index for index, key in enumerate(partitions)}
    mask = np.zeros(len(partitions), dtype=bool)
    for first, last in exclude:
        if first not in position or last not in position:
            raise InputDataError(
                f"excluded window ({first!r}, {last!r}) names a partition the metric lacks"
            )
        mask[position[first] : position[last] + 1] = True
    return mask


def _fill_priors(
    evidence: list[_Evidence],
    config: AttributionConfig,
    feature_importances: Mapping[str, float] | None,
    column_lineage: Mapping[str, Sequence[str]] | None,
) -> None:
    for item in evidence:
        candidate = item.candidate
        item.importance = candidate.feature_importance
        if item.importance is None and feature_importances is not None:
            item.importance = resolve_feature_importance(
                candidate.asset_key,
                candidate.column,
                importances=feature_importances,
                column_lineage=column_lineage,
            )
        if candidate.lineage_distance is not None:
            item.lineage_component = config.lineage_decay ** max(candidate.lineage_distance - 1, 0)
    known = [item.importance for item in evidence if item.importance is not None]
    largest = max([*known, *(feature_importances or {}).values(), 0.0])
    for item in evidence:
        if item.importance is not None:
            item.importance_component = item.importance / largest if largest > 0 else 0.0


def _fill_association(
    evidence: list[_Evidence],
    matrix: FloatArray,
    metric: MetricSeries,
    *,
    config: AttributionConfig,
    seed: int,
    notes: list[str],
) -> None:
    values = np.asarray(metric.values, dtype=np.float64)
    measured = np.isfinite(values)
    if not evidence:
        return
    if measured.sum() <= 2 * config.max_lag + 2:
        notes.append("too few measured partitions for the association test: p = 1 for all")
        return
    # The loss series: larger = worse, whatever the metric's direction.
    loss = -values[measured] if metric.higher_is_better else values[measured]
    aligned = matrix[:, measured].copy()
    for row in range(aligned.shape[0]):
        missing = ~np.isfinite(aligned[row])
        if missing.all():
            aligned[row] = 0.0  # constant: p = 1
        elif missing.any():
            # The row median is neutral for a rank statistic; it never creates an association.
            aligned[row, missing] = float(np.median(aligned[row, ~missing]))
    p_values, statistics, rotations = circular_shift_pvalues(
        aligned, loss, max_lag=config.max_lag, n_permutations=config.n_permutations, seed=seed
    )
    q_values = benjamini_yekutieli(p_values)
    floor = 1 / (rotations + 1)
    # The smallest q-value BY can give here (every candidate at the smallest attainable p:
    # floor × Σ 1/i). Above the significance level, q carries no information at all.
    m = len(evidence)
    q_floor = min(1.0, floor * sum(1 / i for i in range(1, m + 1)))
    informative = q_floor <= config.significance_level
    notes.append(
        f"association: circular-shift test over {int(measured.sum())} partitions "
        f"({rotations} rotations, smallest attainable p = {floor:.3g}); Benjamini–Yekutieli "
        f"across {m} candidates "
        + (
            f"(smallest attainable q = {q_floor:.3g})"
            if informative
            else f"cannot reach q <= {config.significance_level:g} (smallest attainable "
            f"q = {q_floor:.3g}): q not reported"
        )
    )
    for item in evidence:
        item.p_value = float(p_values[item.row])
        item.p_floor = floor
        item.q_value = float(q_values[item.row]) if informative else math.nan
        item.statistic = float(statistics[item.row])
        item.association = math.log(1.0 / item.p_value) / math.log(rotations + 1.0)


def _fill_timing(
    evidence: list[_Evidence],
    *,
    matrix: FloatArray,
    n_series: int,
    onset: int,
    end: int,
    excluded: np.ndarray,
    config: AttributionConfig,
    notes: list[str],
) -> None:
    n = matrix.shape[1]
    window_start = max(0, onset - config.precedence_window)
    window_end = min(n - 1, onset + config.onset_tolerance)
    reference = np.zeros(n, dtype=bool)
    reference[:window_start] = True
    reference &= ~excluded
    short = 0
    for item in evidence[:n_series]:
        row = matrix[item.row]
        before = row[reference]
        if np.isfinite(before).sum() < 3:
            short += 1
            continue
        shift, median_before, median_after, scale = robust_shift(before, row[onset : end + 1])
        item.shift = shift if math.isfinite(shift) else None
        item.median_before = median_before
        item.median_after = median_after if math.isfinite(median_after) else None
        with np.errstate(invalid="ignore"):
            anomalous = np.abs((row - median_before) / scale) > config.anomaly_threshold
        anomalous &= np.isfinite(row)
        hits = np.flatnonzero(anomalous[window_start : window_end + 1])
        if hits.size == 0:
            continue
        start = window_start + int(hits[0])
        while start > 0 and anomalous[start - 1]:
            start -= 1  # the anomaly began earlier: walk back to where it really started
        item.start_index = start
        item.anomalous = np.flatnonzero(anomalous[start:]).astype(int) + start
        item.lead = onset - start
        item.precedence = precedence_score(
            item.lead, window=config.precedence_window, tolerance=config.onset_tolerance
        )
    if short:
        notes.append(
            f"{short} candidate series have < 3 values before the precedence window: no shift "
            "or precedence measured for them"
        )
    for item in evidence[n_series:]:
        assert item.start_index is not None  # an event's partition
        item.lead = onset - item.start_index
        item.precedence = precedence_score(
            item.lead, window=config.precedence_window, tolerance=config.onset_tolerance
        )


def _fill_own_change(
    evidence: list[_Evidence],
    *,
    matrix: FloatArray,
    n_series: int,
    excluded: np.ndarray,
    config: AttributionConfig,
    seed: int,
) -> None:
    """Without a performance shift, measure each series against its own latest change point.

    This is what tells benign drift (an input moved, the model did not care) from a quiet
    system. There is no onset to precede, so precedence is not measured.
    """
    for item in evidence[:n_series]:
        row = matrix[item.row]
        usable = np.isfinite(row) & ~excluded
        if usable.sum() < 2 * config.min_segment + 1:
            continue
        kept = row[usable]
        change = _latest_change(kept, config=config, seed=seed)
        if change is None:
            item.shift = 0.0  # measured, and no significant change: not unmeasured
            continue
        shift, median_before, median_after, _ = robust_shift(kept[:change], kept[change:])
        item.shift = shift if math.isfinite(shift) else None
        item.median_before = median_before
        item.median_after = median_after if math.isfinite(median_after) else None
        item.start_index = int(np.flatnonzero(usable)[change])


def _observational_score(item: _Evidence, config: AttributionConfig, *, gated: bool) -> float:
    components: list[tuple[float, float]] = [(config.weight_association, item.association)]
    if item.shift is not None:
        magnitude = abs(item.shift)
        components.append((config.weight_shift, magnitude / (magnitude + config.shift_half)))
    if item.importance_component is not None:
        components.append((config.weight_importance, item.importance_component))
    if item.lineage_component is not None:
        components.append((config.weight_lineage, item.lineage_component))
    total = sum(weight for weight, _ in components)
    combined = sum(weight * value for weight, value in components) / total if total > 0 else 0.0
    return item.precedence * combined if gated else combined


def _final_score(item: _Evidence, config: AttributionConfig) -> float:
    if item.repair_recovery is None:
        return item.observational
    recovered = min(max(item.repair_recovery, 0.0), 1.0)
    return config.weight_repair * recovered + (1 - config.weight_repair) * item.observational


def _run_repairs(
    evidence: list[_Evidence],
    repair: RepairFunction,
    shift: ShiftDetection,
    config: AttributionConfig,
    notes: list[str],
) -> None:
    if not shift.loss > 0:
        notes.append("no loss to recover: the repair test was not run")
        return
    ordered = sorted(
        evidence,
        key=lambda item: (-item.observational, -(item.importance_component or 0.0)),
    )
    if len(ordered) > config.max_repairs:
        notes.append(
            f"repair test run for the top {config.max_repairs} of {len(ordered)} candidates "
            "(max_repairs)"
        )
    for item in ordered[: config.max_repairs]:
        outcome = repair(
            RepairRequest(
                candidate=item.candidate,
                partitions=shift.degraded_partitions,
                onset_partition=shift.onset_partition,
                degraded_value=shift.degraded_value,
                baseline_value=shift.baseline_value,
            )
        )
        if outcome is None:
            continue
        if isinstance(outcome, RepairOutcome):
            repaired, degraded = float(outcome.repaired_value), float(outcome.degraded_value)
        else:
            repaired, degraded = float(outcome), shift.degraded_value
        gap = shift.baseline_value - degraded
        if not (math.isfinite(repaired) and math.isfinite(gap)) or abs(gap) < 1e-12:
            notes.append(f"repair of {item.candidate.key} gave no usable recovery")
            continue
        if (gap if shift.higher_is_better else -gap) < 0:
            # The re-scored partitions, as measured by the callback, are no worse than the
            # baseline: there is no loss there to recover, and a share of it means nothing.
            notes.append(
                f"repair of {item.candidate.key}: the re-scored partitions show no loss "
                f"({_number(degraded)} against a baseline of {_number(shift.baseline_value)})"
            )
            continue
        item.repair_raw = (repaired - degraded) / gap
        # Clipped: a repair cannot recover more than the whole loss (beyond is noise), and a
        # repair that makes things worse by more than the loss says no more than -100 %.
        item.repair_recovery = min(max(item.repair_raw, -1.0), 1.0)


def _is_upstream(
    event: CandidateEvent,
    symptom: Candidate,
    lineage: Mapping[str, Sequence[str]] | None,
) -> bool:
    if event.asset_key == symptom.asset_key:
        return True
    if lineage is not None:
        from dagster_corrmon.core.lineage import ancestors_with_distance

        return event.asset_key in ancestors_with_distance(lineage, symptom.asset_key)
    if event.lineage_distance is None or symptom.lineage_distance is None:
        return True
    return event.lineage_distance >= symptom.lineage_distance


# Events that an upstream one of the same kind brings about downstream in the same partition: a
# re-delivered or late feed re-materializes (or leaves stale) everything below it, a failed run
# leaves it unmaterialized, a dropped column is missing below. Code releases are not among them:
# two assets whose code changed in one deploy are two changes, not one and its echo.
_CASCADING_KINDS = frozenset(
    {
        SignalKind.DATA_VERSION_CHANGE,
        SignalKind.RUN_FAILURE,
        SignalKind.FRESHNESS,
        SignalKind.SCHEMA_CHANGE,
    }
)


def _cascade_head(
    primary: _Evidence, evidence: Sequence[_Evidence], lineage: Mapping[str, Sequence[str]] | None
) -> _Evidence:
    """The top of the cascade ``primary`` belongs to: the same kind of event in the same
    partition on an asset above it in the lineage, climbed as far as it goes.

    A re-delivered feed re-materializes everything below it (a data-version change on the feed,
    then on the join, the features, the predictions), a failed feed fails everything below it:
    the events below are the first one's consequences, and its root cause is at the top. Their
    observational scores say nothing about that order (they all share its timing).
    """
    head = primary
    seen = {id(primary)}
    while isinstance(head.candidate, CandidateEvent) and head.candidate.kind in _CASCADING_KINDS:
        event = head.candidate
        above = [
            item
            for item in evidence
            if isinstance(item.candidate, CandidateEvent)
            and id(item) not in seen
            and item.candidate.kind == event.kind
            and item.candidate.partition == event.partition
            and item.candidate.asset_key != event.asset_key
            and item.precedence >= 0.5
            and (item.repair_recovery is None or item.explains)
            # strictly above: without a lineage, equal distances say nothing
            and _is_upstream(item.candidate, event, lineage)
            and not _is_upstream(event, item.candidate, lineage)
        ]
        if not above:
            break
        head = max(above, key=lambda item: (item.score, item.precedence))
        seen.add(id(head))
    return head


def _classify(  # noqa: PLR0917 — private, called once
    evidence: list[_Evidence],
    shift: ShiftDetection | None,
    config: AttributionConfig,
    lineage: Mapping[str, Sequence[str]] | None,
    notes: list[str],
    position: Mapping[str, int],
) -> tuple[IncidentClass, bool]:
    if shift is None:
        notes.append("no adverse performance shift: no incident")
        return IncidentClass.UNKNOWN, False

    for item in evidence:
        if not _dated_in_time(item, shift):
            # No anomaly of its own before the loss was seen (a series that never left its
            # range, or one that moved only after the detection): whatever a repair of it
            # recovers, it is not what changed, so it cannot be the cause.
            item.explains = False
        elif item.repair_recovery is not None:
            item.explains = item.repair_recovery >= config.min_repair_recovery
        else:
            negligible = (
                item.importance_component is not None
                and item.importance_component < config.min_importance
            )
            # On a short series the circular-shift test cannot reach the significance level at
            # all (its smallest p-value is 1/(rotations + 1)); the strongest association it can
            # show then counts, and timing, score and importance must still agree.
            alpha = max(config.significance_level, item.p_floor)
            item.explains = (
                item.precedence >= 0.5
                and item.p_value <= alpha
                and item.score >= config.explain_score
                and not negligible
            )
    anchor = next(
        (item for item in evidence if shift.anchor and item.candidate.key == shift.anchor), None
    )
    if anchor is not None and (
        anchor.repair_recovery is None or anchor.repair_recovery >= config.concept_max_recovery
    ):
        # The check failed where the loss was measured; only a repair showing that restoring
        # the column does not bring the metric back overrules it.
        anchor.explains = True
    explaining = sorted((item for item in evidence if item.explains), key=lambda item: -item.score)
    within_noise = not shift.sustained and shift.anchor is None and shift.measured_loss is False
    consequential = (
        shift.loss > 0
        and shift.loss >= config.min_effect
        and not within_noise
        and (shift.sustained or bool(explaining))
    )
    if not consequential:
        if shift.loss < config.min_effect:
            reason = f"loss {shift.loss:.4g} is below min_effect {config.min_effect:.4g}"
        elif within_noise:
            reason = (
                "a blip within the metric's sampling noise (every degraded partition's "
                "confidence interval reaches the baseline)"
            )
        else:
            reason = (
                f"not sustained ({shift.alarm_count} alarm(s); needs {config.min_alarms}, a "
                "significant adverse change point and a degraded mean) and no explaining cause"
            )
        notes.append(f"performance shift not consequential: {reason}")
        return IncidentClass.UNKNOWN, False

    if explaining:
        observed = [item for item in explaining if isinstance(item.candidate, CandidateSeries)]
        observed.sort(key=lambda item: item is not anchor)  # the failing check leads
        if anchor is not None and not observed:
            explaining.sort(key=lambda item: item is not anchor)
        if observed:
            # An observed data defect outranks an event whose only evidence is its timing; an
            # event at or above the defect in the lineage is its root cause, the defect its
            # symptom (a failed run shows up as nulls downstream).
            primary = observed[0]
            roots = [
                item
                for item in evidence
                if isinstance(item.candidate, CandidateEvent)
                and item.precedence >= 0.5
                and (item.repair_recovery is None or item.explains)
                and _is_upstream(item.candidate, primary.candidate, lineage)
            ]
            if roots:
                primary = max(roots, key=lambda item: (item.score, item.precedence))
        else:
            primary = explaining[0]
        primary = _cascade_head(primary, evidence, lineage)
        candidate = primary.candidate
        if isinstance(candidate, CandidateEvent):
            symptoms = [
                item for item in observed if _is_upstream(candidate, item.candidate, lineage)
            ]
            for symptom in symptoms:
                symptom.explained_by = candidate.key
            if symptoms:
                primary.root_of = symptoms[0].candidate.key
            primary.explains = True
        primary.primary = True
        if isinstance(candidate, CandidateEvent) and candidate.kind in UPSTREAM_FAILURE_KINDS:
            return IncidentClass.UPSTREAM_FAILURE, True
        if isinstance(candidate, CandidateEvent) and candidate.kind in CODE_CHANGE_KINDS:
            return IncidentClass.CODE_CHANGE, True
        return IncidentClass.DATA_FAULT, True

    fallback = _timely_evidence(evidence, shift, config, lineage, position)
    if fallback is not None:
        primary, classification, why = fallback
        primary.explains = primary.primary = True
        notes.append(
            f"no candidate met the bar for explaining the loss; classified {classification.value} "
            f"on the evidence at the onset: {why}"
        )
        return classification, True

    timely_events = [
        item
        for item in evidence
        if isinstance(item.candidate, CandidateEvent)
        and item.candidate.kind in UPSTREAM_FAILURE_KINDS | CODE_CHANGE_KINDS
        and item.precedence >= 0.5
    ]
    partial_repairs = [
        item
        for item in evidence
        if item.repair_recovery is not None and item.repair_recovery > config.concept_max_recovery
    ]
    if shift.sustained and not timely_events and not partial_repairs:
        return IncidentClass.CONCEPT_DRIFT, True
    if timely_events:
        notes.append(
            "an upstream event coincides with the onset but the evidence does not support it "
            f"as the cause: {', '.join(item.candidate.key for item in timely_events)}"
        )
    if partial_repairs:
        notes.append(
            "repairs recover part of the loss, too little to explain it: "
            f"{', '.join(item.candidate.key for item in partial_repairs)}"
        )
    return IncidentClass.UNKNOWN, True


def _confidences(scores: Sequence[float], config: AttributionConfig) -> list[float]:
    """Softmax of the scores against a "none of them" option (see :class:`AttributionConfig`)."""
    k = config.confidence_temperature
    logits = np.asarray([config.explain_score, *scores], dtype=np.float64) * k
    weights = np.exp(logits - logits.max())
    return [float(w) for w in (weights / weights.sum())[1:]]


def _dated_in_time(item: _Evidence, shift: ShiftDetection) -> bool:
    """Whether a candidate shows something of its own at or before the detection."""
    return item.start_index is not None and item.start_index <= shift.detection_index


def _timely_evidence(
    evidence: list[_Evidence],
    shift: ShiftDetection,
    config: AttributionConfig,
    lineage: Mapping[str, Sequence[str]] | None,
    position: Mapping[str, int],
) -> tuple[_Evidence, IncidentClass, str] | None:
    """What a consequential loss that no candidate fully explains is, when the checks say so.

    The bar for *explaining* (a significant association, a high score) is often out of reach on
    a short or noisy series, yet the kind of incident is plain from what happened at the onset:
    a check that failed there on an important feature (a null spike, a value out of range, a
    recoded category — :data:`DEFECT_ANCHOR_KINDS`) is a data fault; a new code version there is
    a code change (and the root of a defect below it); a failed run or a missing batch there is
    an upstream failure. "At the onset" is precedence: from ``precedence_window`` partitions
    before the onset to ``onset_tolerance`` after it. A candidate whose repair test recovered at
    most ``concept_max_recovery`` of the loss is ruled out. Without such evidence: ``None``.
    """

    def timely(index: int | None) -> bool:
        if index is None:
            return False
        lead = shift.onset_index - index
        return -config.onset_tolerance <= lead <= config.precedence_window

    def allowed(item: _Evidence) -> bool:
        return item.repair_recovery is None or item.repair_recovery > config.concept_max_recovery

    defects: list[_Evidence] = []
    events: list[_Evidence] = []
    for item in evidence:
        candidate = item.candidate
        if not allowed(item):
            continue
        if isinstance(candidate, CandidateEvent):
            if timely(item.start_index):
                events.append(item)
                if candidate.kind in DEFECT_ANCHOR_KINDS and (
                    (item.importance_component or 0.0) >= config.min_importance
                    or candidate.column is None
                ):
                    defects.append(item)
            continue
        if candidate.kind not in DEFECT_ANCHOR_KINDS:
            continue
        if (item.importance_component or 0.0) < config.min_importance:
            continue
        if any(timely(position.get(p)) for p in candidate.failed_partitions):
            defects.append(item)

    def best(items: list[_Evidence]) -> _Evidence:
        return max(items, key=lambda item: (item.score, item.importance_component or 0.0))

    codes = [item for item in events if item.candidate.kind in CODE_CHANGE_KINDS]
    failures = [item for item in events if item.candidate.kind in UPSTREAM_FAILURE_KINDS]
    if defects:
        defect = best(defects)
        roots = [
            item
            for item in codes + failures
            if isinstance(item.candidate, CandidateEvent)
            and _is_upstream(item.candidate, defect.candidate, lineage)
        ]
        if roots:
            root = best(roots)
            root.root_of = defect.candidate.key
            defect.explained_by = root.candidate.key
            kind = (
                IncidentClass.CODE_CHANGE
                if root.candidate.kind in CODE_CHANGE_KINDS
                else IncidentClass.UPSTREAM_FAILURE
            )
            return root, kind, f"{root.candidate.key}, which shows up as {defect.candidate.key}"
        return defect, IncidentClass.DATA_FAULT, f"the failing check {defect.candidate.key}"
    if codes:
        code = best(codes)
        return code, IncidentClass.CODE_CHANGE, f"the new code version {code.candidate.key}"
    if failures:
        failure = best(failures)
        return failure, IncidentClass.UPSTREAM_FAILURE, f"the failure {failure.candidate.key}"
    return None


def _plain(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _to_cause(
    item: _Evidence, rank: int, metric: MetricSeries, confidence: float | None = None
) -> Cause:
    candidate = item.candidate
    partitions = metric.partitions
    partition = partitions[item.start_index] if item.start_index is not None else None
    event_time = (
        metric.times[item.start_index]
        if metric.times is not None and item.start_index is not None
        else None
    )
    if isinstance(candidate, CandidateSeries):
        name = candidate.name
        # The faulty versions are those read where the series is anomalous from its start on:
        # exactly those, so that annotation flags no run that read a good version.
        suspect = [partitions[int(t)] for t in item.anomalous] if item.anomalous is not None else []
        data_versions = tuple(
            dict.fromkeys(
                candidate.data_versions[key] for key in suspect if key in candidate.data_versions
            )
        )
    else:
        name = candidate.name
        data_versions = candidate.data_versions
    evidence: dict[str, Any] = {
        "candidate": candidate.key,
        "name": name,
        "precedence": float(item.precedence),
        "lead_partitions": item.lead,
        "association": float(item.association),
        "association_statistic": float(item.statistic),
        "importance_component": _plain(item.importance_component),
        "lineage_component": _plain(item.lineage_component),
        "observational_score": float(item.observational),
        "median_before": _plain(item.median_before),
        "median_after": _plain(item.median_after),
        "repair_recovery_raw": _plain(item.repair_raw),
        "explains": bool(item.explains),
        "primary": bool(item.primary),
    }
    if confidence is not None:
        evidence["confidence"] = confidence
    if item.root_of is not None:
        evidence["root_cause_of"] = item.root_of
    if item.explained_by is not None:
        evidence["symptom_of"] = item.explained_by
    return Cause(
        rank=rank,
        kind=candidate.kind.value,
        asset_key=candidate.asset_key,
        score=float(min(max(item.score, 0.0), 1.0)),
        column=candidate.column,
        partition=partition,
        event_time=event_time,
        p_value=float(item.p_value),
        q_value=_plain(item.q_value),
        repair_recovery=_plain(item.repair_recovery),
        lineage_distance=candidate.lineage_distance,
        shift_size=_plain(item.shift),
        feature_importance=_plain(item.importance),
        signal_keys=tuple(candidate.signal_keys),
        data_versions=data_versions,
        evidence=evidence,
    )


# --------------------------------------------------------------------------------------------
# Explanation for people
# --------------------------------------------------------------------------------------------

_ACTIONS = {
    IncidentClass.DATA_FAULT: (
        "fix the upstream data and backfill the affected partitions before retraining "
        "(retraining on the defect would bake it into the model)"
    ),
    IncidentClass.UPSTREAM_FAILURE: (
        "re-run or backfill the failed / missing upstream partitions, then re-score; "
        "do not retrain until the data is complete"
    ),
    IncidentClass.CODE_CHANGE: (
        "roll back or fix the new code version, re-materialize its downstream assets, then re-score"
    ),
    IncidentClass.CONCEPT_DRIFT: (
        "no upstream fault explains the decay: retrain on recent data (the relationship the "
        "model learned has changed)"
    ),
    IncidentClass.BENIGN_DRIFT: (
        "inputs moved but performance did not suffer: no action needed; keep watching"
    ),
    IncidentClass.UNKNOWN: (
        "no single upstream cause is supported: inspect the candidates below before acting"
    ),
}


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _cause_sentence(cause: Cause, metric: str) -> str:
    # Asset, column and check names come from users' data: code spans keep them literal.
    target = markdown_code(f"{cause.asset_key}.{cause.column}" if cause.column else cause.asset_key)
    name = markdown_code(cause.evidence.get("name") or cause.kind)
    where = f" at {escape_markdown(cause.partition)}" if cause.partition else ""
    if cause.partition is None and cause.shift_size is not None:
        what = f"{target} ({name}): no anomaly found (median shift {cause.shift_size:+.1f} IQR)"
    elif cause.shift_size is not None and abs(cause.shift_size) < 1000:
        what = f"{target} ({name}) changed by {cause.shift_size:+.1f} IQR{where}"
    elif cause.shift_size is not None:
        before = cause.evidence.get("median_before")
        after = cause.evidence.get("median_after")
        what = f"{target} ({name}) jumped off a constant{where}"
        if before is not None and after is not None:
            what += f" ({_number(before)} → {_number(after)})"
    else:
        what = f"{target}: {cause.kind.replace('_', ' ')}{f' ({name})' if name else ''}{where}"
    parts = [what]
    if cause.lineage_distance is not None:
        hops = cause.lineage_distance
        parts.append(f"{hops} hop{'s' if hops != 1 else ''} upstream of the model")
    if cause.feature_importance is not None:
        parts.append(f"feature importance {cause.feature_importance:.3g}")
    sentence = ", ".join(parts)
    if cause.repair_recovery is not None:
        sentence += (
            f"; restoring it recovers {100 * cause.repair_recovery:.0f}% of the {metric} loss"
        )
    q = f", q={cause.q_value:.2g}" if cause.q_value is not None else ""
    confidence = f", confidence {cause.confidence:.0%}" if cause.confidence is not None else ""
    sentence += f" (p={cause.p_value:.2g}{q}, score {cause.score:.2f}{confidence})"
    if "symptom_of" in cause.evidence:
        sentence += f" — a symptom of {cause.evidence['symptom_of']}"
    if "root_cause_of" in cause.evidence:
        sentence += f" — shows up as {cause.evidence['root_cause_of']}"
    return sentence


def explain_attribution(result: AttributionResult, *, max_causes: int = 3) -> str:
    """A short markdown explanation a person can act on: what shifted, why, what to do."""
    lines: list[str] = []
    shift = result.shift
    label = result.classification.value.replace("_", " ")
    if shift is None:
        lines.append(f"**{result.metric}: no adverse performance shift.**")
    else:
        direction = "fell" if shift.higher_is_better else "rose"
        relative = shift.relative_loss
        share = f", {100 * relative:.1f}% worse" if relative is not None else ""
        lines.append(
            f"**{result.metric} {direction} from {_number(shift.baseline_value)} to "
            f"{_number(shift.degraded_value)}{share}, starting {shift.onset_partition}** "
            f"(detected {shift.detection_partition}; {len(shift.degraded_partitions)} degraded "
            f"partition{'s' if len(shift.degraded_partitions) != 1 else ''})."
        )
    lines.append(
        f"Classification: **{label}** "
        f"({'consequential' if result.consequential else 'not consequential'})."
    )
    if shift is not None and not result.consequential and shift.loss > 0:
        lines.append(
            "The loss is within the metric's sampling noise."
            if shift.measured_loss is False
            else "The loss is not sustained and no cause explains it: watch the next partitions."
        )
    explaining = result.explaining_causes
    if explaining:
        lines.append("")
        lines.append(f"Most likely cause: {_cause_sentence(explaining[0], result.metric)}.")
    lines.append(f"→ {_ACTIONS[result.classification]}.")
    shown = [cause for cause in result.causes if not explaining or cause is not explaining[0]]
    if shown and max_causes > 0:
        lines.append("")
        lines.append("Other candidates:" if explaining else "Candidates:")
        lines.extend(
            f"{cause.rank}. {_cause_sentence(cause, result.metric)}" for cause in shown[:max_causes]
        )
    return "\n".join(lines)
