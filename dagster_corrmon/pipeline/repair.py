"""The repair test for a spec-built pipeline: restore a suspect, re-score, measure the recovery.

Interventional evidence (DESIGN §1.6): for a candidate cause, the degraded partitions' features
are re-scored with the suspect feature column(s) *restored* to the last good partitions before the
onset (the "last good upstream version", by quantile mapping: see :func:`restore_column`) —
and the metric is computed on the same labelled rows, before and after. A true cause recovers
most of the loss; a co-moving bystander, or a change of the world the model never saw (concept
drift), does not.
"""

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon.core.attribution import (
    CandidateEvent,
    CandidateSeries,
    RepairFunction,
    RepairOutcome,
    RepairRequest,
)
from dagster_corrmon.core.metrics import METRICS
from dagster_corrmon.instance_api import all_materializations, materialized_partitions
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.layout import LABEL, SCORE, PipelineKeys, pipeline_keys
from dagster_corrmon.pipeline.spec import PipelineSpec

GOOD_PARTITIONS = 7  # how many partitions before the onset lend their values
MAX_ROWS = 20_000  # rows re-scored per repair (subsampled beyond, seeded)


def columns_to_restore(
    candidate: CandidateSeries | CandidateEvent, artifact: ModelArtifact, keys: PipelineKeys
) -> list[str]:
    """The model's feature columns a candidate stands for (through the column lineage)."""
    features = list(artifact.feature_columns)
    raw_feed = {key.to_user_string(): name for name, key in keys.raw.items()}
    asset = candidate.asset_key
    column = candidate.column
    if asset in raw_feed:
        feed = raw_feed[asset]
        fed = [
            feature
            for feature, deps in artifact.feature_sources.items()
            if any(
                dep_feed == feed and (column is None or dep_col == column)
                for dep_feed, dep_col in deps
            )
        ]
        if fed:
            return [f for f in features if f in fed]
        return [column] if column in features else []
    if column is not None:
        return [column] if column in features else []
    if asset in (keys.features.to_user_string(), keys.joined.to_user_string()):
        return features
    return []


def restore_column(
    degraded: pd.Series, donor: pd.Series, rng: np.random.Generator
) -> np.ndarray | pd.Series | None:
    """The column as the last good partitions would have delivered it, row order kept.

    Numeric values are *quantile-mapped* onto the donor distribution: each value keeps its rank
    and takes the donor's value at that rank. A unit change, an offset or a rescaling — any
    monotone corruption — is undone exactly up to sampling error, and the rows keep their
    relation to the label (resampling the marginal instead would destroy it, and a highly
    predictive feature would look like no cause at all). Missing values, and categories the
    donor never had, are drawn from the donor. When most of the column is missing there is no
    information left to restore, and ``None`` says the repair test has no verdict.
    """
    if pd.api.types.is_numeric_dtype(donor) and pd.api.types.is_numeric_dtype(degraded):
        pool = donor.to_numpy(dtype=float)
        pool = np.sort(pool[np.isfinite(pool)])
        values = degraded.to_numpy(dtype=float)
        present = np.isfinite(values)
        if pool.size == 0 or present.mean() < 0.5:
            return None
        out = np.empty(len(values))
        ranks = pd.Series(values[present]).rank(method="average").to_numpy()
        out[present] = np.quantile(pool, (ranks - 0.5) / present.sum())
        out[~present] = pool[rng.integers(0, pool.size, int((~present).sum()))]
        return out
    pool = donor.dropna().to_numpy()
    if pool.size == 0:
        return None
    known = set(pool.tolist())
    keep = degraded.notna() & degraded.isin(known)
    if keep.mean() < 0.5 and degraded.notna().mean() < 0.5:
        return None
    out = degraded.astype(object).copy()
    missing = ~keep.to_numpy()
    out[missing] = pool[rng.integers(0, pool.size, int(missing.sum()))]
    return out


def labelled_rows(spec: PipelineSpec, features: object, evaluation: object) -> pd.DataFrame | None:
    """A partition's features with the labels its evaluation joined (labelled rows only)."""
    if not isinstance(features, pd.DataFrame) or not isinstance(evaluation, pd.DataFrame):
        return None
    merged = features.merge(
        evaluation.loc[:, [*spec.row_key, LABEL]], on=list(spec.row_key), how="inner"
    )
    return pd.DataFrame(merged[merged[LABEL].notna()])


