"""Drift checks: each column against a stored reference profile, weighted by feature importance.

Drift alone is a weak alarm: most columns of most tables drift a little all the time, and a model
may not care. So each drifted column's severity follows how much the model relies on it. With the
model's permutation importances (measured at training time, stored with the model), a column's
*importance share* is its importance over the sum of all positive importances (an importance ≤ 0
means the feature has no predictive power). Drift in a feature whose share reaches
``consequential_importance`` is **consequential** (ERROR: the model's inputs moved where it
looks); drift in a lower-share feature, or in a column the model does not use, is **benign**
(WARN: worth knowing, unlikely to hurt). Without importances every drift is WARN, "importance
unknown". Each result's metadata says which and why.

The reference is a :class:`~dagster_corrmon.core.profile.DatasetProfile`: a JSON file, an
in-memory profile, or — the usual case in a monitored pipeline — the key of the model asset whose
value carries ``.reference_profile`` (and ``.feature_importances``), loaded as an extra input of the
check, so the comparison always uses the reference of the model that is actually deployed.

A reference profile that carries batch statistics
(:func:`~dagster_corrmon.core.drift.calibrate_profile`; the monitored pipeline's model computes
them from its training partitions) raises a distance's threshold to the noise floor of the
reference's own batches: a day of data shares a few hours of weather and one day of the week, so
it is never a random sample of a month and Evidently's fixed 0.1 flags it every day. The table and
the failure text say when a threshold is such a floor.

**Gradual drift passes; a break fails.** A reference fixed at training time cannot tell a season
from a fault: a model trained on January–February sees every summer week "drift", and a model
trained on a year sees every month drift (a month is never a random sample of a year). So a column
that drifted from the reference is judged a second time, against its *recent reference* — the
sketches (20 quantiles, or the category counts) this check recorded for the
:data:`~dagster_corrmon.core.drift.RECENT_PARTITIONS` partitions before this one, and each single
reference batch (a season the reference covers, coming back). It fails only when it is also
beyond the noise floor of that comparison, learned on the reference's own consecutive batches
(a 3-σ prediction bound, wider for few batches and for a batch smaller than theirs, widened by the
batch-to-recent distances of the partitions that passed since). Otherwise its signal passes with
``consequence: "gradual"`` and the statistic against the reference, which attribution reads as a
series (:func:`~dagster_corrmon.core.drift.detect_recent_drift`). The price: a fault that creeps
in more slowly than the reference's batches vary is not a break.

**A change of state fails whatever the distances say.** A feature entirely null in the reference
(kept in ``empty_columns``) that arrives filled fails; a categorical column whose values fall in
categories the reference never had, in a larger share than an average reference category holds
and than the reference's own batches show (:func:`~dagster_corrmon.core.drift.novel_categories`),
fails. Both at the column's consequence severity. A column entirely null in a batch fails ERROR
unless some reference batches were entirely null too (then how many nulls are normal is the
completeness check's judgement).
"""

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd

from dagster_corrmon import metadata as md
from dagster_corrmon.checks._common import (
    AssetTarget,
    CheckOutcome,
    as_frame,
    check_name_prefix,
    column_names,
    failed_outcome,
    fraction,
    input_error_signals,
    input_failure,
    missing_columns_message,
    not_a_frame_outcome,
    resolve_targets,
    to_severity,
    worst,
)
from dagster_corrmon.checks._plan import CheckCall, CheckPlan, check_definitions, frame_plan
from dagster_corrmon.core.drift import (
    DEFAULT_THRESHOLDS,
    METHODS,
    RECENT_PARTITIONS,
    batch_sketch,
    detect_drift_from_profile,
    detect_recent_drift,
    novel_categories,
)
from dagster_corrmon.core.profile import CategoricalColumnProfile, DatasetProfile, column_series
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import (
    ConfigError,
    CorrmonError,
    InputDataError,
    InsufficientDataError,
)
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, MaterializationTags

FACTORY = "build_drift_checks"

#: Stored signal name (stable identifier).
DRIFT = "drift"

