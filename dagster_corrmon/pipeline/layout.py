"""The layout of a spec's pipeline: its asset keys, partitions and evaluation columns.

Shared by the asset builder (``builder``) and the checks attached to those assets
(``monitoring``), so neither imports the other for it.
"""

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import dagster as dg

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.spec import PipelineSpec

# the evaluation frame's columns
SCORE, PREDICTION, LABEL = "score", "prediction", "label"
LATENCY_MS, ERROR, MODEL_VERSION_COLUMN = "latency_ms", "error", "model_version"


@dataclass(frozen=True)
class PipelineKeys:
    """The asset keys of one spec's lineage graph."""

    raw: Mapping[str, dg.AssetKey]  # source name -> raw asset key
    joined: dg.AssetKey
    features: dg.AssetKey
    model: dg.AssetKey
    predictions: dg.AssetKey
    evaluation: dg.AssetKey
    target_source: str
    static_sources: tuple[str, ...]
    joined_sources: tuple[str, ...]

    def by_role(self) -> dict[str, list[dg.AssetKey]]:
        return {
            "raw": list(self.raw.values()),
            "joined": [self.joined],
            "features": [self.features],
            "model": [self.model],
            "predictions": [self.predictions],
            "evaluation": [self.evaluation],
        }

    @property
    def static(self) -> list[dg.AssetKey]:
        """Unpartitioned raw tables: materialize them before the first partition."""
        return [self.raw[name] for name in self.static_sources]

    @property
    def scoring(self) -> list[dg.AssetKey]:
        """What one partition needs at scoring time: its feeds (except a labels-only feed),
        joined, features, predictions."""
        feeds = [
            key
            for name, key in self.raw.items()
            if name not in self.static_sources and name != self.target_source
        ]
        if self.target_source in self.joined_sources:
            feeds.append(self.raw[self.target_source])
        return [*feeds, self.joined, self.features, self.predictions]

    @property
    def labeling(self) -> list[dg.AssetKey]:
        """What one partition needs once its labels arrived: the target feed (unless it was
        already materialized at scoring time) and the evaluation."""
        if self.target_source in self.joined_sources:
            return [self.evaluation]
        return [self.raw[self.target_source], self.evaluation]

    @property
    def training_inputs(self) -> list[dg.AssetKey]:
        """What one training partition needs before the model can train: its feeds (the
        target feed included), joined and features."""
        feeds = [k for n, k in self.raw.items() if n not in self.static_sources]
        return [*feeds, self.joined, self.features]

    @property
    def partition(self) -> list[dg.AssetKey]:
        """Every partitioned asset, raw feeds to evaluation."""
        return list(dict.fromkeys([*self.scoring, *self.labeling]))


def pipeline_keys(spec: PipelineSpec) -> PipelineKeys:
    names = spec.assets
    prefix = list(names.key_prefix)

    def key(name: str) -> dg.AssetKey:
        return dg.AssetKey([*prefix, name])

    return PipelineKeys(
        raw={s.name: key(f"{names.raw_prefix}{s.name}") for s in spec.sources},
        joined=key(names.joined),
        features=key(names.features),
        model=key(names.model),
        predictions=key(names.predictions),
        evaluation=key(names.evaluation),
        target_source=spec.target_source.name,
        static_sources=tuple(s.name for s in spec.sources if s.static),
        joined_sources=tuple(s.name for s in spec.joined_sources),
    )


def build_partitions_def(spec: PipelineSpec) -> dg.TimeWindowPartitionsDefinition:
    """The spec's time partitions (``end`` exclusive), in the spec's time zone."""
    part = spec.partitioning
    kwargs: dict[str, Any] = {
        "start_date": part.start.isoformat(),
        "end_date": part.end.isoformat(),
        "timezone": part.timezone,
    }
    if part.cadence == "daily":
        return dg.DailyPartitionsDefinition(**kwargs)
    if part.cadence == "weekly":
        return dg.WeeklyPartitionsDefinition(**kwargs)
    return dg.MonthlyPartitionsDefinition(**kwargs)


def training_partition_keys(
    spec: PipelineSpec, partitions_def: dg.TimeWindowPartitionsDefinition | None = None
) -> list[str]:
    """Partition keys whose whole window lies in the training window ``[start, end)``."""
    partitions_def = partitions_def or build_partitions_def(spec)
    zone = zoneinfo.ZoneInfo(spec.partitioning.timezone)
    start = datetime.combine(spec.training.start, time(), tzinfo=zone)
    end = datetime.combine(spec.training.end, time(), tzinfo=zone)
    keys: list[str] = []
    for key in partitions_def.get_partition_keys():
        window = partitions_def.time_window_for_partition_key(key)
        if start <= window.start and window.end <= end:
            keys.append(key)
    if not keys:
        raise ConfigError(
            f"training: no {spec.partitioning.cadence} partition lies inside "
            f"[{spec.training.start}, {spec.training.end})"
        )
    return keys
