"""Training the model once, on the training window, and measuring what monitoring needs.

The holdout is the *latest* ``holdout_fraction`` of the training rows (time order, not a random
split): the permutation importances and training metrics then describe how the model does on
data it has not seen from later in time — the situation it will be in when scoring.
"""

import pickle
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_corrmon.core.drift import calibrate_profile
from dagster_corrmon.core.metrics import evaluate_classification, evaluate_regression
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.features import ColumnOrigin, column_of, numbers
from dagster_corrmon.pipeline.hashing import bytes_data_version
from dagster_corrmon.pipeline.spec import CLASSIFICATION_METRICS, PipelineSpec, import_object

LABEL_COLUMN = "__corrmon_label__"
_MIN_TRAINING_ROWS = 20


def make_labels(spec: PipelineSpec, frame: pd.DataFrame) -> pd.Series:
    """The label of each row (float: 0/1 for classification, the value for regression; NaN if
    the target is missing — a cancelled flight has no arrival delay and no label)."""
    target = spec.target
    if target.column not in frame.columns:
        raise InputDataError(
            f"labels: target column {target.column!r} is not in feed {spec.target_source.name!r}"
        )
    values = column_of(frame, target.column)
    present = values.notna().to_numpy()
    if target.task == "regression":
        labels = numbers(values)
    elif target.threshold is not None:
        compare = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
        measured = numbers(values)
        present &= ~np.isnan(measured)
        labels = compare[target.operator](measured, target.threshold).astype(float)
    elif target.positive_value is not None:
        labels = (values == target.positive_value).to_numpy(dtype=float)
    else:
        labels = numbers(values.astype(object).where(present, None))
        invalid = present & ~np.isin(labels, [0.0, 1.0])
        if invalid.any():
            example = values.to_numpy()[invalid][0]
            raise InputDataError(
                f"labels: target {target.column!r} has values other than 0/1 "
                f"(e.g. {example!r}); set target.threshold or target.positive_value"
            )
    return pd.Series(np.where(present, labels, np.nan), index=frame.index, dtype=float)


def label_frame(spec: PipelineSpec, feed: pd.DataFrame) -> pd.DataFrame:
    """Row key + label of the labelled rows of one target-feed batch (first row per key wins)."""
    frame = feed.loc[:, list(spec.row_key)].assign(**{LABEL_COLUMN: make_labels(spec, feed)})
    frame = frame.loc[column_of(frame, LABEL_COLUMN).notna().to_numpy()]
    return frame.drop_duplicates(list(spec.row_key), keep="first").reset_index(drop=True)


def retrain_partitions(
    scored: Sequence[str], *, labelled: Collection[str], window: int
) -> list[str]:
    """The partitions a retrain learns from: the latest ``window`` of ``scored`` whose labels
    have arrived, in time order.

    A partition is scored when its features exist but labelled only ``label_delay`` partitions
    later (more while labels run late): the model reads its labels feed in every training
    partition, so a window ending at the partition just scored asks for labels that are not
    stored yet and the retrain fails. The window therefore ends at the last labelled partition,
    and a partition whose labels are still missing inside it is left out rather than read.
    """
    if window < 1:
        raise ConfigError(f"retrain window must be >= 1 partition, got {window}")
    have = set(labelled)
    chosen = [key for key in scored if key in have][-window:]
    if not chosen:
        raise InsufficientDataError(
            f"retrain: none of the {len(scored)} scored partition(s) has its labels yet"
        )
    return chosen


def make_estimator(spec: PipelineSpec, categorical_mask: Sequence[bool]) -> object:
    """Instantiate the spec's estimator; HistGradientBoosting gets native categorical support."""
    estimator_class = import_object(spec.estimator_path)
    params = dict(spec.training.model.params)
    try:
        estimator = estimator_class(**params)
    except TypeError as error:
        raise ConfigError(
            f"training.model.params: {spec.estimator_path} rejects {sorted(params)}: {error}"
        ) from None
    get_params: Any = getattr(estimator, "get_params", None)
    settable: Mapping[str, Any] = (
        cast(Mapping[str, Any], get_params()) if callable(get_params) else {}
    )
    updates: dict[str, object] = {}
    if "categorical_features" in settable and "categorical_features" not in params:
        updates["categorical_features"] = np.asarray(categorical_mask, dtype=bool)
    if "random_state" in settable and "random_state" not in params:
        updates["random_state"] = spec.training.seed
    if updates:
        estimator.set_params(**updates)  # type: ignore[attr-defined]
    if not hasattr(estimator, "fit"):
        raise ConfigError(f"training.model.estimator: {spec.estimator_path} has no fit()")
    return estimator


def _category_levels(
    frame: pd.DataFrame, columns: Sequence[str], limit: int
) -> dict[str, tuple[str, ...]]:
    """The ``limit`` most frequent training values of each categorical column (ties by value)."""
    levels: dict[str, tuple[str, ...]] = {}
    for name in columns:
        counts = column_of(frame, name).dropna().astype(str).value_counts()
        ranked = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda i: (-i[1], i[0]))
        levels[name] = tuple(level for level, _ in ranked[:limit])
    return levels