def repair_function(
    spec: PipelineSpec,
    partition_keys: Sequence[str],
    *,
    metric: str,
    seed: int,
    stored_model: Callable[[], ModelArtifact | None],
    load: Callable[[Sequence[str]], Mapping[str, pd.DataFrame | None]],
    scoring_versions: Callable[[Sequence[str]], Mapping[str, str | None]],
) -> RepairFunction:
    """The repair test over partitions read through ``load`` (``{partition: labelled rows}``,
    :func:`labelled_rows`), by the model ``stored_model`` returns; ``scoring_versions`` says
    which model version scored each partition. One call serves one correlation pass: partitions
    are loaded once and the seeded generator advances across its requests."""
    keys = pipeline_keys(spec)
    order = {key: index for index, key in enumerate(partition_keys)}
    metric_spec = METRICS[metric]
    rng = np.random.default_rng(seed)
    cache: dict[str, pd.DataFrame | None] = {}

    def labelled(partition: str) -> pd.DataFrame | None:
        # Every candidate's repair re-scores the same partitions: each is loaded once.
        if partition not in cache:
            prefetch([partition])
        return cache.get(partition)

    def prefetch(partitions: Sequence[str]) -> None:
        wanted = [p for p in dict.fromkeys(partitions) if p in order and p not in cache]
        if wanted:
            cache.update(load(wanted))

    versions: dict[str, str | None] = {}  # partition -> the model version that scored it

    def value(artifact: ModelArtifact, frame: pd.DataFrame) -> float:
        scores = artifact.score(frame)
        labels = frame[LABEL].to_numpy(float)
        finite = np.isfinite(scores)
        if not finite.any():
            return float("nan")
        kwargs = {"threshold": artifact.threshold} if "threshold" in metric_spec.parameters else {}
        return float(metric_spec.function(labels[finite], scores[finite], **kwargs))

    degraded_values: dict[tuple[str, ...], float] = {}

    def repair(request: RepairRequest) -> RepairOutcome | None:
        artifact = stored_model()
        if artifact is None:
            return None
        columns = columns_to_restore(request.candidate, artifact, keys)
        if not columns:
            return None
        onset = order.get(request.onset_partition)
        if onset is None:
            return None
        good_keys = [k for k in partition_keys[max(0, onset - GOOD_PARTITIONS) : onset]]
        # Only what the stored model scored can be re-scored: after a retrain, the loss of
        # partitions the previous model scored is not this model's to recover (measured with
        # the new one, every candidate "recovered" it).
        versions.update(scoring_versions([p for p in request.partitions if p not in versions]))
        scored = [p for p in request.partitions if versions[p] in (None, artifact.version)]
        prefetch([*good_keys, *scored])
        donors = [f for f in (labelled(k) for k in good_keys) if f is not None and len(f)]
        degraded = [f for f in (labelled(k) for k in scored) if f is not None]
        degraded = [f for f in degraded if len(f)]
        if not donors or not degraded:
            return None
        donor = pd.concat(donors, ignore_index=True)
        frame = pd.concat(degraded, ignore_index=True)
        if len(frame) > MAX_ROWS:
            frame = frame.sample(MAX_ROWS, random_state=seed).reset_index(drop=True)
        if request.partitions not in degraded_values:
            degraded_values[request.partitions] = value(artifact, frame)
        repaired = frame.copy()
        for column in columns:
            restored = restore_column(pd.Series(frame[column]), pd.Series(donor[column]), rng)
            if restored is None:
                return None  # nothing left to restore (the values are gone): no verdict
            repaired[column] = restored
        before, after = degraded_values[request.partitions], value(artifact, repaired)
        if not (np.isfinite(before) and np.isfinite(after)):
            return None
        return RepairOutcome(repaired_value=after, degraded_value=before)

    return repair