FROM_REFERENCE_ASSET = "from_reference_asset"

CONSEQUENTIAL = "consequential"
BENIGN = "benign"
UNKNOWN = "unknown"
#: A column that drifted from the reference but not from the partitions just before it.
GRADUAL = "gradual"

#: How far back the recent partitions are looked for, widest last (the check does not know the
#: partitions' cadence: a daily asset finds its recent partitions in the first window).
_RECENT_LOOKBACKS = (timedelta(days=14), timedelta(days=62), timedelta(days=400))


def importance_shares(importances: Mapping[str, float]) -> dict[str, float]:
    """Each feature's share of the total positive importance (features ≤ 0 get 0).

    Examples:
        >>> importance_shares({"a": 3.0, "b": 1.0, "c": -0.5})
        {'a': 0.75, 'b': 0.25, 'c': 0.0}
    """
    positive = {name: max(float(value), 0.0) for name, value in importances.items()}
    total = sum(positive.values())
    if total <= 0:
        return dict.fromkeys(positive, 0.0)
    return {name: value / total for name, value in positive.items()}


def classify_drift(
    column: str,
    *,
    shares: Mapping[str, float] | None,
    importances: Mapping[str, float] | None,
    consequential_importance: float,
) -> tuple[Literal["consequential", "benign", "unknown"], str]:
    """(consequence, reason) of a drifted ``column`` given the model's importances."""
    if shares is None or importances is None:
        return UNKNOWN, "feature importance unknown: cannot tell whether the model cares"
    if column not in shares:
        return BENIGN, "not a model feature: the model does not read this column"
    share = shares[column]
    raw = float(importances[column])
    if share >= consequential_importance:
        return (
            CONSEQUENTIAL,
            f"feature carries {share:.1%} of the model's predictive power "
            f"(permutation importance {raw:.4g} ≥ the {consequential_importance:.1%} share "
            "threshold): this drift can move the model's predictions",
        )
    return (
        BENIGN,
        f"feature carries only {share:.1%} of the model's predictive power "
        f"(permutation importance {raw:.4g} < the {consequential_importance:.1%} share "
        "threshold): unlikely to hurt the model",
    )


def _load_profile(path: str | os.PathLike[str], *, where: str) -> DatasetProfile:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: reference profile {str(file)!r} does not exist")
    try:
        return DatasetProfile.load(file)
    except CorrmonError as error:
        raise ConfigError(
            f"{where}: reference profile {str(file)!r} is unreadable: {error}"
        ) from error


