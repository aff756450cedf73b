"""``corrmon evaluate``'s fast path: a scenario simulated without a Dagster run per partition.

``corrmon simulate`` runs three Dagster jobs per partition (score, label, correlate); on small
partitions that overhead is most of a scenario's minutes. The fast path keeps everything that
decides an incident and drops only the runs of the pipeline itself:

* each partition's assets are computed in-process by the pipeline's own functions (feeds,
  injections with the simulator's seeded rows, joins, features, :func:`~dagster_corrmon.pipeline.
  builder.prediction_frame`, :func:`~dagster_corrmon.pipeline.builder.evaluation_frame`) and
  *reported* to a real Dagster instance as runless materializations, with their data and code
  versions (what the sensor reads to find new versions);
* every corrmon check of the spec runs through its own :class:`~dagster_corrmon.checks._plan.
  CheckPlan` ``evaluate`` and :func:`~dagster_corrmon.checks._common.finish` — the code a check
  step runs — so the same signals reach the store, and its result is reported to the instance as
  a runless check evaluation (what the sensor reads to find failed checks);
* the real correlation sensor is ticked after every partition and the correlation jobs it asks
  for run in-process, exactly as in ``corrmon simulate`` (same attribution, incident identity,
  at-risk flagging, retrain decisions); the repair test reads the in-process frames through
  :func:`~dagster_corrmon.pipeline.repair.repair_function`, the function the Dagster provider
  wraps. A partition where an upstream run fails is the one case run as a real score job: a run
  failure *is* a Dagster run.

What the fast path does not do: it tags no run (none exists), so annotation precision/recall
and affected runs are empty; and it retrains in-process. Both paths are compared on a subset of
scenarios by a test (same top cause, detection partition and classification).
"""

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dagster_corrmon.checks._common import finish
from dagster_corrmon.checks._plan import CheckCall, CheckPlan, plan_of
from dagster_corrmon.correlation.definitions import RETRAIN_SENSOR_NAME, build_corrmon_defs
from dagster_corrmon.correlation.engine import upstream_map
from dagster_corrmon.instance_api import (
    INPUT_DATA_VERSION_PREFIX,
    INPUT_EVENT_POINTER_PREFIX,
    consumed_identity,
    latest_materialization,
    partition_input_data_version,
)
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.builder import (
    FEATURE_SOURCES,
    FEATURE_SOURCES_ATTR,
    PipelineKeys,
    build_monitored_pipeline,
    build_partitions_def,
    evaluation_data_version,
    evaluation_frame,
    pipeline_keys,
    prediction_data_version,
    prediction_frame,
    training_partition_keys,
)
from dagster_corrmon.pipeline.features import (
    FrameNote,
    build_features,
    feature_sources,
    join_feeds,
    joined_column_origins,
)
from dagster_corrmon.pipeline.hashing import frame_data_version
from dagster_corrmon.pipeline.monitoring import build_pipeline_checks
from dagster_corrmon.pipeline.repair import labelled_rows, repair_function
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.training import train_model
from dagster_corrmon.resource import CorrmonResource, MaterializationTags, partition_start
from dagster_corrmon.scenarios.injections import (
    CodeChange,
    Effect,
    UpstreamRunFailure,
    injection_rng,
)
from dagster_corrmon.scenarios.simulate import (
    QUIET,
    _correlate,  # pyright: ignore[reportPrivateUsage]
    _dagster_home,  # pyright: ignore[reportPrivateUsage]
    _retrained,  # pyright: ignore[reportPrivateUsage]
    _State,  # pyright: ignore[reportPrivateUsage]
    _tick,  # pyright: ignore[reportPrivateUsage]
    build_report,
    default_metric,
    interrupt_latch,
    monitored_model,
    retrain_policy,
    schedule_arrivals,
    scoring_partition_keys,
    simulation_home,
    stop_if_interrupted,
)
from dagster_corrmon.scenarios.spec import ScenarioSpec
from dagster_corrmon.store import CorrmonStore


def _date(partition: str) -> dt.date:
    return dt.date.fromisoformat(partition[:10])


# Training is deterministic (seeded estimator, seeded importances): the scenarios of one suite
# share their training window, so the model of the first one serves the next, keyed by the spec
# sections training reads and the data versions of what it trains on.
_TRAINED: dict[str, ModelArtifact] = {}


