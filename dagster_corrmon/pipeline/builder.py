"""Build the lineage assets of a monitored ML pipeline from a :class:`PipelineSpec`.

The graph (names from ``spec.assets``)::

    raw_<feed> ... (one per source; time-partitioned, or unpartitioned for static tables)
        └─> joined ──> features ──┬──> model (unpartitioned, trained on the training window)
                                  └──> predictions (partitioned) <── model
    raw_<target feed> ────────────────> evaluation (partitioned) <── predictions

Every asset has owners, a group, kinds and a ``code_version`` (a hash of the spec fragment it
implements, so editing the features section changes the features' code version), and every
materialization returns a content-hash ``DataVersion`` plus ``dagster/row_count``,
``dagster/column_schema`` and — for joined, features, predictions and evaluation —
``dagster/column_lineage``. Dagster then records on each downstream materialization exactly which
upstream versions it consumed (``dagster/input_data_version/<key>``): the provenance the
correlation engine walks.

Two hooks let the scenario lab corrupt the pipeline without a second implementation of it:
``source_transform(source_name, partition_key, frame)`` rewrites (or fails, or empties, or
delays) a raw feed's batch, and ``feature_transform(partition_key, frame)`` ships a buggy feature
step (pair it with ``code_versions={"features": "buggy"}``).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon.errors import ConfigError, InputDataError
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.features import (
    FrameNote,
    build_features,
    feature_inputs,
    feature_sources,
    join_feeds,
    joined_column_origins,
)
from dagster_corrmon.pipeline.hashing import code_version, frame_data_version
from dagster_corrmon.pipeline.layout import (
    ERROR,
    LABEL,
    LATENCY_MS,
    MODEL_VERSION_COLUMN,
    PREDICTION,
    SCORE,
    PipelineKeys,
    build_partitions_def,
    pipeline_keys,
    training_partition_keys,
)
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.spec import PipelineSpec, SourceSpec
from dagster_corrmon.pipeline.training import LABEL_COLUMN, label_frame, train_model

# -- metadata keys (definition-level and per materialization) ------------------------------------
ROLE = "corrmon/role"  # raw | joined | features | model | predictions | evaluation
SOURCE = "corrmon/source"  # raw assets: the feed name
TIME_COLUMN = "corrmon/time_column"
LABEL_DELAY = "corrmon/label_delay"  # evaluation: partitions until labels arrive
TASK = "corrmon/task"
PARTITION_START = "corrmon/partition_start"
PARTITION_END = "corrmon/partition_end"
ARRIVED_AT = "corrmon/arrived_at"  # raw: when an injected/observed batch arrived
SOURCE_NOTE = "corrmon/note"
MATCH_RATE_PREFIX = "corrmon/join_match_rate/"  # joined: per joined feed
MODEL_VERSION = "corrmon/model_version"  # predictions: the artifact version used
FEATURE_SOURCES = "corrmon/feature_sources"  # features/model: feature -> raw feed columns
METRIC_PREFIX = "corrmon/metric/"  # evaluation: point estimates (checks add intervals)

FEATURE_SOURCES_ATTR = "corrmon_feature_sources"

ROLES = ("raw", "joined", "features", "model", "predictions", "evaluation")


@dataclass(frozen=True)
class SourceBatch:
    """What a ``source_transform`` may return instead of a bare frame: the batch plus when it
    arrived (a late batch) and a free-text note, both recorded on the raw materialization."""

    frame: pd.DataFrame
    arrived_at: datetime | None = None
    note: str | None = None


SourceTransform = Callable[[str, str | None, pd.DataFrame], "pd.DataFrame | SourceBatch"]
"""``(source_name, partition_key or None for static tables, frame) -> frame | SourceBatch``.
Raise to make the raw asset (and its run) fail; return an empty frame for a missing batch."""

FeatureTransform = Callable[[str, pd.DataFrame], pd.DataFrame]
"""``(partition_key, features frame) -> features frame`` — a (buggy) feature code version."""


def _table_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
        ),
    }


def _lineage(deps: Mapping[str, Sequence[tuple[dg.AssetKey, str]]]) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=key, column_name=name) for key, name in sources]
            for column, sources in deps.items()
        }
    )


def _window_metadata(context: dg.AssetExecutionContext) -> dict[str, Any]:
    window = context.partition_time_window
    return {
        PARTITION_START: dg.MetadataValue.timestamp(window.start),
        PARTITION_END: dg.MetadataValue.timestamp(window.end),
    }


def _partition_dict(value: Any, keys: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Dagster loads one mapped partition as the bare value and several as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    return {keys[0]: value}


def build_monitored_pipeline(
    spec: PipelineSpec,
    *,
    source_transform: SourceTransform | None = None,
    feature_transform: FeatureTransform | None = None,
    code_versions: Mapping[str, str] | None = None,
    with_checks: bool = True,
    checks: Sequence[dg.AssetChecksDefinition] = (),
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """The spec's lineage assets (and jobs to run them) as Dagster definitions.

    Args:
        spec: the validated pipeline spec.
        source_transform: rewrites each raw batch after it is read — how incidents are injected
            into upstream feeds. It may raise (the raw asset fails), return an empty frame (a
            missing batch), or return a :class:`SourceBatch` with ``arrived_at`` (a late one).
        feature_transform: rewrites each features batch (a buggy feature code version).
        code_versions: overrides of the computed code versions, by asset name
            (e.g. ``{"features": "buggy-1"}``), so a shipped code change is visible as one.
        with_checks: attach the corrmon checks the spec's ``monitoring`` section asks for
            (:func:`dagster_corrmon.pipeline.monitoring.build_pipeline_checks`).
        checks: further asset checks to attach.
        resources: resources for the definitions. The checks need a
            :class:`~dagster_corrmon.resource.CorrmonResource` under ``monitoring.resource_key``;
            when none is given, a default one (store beside ``$DAGSTER_HOME``) is bound.
    """
    keys = pipeline_keys(spec)
    partitions_def = build_partitions_def(spec)
    training_keys = training_partition_keys(spec, partitions_def)
    overrides = dict(code_versions or {})
    unknown = set(overrides) - {k.path[-1] for k in _all_keys(keys)}
    if unknown:
        raise ConfigError(f"code_versions: no asset named {', '.join(sorted(unknown))}")

    def version_of(asset_key: dg.AssetKey, computed: str) -> str:
        return overrides.get(asset_key.path[-1], computed)

    owners = list(spec.owners)
    assets: list[dg.AssetsDefinition] = [
        _raw_asset(
            spec,
            source=source,
            keys=keys,
            partitions_def=partitions_def,
            transform=source_transform,
            version_of=version_of,
            group_name=source.group or spec.group_name,
        )
        for source in spec.sources
    ]
    shared: dict[str, Any] = {
        "keys": keys,
        "version_of": version_of,
        "group_name": spec.group_name,
        "owners": owners,
    }
    assets += [
        _joined_asset(spec, partitions_def=partitions_def, **shared),
        _features_asset(spec, partitions_def=partitions_def, transform=feature_transform, **shared),
        _model_asset(spec, training_keys=training_keys, **shared),
        _predictions_asset(spec, partitions_def=partitions_def, **shared),
        _evaluation_asset(spec, partitions_def=partitions_def, **shared),
    ]
    all_checks = list(checks)
    bound = dict(resources or {})
    if with_checks and spec.monitoring.enabled:
        from dagster_corrmon.pipeline.monitoring import build_pipeline_checks
        from dagster_corrmon.resource import CorrmonResource

        all_checks = [*build_pipeline_checks(spec), *all_checks]
        bound.setdefault(spec.monitoring.resource_key, CorrmonResource())
    jobs = pipeline_jobs(spec, keys, all_checks)
    return dg.Definitions(assets=assets, asset_checks=all_checks, jobs=jobs, resources=bound)


def pipeline_jobs(
    spec: PipelineSpec, keys: PipelineKeys, checks: Sequence[dg.AssetChecksDefinition]
) -> list[Any]:
    """Asset jobs for each stage of a partition's life (what a simulator or a schedule runs).

    ``<name>_training_inputs`` materializes a training-window partition *before* the model
    exists, so it leaves out the checks that read the model (drift against its reference
    profile): Dagster would fail loading their model input. Build the jobs once and run them
    with ``defs.resolve_job_def(name).execute_in_process(partition_key=..., instance=...)``:
    ``dg.materialize`` re-resolves a job on every call.
    """
    needs_model = [
        check_spec.key
        for check in checks
        for check_spec in check.check_specs
        if any(dep.asset_key == keys.model for dep in check_spec.additional_deps)
    ]
    training = dg.AssetSelection.assets(*keys.training_inputs)
    if needs_model:
        training = training - dg.AssetSelection.checks(*needs_model)
    jobs: list[Any] = [
        dg.define_asset_job(f"{spec.name}_training_inputs", selection=training),
        dg.define_asset_job(f"{spec.name}_train", selection=[keys.model]),
        dg.define_asset_job(f"{spec.name}_score", selection=keys.scoring),
        dg.define_asset_job(f"{spec.name}_label", selection=keys.labeling),
        dg.define_asset_job(f"{spec.name}_partition", selection=keys.partition),
    ]
    if keys.static:
        jobs.append(dg.define_asset_job(f"{spec.name}_static", selection=keys.static))
    return jobs


def _all_keys(keys: PipelineKeys) -> list[dg.AssetKey]:
    return [key for group in keys.by_role().values() for key in group]


def _raw_asset(
    spec: PipelineSpec,
    *,
    source: SourceSpec,
    keys: PipelineKeys,
    partitions_def: dg.PartitionsDefinition,
    transform: SourceTransform | None,
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
) -> dg.AssetsDefinition:
    asset_key = keys.raw[source.name]
    file_kind = "parquet" if source.format == "parquet" else "csv"
    definition_metadata: dict[str, Any] = {ROLE: "raw", SOURCE: source.name}
    if source.time_column:
        definition_metadata[TIME_COLUMN] = source.time_column
    description = source.description or (
        f"Raw feed {source.name!r} from {source.location}"
        + (f", partitioned by {source.time_column}" if source.partitioned else " (static table)")
    )

    @dg.asset(
        key=asset_key,
        partitions_def=partitions_def if source.partitioned else None,
        owners=list(source.owners if source.owners is not None else spec.owners),
        kinds={"pandas", file_kind},
        code_version=version_of(asset_key, code_version("raw", source.model_dump(mode="json"))),
        description=description,
        metadata=definition_metadata,
        tags={ROLE: "raw"},
        group_name=group_name,
    )
    def _raw(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        metadata: dict[str, Any] = {}
        if source.partitioned:
            window = context.partition_time_window
            frame = feed_batch(source, window.start, window.end)
            partition_key: str | None = context.partition_key
            metadata.update(_window_metadata(context))
        else:
            frame = feed_batch(source, None, None)
            partition_key = None
        if transform is not None:
            result = transform(source.name, partition_key, frame)
            if isinstance(result, SourceBatch):
                frame = result.frame
                if result.arrived_at is not None:
                    metadata[ARRIVED_AT] = dg.MetadataValue.timestamp(result.arrived_at)
                if result.note:
                    metadata[SOURCE_NOTE] = result.note
            else:
                frame = result
            if not isinstance(frame, pd.DataFrame):
                raise InputDataError(
                    f"source_transform returned {type(frame).__name__} for {source.name!r}, "
                    "not a DataFrame or SourceBatch"
                )
        metadata.update(_table_metadata(frame))
        return dg.MaterializeResult(
            value=frame, metadata=metadata, data_version=dg.DataVersion(frame_data_version(frame))
        )

    return _raw


def _joined_asset(
    spec: PipelineSpec,
    *,
    keys: PipelineKeys,
    partitions_def: dg.PartitionsDefinition,
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
    owners: list[str],
) -> dg.AssetsDefinition:
    sources = spec.joined_sources
    ins = {f"feed_{s.name}": dg.AssetIn(key=keys.raw[s.name]) for s in sources}
    computed = code_version(
        "joined", spec.joins.model_dump(mode="json") if spec.joins else None, spec.row_key
    )

    @dg.asset(
        key=keys.joined,
        ins=ins,
        partitions_def=partitions_def,
        owners=owners,
        kinds={"pandas"},
        code_version=version_of(keys.joined, computed),
        description="The feeds joined into one row per prediction ("
        + " ⟕ ".join(s.name for s in sources)
        + ").",
        metadata={ROLE: "joined"},
        tags={ROLE: "joined"},
        group_name=group_name,
    )
    def _joined(context: dg.AssetExecutionContext, **feeds: pd.DataFrame) -> dg.MaterializeResult:
        frames = {name.removeprefix("feed_"): frame for name, frame in feeds.items()}
        joined, report = join_feeds(spec, frames[spec.base_source.name], frames)
        metadata = _table_metadata(joined)
        metadata.update(_window_metadata(context))
        metadata["dagster/column_lineage"] = _lineage(
            {c: [(keys.raw[feed], col)] for c, (feed, col) in report.column_origins.items()}
        )
        for feed, rate in report.match_rates.items():
            metadata[f"{MATCH_RATE_PREFIX}{feed}"] = float(rate)
        metadata["corrmon/duplicate_row_keys"] = int(report.duplicate_row_keys)
        metadata["corrmon/duplicate_join_keys_dropped"] = {
            k: int(v) for k, v in report.duplicate_keys_dropped.items()
        }
        return dg.MaterializeResult(
            value=joined,
            metadata=metadata,
            data_version=dg.DataVersion(frame_data_version(joined)),
        )

    return _joined


def _features_asset(
    spec: PipelineSpec,
    *,
    keys: PipelineKeys,
    partitions_def: dg.PartitionsDefinition,
    transform: FeatureTransform | None,
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
    owners: list[str],
) -> dg.AssetsDefinition:
    computed = code_version(
        "features", spec.features.model_dump(mode="json"), spec.partitioning.timezone
    )
    inputs = feature_inputs(spec)

    @dg.asset(
        key=keys.features,
        ins={"joined": dg.AssetIn(key=keys.joined)},
        partitions_def=partitions_def,
        owners=owners,
        kinds={"pandas"},
        code_version=version_of(keys.features, computed),
        description=f"Model features ({len(spec.features.columns)}) keyed by "
        f"{', '.join(spec.row_key)}.",
        metadata={ROLE: "features", "corrmon/feature_columns": list(spec.features.columns)},
        tags={ROLE: "features"},
        group_name=group_name,
    )
    def _features(context: dg.AssetExecutionContext, joined: pd.DataFrame) -> dg.MaterializeResult:
        frame, report = build_features(spec, joined, timezone=spec.partitioning.timezone)
        if transform is not None:
            frame = transform(context.partition_key, frame)
        origins = joined_column_origins(spec, joined)
        sources = feature_sources(spec, origins)
        frame.attrs[FEATURE_SOURCES_ATTR] = FrameNote(sources)
        metadata = _table_metadata(frame)
        metadata.update(_window_metadata(context))
        metadata["dagster/column_lineage"] = _lineage(
            {f: [(keys.joined, c) for c in cols] for f, cols in inputs.items()}
        )
        metadata[FEATURE_SOURCES] = {
            f: [f"{keys.raw[feed].to_user_string()}:{col}" for feed, col in deps]
            for f, deps in sources.items()
        }
        metadata["corrmon/missing_columns"] = list(report.missing_columns)
        metadata["corrmon/coerced_to_null"] = dict(report.coerced_to_null)
        return dg.MaterializeResult(
            value=frame,
            metadata=metadata,
            data_version=dg.DataVersion(frame_data_version(frame)),
        )

    return _features


def _model_asset(
    spec: PipelineSpec,
    *,
    keys: PipelineKeys,
    training_keys: Sequence[str],
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
    owners: list[str],
) -> dg.AssetsDefinition:
    # The training window is data, not code: it is left out so a retrain on new data keeps the
    # code version and only the data version moves.
    computed = code_version(
        "model",
        spec.features.model_dump(mode="json"),
        spec.target.model_dump(mode="json"),
        spec.estimator_path,
        spec.training.model.params,
        spec.training.holdout_fraction,
        spec.training.seed,
        spec.training.importance.model_dump(mode="json"),
        spec.row_key,
    )
    mapping = dg.SpecificPartitionsPartitionMapping(list(training_keys))

    @dg.asset(
        key=keys.model,
        ins={
            "features": dg.AssetIn(key=keys.features, partition_mapping=mapping),
            "labels_feed": dg.AssetIn(
                key=keys.raw[spec.target_source.name], partition_mapping=mapping
            ),
        },
        owners=owners,
        kinds={"sklearn", "python"},
        code_version=version_of(keys.model, computed),
        description=f"{spec.estimator_path.rsplit('.', 1)[-1]} predicting "
        f"{spec.target.describe()} ({spec.target.task}), trained on "
        f"[{spec.training.start}, {spec.training.end}); carries the reference profile and "
        "permutation feature importances.",
        metadata={
            ROLE: "model",
            TASK: spec.target.task,
            "corrmon/target": spec.target.describe(),
            "corrmon/training_partitions": [training_keys[0], training_keys[-1]],
        },
        tags={ROLE: "model"},
        group_name=group_name,
    )
    def _model(
        context: dg.AssetExecutionContext, features: Any, labels_feed: Any
    ) -> dg.MaterializeResult:
        by_partition = _partition_dict(features, training_keys)
        target_by_partition = _partition_dict(labels_feed, training_keys)
        sources: Mapping[str, Any] = {}
        for frame in by_partition.values():
            sources = frame.attrs.get(FEATURE_SOURCES_ATTR) or sources
        artifact = train_model(
            spec, by_partition, target_by_partition, feature_sources=sources or None
        )
        metadata: dict[str, Any] = {
            "corrmon/training_rows": artifact.training_rows,
            "corrmon/holdout_rows": artifact.holdout_rows,
            "corrmon/training_partition_count": len(artifact.training_partitions),
            "corrmon/importance_scoring": artifact.importance_scoring,
            "corrmon/feature_importances": dict(
                sorted(artifact.feature_importances.items(), key=lambda kv: -kv[1])
            ),
            "corrmon/reference_rows": int(artifact.reference_profile.rows),
            MODEL_VERSION: artifact.version,
        }
        for name, value in artifact.training_metrics.items():
            if value is not None:
                metadata[f"{METRIC_PREFIX}{name}"] = float(value)
        context.log.info(
            f"trained {artifact.estimator_path} on {artifact.training_rows} rows; holdout "
            f"metrics {dict(artifact.training_metrics)}"
        )
        return dg.MaterializeResult(
            value=artifact, metadata=metadata, data_version=dg.DataVersion(artifact.version)
        )

    return _model


def _predictions_asset(
    spec: PipelineSpec,
    *,
    keys: PipelineKeys,
    partitions_def: dg.PartitionsDefinition,
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
    owners: list[str],
) -> dg.AssetsDefinition:
    computed = code_version(
        "predictions", spec.scoring.model_dump(mode="json"), spec.evaluation.decision_threshold
    )
    feature_columns = list(spec.features.columns)

    @dg.asset(
        key=keys.predictions,
        ins={"features": dg.AssetIn(key=keys.features), "model": dg.AssetIn(key=keys.model)},
        partitions_def=partitions_def,
        owners=owners,
        kinds={"pandas", "sklearn"},
        code_version=version_of(keys.predictions, computed),
        description="Per-row scores of the batch, each request timed (latency, error).",
        metadata={ROLE: "predictions"},
        tags={ROLE: "predictions"},
        group_name=group_name,
    )
    def _predictions(
        context: dg.AssetExecutionContext, features: pd.DataFrame, model: ModelArtifact
    ) -> dg.MaterializeResult:
        frame, scored = prediction_frame(spec, features, model)
        for message in scored.error_messages:
            context.log.warning(f"scoring request failed: {message}")
        metadata = _table_metadata(frame)
        metadata.update(_window_metadata(context))
        metadata[MODEL_VERSION] = model.version
        metadata["corrmon/error_rows"] = int(scored.error.sum())
        if len(frame):
            metadata["corrmon/latency_p95_ms"] = float(np.percentile(scored.latency_ms, 95))
            finite = scored.scores[np.isfinite(scored.scores)]
            if len(finite):
                metadata["corrmon/mean_score"] = float(finite.mean())
        score_deps = [(keys.features, c) for c in feature_columns] + [(keys.model, "estimator")]
        metadata["dagster/column_lineage"] = _lineage(
            {
                **{k: [(keys.features, k)] for k in spec.row_key},
                SCORE: score_deps,
                PREDICTION: score_deps,
            }
        )
        return dg.MaterializeResult(
            value=frame,
            metadata=metadata,
            data_version=dg.DataVersion(prediction_data_version(spec, frame)),
        )

    return _predictions


def _evaluation_asset(
    spec: PipelineSpec,
    *,
    keys: PipelineKeys,
    partitions_def: dg.PartitionsDefinition,
    version_of: Callable[[dg.AssetKey, str], str],
    group_name: str,
    owners: list[str],
) -> dg.AssetsDefinition:
    from dagster_corrmon.core.metrics import (
        evaluate_classification,
        evaluate_regression,
        evaluate_serving,
    )

    computed = code_version(
        "evaluation",
        spec.target.model_dump(mode="json"),
        spec.evaluation.model_dump(mode="json"),
        spec.row_key,
    )
    target_key = keys.raw[spec.target_source.name]
    task_metrics = [m for m in spec.metrics if not m.startswith("latency") and m != "error_rate"]
    serving_metrics = [m for m in spec.metrics if m not in task_metrics]

    @dg.asset(
        key=keys.evaluation,
        ins={
            "predictions": dg.AssetIn(key=keys.predictions),
            "labels_feed": dg.AssetIn(key=target_key),
        },
        partitions_def=partitions_def,
        owners=owners,
        kinds={"pandas"},
        code_version=version_of(keys.evaluation, computed),
        description=f"Predictions joined with their labels ({spec.target.describe()}), which "
        f"arrive {spec.evaluation.label_delay} partition(s) after scoring.",
        metadata={
            ROLE: "evaluation",
            TASK: spec.target.task,
            LABEL_DELAY: spec.evaluation.label_delay,
            "corrmon/metrics": list(spec.metrics),
            "corrmon/decision_threshold": spec.evaluation.decision_threshold,
        },
        tags={ROLE: "evaluation"},
        group_name=group_name,
    )
    def _evaluation(
        context: dg.AssetExecutionContext, predictions: pd.DataFrame, labels_feed: pd.DataFrame
    ) -> dg.MaterializeResult:
        frame = evaluation_frame(spec, predictions, labels_feed)
        metadata = _table_metadata(frame)
        metadata.update(_window_metadata(context))
        labelled = frame[LABEL].notna().to_numpy() & np.isfinite(frame[SCORE].to_numpy(float))
        metadata["corrmon/labelled_rows"] = int(labelled.sum())
        metadata["corrmon/label_coverage"] = float(labelled.mean()) if len(frame) else 0.0
        y_true = frame[LABEL].to_numpy(float)[labelled]
        y_score = frame[SCORE].to_numpy(float)[labelled]
        point: dict[str, Any] = {}
        if task_metrics and labelled.any():
            if spec.target.task == "classification":
                metadata["corrmon/positive_rate"] = float(y_true.mean())
                point = evaluate_classification(
                    y_true,
                    y_score,
                    threshold=spec.evaluation.decision_threshold,
                    n_resamples=0,
                    metrics=task_metrics,
                )
            else:
                point = evaluate_regression(y_true, y_score, n_resamples=0, metrics=task_metrics)
        if serving_metrics and len(frame):
            point.update(
                evaluate_serving(
                    frame[LATENCY_MS].to_numpy(float),
                    frame[ERROR].to_numpy(bool),
                    n_resamples=0,
                    metrics=serving_metrics,
                )
            )
        for name, value in point.items():
            if value.value is not None:
                metadata[f"{METRIC_PREFIX}{name}"] = float(value.value)
        metadata["dagster/column_lineage"] = _lineage(
            {
                **{k: [(keys.predictions, k)] for k in spec.row_key},
                SCORE: [(keys.predictions, SCORE)],
                PREDICTION: [(keys.predictions, PREDICTION)],
                LABEL: [(target_key, spec.target.column)],
            }
        )
        return dg.MaterializeResult(
            value=frame,
            metadata=metadata,
            data_version=dg.DataVersion(evaluation_data_version(spec, frame)),
        )

    return _evaluation


def prediction_frame(
    spec: PipelineSpec, features: pd.DataFrame, model: ModelArtifact
) -> tuple[pd.DataFrame, Any]:
    """The predictions asset's value for a features batch, and the timed scoring behind it."""
    scored = model.score_in_requests(features, batch_size=spec.scoring.batch_size)
    frame = features.loc[:, list(spec.row_key)].reset_index(drop=True)
    frame[SCORE] = scored.scores
    frame[PREDICTION] = model.predict(scored.scores)
    frame[LATENCY_MS] = scored.latency_ms
    frame[ERROR] = scored.error
    frame[MODEL_VERSION_COLUMN] = model.version
    return frame, scored


def prediction_data_version(spec: PipelineSpec, frame: pd.DataFrame) -> str:
    """Predictions' data version: what they say, not how long they took (latency varies)."""
    return frame_data_version(
        frame, columns=[*spec.row_key, SCORE, PREDICTION, ERROR, MODEL_VERSION_COLUMN]
    )


def evaluation_frame(
    spec: PipelineSpec, predictions: pd.DataFrame, labels_feed: pd.DataFrame
) -> pd.DataFrame:
    """The evaluation asset's value: the predictions joined with their labels."""
    labels = label_frame(spec, labels_feed).rename(columns={LABEL_COLUMN: LABEL})
    frame = predictions.merge(labels, on=list(spec.row_key), how="left", sort=False)
    return frame.loc[:, [*spec.row_key, SCORE, PREDICTION, LABEL, LATENCY_MS, ERROR]]


def evaluation_data_version(spec: PipelineSpec, frame: pd.DataFrame) -> str:
    return frame_data_version(frame, columns=[*spec.row_key, SCORE, PREDICTION, LABEL, ERROR])