def build_drift_checks(
    *,
    assets: Sequence[AssetTarget] | AssetTarget,
    reference: str | os.PathLike[str] | DatasetProfile | dg.AssetKey | dg.AssetsDefinition,
    feature_importance: Mapping[str, float] | Literal["from_reference_asset"] | None = None,
    consequential_importance: float = 0.05,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    per_column_method: Mapping[str, str] | None = None,
    threshold: float | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    consequential_severity: Any = Severity.ERROR,
    benign_severity: Any = Severity.WARN,
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    name_prefix: str = "corrmon",
    blocking: bool = False,
) -> Sequence[dg.AssetChecksDefinition]:
    """One ``<prefix>_drift`` check per asset: every reference column, one DRIFT signal each.

    Args:
        assets: the assets to check (usually the model's feature table).
        reference: a profile JSON path, a ``DatasetProfile``, or the model asset (key or
            definition) whose value has ``.reference_profile``.
        feature_importance: ``{feature: permutation importance}``, ``"from_reference_asset"``
            (read ``.feature_importances`` from the reference model asset), or None (unknown).
        consequential_importance: the importance share at and above which a drifted feature is
            consequential (see module docstring).
        columns: the columns to test (default: every column of the reference profile).
        method, per_column_method, threshold, per_column_threshold: as
            :func:`~dagster_corrmon.core.drift.detect_drift_from_profile` (default: Evidently's
            automatic choice and thresholds, raised to the reference batches' noise floor
            where the profile has one).
        consequential_severity: severity of consequential drift (default ERROR).
        benign_severity: severity of benign or unweighted drift (default WARN).
        partitions_def: partitioning for assets given only by key.
        resource_key: the key a :class:`~dagster_corrmon.resource.CorrmonResource` is bound to.
        name_prefix: check names are ``<name_prefix>_drift``.
        blocking: make the checks blocking (not allowed with a reference model asset: the model
            is downstream of the features it is checked against).
    """
    targets = resolve_targets(assets, factory=FACTORY, partitions_def=partitions_def)
    prefix = check_name_prefix(name_prefix, factory=FACTORY)
    share_threshold = fraction(
        consequential_importance, factory=FACTORY, argument="consequential_importance"
    )
    consequential = to_severity(
        consequential_severity, factory=FACTORY, argument="consequential_severity"
    )
    benign = to_severity(benign_severity, factory=FACTORY, argument="benign_severity")
    selected = column_names(columns, factory=FACTORY, argument="columns") if columns else None
    _validate_methods(method, per_column_method, threshold, per_column_threshold)

    reference_key: dg.AssetKey | None = None
    static_profile: DatasetProfile | None = None
    reference_path: Path | None = None
    if isinstance(reference, dg.AssetsDefinition):
        if len(reference.keys) != 1:
            raise ConfigError(f"{FACTORY}: reference must be a single model asset")
        reference_key = next(iter(reference.keys))
    elif isinstance(reference, dg.AssetKey):
        reference_key = reference
    elif isinstance(reference, DatasetProfile):
        static_profile = reference
    elif isinstance(reference, str | os.PathLike):
        reference_path = Path(reference)
        static_profile = _load_profile(reference_path, where=FACTORY)  # fail at definition time
    else:
        raise ConfigError(
            f"{FACTORY}: reference must be a profile path, a DatasetProfile or a model asset "
            f"key; got {type(reference).__name__}"
        )
    if feature_importance == FROM_REFERENCE_ASSET:
        if reference_key is None:
            raise ConfigError(
                f"{FACTORY}: feature_importance='from_reference_asset' needs reference= a model "
                "asset key"
            )
        static_importances = None
    elif feature_importance is None:
        static_importances = None
    elif isinstance(feature_importance, Mapping) and all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in feature_importance.items()
    ):
        static_importances = {k: float(v) for k, v in feature_importance.items()}
    else:
        raise ConfigError(
            f"{FACTORY}: feature_importance must be a mapping of column to number, "
            f"'from_reference_asset' or None; got {feature_importance!r}"
        )
    if reference_key is not None and blocking:
        raise ConfigError(
            f"{FACTORY}: blocking=True cannot be combined with a reference model asset: the "
            "check would wait for the model, which waits for the checked features"
        )
    if reference_key is not None and reference_key in {t.key for t in targets}:
        raise ConfigError(
            f"{FACTORY}: the reference model asset {reference_key.to_user_string()!r} is also a "
            "checked asset"
        )
    check_name = f"{prefix}_drift"
    settings = {
        "columns": selected,
        "method": method,
        "per_column_method": per_column_method,
        "threshold": threshold,
        "per_column_threshold": per_column_threshold,
    }

    description = (
        "Per-column drift against the reference profile of "
        + (
            f"model asset {reference_key.to_user_string()!r}"
            if reference_key is not None
            else (str(reference_path) if reference_path else "a fixed profile")
        )
        + "; severity weighted by feature importance."
    )

    def judge_with(
        profile: DatasetProfile, importances: Mapping[str, float] | None
    ) -> Callable[[pd.DataFrame, MaterializationTags, CorrmonResource], CheckOutcome]:
        def judge(frame: pd.DataFrame, tags: MaterializationTags, corrmon: CorrmonResource):
            return judge_drift(
                frame,
                profile,
                tags=tags,
                importances=importances,
                settings=settings,
                share_threshold=share_threshold,
                consequential=consequential,
                benign=benign,
                recent=recent_history(corrmon.get_store(), tags),
            )

        return judge

    if reference_key is None:

        def judge_static(frame: pd.DataFrame, tags: MaterializationTags, corrmon: CorrmonResource):
            # A profile file is re-read per run, so a retrained reference is picked up.
            profile = (
                _load_profile(reference_path, where=check_name)
                if reference_path is not None
                else static_profile
            )
            assert profile is not None
            return judge_with(profile, static_importances)(frame, tags, corrmon)

        return check_definitions(
            frame_plan(
                target,
                name=check_name,
                description=description,
                kind=SignalKind.DRIFT,
                judge=judge_static,
                resource_key=resource_key,
                blocking=blocking,
            )
            for target in targets
        )

    model_key = reference_key

    def evaluate(call: CheckCall) -> CheckOutcome:
        frame = as_frame(call.value)
        model = call.reference
        profile = getattr(model, "reference_profile", None)
        importances = static_importances
        if feature_importance == FROM_REFERENCE_ASSET:
            found = getattr(model, "feature_importances", None)
            importances = (
                {str(k): float(v) for k, v in found.items()} if isinstance(found, Mapping) else None
            )
        if frame is None:
            return not_a_frame_outcome(
                call.value, tags=call.tags, kind=SignalKind.DRIFT, check_name=check_name
            )
        if not isinstance(profile, DatasetProfile):
            message = (
                f"the value of reference asset {model_key.to_user_string()!r} "
                f"({type(model).__name__}) has no DatasetProfile attribute .reference_profile"
            )
            return input_failure(call.tags, kind=SignalKind.DRIFT, name=DRIFT, message=message)
        return judge_with(profile, importances)(frame, call.tags, call.corrmon)

    return check_definitions(
        CheckPlan(
            target=target,
            name=check_name,
            description=description,
            kind=SignalKind.DRIFT,
            evaluate=evaluate,
            resource_key=resource_key,
            reference=model_key,
        )
        for target in targets
    )