def _training_identity(
    spec: ScenarioSpec,
    keys: Sequence[str],
    features: Mapping[str, pd.DataFrame],
    labels: Mapping[str, pd.DataFrame],
) -> str:
    sections = spec.model_dump_json(
        include={"features", "target", "training", "row_key", "evaluation"}
    )
    versions = [
        (key, frame_data_version(features[key]), frame_data_version(labels[key])) for key in keys
    ]
    return json.dumps([sections, versions])


class _Pipeline:
    """One scenario's assets, computed in-process and reported to ``instance``."""

    def __init__(
        self,
        spec: ScenarioSpec,
        *,
        instance: dg.DagsterInstance,
        resource: CorrmonResource,
        defs: dg.Definitions,
        buggy_defs: dg.Definitions | None,
    ) -> None:
        self.spec = spec
        self.keys: PipelineKeys = pipeline_keys(spec)
        self.instance = instance
        self.resource = resource
        self.defs = defs
        self.buggy_defs = buggy_defs
        self.partitions_def = build_partitions_def(spec)
        self.seed = spec.simulation.seed
        self.values: dict[tuple[str, str | None], Any] = {}  # (asset, partition) -> value
        self.model: ModelArtifact | None = None
        unbundled = spec.model_copy(
            update={"monitoring": spec.monitoring.model_copy(update={"bundle_checks": False})}
        )
        self.plans: dict[str, list[CheckPlan]] = {}
        for definition in build_pipeline_checks(unbundled):
            plan = plan_of(definition)
            if plan is not None:
                self.plans.setdefault(plan.target.key.to_user_string(), []).append(plan)
        self.context = dg.build_asset_check_context(instance=instance)
        self.late_delivered: set[tuple[str, str]] = set()
        graph = defs.resolve_asset_graph()
        self.upstream = upstream_map(graph)
        self.partitioned = {
            key for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None
        }
        self.training_keys: list[str] = []

    # -- one asset --------------------------------------------------------------------------
    def _code_version(self, key: dg.AssetKey, day: dt.date | None) -> str | None:
        defs = self.defs
        if self.buggy_defs is not None and day is not None and self._buggy(day):
            defs = self.buggy_defs
        return defs.resolve_assets_def(key).code_versions_by_key.get(key)

    def _buggy(self, day: dt.date) -> bool:
        return any(isinstance(i, CodeChange) and i.active(day) for i in self.spec.incidents)

    def report(
        self,
        key: dg.AssetKey,
        partition: str | None,
        value: Any,
        data_version: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        with_checks: bool = True,
        model_checks: bool = True,
    ) -> None:
        """Record ``value`` as ``key``'s materialization of ``partition``, then run its checks."""
        day = _date(partition) if partition else None
        code_version = self._code_version(key, day)
        tags = {"dagster/data_version": data_version, **self._provenance(key, partition)}
        if code_version:
            tags["dagster/code_version"] = code_version
        self.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key, partition=partition, tags=tags, metadata=dict(metadata or {})
            )
        )
        self.values[(key.to_user_string(), partition)] = value
        if with_checks:
            self.check(key, partition, value, model_checks=model_checks)

    def _provenance(self, key: dg.AssetKey, partition: str | None) -> dict[str, str]:
        """The input tags Dagster records on a materialization: per upstream asset, the
        identity of what was consumed (:func:`~dagster_corrmon.instance_api.consumed_identity`;
        for the model, the hash over its training partitions) and its storage id."""
        tags: dict[str, str] = {}
        for parent in self.upstream.get(key.to_user_string(), []):
            parent_key = dg.AssetKey.from_user_string(parent)
            if partition is None and parent_key in self.partitioned:
                records = [
                    r
                    for p in self.training_keys
                    if (r := latest_materialization(self.instance, parent_key, partition=p))
                ]
                if not records:
                    continue
                identity = partition_input_data_version(
                    (r.partition or "", r.data_version or "") for r in records
                )
                pointer = max(r.storage_id for r in records)
            else:
                record = latest_materialization(
                    self.instance,
                    parent_key,
                    partition=partition if parent_key in self.partitioned else None,
                )
                if record is None or (identity := consumed_identity(record)) is None:
                    continue
                pointer = record.storage_id
            tags[f"{INPUT_DATA_VERSION_PREFIX}{parent}"] = identity
            tags[f"{INPUT_EVENT_POINTER_PREFIX}{parent}"] = str(pointer)
        return tags

    def check(
        self, key: dg.AssetKey, partition: str | None, value: Any, *, model_checks: bool
    ) -> None:
        """Every corrmon check on ``key``, as its step would run it (see the module docstring)."""
        now = datetime.now(UTC)
        record = latest_materialization(self.instance, key, partition=partition)
        partitions_def = self.partitions_def if partition is not None else None
        materialized_at = datetime.fromtimestamp(record.timestamp, tz=UTC) if record else None
        tags = MaterializationTags(
            asset_key=key.to_user_string(),
            partition=partition,
            run_id=f"fast-{uuid.uuid4().hex[:12]}",
            data_version=record.data_version if record else None,
            code_version=record.code_version if record else None,
            event_time=partition_start(partitions_def, partition) or materialized_at or now,
            observed_at=now,
            materialized_at=materialized_at,
            materialization_run_id=record.run_id if record else None,
            storage_id=record.storage_id if record else None,
        )
        for plan in self.plans.get(key.to_user_string(), []):
            if plan.reference is not None and (not model_checks or self.model is None):
                continue
            started = time.perf_counter()
            outcome = plan.evaluate(
                CheckCall(
                    context=self.context,
                    corrmon=self.resource,
                    tags=tags,
                    now=now,
                    value=value,
                    reference=self.model if plan.reference is not None else None,
                )
            )
            result = finish(
                self.resource,
                tags,
                check_name=plan.name,
                kind=plan.kind,
                outcome=outcome,
                started=started,
                asset_key=key,
            )
            self.instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=plan.name,
                    passed=bool(result.passed),
                    severity=result.severity,
                    metadata=dict(result.metadata or {}),
                    description=result.description,
                    partition=partition,
                )
            )

    # -- the stages of a partition ------------------------------------------------------------
    def raw(self, source_name: str, partition: str | None) -> pd.DataFrame:
        source = next(s for s in self.spec.sources if s.name == source_name)
        if partition is None or not source.partitioned:
            frame = feed_batch(source, None, None)
        else:
            window = self.partitions_def.time_window_for_partition_key(partition)
            frame = feed_batch(source, window.start, window.end)
            day = _date(partition)
            for injection in self.spec.incidents:
                if injection.source != source_name or not injection.active(day):
                    continue
                effect = injection.effect()
                if effect is Effect.LATE_BATCH:
                    if (injection.id or "", partition) in self.late_delivered:
                        continue
                    frame = frame.iloc[0:0]  # on time: nothing yet
                    break
                if effect in (Effect.TRANSFORM_SOURCE, Effect.EMPTY_BATCH):
                    rng = injection_rng(injection.id or "", partition, self.seed)
                    frame = injection.apply(frame, rng)
        key = self.keys.raw[source_name]
        self.report(
            key, partition if source.partitioned else None, frame, frame_data_version(frame)
        )
        return frame

    def feeds_joined_features(self, partition: str, feeds: Sequence[str], *, model_checks: bool):
        frames = {name: self.raw(name, partition) for name in feeds}
        for name in self.keys.static_sources:
            frames[name] = self.values[(self.keys.raw[name].to_user_string(), None)]
        joined, _ = join_feeds(self.spec, frames[self.spec.base_source.name], frames)
        self.report(self.keys.joined, partition, joined, frame_data_version(joined))
        features, _ = build_features(self.spec, joined, timezone=self.spec.partitioning.timezone)
        day = _date(partition)
        for change in self.spec.incidents:
            if isinstance(change, CodeChange) and change.active(day):
                features = change.apply(
                    features, injection_rng(change.id or "", partition, self.seed)
                )
        sources = feature_sources(self.spec, joined_column_origins(self.spec, joined))
        features.attrs[FEATURE_SOURCES_ATTR] = FrameNote(sources)
        metadata = {
            FEATURE_SOURCES: {
                f: [f"{self.keys.raw[feed].to_user_string()}:{col}" for feed, col in deps]
                for f, deps in sources.items()
            }
        }
        self.report(
            self.keys.features,
            partition,
            features,
            frame_data_version(features),
            metadata=metadata,
            model_checks=model_checks,
        )
        return features

    def scoring_feeds(self) -> list[str]:
        return [name for name, key in self.keys.raw.items() if key in self.keys.scoring]

    def training_inputs(self, partition: str) -> None:
        feeds = [n for n in self.keys.raw if n not in self.keys.static_sources]
        self.feeds_joined_features(partition, feeds, model_checks=False)

    def train(self, training_keys: Sequence[str]) -> None:
        self.training_keys = list(training_keys)
        features = {p: self.values[(self.keys.features.to_user_string(), p)] for p in training_keys}
        target = self.keys.raw[self.spec.target_source.name].to_user_string()
        labels = {p: self.values[(target, p)] for p in training_keys}
        sources: Mapping[str, Any] = {}
        for frame in features.values():
            sources = frame.attrs.get(FEATURE_SOURCES_ATTR) or sources
        identity = _training_identity(self.spec, training_keys, features, labels)
        if identity not in _TRAINED:
            _TRAINED.clear()  # one model kept: a suite runs one spec's scenarios in a row
            _TRAINED[identity] = train_model(
                self.spec, features, labels, feature_sources=sources or None
            )
        self.model = _TRAINED[identity]
        self.report(self.keys.model, None, self.model, self.model.version, with_checks=False)

    def score(self, partition: str) -> bool:
        """The score job's assets; ``False`` when nothing could be scored."""
        assert self.model is not None
        features = self.feeds_joined_features(partition, self.scoring_feeds(), model_checks=True)
        frame, _ = prediction_frame(self.spec, features, self.model)
        self.report(
            self.keys.predictions, partition, frame, prediction_data_version(self.spec, frame)
        )
        return True

    def label(self, partition: str) -> None:
        target = self.spec.target_source.name
        if target in self.keys.joined_sources:
            labels_feed = self.values[(self.keys.raw[target].to_user_string(), partition)]
        else:
            labels_feed = self.raw(target, partition)
        predictions = self.values[(self.keys.predictions.to_user_string(), partition)]
        frame = evaluation_frame(self.spec, predictions, labels_feed)
        self.report(
            self.keys.evaluation, partition, frame, evaluation_data_version(self.spec, frame)
        )

    def repair_provider(self, partition_keys: Sequence[str], metric: str):
        def provider(instance: dg.DagsterInstance) -> Any:
            features_key = self.keys.features.to_user_string()
            evaluation_key = self.keys.evaluation.to_user_string()
            predictions_key = self.keys.predictions.to_user_string()

            def load(partitions: Sequence[str]) -> dict[str, pd.DataFrame | None]:
                return {
                    p: labelled_rows(
                        self.spec,
                        self.values.get((features_key, p)),
                        self.values.get((evaluation_key, p)),
                    )
                    for p in partitions
                }

            def versions(partitions: Sequence[str]) -> dict[str, str | None]:
                found: dict[str, str | None] = {}
                for p in partitions:
                    frame = self.values.get((predictions_key, p))
                    found[p] = (
                        str(frame["model_version"].iloc[0])
                        if isinstance(frame, pd.DataFrame) and len(frame)
                        else None
                    )
                return found

            return repair_function(
                self.spec,
                partition_keys,
                metric=metric,
                seed=self.seed,
                stored_model=lambda: self.model,
                load=load,
                scoring_versions=versions,
            )

        return provider


