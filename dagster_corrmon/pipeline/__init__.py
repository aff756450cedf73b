"""Spec-driven monitored lineage pipelines: a YAML spec in, Dagster assets out::

spec = load_spec("flights.yaml")
defs = build_monitored_pipeline(spec)
"""

from dagster_corrmon.instance_api import partition_input_data_version
from dagster_corrmon.pipeline.artifacts import ModelArtifact, ScoredBatch
from dagster_corrmon.pipeline.builder import (
    FeatureTransform,
    PipelineKeys,
    SourceBatch,
    SourceTransform,
    build_monitored_pipeline,
    build_partitions_def,
    pipeline_keys,
    training_partition_keys,
)
from dagster_corrmon.pipeline.hashing import frame_data_version
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
    "frame_data_version",
    "load_spec",
    "parse_spec",
    "partition_input_data_version",
    "pipeline_keys",
    "training_partition_keys",
]
