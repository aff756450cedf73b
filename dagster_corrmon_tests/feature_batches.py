"""A monitored pipeline's per-partition batches from its pure feature code, without Dagster.

The drift and quality checks judge one partition's batch; building those batches through Dagster
costs seconds per partition. These helpers call what the pipeline's assets call — ``feed_batch``
per partition window, ``join_feeds`` + ``build_features``, ``train_model`` on the training
partitions — so a test or benchmark can run the same check functions over a year of partitions
in seconds.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dagster_corrmon.checks._common import CheckOutcome, finish
from dagster_corrmon.checks.drift import judge_drift, recent_history
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.pipeline import build_partitions_def, load_spec
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.builder import training_partition_keys
from dagster_corrmon.pipeline.features import (
    build_features,
    feature_sources,
    join_feeds,
    joined_column_origins,
)
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.spec import PipelineSpec, parse_spec
from dagster_corrmon.resource import CorrmonResource, MaterializationTags

Window = tuple[datetime, datetime]


def load_spec_with(path: Path | str, **overrides: Mapping[str, Any]) -> PipelineSpec:
    """The spec at ``path`` with some sections shallow-updated (e.g. another cadence)."""
    path = Path(path)
    if not overrides:
        return load_spec(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return parse_spec(data, base_dir=path.parent.resolve(), origin=str(path))


def partition_windows(spec: PipelineSpec) -> dict[str, Window]:
    """``{partition key: (start, end)}`` in UTC, as the pipeline's partitions define them."""
    partitions_def = build_partitions_def(spec)
    windows: dict[str, Window] = {}
    for key in partitions_def.get_partition_keys():
        window = partitions_def.time_window_for_partition_key(key)
        windows[key] = (window.start.astimezone(UTC), window.end.astimezone(UTC))
    return windows


FeedEdit = Callable[[str, str, pd.DataFrame], pd.DataFrame]
"""``(source name, partition, raw batch) -> batch``: an injected fault, applied before the join."""


@dataclass(frozen=True)
class PipelineBatches:
    """Per partition: each partitioned raw feed's batch and the features built from them."""

    spec: PipelineSpec
    windows: Mapping[str, Window]
    raw: Mapping[str, Mapping[str, pd.DataFrame]]  # partition -> source -> batch
    features: Mapping[str, pd.DataFrame]  # partition -> features

    @property
    def training(self) -> list[str]:
        return training_partition_keys(self.spec)

    @property
    def scored(self) -> list[str]:
        """The partitions after the training window (what monitoring judges)."""
        training = self.training
        return [key for key in self.windows if key > training[-1]]

    def train(self) -> ModelArtifact:
        from dagster_corrmon.pipeline.training import train_model

        training = self.training
        target = self.spec.target_source.name
        return train_model(
            self.spec,
            {key: self.features[key] for key in training},
            {key: self.raw[key][target] for key in training},
            feature_sources=self.features[training[0]].attrs.get("sources"),
        )


def pipeline_batches(
    spec: PipelineSpec, *, edit: FeedEdit | None = None, partitions: list[str] | None = None
) -> PipelineBatches:
    """Every partition's raw batches and features (``edit`` injects faults into raw batches)."""
    windows = partition_windows(spec)
    if partitions is not None:
        windows = {key: windows[key] for key in partitions}
    static = {s.name: feed_batch(s, None, None) for s in spec.sources if s.static}
    base = spec.base_source.name
    raw: dict[str, dict[str, pd.DataFrame]] = {}
    features: dict[str, pd.DataFrame] = {}
    for key, window in windows.items():
        feeds: dict[str, pd.DataFrame] = {}
        for source in spec.sources:
            batch = static[source.name] if source.static else feed_batch(source, *window)
            if edit is not None and not source.static:
                batch = edit(source.name, key, batch)
            feeds[source.name] = batch
        raw[key] = feeds
        joined_feeds = {s.name: feeds[s.name] for s in spec.joined_sources}
        joined, _ = join_feeds(spec, joined_feeds[base], joined_feeds)
        frame, _ = build_features(spec, joined, timezone=spec.partitioning.timezone)
        frame.attrs["sources"] = feature_sources(spec, joined_column_origins(spec, joined))
        features[key] = frame
    return PipelineBatches(spec=spec, windows=windows, raw=raw, features=features)


def partition_tags(asset_key: str, partition: str, window: Window) -> MaterializationTags:
    """Tags of one partition's materialization, judged once its window is over."""
    start, end = window
    return MaterializationTags(
        asset_key=asset_key,
        partition=partition,
        run_id="feature-batches",
        data_version=None,
        code_version=None,
        event_time=start,
        observed_at=end,
    )


def judge_drift_in_order(
    batches: PipelineBatches, artifact: Any, corrmon: CorrmonResource
) -> dict[str, CheckOutcome]:
    """The drift check's judgement of every scored partition, in order, as the pipeline's check
    makes it (the spec's settings; each result recorded, so later partitions see earlier ones)."""
    spec = batches.spec
    outcomes: dict[str, CheckOutcome] = {}
    for key in batches.scored:
        frame = batches.features[key]
        if len(frame) == 0:
            continue
        tags = partition_tags("features", key, batches.windows[key])
        outcome = judge_drift(
            frame,
            artifact.reference_profile,
            tags=tags,
            importances=artifact.feature_importances,
            settings={
                "columns": list(spec.features.columns),
                "method": None,
                "per_column_method": None,
                "threshold": None,
                "per_column_threshold": None,
            },
            share_threshold=spec.monitoring.consequential_importance,
            consequential=Severity.ERROR,
            benign=Severity.WARN,
            recent=recent_history(corrmon.get_store(), tags),
        )
        finish(corrmon, tags, check_name="corrmon_drift", kind=SignalKind.DRIFT, outcome=outcome)
        outcomes[key] = outcome
    return outcomes