@dataclass(frozen=True)
class RecentHistory:
    """What the drift check recorded for the partitions before this one, per column.

    ``sketches``: the last :data:`~dagster_corrmon.core.drift.RECENT_PARTITIONS` partitions'
    sketches, oldest first (the recent reference); ``accepted``: the batch-to-recent distances
    of every partition read that passed (they widen the recent noise floor).
    """

    sketches: Mapping[str, Sequence[Mapping[str, Any]]]
    accepted: Mapping[str, Sequence[float]]


def _validate_methods(
    method: str | None,
    per_column_method: Mapping[str, str] | None,
    threshold: float | None,
    per_column_threshold: Mapping[str, float] | None,
) -> None:
    for name in [method, *(per_column_method or {}).values()]:
        if name is not None and name not in METHODS:
            raise ConfigError(f"{FACTORY}: unknown drift method {name!r} (one of {METHODS})")
    for value in [threshold, *(per_column_threshold or {}).values()]:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            raise ConfigError(
                f"{FACTORY}: drift thresholds must be positive numbers; got {value!r}"
            )


def judge_drift(
    frame: pd.DataFrame,
    profile: DatasetProfile,
    *,
    tags: MaterializationTags,
    importances: Mapping[str, float] | None,
    settings: Mapping[str, Any],
    share_threshold: float,
    consequential: Severity,
    benign: Severity,
    recent: RecentHistory | None = None,
) -> CheckOutcome:
    """Test every reference column; one DRIFT signal per column (see module docstring).

    ``recent``: what the check recorded for the partitions just before this one
    (:func:`recent_history`); without it the reference's last batches stand in.
    """
    reference_columns = [*profile.column_names, *profile.empty_columns]
    wanted = list(settings.get("columns") or reference_columns)
    unknown = [c for c in wanted if c not in reference_columns]
    available = [str(c) for c in frame.columns]
    missing = [c for c in wanted if c in reference_columns and c not in available]
    shares = importance_shares(importances) if importances is not None else None
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []
    severities: list[Severity] = []
    rows: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    if unknown:
        message = (
            f"column(s) {', '.join(map(repr, unknown))} named in {FACTORY}(columns=...) are not "
            f"in the reference profile (its columns: {', '.join(map(repr, reference_columns))})"
        )
        signals += input_error_signals(
            tags, kind=SignalKind.DRIFT, name=DRIFT, columns=unknown, message=message
        )
        failures += [{"column": c, "problem": "not in the reference profile"} for c in unknown]
        severities.append(Severity.ERROR)
    if missing:
        message = missing_columns_message(
            missing,
            argument="reference",
            factory=FACTORY,
            asset_key=tags.asset_key,
            available=available,
        )
        signals += input_error_signals(
            tags, kind=SignalKind.DRIFT, name=DRIFT, columns=missing, message=message
        )
        failures += [{"column": c, "problem": "missing from the asset"} for c in missing]
        severities.append(Severity.ERROR)
        metadata[md.INPUT_ERROR] = message
    if len(frame) == 0:
        message = f"asset {tags.asset_key!r} has 0 rows: drift cannot be judged"
        return failed_outcome(
            severity=Severity.ERROR,
            description=message,
            signals=[
                *signals,
                *input_error_signals(
                    tags, kind=SignalKind.DRIFT, name=DRIFT, columns=[None], message=message
                ),
            ],
            metadata={md.INPUT_ERROR: message},
            failed_count=len(failures) + 1,
        )
    drifted: list[str] = []
    consequential_columns: list[str] = []
    gradual_columns: list[str] = []
    for column in wanted:
        if column in unknown or column in missing:
            continue
        consequence, reason = classify_drift(
            column, shares=shares, importances=importances, consequential_importance=share_threshold
        )
        severity = consequential if consequence == CONSEQUENTIAL else benign
        importance = (importances or {}).get(column)
        share = (shares or {}).get(column)
        if column in profile.empty_columns:
            filled = int(column_series(frame, column).notna().sum())
            signals.append(
                tags.signal(
                    kind=SignalKind.DRIFT,
                    name=DRIFT,
                    column=column,
                    value=filled / len(frame),
                    passed=filled == 0,
                    severity=severity if filled else Severity.INFO,
                    metadata={
                        "state": "filled" if filled else "empty",
                        "reference_null_fraction": 1.0,
                        "current_null_fraction": 1 - filled / len(frame),
                        "importance": importance,
                        "importance_share": share,
                    },
                )
            )
            if filled:
                severities.append(severity)
                failures.append(
                    {
                        "column": column,
                        "problem": f"entirely null in the reference, {filled} of {len(frame)} "
                        "value(s) filled now: a new state the model never saw",
                    }
                )
            continue
        try:
            (result,) = detect_drift_from_profile(
                profile,
                frame,
                columns=[column],
                method=(settings.get("per_column_method") or {}).get(column, settings["method"]),
                threshold=(settings.get("per_column_threshold") or {}).get(
                    column, settings["threshold"]
                ),
            )
        except InputDataError as error:
            recent_stats = profile.recent_statistics.get(column)
            if (
                isinstance(error, InsufficientDataError)
                and recent_stats is not None
                and recent_stats.empty_batches > 0
                and not column_series(frame, column).notna().any()
            ):
                # Entirely null, as some reference batches were: nothing to compare, nothing
                # broken (how many nulls are normal is the completeness check's judgement).
                signals.append(
                    tags.signal(
                        kind=SignalKind.DRIFT,
                        name=DRIFT,
                        column=column,
                        passed=True,
                        severity=Severity.INFO,
                        metadata={
                            "state": "empty",
                            "reference_empty_batches": recent_stats.empty_batches,
                            "importance": importance,
                            "importance_share": share,
                        },
                    )
                )
                continue
            # The column cannot even be compared (all null, numbers turned into text, ...):
            # a data fault in its own right, reported on this column.
            message = f"column {column!r} of {tags.asset_key!r} cannot be tested for drift: {error}"
            signals.append(
                tags.signal(
                    kind=SignalKind.DRIFT,
                    name=DRIFT,
                    column=column,
                    passed=False,
                    severity=Severity.ERROR,
                    metadata={
                        "input_error": str(error),
                        "importance": importance,
                        "importance_share": share,
                    },
                )
            )
            failures.append({"column": column, "problem": f"cannot be tested: {error}"})
            severities.append(Severity.ERROR)
            continue
        series = column_series(frame, column)
        reference_column = profile.columns[column]
        sketch = batch_sketch(series, reference_column)
        recent_verdict = (
            detect_recent_drift(
                profile,
                column,
                sketch,
                recent.sketches.get(column, ()) if recent is not None else (),
                recent.accepted.get(column, ()) if recent is not None else (),
            )
            if sketch is not None
            else None
        )
        novel = (
            novel_categories(profile, column, series)
            if isinstance(reference_column, CategoricalColumnProfile)
            else None
        )
        gradual = result.drifted and recent_verdict is not None and not recent_verdict.drifted
        failed = (result.drifted and not gradual) or (novel is not None and novel.substantial)
        if gradual:
            consequence, reason = GRADUAL, _gradual_reason(recent_verdict)
        column_severity = severity if failed else Severity.INFO
        signals.append(
            tags.signal(
                kind=SignalKind.DRIFT,
                name=DRIFT,
                column=column,
                value=result.statistic,
                passed=not failed,
                severity=column_severity,
                metadata={
                    **result.to_dict(),
                    **(recent_verdict.to_dict() if recent_verdict is not None else {}),
                    **(novel.to_dict() if novel is not None else {}),
                    "importance": importance,
                    "importance_share": share,
                    "consequence": consequence if result.drifted else None,
                    "reason": reason if result.drifted else None,
                    "sketch": sketch,
                },
            )
        )
        metadata[md.column_key("drift", column)] = result.statistic
        rows.append(
            {
                "column": column,
                "method": result.method,
                "statistic": result.statistic,
                "p_value": result.p_value,
                "threshold": _threshold_text(result),
                "drifted": result.drifted,
                "importance_share": share,
                "consequence": consequence if result.drifted else "",
            }
        )
        if result.drifted and not gradual:
            drifted.append(column)
            if consequence == CONSEQUENTIAL:
                consequential_columns.append(column)
            severities.append(severity)
            failures.append(
                {
                    "column": column,
                    "problem": f"drifted ({result.method} {_score_text(result)}"
                    + (
                        f"; {recent_verdict.statistic:.3g} > {recent_verdict.threshold:.3g} "
                        f"from the {recent_verdict.partitions} recent partition(s)"
                        if recent_verdict is not None
                        else ""
                    )
                    + f") — {consequence}: {reason}",
                    "consequence": consequence,
                }
            )
        elif gradual:
            gradual_columns.append(column)
        if novel is not None and novel.substantial:
            severities.append(severity)
            failures.append(
                {
                    "column": column,
                    "problem": f"{novel.share:.1%} of the values are in categories the "
                    f"reference never had ({', '.join(map(repr, novel.categories))}; more "
                    f"than {novel.threshold:.1%} is a new state of the column)",
                    "consequence": classify_drift(
                        column,
                        shares=shares,
                        importances=importances,
                        consequential_importance=share_threshold,
                    )[0],
                }
            )
    metadata[md.DRIFTED_COLUMNS] = drifted
    metadata[md.CONSEQUENTIAL_COLUMNS] = consequential_columns
    metadata[md.GRADUAL_DRIFT_COLUMNS] = gradual_columns
    if rows:
        metadata[md.DRIFT_TABLE] = dg.MetadataValue.md(_table(rows))
    tested = len(rows)
    if not failures:
        return CheckOutcome(
            passed=True,
            severity=Severity.INFO,
            description=f"no drift in {tested} column(s)"
            + (
                f" beyond the recent partitions' ({', '.join(gradual_columns)} moved gradually "
                "away from the reference)"
                if gradual_columns
                else ""
            ),
            metadata=metadata,
            signals=signals,
        )
    lines = [f"column {f['column']!r}: {f['problem']}" for f in failures]
    metadata[md.FAILURES] = failures
    return CheckOutcome(
        passed=False,
        severity=worst(severities),
        description=(
            f"{len(drifted)} of {tested} column(s) of {tags.asset_key!r} drifted "
            f"({len(consequential_columns)} consequential): " + "; ".join(lines)
        ),
        metadata=metadata,
        signals=signals,
        failed_count=len(failures),
    )


