"""Model-evaluation checks: performance metrics with confidence intervals, against their history.

One ``<prefix>_model_performance`` check on the evaluation asset (a table with one row per scored
example: the label, the model's score or prediction, and optionally the request latency and an
error flag). It computes every metric of the task —

* classification: precision, recall, F1, ROC-AUC, log loss, Brier score, ECE;
* regression: MAE, RMSE, R² (and MAPE);
* serving (when ``latency_column`` / ``error_column`` are given): latency p50/p95/p99, error rate;

— each with a paired, seeded bootstrap confidence interval (:mod:`dagster_corrmon.core.metrics`),
writes each as a ``METRIC`` signal, and publishes each as numeric metadata (``corrmon/f1``,
``corrmon/f1_ci_low``, ``corrmon/f1_ci_high``, ``corrmon/f1_baseline``) so the Dagster UI plots
every metric over time.

Judgement. A metric is *degraded* when (1) its adaptive baseline — the same metric's history for
this asset in the store, without resolved incident windows — scores it anomalous in the direction
that is bad for it (``higher_is_better`` decides), **and** (2) its own confidence interval lies
entirely on the bad side of the baseline's expected value: a point estimate that merely wobbled on
a small partition is not a degradation. Until a metric has ``baseline.min_history`` past values
the check passes with a note saying so. ``limits`` adds hard floors/ceilings (e.g.
``{"roc_auc": 0.7, "latency_p95": 250}``) that fail with ``severity`` regardless of history.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon import metadata as md
from dagster_corrmon.checks._baseline import (
    BaselinePolicy,
    BaselineVerdict,
    coerce_policy,
    judge_against_history,
)
from dagster_corrmon.checks._common import (
    AssetTarget,
    CheckOutcome,
    check_name_prefix,
    fraction,
    input_failure,
    missing_columns_message,
    positive_int,
    resolve_targets,
    to_severity,
    worst,
)
from dagster_corrmon.checks._plan import check_definition, frame_plan
from dagster_corrmon.core.baseline import alarm_direction
from dagster_corrmon.core.metrics import (
    METRICS,
    MetricValue,
    evaluate_classification,
    evaluate_regression,
    evaluate_serving,
)
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError, InputDataError
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, MaterializationTags

FACTORY = "build_model_evaluation_checks"
# Name of the signal saying the evaluation could not be judged (broken or missing input).
INPUT_SIGNAL = "model_performance_input"

Task = Literal["classification", "regression"]

_THRESHOLD_METRICS = ("precision", "recall", "f1")


def _metrics_of(task: str) -> list[str]:
    return [name for name, spec in METRICS.items() if spec.task == task]


def build_model_evaluation_checks(
    *,
    asset: AssetTarget,
    task: Task = "classification",
    label_column: str,
    score_column: str | None = None,
    prediction_column: str | None = None,
    latency_column: str | None = None,
    error_column: str | None = None,
    metrics: Sequence[str] | None = None,
    threshold: float = 0.5,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    baseline: BaselinePolicy | Mapping[str, Any] | bool | None = None,
    min_change: Mapping[str, float] | None = None,
    limits: Mapping[str, float] | None = None,
    severity: Any = Severity.ERROR,
    incident_assets: Sequence[str | dg.AssetKey] = (),
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    name_prefix: str = "corrmon",
    blocking: bool = False,
) -> Sequence[dg.AssetChecksDefinition]:
    """The ``<prefix>_model_performance`` check of one evaluation asset (see module docstring).

    Args:
        asset: the evaluation asset (rows = scored examples with labels).
        task: ``"classification"`` (binary; labels 0/1) or ``"regression"``.
        label_column: the true label / target. Rows without a label (not yet known) are skipped.
        score_column: classification: the predicted probability of class 1.
        prediction_column: regression: the prediction; classification without scores: the 0/1
            prediction (then only precision, recall and F1 are computed).
        latency_column: per-request scoring latency in milliseconds (latency percentiles).
        error_column: per-request failure flag (0/1 or bool) (error rate).
        metrics: the metric names to compute (default: all of the task, plus serving metrics for
            the columns given).
        threshold: classification decision threshold (``score >= threshold`` predicts 1).
        confidence: confidence level of the bootstrap intervals.
        n_resamples: bootstrap resamples (0: no intervals; the baseline then judges alone).
        seed: bootstrap seed (results are reproducible).
        baseline: :class:`~dagster_corrmon.checks.BaselinePolicy` (default: the defaults with
            ERROR severity — a CI-confirmed degradation is an error); ``None``/``False``: limits
            only.
        min_change: per metric, the smallest change from the baseline worth failing for.
        limits: per metric, a hard floor (higher-is-better metrics) or ceiling (others).
        severity: severity of a limit breach.
        incident_assets: assets (e.g. the model) whose resolved incident windows are left out of
            the metric baselines, besides this asset's own.
        partitions_def: partitioning for an asset given only by key.
        resource_key: the key a :class:`~dagster_corrmon.resource.CorrmonResource` is bound to.
        name_prefix: the check name is ``<name_prefix>_model_performance``.
        blocking: make the check blocking.
    """
    # One asset: a list of strings here is a key path (["ml", "evaluation"]), not two assets.
    targets = resolve_targets([asset], factory=FACTORY, partitions_def=partitions_def)
    if len(targets) != 1:
        raise ConfigError(f"{FACTORY}: asset must name exactly one evaluation asset")
    (target,) = targets
    prefix = check_name_prefix(name_prefix, factory=FACTORY)
    if task not in ("classification", "regression"):
        raise ConfigError(f"{FACTORY}: task must be 'classification' or 'regression'; got {task!r}")
    for argument, value in (
        ("label_column", label_column),
        ("score_column", score_column),
        ("prediction_column", prediction_column),
        ("latency_column", latency_column),
        ("error_column", error_column),
    ):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{FACTORY}: {argument} must be a column name; got {value!r}")
    if not label_column:
        raise ConfigError(f"{FACTORY}: label_column is required")
    if task == "classification" and score_column is None and prediction_column is None:
        raise ConfigError(
            f"{FACTORY}: classification needs score_column (probabilities) or prediction_column"
        )
    if task == "regression" and prediction_column is None and score_column is None:
        raise ConfigError(f"{FACTORY}: regression needs prediction_column")
    available = _metrics_of(task)
    if task == "classification" and score_column is None:
        available = list(_THRESHOLD_METRICS)
    serving = [
        name
        for name in _metrics_of("serving")
        if (name.startswith("latency_") and latency_column is not None)
        or (name == "error_rate" and error_column is not None)
    ]
    if metrics is None:
        selected = [*available, *serving]
    else:
        if isinstance(metrics, str) or not metrics:
            raise ConfigError(f"{FACTORY}: metrics must be a non-empty list of metric names")
        unknown = [m for m in metrics if m not in [*available, *serving]]
        if unknown:
            raise ConfigError(
                f"{FACTORY}: metric(s) {unknown} are not available here (available: "
                f"{', '.join([*available, *serving])}; latency/error metrics need latency_column/"
                "error_column)"
            )
        selected = list(dict.fromkeys(metrics))
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{FACTORY}: threshold must be in [0, 1]; got {threshold!r}")
    fraction(confidence, factory=FACTORY, argument="confidence")
    if not 0 < confidence < 1:
        raise ConfigError(f"{FACTORY}: confidence must be in (0, 1); got {confidence!r}")
    positive_int(n_resamples, factory=FACTORY, argument="n_resamples", minimum=0)
    for argument, mapping in (("min_change", min_change), ("limits", limits)):
        for name, value in (mapping or {}).items():
            if name not in selected:
                raise ConfigError(f"{FACTORY}: {argument}[{name!r}] names a metric not computed")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{FACTORY}: {argument}[{name!r}] must be a number")
    if baseline is None:
        policy: BaselinePolicy | None = BaselinePolicy(severity=Severity.ERROR)
    else:
        policy = coerce_policy(baseline, factory=FACTORY)
    settings = _EvalSettings(
        task=task,
        label_column=label_column,
        score_column=score_column,
        prediction_column=prediction_column,
        latency_column=latency_column,
        error_column=error_column,
        metrics=tuple(selected),
        threshold=float(threshold),
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        seed=int(seed),
        policy=policy,
        min_change=dict(min_change or {}),
        limits=dict(limits or {}),
        severity=to_severity(severity, factory=FACTORY, argument="severity"),
        incident_assets=tuple(
            dg.AssetKey.from_coercible(a).to_user_string() for a in incident_assets
        ),
    )
    check_name = f"{prefix}_model_performance"

    def judge(frame: pd.DataFrame, tags: MaterializationTags, corrmon: CorrmonResource):
        return judge_performance(frame, tags=tags, corrmon=corrmon, settings=settings)

    description = (
        f"{task.capitalize()} performance ({', '.join(selected)}) with "
        f"{confidence:.0%} bootstrap intervals, against each metric's adaptive baseline."
    )
    if settings.min_change:
        smallest = ", ".join(f"{name} {value:g}" for name, value in settings.min_change.items())
        description += f" Changes smaller than these pass: {smallest}."
    if settings.limits:
        bounds = ", ".join(f"{name} {value:g}" for name, value in settings.limits.items())
        description += f" Hard limits: {bounds}."
    plan = frame_plan(
        target,
        name=check_name,
        description=description,
        kind=SignalKind.METRIC,
        judge=judge,
        resource_key=resource_key,
        blocking=blocking,
    )
    return [check_definition(plan)]


@dataclass(frozen=True, kw_only=True)
class _EvalSettings:
    """The validated factory arguments, built once and read by every run."""

    task: Task
    label_column: str
    score_column: str | None
    prediction_column: str | None
    latency_column: str | None
    error_column: str | None
    metrics: tuple[str, ...]
    threshold: float
    confidence: float
    n_resamples: int
    seed: int
    policy: BaselinePolicy | None
    min_change: Mapping[str, float]
    limits: Mapping[str, float]
    severity: Severity
    incident_assets: tuple[str, ...]

    @property
    def columns(self) -> dict[str, str]:
        named = {
            "label_column": self.label_column,
            "score_column": self.score_column,
            "prediction_column": self.prediction_column,
            "latency_column": self.latency_column,
            "error_column": self.error_column,
        }
        return {argument: column for argument, column in named.items() if column is not None}


def compute_metrics(
    frame: pd.DataFrame, settings: _EvalSettings
) -> tuple[dict[str, MetricValue], dict[str, Any]]:
    """Every selected metric on ``frame`` (rows without a label or a score are left out)."""
    info: dict[str, Any] = {}
    results: dict[str, MetricValue] = {}
    model_metrics = [m for m in settings.metrics if METRICS[m].task != "serving"]
    serving_metrics = [m for m in settings.metrics if METRICS[m].task == "serving"]
    if model_metrics:
        prediction = settings.score_column or settings.prediction_column
        if settings.task == "regression":
            prediction = settings.prediction_column or settings.score_column
        assert prediction is not None
        labels = _numeric(frame[settings.label_column])
        scores = _numeric(frame[prediction])
        labelled = labels.notna()
        scored = labelled & scores.notna()
        info["labelled_rows"] = int(labelled.sum())
        info["unscored_labelled_rows"] = int((labelled & ~scored).sum())
        y_true = labels.loc[scored].to_numpy(dtype=np.float64)
        y_score = scores.loc[scored].to_numpy(dtype=np.float64)
        info["evaluated_rows"] = len(y_true)
        if len(y_true):
            if settings.task == "classification":
                results.update(
                    evaluate_classification(
                        y_true,
                        y_score,
                        threshold=settings.threshold,
                        confidence=settings.confidence,
                        n_resamples=settings.n_resamples,
                        seed=settings.seed,
                        metrics=model_metrics,
                    )
                )
            else:
                results.update(
                    evaluate_regression(
                        y_true,
                        y_score,
                        confidence=settings.confidence,
                        n_resamples=settings.n_resamples,
                        seed=settings.seed,
                        metrics=model_metrics,
                    )
                )
    if serving_metrics:
        n = len(frame)
        latencies = (
            _numeric(frame[settings.latency_column])
            if settings.latency_column
            else pd.Series(np.zeros(n))
        )
        errors = (
            _numeric(frame[settings.error_column].astype("float64"))
            if settings.error_column
            else pd.Series(np.zeros(n))
        )
        usable = latencies.notna().to_numpy() & errors.notna().to_numpy()
        info["serving_rows"] = int(usable.sum())
        if usable.any():
            results.update(
                evaluate_serving(
                    latencies.to_numpy(dtype=np.float64)[usable],
                    errors.to_numpy(dtype=np.float64)[usable],
                    confidence=settings.confidence,
                    n_resamples=settings.n_resamples,
                    seed=settings.seed,
                    metrics=serving_metrics,
                )
            )
    return results, info


def _numeric(values: Any) -> pd.Series:
    """A column as float64 with anything non-numeric as NaN."""
    return pd.Series(pd.to_numeric(values, errors="coerce"), dtype="float64")


def judge_performance(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    settings: _EvalSettings,
) -> CheckOutcome:
    """Compute, record and judge every metric (see module docstring)."""
    available = [str(c) for c in frame.columns]
    missing = {arg: col for arg, col in settings.columns.items() if col not in available}
    if missing:
        message = missing_columns_message(
            list(missing.values()),
            argument="/".join(missing),
            factory=FACTORY,
            asset_key=tags.asset_key,
            available=available,
        )
        return input_failure(
            tags,
            kind=SignalKind.METRIC,
            name=INPUT_SIGNAL,
            message=message,
            columns=list(missing.values()),
            failed_count=len(missing),
        )
    try:
        results, info = compute_metrics(frame, settings)
    except InputDataError as error:
        # Labels that are not 0/1, probabilities outside [0, 1], negative latencies: the data
        # the model was judged on is itself broken.
        message = f"cannot evaluate {tags.asset_key!r}: {error}"
        return input_failure(tags, kind=SignalKind.METRIC, name=INPUT_SIGNAL, message=message)
    metadata: dict[str, Any] = {md.EVALUATED_ROWS: info.get("evaluated_rows", len(frame))}
    notes: list[str] = []
    if info.get("unscored_labelled_rows"):
        notes.append(f"{info['unscored_labelled_rows']} labelled row(s) have no score")
    model_metrics = [m for m in settings.metrics if METRICS[m].task != "serving"]
    if model_metrics and not info.get("evaluated_rows"):
        message = (
            f"no labelled, scored rows in {tags.asset_key!r}"
            + (f" partition {tags.partition}" if tags.partition else "")
            + ": performance cannot be judged (labels late or missing?)"
        )
        return input_failure(
            tags,
            kind=SignalKind.METRIC,
            name=INPUT_SIGNAL,
            message=message,
            severity=Severity.WARN,
            metadata=metadata,
        )
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []
    severities: list[Severity] = []
    for name in settings.metrics:
        value = results.get(name)
        if value is None:
            continue
        problems, column_severities, verdict = _judge_metric(
            value, tags=tags, corrmon=corrmon, settings=settings
        )
        if verdict is not None and verdict.status == "insufficient_history" and verdict.note:
            notes.append(verdict.note)
        if value.value is None and value.reason:
            notes.append(f"{name}: {value.reason}")
        metric_severity = worst(column_severities)
        signals.append(
            tags.signal(
                kind=SignalKind.METRIC,
                name=name,
                value=value.value,
                passed=None if value.value is None else not problems,
                severity=metric_severity,
                metadata={
                    "ci_low": value.ci_low,
                    "ci_high": value.ci_high,
                    "n": value.n,
                    "confidence": value.confidence,
                    "higher_is_better": value.higher_is_better,
                    "reason": value.reason,
                    "limit": settings.limits.get(name),
                    "threshold": settings.threshold if name in _THRESHOLD_METRICS else None,
                    **(verdict.as_metadata() if verdict is not None else {}),
                },
            )
        )
        if value.value is not None:
            metadata[md.metric_key(name)] = value.value
        if value.ci_low is not None:
            metadata[md.metric_key(name, "ci_low")] = value.ci_low
        if value.ci_high is not None:
            metadata[md.metric_key(name, "ci_high")] = value.ci_high
        if verdict is not None and verdict.expected is not None:
            metadata[md.metric_key(name, "baseline")] = verdict.expected
        if problems:
            severities.append(metric_severity)
            failures.append({"metric": name, "problem": "; ".join(problems)})
    if notes:
        metadata[md.NOTES] = _short(notes)
    if not failures:
        return CheckOutcome(
            passed=True,
            severity=Severity.INFO,
            description=(
                f"{len(signals)} metric(s) within their baselines"
                + (f" (note: {'; '.join(_short(notes))})" if notes else "")
            ),
            metadata=metadata,
            signals=signals,
        )
    lines = [f"{f['metric']}: {f['problem']}" for f in failures]
    metadata[md.FAILURES] = failures
    metadata[md.SUMMARY] = dg.MetadataValue.md(
        "\n".join(f"- {md.escape_markdown(line)}" for line in lines)
    )
    return CheckOutcome(
        passed=False,
        severity=worst(severities),
        description=f"model performance on {tags.asset_key!r} degraded: " + "; ".join(lines),
        metadata=metadata,
        signals=signals,
        failed_count=len(failures),
    )


def _judge_metric(
    value: MetricValue,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    settings: _EvalSettings,
) -> tuple[list[str], list[Severity], BaselineVerdict | None]:
    if value.value is None:
        return [], [], None
    problems: list[str] = []
    severities: list[Severity] = []
    limit = settings.limits.get(value.name)
    if limit is not None and (
        value.value < limit if value.higher_is_better else value.value > limit
    ):
        side = "below the floor" if value.higher_is_better else "above the ceiling"
        problems.append(f"{value.value:.4g} {side} {limit:g}")
        severities.append(settings.severity)
    verdict = None
    if settings.policy is not None:
        verdict = judge_against_history(
            corrmon.get_store(),
            asset_key=tags.asset_key,
            name=value.name,
            kind=SignalKind.METRIC,
            column=None,
            value=value.value,
            event_time=tags.event_time,
            direction=alarm_direction(higher_is_better=value.higher_is_better),
            policy=settings.policy,
            min_change=settings.min_change.get(value.name, 0.0),
            incident_assets=settings.incident_assets,
        )
        if verdict.anomalous and verdict.expected is not None:
            # The CI must exclude the baseline on the bad side (None: no interval, trust z).
            bound = value.ci_high if value.higher_is_better else value.ci_low
            confirmed = bound is None or (
                bound < verdict.expected if value.higher_is_better else bound > verdict.expected
            )
            if confirmed:
                interval = (
                    f", {value.confidence:.0%} CI [{value.ci_low:.4g}, {value.ci_high:.4g}]"
                    if value.ci_low is not None and value.ci_high is not None
                    else ""
                )
                direction = "below" if value.higher_is_better else "above"
                problems.append(
                    f"{value.value:.4g}{interval} {direction} its baseline "
                    f"{verdict.expected:.4g} (z = {verdict.z:.1f}, {verdict.history_size} "
                    "past partitions)"
                )
                severities.append(settings.policy.failure_severity)
    return problems, severities, verdict


def _short(notes: Sequence[str]) -> list[str]:
    return list(notes) if len(notes) <= 4 else [*notes[:3], f"... {len(notes) - 3} more"]
