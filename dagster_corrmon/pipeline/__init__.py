"""Spec-driven monitored lineage pipelines: a YAML spec in, Dagster assets out::

spec = load_spec("flights.yaml")
defs = build_monitored_pipeline(spec)
"""

from dagster_corrmon.pipeline.artifacts import ModelArtifact, ScoredBatch
from dagster_corrmon.pipeline.builder import (
    FeatureTransform,
    SourceBatch,
    SourceTransform,
    build_monitored_pipeline,
)
from dagster_corrmon.pipeline.layout import (
    PipelineKeys,
    build_partitions_def,
    pipeline_keys,
    training_partition_keys,
)
from dagster_corrmon.pipeline.spec import PipelineSpec, SpecError, load_spec, parse_spec

__all__ = [
    "FeatureTransform",
    "ModelArtifact",
    "PipelineKeys",
    "PipelineSpec",
    "ScoredBatch",
    "SourceBatch",
    "SourceTransform",
    "SpecError",
    "build_monitored_pipeline",
    "build_partitions_def",
    "load_spec",
    "parse_spec",
    "pipeline_keys",
    "training_partition_keys",
]