def _gradual_reason(recent: Any) -> str:
    return (
        f"drifted from the reference but only {recent.statistic:.3g} ≤ {recent.threshold:.3g} "
        f"from the {recent.partitions} partition(s) before it, no more than the reference's "
        "consecutive batches differ: a gradual change (a season, a trend), not a break"
    )


def recent_history(store: Any, tags: MaterializationTags) -> RecentHistory:
    """The check's own stored DRIFT signals of the partitions whose event time precedes this
    partition's (one read; the window widens only when a short one holds too few partitions)."""
    by_time: dict[Any, dict[str, Mapping[str, Any]]] = {}
    accepted: dict[str, list[float]] = {}
    for lookback in _RECENT_LOOKBACKS:
        found = store.read_signals(
            asset_key=tags.asset_key,
            name=DRIFT,
            kind=SignalKind.DRIFT,
            start=tags.event_time - lookback,
            end=tags.event_time,
        )
        by_time: dict[Any, dict[str, Mapping[str, Any]]] = {}
        accepted: dict[str, list[float]] = {}
        for signal in found:
            sketch = signal.metadata.get("sketch") if signal.column else None
            if not isinstance(sketch, Mapping) or signal.column is None:
                continue
            by_time.setdefault(signal.event_time, {})[signal.column] = sketch
            distance = signal.metadata.get("recent_statistic")
            if (
                signal.passed is True
                and isinstance(distance, int | float)
                and math.isfinite(distance)
            ):
                accepted.setdefault(signal.column, []).append(float(distance))
        if len(by_time) >= RECENT_PARTITIONS or lookback == _RECENT_LOOKBACKS[-1]:
            break
    sketches: dict[str, list[Mapping[str, Any]]] = {}
    for time in sorted(by_time)[-RECENT_PARTITIONS:]:
        for column, sketch in by_time[time].items():
            sketches.setdefault(column, []).append(sketch)
    return RecentHistory(sketches=sketches, accepted=accepted)


