"""The corrmon checks a monitored pipeline gets, chosen by the spec's ``monitoring`` section.

The checks are the same public factories a user calls on hand-written assets
(:mod:`dagster_corrmon.checks`); the pipeline only decides where they go:

* every raw feed: data quality (completeness, volume, the feed's validity rules) and its schema
  contract; time-partitioned feeds also freshness (late or missing partitions);
* features: schema contract, and drift of every feature against the reference profile of the
  model that is deployed, severity weighted by that model's permutation importances;
* evaluation: model performance (the spec's metrics, with bootstrap intervals, against an
  adaptive baseline and the spec's hard limits).

Each asset's checks run bundled in one step (``monitoring.bundle_checks``, default on): a
partition is then a handful of Dagster steps rather than one per check.
"""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from dagster_corrmon.checks import (
    BaselinePolicy,
    build_data_quality_checks,
    build_drift_checks,
    build_freshness_checks,
    build_model_evaluation_checks,
    build_schema_contract_checks,
    bundle_checks,
)
from dagster_corrmon.pipeline.layout import (
    ERROR,
    LABEL,
    LATENCY_MS,
    PREDICTION,
    SCORE,
    build_partitions_def,
    pipeline_keys,
)
from dagster_corrmon.pipeline.spec import PipelineSpec


def build_pipeline_checks(spec: PipelineSpec) -> Sequence[dg.AssetChecksDefinition]:
    """The checks the spec's ``monitoring`` section asks for, on the spec's lineage assets."""
    monitoring = spec.monitoring
    if not monitoring.enabled:
        return []
    keys = pipeline_keys(spec)
    partitions_def = build_partitions_def(spec)
    resource_key = monitoring.resource_key
    baseline = BaselinePolicy(
        seasonality=monitoring.baseline_seasonality, min_history=monitoring.baseline_min_history
    )
    checks: list[dg.AssetChecksDefinition] = []
    for source in spec.sources:
        key = keys.raw[source.name]
        feed_partitions = partitions_def if source.partitioned else None
        if monitoring.data_quality:
            checks += build_data_quality_checks(
                assets=[key],
                completeness=dict(source.completeness) or None,
                validity=list(source.validity) or None,
                baseline=baseline,
                partitions_def=feed_partitions,
                resource_key=resource_key,
            )
        if monitoring.schema_contracts:
            checks += build_schema_contract_checks(
                assets=[key], partitions_def=feed_partitions, resource_key=resource_key
            )
        if monitoring.freshness and source.partitioned:
            checks += build_freshness_checks(
                assets=[key],
                allowed_lateness=timedelta(hours=monitoring.allowed_lateness_hours),
                partitions_def=partitions_def,
                resource_key=resource_key,
            )
    if monitoring.schema_contracts:
        checks += build_schema_contract_checks(
            assets=[keys.features], partitions_def=partitions_def, resource_key=resource_key
        )
    checks += _model_dependent_checks(spec)
    if monitoring.model_performance:
        classification = spec.target.task == "classification"
        checks += build_model_evaluation_checks(
            asset=keys.evaluation,
            task=spec.target.task,
            label_column=LABEL,
            score_column=SCORE if classification else None,
            prediction_column=None if classification else PREDICTION,
            latency_column=LATENCY_MS,
            error_column=ERROR,
            metrics=spec.metrics,
            threshold=spec.evaluation.decision_threshold,
            n_resamples=monitoring.n_resamples,
            seed=spec.training.seed,
            limits=dict(monitoring.limits) or None,
            min_change=dict(monitoring.min_change) or None,
            incident_assets=[keys.model],
            partitions_def=partitions_def,
            resource_key=resource_key,
        )
    return bundle_checks(checks) if monitoring.bundle_checks else checks


def _model_dependent_checks(spec: PipelineSpec) -> Sequence[dg.AssetChecksDefinition]:
    monitoring = spec.monitoring
    if not (monitoring.enabled and monitoring.drift):
        return []
    keys = pipeline_keys(spec)
    return build_drift_checks(
        assets=[keys.features],
        reference=keys.model,
        feature_importance="from_reference_asset",
        consequential_importance=monitoring.consequential_importance,
        columns=list(spec.features.columns),
        partitions_def=build_partitions_def(spec),
        resource_key=monitoring.resource_key,
    )