def _metric_values(spec: PipelineSpec, labels: np.ndarray, scores: np.ndarray) -> dict:
    if len(labels) == 0:
        return {}
    if spec.target.task == "classification":
        results = evaluate_classification(
            labels,
            scores,
            threshold=spec.evaluation.decision_threshold,
            n_resamples=0,
            metrics=list(CLASSIFICATION_METRICS),
        )
    else:
        results = evaluate_regression(labels, scores, n_resamples=0)
    return {name: (None if m.value is None else float(m.value)) for name, m in results.items()}


def _importance_scoring(spec: PipelineSpec, holdout_labels: np.ndarray) -> str:
    if spec.target.task == "regression":
        return "neg_mean_absolute_error"
    if len(np.unique(holdout_labels)) == 2:
        return "roc_auc"
    return "neg_log_loss"


def train_model(
    spec: PipelineSpec,
    features_by_partition: Mapping[str, pd.DataFrame],
    target_by_partition: Mapping[str, pd.DataFrame],
    *,
    feature_sources: Mapping[str, Sequence[ColumnOrigin]] | None = None,
) -> ModelArtifact:
    """Fit the spec's estimator on the training partitions and measure it on a later holdout."""
    from sklearn.inspection import permutation_importance

    partitions = sorted(features_by_partition)
    features = spec.features
    feature_columns = features.columns
    frames = [features_by_partition[p] for p in partitions]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    labels = pd.concat(
        [label_frame(spec, target_by_partition[p]) for p in sorted(target_by_partition)],
        ignore_index=True,
    ).drop_duplicates(list(spec.row_key), keep="first")
    table = table.merge(labels, on=list(spec.row_key), how="inner", sort=False)
    if len(table) < _MIN_TRAINING_ROWS:
        raise InsufficientDataError(
            f"training: only {len(table)} labelled rows in partitions "
            f"{partitions[0] if partitions else '?'}..{partitions[-1] if partitions else '?'} "
            f"(need at least {_MIN_TRAINING_ROWS})"
        )
    levels = _category_levels(table, features.categorical, features.max_categories)
    # The reference (a feature all null in training stays in it as empty: its filling is news),
    # how far each training partition drifts from it and from the partitions before it: the
    # noise floors a scored partition of the same grain is judged above
    # (core.drift.calibrate_profile).
    reference_profile = calibrate_profile(
        build_reference_profile(table, columns=list(feature_columns), keep_empty=True), frames
    )
    artifact = ModelArtifact(
        estimator=None,
        task=spec.target.task,
        target=spec.target.column,
        target_rule=spec.target.describe(),
        feature_columns=tuple(feature_columns),
        categorical_columns=tuple(features.categorical),
        category_levels=levels,
        reference_profile=reference_profile,
        feature_importances={},
        feature_importance_std={},
        importance_scoring="",
        training_metrics={},
        threshold=spec.evaluation.decision_threshold,
        training_partitions=tuple(partitions),
        training_rows=0,
        holdout_rows=0,
        estimator_path=spec.estimator_path,
    )
    matrix = artifact.encode(table)
    y = table[LABEL_COLUMN].to_numpy(dtype=float)
    if spec.target.task == "classification":
        y = y.astype(int)
    split = round(len(table) * (1 - spec.training.holdout_fraction))
    split = min(max(split, 1), len(table) - 1)
    estimator = make_estimator(spec, [c in levels for c in feature_columns])
    threads = spec.training.model.threads
    with threadpool_limits(limits=threads, user_api="openmp"):
        estimator.fit(matrix.iloc[:split], y[:split])  # type: ignore[attr-defined]
    artifact = replace(artifact, estimator=estimator, threads=threads)
    holdout, holdout_y = matrix.iloc[split:], y[split:]
    holdout_scores = artifact.score(table.iloc[split:])
    metrics = _metric_values(spec, holdout_y.astype(float), holdout_scores)
    rng = np.random.default_rng(spec.training.seed)
    max_rows = spec.training.importance.max_rows
    if len(holdout) > max_rows:
        rows = np.sort(rng.choice(len(holdout), size=max_rows, replace=False))
        holdout, holdout_y = holdout.iloc[rows], holdout_y[rows]
    scoring = _importance_scoring(spec, holdout_y)
    with threadpool_limits(limits=threads, user_api="openmp"):
        result: Any = permutation_importance(
            estimator,
            holdout,
            holdout_y,
            scoring=scoring,
            n_repeats=spec.training.importance.n_repeats,
            random_state=spec.training.seed,
        )
    importances = dict(zip(feature_columns, map(float, result.importances_mean), strict=True))
    spreads = dict(zip(feature_columns, map(float, result.importances_std), strict=True))
    sources = {k: tuple(tuple(o) for o in v) for k, v in (feature_sources or {}).items()}
    artifact = replace(
        artifact,
        feature_importances=importances,
        feature_importance_std=spreads,
        importance_scoring=scoring,
        training_metrics=metrics,
        training_rows=split,
        holdout_rows=len(table) - split,
        feature_sources=sources,
    )
    version = bytes_data_version(
        pickle.dumps(estimator, protocol=5),
        repr(
            (artifact.feature_columns, sorted(levels.items()), artifact.threshold, partitions)
        ).encode(),
    )
    return replace(artifact, version=version)