def build_repair_provider(
    spec: PipelineSpec,
    definitions: Callable[[], dg.Definitions],
    partition_keys: Sequence[str],
    *,
    metric: str,
    seed: int = 0,
) -> Callable[[dg.DagsterInstance], RepairFunction | None]:
    """A ``MonitoredModel.repair`` provider for a spec pipeline.

    ``definitions`` returns the pipeline's current definitions (used only to load stored asset
    values through their IO manager); ``partition_keys`` are all partitions in time order.
    """
    keys = pipeline_keys(spec)
    order = {key: index for index, key in enumerate(partition_keys)}

    def provider(instance: dg.DagsterInstance) -> RepairFunction:
        defs = definitions()

        loaders: list[dg.AssetValueLoader] = []  # open while a repair request runs

        loaded: list[ModelArtifact | None] = []

        def stored_model() -> ModelArtifact | None:
            # Loaded on the first repair request: most correlation runs find no shift and ask
            # for none, and unpickling the model is most of what a provider call costs.
            if not loaded:
                try:
                    with contextlib.redirect_stderr(io.StringIO()):  # the loader's DEBUG line
                        artifact = loaders[-1].load_asset_value(keys.model)
                except Exception:  # noqa: BLE001 — no model stored yet: no repair test possible
                    artifact = None
                loaded.append(artifact if isinstance(artifact, ModelArtifact) else None)
            return loaded[0]

        def load(partitions: Sequence[str]) -> dict[str, pd.DataFrame | None]:
            features = load_partitions(loaders[-1], instance, keys.features, partitions, order)
            evaluation = load_partitions(loaders[-1], instance, keys.evaluation, partitions, order)
            return {p: labelled_rows(spec, features.get(p), evaluation.get(p)) for p in partitions}

        inner = repair_function(
            spec,
            partition_keys,
            metric=metric,
            seed=seed,
            stored_model=stored_model,
            load=load,
            scoring_versions=lambda partitions: scoring_model_versions(
                instance, keys.predictions, keys.model, partitions
            ),
        )

        def repair(request: RepairRequest) -> RepairOutcome | float | None:
            # One loader per request: Dagster builds the IO manager's resources once for the
            # dozens of partitions a first request loads (load_asset_value builds them per value).
            with defs.get_asset_value_loader(instance) as loader:
                loaders.append(loader)
                try:
                    return inner(request)
                finally:
                    loaders.pop()

        return repair

    return provider


def load_partitions(
    loader: dg.AssetValueLoader,
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partitions: Sequence[str],
    order: Mapping[str, int],
) -> dict[str, object]:
    """``{partition: stored value}`` of ``key``, absent where nothing was materialized.

    Each contiguous run of materialized ``partitions`` (in ``order``) is one range read:
    Dagster's value loader builds an input and an output context per call, and each builds a
    throwaway ephemeral instance (~0.1 s a call), so a week of partitions read one by one costs
    most of a repair test. An IO manager that does not return ``{partition: value}`` for a
    range is read one partition at a time.
    """
    found: dict[str, object] = {}
    stored = materialized_partitions(instance, key, [p for p in partitions if p in order])
    ordered = sorted(stored, key=order.__getitem__)
    # Dagster's loader logs a DEBUG line per load to a console handler it creates on the spot.
    with contextlib.redirect_stderr(io.StringIO()):
        for run in _contiguous_runs(ordered, order):
            if len(run) > 1:
                try:
                    values = loader.load_asset_value(
                        key, partition_key_range=dg.PartitionKeyRange(run[0], run[-1])
                    )
                except Exception:  # noqa: BLE001 — the IO manager cannot read ranges
                    values = None
                if isinstance(values, Mapping) and all(p in values for p in run):
                    found.update({p: values[p] for p in run})
                    continue
            for partition in run:
                try:
                    found[partition] = loader.load_asset_value(key, partition_key=partition)
                except Exception:  # noqa: BLE001 — materialized, but its value is gone
                    continue
    return found


def scoring_model_versions(
    instance: dg.DagsterInstance,
    predictions: dg.AssetKey,
    model: dg.AssetKey,
    partitions: Sequence[str],
) -> dict[str, str | None]:
    """``{partition: the model data version its latest predictions consumed}`` (``None`` when
    Dagster recorded none), from the predictions' provenance (one query a thousand records)."""
    if not partitions:
        return {}
    found: dict[str, str | None] = dict.fromkeys(partitions)
    model_name = model.to_user_string()
    for record in all_materializations(instance, predictions, partitions=list(partitions)):
        if record.partition in found:  # oldest first: the latest materialization wins
            found[record.partition] = record.input_data_versions.get(model_name)
    return found


@runtime_checkable
class RescorableModel(Protocol):
    """What the stored value of a hand-written model asset offers for the repair test."""

    @property
    def feature_columns(self) -> Sequence[str]: ...

    def score(self, frame: pd.DataFrame) -> Any: ...