def _raised_by_batches(result: Any) -> bool:
    """The threshold is the reference batches' noise floor, above the configured one."""
    return result.batch_floor is not None and result.threshold > result.configured_threshold


def _threshold_text(result: Any) -> str:
    if _raised_by_batches(result):
        return (
            f"{result.threshold:.3g} (noise floor of {result.reference_batches} reference batches)"
        )
    return f"{result.threshold:g}"


def _score_text(result: Any) -> str:
    if result.p_value is not None:
        return f"p = {result.p_value:.3g} < {_threshold_text(result)}"
    return f"{result.statistic:.3g} ≥ {_threshold_text(result)}"


_MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\|<>[]"})


def _escape_markdown(text: str) -> str:
    """A data-derived string (a column name) as literal text in a markdown table cell."""
    return str(text).translate(_MARKDOWN_SPECIAL).replace("\n", " ")


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = "| column | method | statistic | p-value | threshold | drifted | importance share |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        p_value = "" if row["p_value"] is None else f"{row['p_value']:.3g}"
        share = "" if row["importance_share"] is None else f"{row['importance_share']:.1%}"
        verdict = f"**{row['consequence']}**" if row["drifted"] else "no"
        lines.append(
            f"| {_escape_markdown(row['column'])} | {row['method']} | {row['statistic']:.4g} | "
            f"{p_value} | {row['threshold']} | {verdict} | {share} |"
        )
    return "\n".join(lines)


__all__ = [
    "BENIGN",
    "CONSEQUENTIAL",
    "DEFAULT_THRESHOLDS",
    "FROM_REFERENCE_ASSET",
    "UNKNOWN",
    "build_drift_checks",
    "classify_drift",
    "importance_shares",
]
