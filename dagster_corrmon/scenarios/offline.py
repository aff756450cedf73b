"""A monitored pipeline's partition computations without Dagster: what the generator measures.

The same functions the spec-built assets call (:mod:`dagster_corrmon.pipeline.builder`) — read
each feed's batch, inject, join, build features, score, join the labels — run in-process on one
partition, so a scenario's *counterfactual* (the model on the clean and on the injected batches)
costs a fraction of a second per partition instead of a Dagster run. Injections are applied as
``corrmon simulate`` applies them: in incident order, each seeded by (injection, partition, seed)
with :func:`~dagster_corrmon.scenarios.injections.injection_rng`, so the rows corrupted here are
the rows a simulation corrupts.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from dagster_corrmon.errors import CorrmonError
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.builder import (
    build_partitions_def,
    training_partition_keys,
)
from dagster_corrmon.pipeline.features import (
    build_features,
    feature_sources,
    join_feeds,
    joined_column_origins,
)
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.spec import PipelineSpec
from dagster_corrmon.pipeline.training import LABEL_COLUMN, label_frame, train_model
from dagster_corrmon.scenarios.injections import (
    CodeChange,
    DelayedBatch,
    Effect,
    LabelDelay,
    injection_rng,
)


class PartitionUnscorable(CorrmonError):
    """The injected partition produces no prediction (its run failed, or scoring raised)."""


@dataclass(frozen=True)
class Evaluated:
    """One partition's scored rows: row key, model score and label (labelled rows only)."""

    frame: pd.DataFrame  # columns: the row key, "score", "label"


class OfflinePipeline:
    """One spec's partitions, computed in-process (clean batches cached)."""

    def __init__(self, spec: PipelineSpec, *, seed: int = 0) -> None:
        self.spec = spec
        self.seed = seed
        self._clean: dict[str, dict[str, pd.DataFrame]] = {}
        self._static: dict[str, pd.DataFrame] = {}

    @cached_property
    def partitions_def(self) -> Any:
        return build_partitions_def(self.spec)

    @cached_property
    def partition_keys(self) -> list[str]:
        return list(self.partitions_def.get_partition_keys())

    @cached_property
    def training_keys(self) -> list[str]:
        return training_partition_keys(self.spec, self.partitions_def)

    def scoring_keys(self) -> list[str]:
        """Partitions after the training window (what ``corrmon simulate`` scores by default)."""
        last = self.training_keys[-1]
        return [k for k in self.partition_keys if k > last]

    def batches(self, partition: str) -> dict[str, pd.DataFrame]:
        """Every feed's clean batch of ``partition`` (a static table whole)."""
        if partition not in self._clean:
            window = self.partitions_def.time_window_for_partition_key(partition)
            frames: dict[str, pd.DataFrame] = {}
            for source in self.spec.sources:
                if source.static:
                    if source.name not in self._static:
                        self._static[source.name] = feed_batch(source, None, None)
                    frames[source.name] = self._static[source.name]
                else:
                    frames[source.name] = feed_batch(source, window.start, window.end)
            self._clean[partition] = frames
        return {name: frame.copy() for name, frame in self._clean[partition].items()}

    def features(
        self, partition: str, injections: Sequence[Any] = (), *, at_label_time: bool = True
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(features, labels feed)`` of ``partition`` with ``injections`` applied.

        ``at_label_time``: what the evaluation finally judges — a delayed batch re-delivered
        before its labels arrive is judged clean, one that arrives after them empty.
        Raises :class:`PartitionUnscorable` when the partition yields no prediction.
        """
        day = dt.date.fromisoformat(partition[:10])
        frames = self.batches(partition)
        for injection in injections:
            if injection.source not in frames or not injection.active(day):
                continue
            effect = injection.effect()
            if (
                effect is Effect.LATE_BATCH
                and at_label_time
                and isinstance(injection, DelayedBatch)
                and injection.delay <= self.spec.evaluation.label_delay
            ):
                continue  # re-delivered before the labels: the evaluation sees it whole
            if effect in (
                Effect.TRANSFORM_SOURCE,
                Effect.EMPTY_BATCH,
                Effect.FAIL_RUN,
                Effect.LATE_BATCH,
            ):
                rng = injection_rng(injection.id or "", partition, self.seed)
                try:
                    frames[injection.source] = injection.apply(frames[injection.source], rng)
                except Exception as error:  # an injected run failure, or a broken batch
                    raise PartitionUnscorable(f"{partition}: {error}") from error
        base = frames[self.spec.base_source.name]
        try:
            joined, _ = join_feeds(self.spec, base, frames)
            features, _ = build_features(
                self.spec, joined, timezone=self.spec.partitioning.timezone
            )
        except CorrmonError as error:
            raise PartitionUnscorable(f"{partition}: {error}") from error
        for change in injections:
            if isinstance(change, CodeChange) and change.active(day):
                rng = injection_rng(change.id or "", partition, self.seed)
                try:
                    features = change.apply(features, rng)
                except CorrmonError as error:
                    raise PartitionUnscorable(f"{partition}: {error}") from error
        features.attrs["corrmon_joined_origins"] = joined_column_origins(self.spec, joined)
        return features, frames[self.spec.target_source.name]

    def train(self) -> ModelArtifact:
        """The model as the pipeline's ``model`` asset trains it on the training window."""
        by_partition: dict[str, pd.DataFrame] = {}
        targets: dict[str, pd.DataFrame] = {}
        sources: dict[str, Any] = {}
        for key in self.training_keys:
            features, labels = self.features(key)
            origins = features.attrs.pop("corrmon_joined_origins", {})
            sources = feature_sources(self.spec, origins) or sources
            by_partition[key] = features
            targets[key] = labels
        return train_model(self.spec, by_partition, targets, feature_sources=sources or None)

    def evaluate(
        self, partition: str, model: ModelArtifact, injections: Sequence[Any] = ()
    ) -> Evaluated:
        """The partition's labelled rows, scored by ``model`` (labels are never injected:
        a label delay changes when they arrive, not what they are)."""
        features, labels_feed = self.features(
            partition, [i for i in injections if not isinstance(i, LabelDelay)]
        )
        features.attrs.pop("corrmon_joined_origins", None)
        if features.empty:
            raise PartitionUnscorable(f"{partition}: no rows to score")
        try:
            scores = np.asarray(model.score(features), dtype=float)
        except Exception as error:  # the estimator rejects the batch: the scoring run fails
            raise PartitionUnscorable(f"{partition}: scoring failed: {error}") from error
        row_key = list(self.spec.row_key)
        frame = features.loc[:, row_key].reset_index(drop=True)
        frame["score"] = scores
        labels = label_frame(self.spec, labels_feed).rename(columns={LABEL_COLUMN: "label"})
        frame = frame.merge(labels, on=row_key, how="left", sort=False)
        keep = frame["label"].notna().to_numpy() & np.isfinite(frame["score"].to_numpy(float))
        return Evaluated(frame=frame.loc[keep].reset_index(drop=True))