def build_rescoring_repair(
    *,
    definitions: Callable[[], dg.Definitions],
    model: dg.AssetKey | str,
    features: dg.AssetKey | str,
    label_column: str,
    partitions_def: dg.PartitionsDefinition,
    metric: str,
    seed: int = 0,
) -> Callable[[dg.DagsterInstance], RepairFunction | None]:
    """A ``MonitoredModel.repair`` provider for any project whose assets follow one protocol.

    The protocol: the ``model`` asset's stored value has ``feature_columns`` and
    ``score(frame) -> scores`` (:class:`RescorableModel`), and each partition of the
    ``features`` asset is a DataFrame holding those columns and ``label_column``. A suspect
    column is restored on the degraded partitions of ``features`` from the last good ones
    (:func:`restore_column`), the stored model re-scores them, and ``metric`` before and after
    is the repair evidence. A candidate maps to the feature column of the same name, wherever in
    the lineage it was seen (``weather.temp_f`` -> ``temp_f``); a candidate on the features
    asset without a column restores every feature. The values are read through the project's
    own IO managers (``definitions`` returns the project's definitions, built lazily).

    Every degraded partition is re-scored by the model stored now: right until the next
    retrain, which is when the correlation runs that ask for repairs happen.
    """
    model_key = dg.AssetKey.from_coercible(model)
    features_key = dg.AssetKey.from_coercible(features)
    metric_spec = METRICS[metric]

    def provider(instance: dg.DagsterInstance) -> RepairFunction:
        defs = definitions()
        partition_keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
        order = {key: index for index, key in enumerate(partition_keys)}
        rng = np.random.default_rng(seed)

        def value(stored: RescorableModel, frame: pd.DataFrame) -> float:
            scores = np.asarray(stored.score(frame), dtype=float)
            labels = frame[label_column].to_numpy(float)
            finite = np.isfinite(scores)
            if not finite.any():
                return float("nan")
            return float(metric_spec.function(labels[finite], scores[finite]))

        def repair(request: RepairRequest) -> RepairOutcome | None:
            onset = order.get(request.onset_partition)
            if onset is None:
                return None
            good = partition_keys[max(0, onset - GOOD_PARTITIONS) : onset]
            with defs.get_asset_value_loader(instance) as loader:
                try:
                    with contextlib.redirect_stderr(io.StringIO()):
                        stored = loader.load_asset_value(model_key)
                except Exception:  # noqa: BLE001 — no model stored yet: no repair test possible
                    return None
                if not isinstance(stored, RescorableModel):
                    return None
                feature_columns = list(stored.feature_columns)
                column = request.candidate.column
                if column is not None:
                    columns = [column] if column in feature_columns else []
                elif request.candidate.asset_key == features_key.to_user_string():
                    columns = feature_columns
                else:
                    columns = []
                if not columns:
                    return None
                frames = load_partitions(
                    loader, instance, features_key, [*good, *request.partitions], order
                )
            donors = [f for p in good if isinstance(f := frames.get(p), pd.DataFrame) and len(f)]
            degraded = [
                f
                for p in request.partitions
                if isinstance(f := frames.get(p), pd.DataFrame) and len(f)
            ]
            if not donors or not degraded:
                return None
            donor = pd.concat(donors, ignore_index=True)
            frame = pd.concat(degraded, ignore_index=True)
            frame = pd.DataFrame(frame[frame[label_column].notna()])
            if len(frame) > MAX_ROWS:
                frame = frame.sample(MAX_ROWS, random_state=seed).reset_index(drop=True)
            repaired = frame.copy()
            for name in columns:
                restored = restore_column(pd.Series(frame[name]), pd.Series(donor[name]), rng)
                if restored is None:
                    return None  # nothing left to restore (the values are gone): no verdict
                repaired[name] = restored
            before, after = value(stored, frame), value(stored, repaired)
            if not (np.isfinite(before) and np.isfinite(after)):
                return None
            return RepairOutcome(repaired_value=after, degraded_value=before)

        return repair

    return provider


def _contiguous_runs(partitions: Sequence[str], order: Mapping[str, int]) -> list[list[str]]:
    """``partitions`` (in order) split where a partition between them is left out."""
    runs: list[list[str]] = []
    for partition in partitions:
        if runs and order[partition] == order[runs[-1][-1]] + 1:
            runs[-1].append(partition)
        else:
            runs.append([partition])
    return runs


__all__ = [
    "SCORE",
    "RescorableModel",
    "build_repair_provider",
    "build_rescoring_repair",
    "columns_to_restore",
    "labelled_rows",
    "load_partitions",
    "repair_function",
    "scoring_model_versions",
]