def simulate_fast(
    spec: ScenarioSpec,
    *,
    out_dir: Path,
    progress: Callable[[str], None] = print,
    max_partitions: int | None = None,
) -> dict[str, Any]:
    """Simulate ``spec`` on the fast path; write and return ``OUT/report.json`` (same schema)."""
    started = time.perf_counter()
    out_dir = out_dir.resolve()
    home, database_url = simulation_home(out_dir)
    resource = CorrmonResource(database_url=database_url)
    keys = pipeline_keys(spec)
    metric = default_metric(spec)
    injections = list(spec.incidents)
    failures = [i for i in injections if isinstance(i, UpstreamRunFailure)]
    state = _State()

    def fail_source(source: str, partition: str | None, frame: pd.DataFrame) -> Any:
        for injection in failures:
            if partition and injection.source == source and injection.active(_date(partition)):
                injection.apply(
                    frame, injection_rng(injection.id or "", partition, spec.simulation.seed)
                )
        return frame

    holder: list[_Pipeline] = []
    model = monitored_model(spec)
    policy = retrain_policy(spec)
    corrmon_defs = build_corrmon_defs(models=[model], store=resource, retrain_policy=policy)

    def definitions(buggy: bool) -> dg.Definitions:
        code_changes = [i for i in injections if isinstance(i, CodeChange)]
        versions = {"features": code_changes[0].code_version} if buggy and code_changes else None
        pipeline = build_monitored_pipeline(
            spec,
            source_transform=fail_source if failures else None,
            code_versions=versions,
            resources={spec.monitoring.resource_key: resource},
        )
        return dg.Definitions.merge(pipeline, corrmon_defs)

    defs = definitions(False)
    buggy_defs = definitions(True) if any(isinstance(i, CodeChange) for i in injections) else None
    partitions_def = build_partitions_def(spec)
    all_keys = list(partitions_def.get_partition_keys())

    with (
        _dagster_home(home),
        interrupt_latch(),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        pipeline = _Pipeline(
            spec, instance=instance, resource=resource, defs=defs, buggy_defs=buggy_defs
        )
        holder.append(pipeline)
        model = replace(model, repair=pipeline.repair_provider(all_keys, metric))
        corrmon_defs = build_corrmon_defs(models=[model], store=resource, retrain_policy=policy)
        defs = dg.Definitions.merge(
            build_monitored_pipeline(spec, resources={spec.monitoring.resource_key: resource}),
            corrmon_defs,
        )
        training_keys = training_partition_keys(spec, partitions_def)
        scoring_keys = scoring_partition_keys(spec, all_keys, training_keys, max_partitions)
        progress(f"fast-simulating {spec.name}: {len(scoring_keys)} partitions into {out_dir}")
        for name in keys.static_sources:
            pipeline.raw(name, None)
        for partition in training_keys:
            pipeline.training_inputs(partition)
        pipeline.train(training_keys)
        store = CorrmonStore(database_url)
        label_due: dict[int, list[str]] = {}
        late_due: dict[int, list[tuple[str, str]]] = {}
        unscored: set[str] = set()
        cursor: str | None = None
        run_keys: set[str] = set()
        for index, partition in enumerate(scoring_keys):
            day = _date(partition)
            if any(i.active(day) for i in failures):
                job = buggy_defs if buggy_defs and pipeline._buggy(day) else pipeline.defs
                result = job.resolve_job_def(f"{spec.name}_score").execute_in_process(
                    run_config=QUIET,
                    instance=instance,
                    partition_key=partition,
                    raise_on_error=False,
                )
                stop_if_interrupted(result)
                if not result.success:
                    state.failed_runs.append(
                        {
                            "job": f"{spec.name}_score",
                            "partition": partition,
                            "run_id": result.run_id,
                        }
                    )
                unscored.add(partition)
            else:
                try:
                    pipeline.score(partition)
                except Exception as error:  # noqa: BLE001 — a broken batch fails the score run
                    progress(f"  {partition}: scoring failed: {error}")
                    state.failed_runs.append(
                        {"job": f"{spec.name}_score", "partition": partition, "run_id": None}
                    )
                    unscored.add(partition)
            schedule_arrivals(
                spec, injections, index, partition, label_due=label_due, late_due=late_due
            )
            for injection_id, late in late_due.pop(index, []):
                pipeline.late_delivered.add((injection_id, late))
                try:
                    pipeline.score(late)
                    unscored.discard(late)
                except Exception:  # noqa: BLE001 — still broken: it stays unscored
                    continue
            for labelled in label_due.pop(index, []):
                if labelled not in unscored:
                    pipeline.label(labelled)
            cursor = _correlate(defs, instance, resource, cursor, state, progress=progress)
            requests, _ = _tick(defs, RETRAIN_SENSOR_NAME, instance, resource)
            for request in requests:
                if request.run_key in run_keys:
                    continue
                run_keys.add(request.run_key or "")
                window = spec.retraining.window_partitions or len(training_keys)
                recent = scoring_keys[max(0, index + 1 - window) : index + 1]
                recent = [
                    k for k in recent if (keys.features.to_user_string(), k) in pipeline.values
                ]
                labelled_recent = [
                    k
                    for k in recent
                    if (keys.raw[spec.target_source.name].to_user_string(), k) in pipeline.values
                ]
                try:
                    pipeline.spec = _retrained(pipeline.spec, recent)
                    pipeline.train(labelled_recent)
                    ok = True
                except Exception as error:  # noqa: BLE001 — recorded as a failed retrain
                    progress(f"  retrain failed: {error}")
                    ok = False
                state.retrains.append(
                    {"partition": partition, "window": [recent[0], recent[-1]], "success": ok}
                )
        for pending in sorted(label_due):
            for labelled in label_due[pending]:
                if labelled not in unscored:
                    pipeline.label(labelled)
        _correlate(defs, instance, resource, cursor, state, progress=progress)
        report = build_report(
            spec=spec,
            store=store,
            instance=instance,
            model=model,
            scoring_keys=scoring_keys,
            state=state,
        )
        report["path"] = "fast"
        report["elapsed_seconds"] = round(time.perf_counter() - started, 1)
        store.close()
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    progress(f"report: {out_dir / 'report.json'} ({report['elapsed_seconds']} s)")
    return report
