"""One correlation pass for one model: gather → attribute → incident → affected runs → annotate.

Runs inside the correlation job (a real Dagster job). Every write is idempotent — the incident id
is derived from the model, the metric and the shift's onset, tags overwrite, signals are keyed —
so a retried or repeated run never duplicates an incident and never loses a signal.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from dagster_corrmon import instance_api
from dagster_corrmon.core.attribution import (
    AttributionResult,
    MetricSeries,
    attribute_performance_shift,
    explain_attribution,
)
from dagster_corrmon.core.incident import (
    DATA_FAULT_CLASSES,
    AffectedRun,
    Cause,
    Incident,
    IncidentClass,
    IncidentStatus,
)
from dagster_corrmon.core.lineage import (
    ProvenanceRecord,
    ancestors_with_distance,
    descendants_with_distance,
    runs_consuming,
)
from dagster_corrmon.core.markdown import escape_markdown, markdown_code
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.annotation import (  # noqa: F401 - tags and ids re-exported
    AT_RISK_TAG,
    CAUSE_TAG,
    INCIDENT_CHECK_NAME,
    INCIDENT_TAG,
    INCIDENT_WRITTEN,
    EffectHook,
    annotate_runs,
    apply_incident_effects,
    cause_label,
    incident_headline,
    notify,
    report_incident_check,
    short_id,
    suspected_cause,
    tag_value,
)
from dagster_corrmon.correlation.gather import (
    EVENT_KINDS,
    SERIES_KINDS,
    MetricPoints,
    build_candidates,
    build_metric_series,
    feature_importances_from_signals,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.errors import InsufficientDataError
from dagster_corrmon.store import ACTIVE_STATUSES, CorrmonStore

DEFECT_KINDS = frozenset(
    {
        SignalKind.DATA_QUALITY,
        SignalKind.SCHEMA_CHANGE,
        SignalKind.FRESHNESS,
        SignalKind.RUN_FAILURE,
    }
)


@dataclass(frozen=True, kw_only=True)
class CorrelationOutcome:
    """What one pass concluded and wrote."""

    model: str
    result: AttributionResult | None
    incident: Incident | None
    tagged_runs: tuple[str, ...]
    notes: tuple[str, ...] = ()


def upstream_map(asset_graph: Any) -> dict[str, list[str]]:
    """``{asset: [direct upstream assets]}`` (user strings) from ``repository_def.asset_graph``.

    Typed loosely: the asset-graph class is not part of Dagster's public API.
    """
    graph = asset_graph.asset_dep_graph["upstream"]
    return {
        key.to_user_string(): sorted(parent.to_user_string() for parent in parents)
        for key, parents in graph.items()
    }


def lineage_from_provenance(
    instance: dg.DagsterInstance, roots: Sequence[dg.AssetKey]
) -> dict[str, list[str]]:
    """``{asset: [upstream assets]}`` walked back from ``roots`` through recorded provenance.

    Every materialization records the upstream assets it consumed
    (``dagster/input_data_version/<key>``), so the lineage that actually fed a model can be
    recovered from the instance alone — used where no repository is at hand (a job executed
    in-process, a script), and it reflects what ran rather than what is declared.
    """
    lineage: dict[str, list[str]] = {}
    frontier = [key.to_user_string() for key in roots]
    while frontier:
        asset = frontier.pop()
        if asset in lineage:
            continue
        record = instance_api.latest_materialization(instance, dg.AssetKey.from_user_string(asset))
        parents = sorted(record.input_data_versions) if record is not None else []
        lineage[asset] = parents
        frontier.extend(parent for parent in parents if parent not in lineage)
    return lineage


def lineage_for(
    context: dg.OpExecutionContext, roots: Sequence[dg.AssetKey]
) -> dict[str, list[str]]:
    """The declared asset graph when the run knows its repository, else recorded provenance."""
    try:
        repository = context.repository_def
    except dg.DagsterInvariantViolationError:
        repository = None
    except Exception as error:
        if type(error).__name__ != "CheckError":
            raise
        repository = None
    if repository is not None:
        return upstream_map(repository.asset_graph)
    return lineage_from_provenance(context.instance, roots)


def correlate(
    *,
    instance: dg.DagsterInstance,
    store: CorrmonStore,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    now: datetime,
    seed: int = 0,
    log: dg.DagsterLogManager | None = None,
    on_effect: EffectHook | None = None,
) -> CorrelationOutcome:
    """Explain the model's latest performance shift, record the incident and annotate runs.

    Annotation goes through :func:`~dagster_corrmon.correlation.annotation.apply_incident_effects`
    (each effect once per incident state); ``on_effect`` observes each step.
    """
    evaluation = model.evaluation.to_user_string()
    distances = ancestors_with_distance(lineage, evaluation)
    metric_signals = store.read_signals(asset_key=evaluation, name=model.metric)
    found = build_metric_series(
        metric_signals,
        asset_key=evaluation,
        metric=model.metric,
        higher_is_better=model.higher_is_better,
    )
    if found is None:
        return CorrelationOutcome(
            model=model.name,
            result=None,
            incident=None,
            tagged_runs=(),
            notes=(f"no {model.metric!r} signals on {evaluation} yet",),
        )
    metric, points = found
    open_windows = _active_windows(store, model)
    # The baseline does not learn from an open incident's partitions, so the lookback counts
    # back from where the earliest open incident began: the baseline keeps lookback_partitions
    # of the level before the change, however long the incident lasts.
    since_open = (
        sum(t >= min(start for start, _ in open_windows) for t in points.times)
        if open_windows
        else 0
    )
    metric, points = _recent(metric, points, model.lookback_partitions + since_open)
    start = points.times[0] - timedelta(days=1)
    upstream_signals = _upstream_signals(store, sorted(distances), start=start)
    candidates = build_candidates(upstream_signals, points=points, distances=distances)
    exclude = _excluded_partitions(store, model, points)
    hold_out = _as_partition_windows(open_windows, points)
    repair = model.repair(instance) if model.repair is not None else None
    try:
        result = attribute_performance_shift(
            metric,
            candidates,
            repair=repair,
            config=model.config,
            feature_importances=feature_importances_from_signals(upstream_signals) or None,
            lineage=lineage,
            exclude=exclude,
            hold_out=hold_out,
            seed=seed,
        )
    except InsufficientDataError as error:
        # Too little history to judge a shift yet: not an error of the run, and upstream faults
        # are still flagged (at risk) by the caller.
        return CorrelationOutcome(
            model=model.name, result=None, incident=None, tagged_runs=(), notes=(str(error),)
        )
    if log is not None:
        log.info(f"{model.name}: {result.classification.value}, {len(result.causes)} candidates")
    if result.shift is None:
        return CorrelationOutcome(
            model=model.name, result=result, incident=None, tagged_runs=(), notes=result.notes
        )
    incident = _incident_for(store, model, result, points, now=now)
    affected = _affected_runs(instance, model, lineage, incident, result, points)
    incident = replace(incident, affected_runs=tuple(affected))
    store.upsert_incident(incident)
    stored = store.get_incident(incident.id) or incident
    notify(on_effect, INCIDENT_WRITTEN, stored.id)
    shift = result.shift
    # Recovered partitions in a row since the episode was last degraded (not last alarmed: a
    # persistent change can stay degraded below the alarm threshold for weeks).
    last_degraded = shift.last_degraded_partition or shift.end_partition
    healthy_since = len(metric.partitions) - 1 - metric.partitions.index(last_degraded)
    if healthy_since > model.config.episode_gap and stored.status in ACTIVE_STATUSES:
        # The episode is over: the metric has been back at its baseline for longer than an
        # episode gap. Resolving also unblocks retraining and lets the baseline exclude it.
        stored = store.set_incident_status(
            stored.id,
            IncidentStatus.RESOLVED,
            note=f"the metric is back at its baseline since {shift.end_partition}",
            actor="corrmon",
        )
    tagged = apply_incident_effects(instance, store, model, stored, on_effect=on_effect)
    return CorrelationOutcome(
        model=model.name, result=result, incident=stored, tagged_runs=tagged, notes=result.notes
    )


def _recent(
    metric: MetricSeries, points: MetricPoints, keep: int
) -> tuple[MetricSeries, MetricPoints]:
    """The last ``keep`` partitions of the metric series (bounded work per correlation run)."""
    if len(points.partitions) <= keep:
        return metric, points
    trimmed = replace(
        metric,
        partitions=metric.partitions[-keep:],
        values=metric.values[-keep:],
        times=metric.times[-keep:] if metric.times is not None else None,
        ci_low=metric.ci_low[-keep:] if metric.ci_low is not None else None,
        ci_high=metric.ci_high[-keep:] if metric.ci_high is not None else None,
    )
    return trimmed, MetricPoints(partitions=points.partitions[-keep:], times=points.times[-keep:])


def _excluded_partitions(
    store: CorrmonStore, model: MonitoredModel, points: MetricPoints
) -> list[tuple[str, str]]:
    """Confirmed incident windows (resolved / false positive) as partition windows."""
    return _as_partition_windows(store.incident_windows(model.name), points)


def _active_windows(store: CorrmonStore, model: MonitoredModel) -> list[tuple[datetime, datetime]]:
    """The windows of the model's active performance incidents of this metric.

    The baseline must not learn from them: a persistent change that the baseline re-learned
    would read as recovered (and resolve), then open a new incident at its next wobble — one
    change, many incidents. Provisional at-risk incidents have no measured loss; they hold
    nothing out.
    """
    windows: list[tuple[datetime, datetime]] = []
    for incident in store.list_incidents(model_asset=model.name):
        if (
            incident.metric != model.metric
            or incident.status not in ACTIVE_STATUSES
            or incident.metadata.get("provisional")
        ):
            continue
        start = incident.window_start or incident.onset_time
        end = incident.window_end or start
        if start is not None and end is not None:
            windows.append((start, end))
    return windows


def _as_partition_windows(
    windows: Sequence[tuple[datetime, datetime]], points: MetricPoints
) -> list[tuple[str, str]]:
    """Time windows as ``(first, last)`` metric partitions inside them (empty ones dropped)."""
    found: list[tuple[str, str]] = []
    for window_start, window_end in windows:
        inside = [
            p
            for p, t in zip(points.partitions, points.times, strict=True)
            if window_start <= t <= window_end
        ]
        if inside:
            found.append((inside[0], inside[-1]))
    return found


def _incident_for(
    store: CorrmonStore,
    model: MonitoredModel,
    result: AttributionResult,
    points: MetricPoints,
    *,
    now: datetime,
) -> Incident:
    shift = result.shift
    assert shift is not None
    time_of = dict(zip(points.partitions, points.times, strict=True))
    onset_time = time_of[shift.onset_partition]
    # The window reaches the last degraded partition (alarmed or not): what a resolution
    # excludes from later baselines is the whole episode.
    end_time = time_of[shift.last_degraded_partition or shift.end_partition]
    incident_id = f"inc-{short_id(model.name, model.metric, shift.onset_partition)}"
    onset_partition = shift.onset_partition
    detected_time, detected_partition = (
        time_of[shift.detection_partition],
        shift.detection_partition,
    )
    window_end = end_time
    consequential = result.consequential
    gap = _partition_span(points) * (model.config.episode_gap + 1)
    for existing in store.list_incidents(model_asset=model.name):
        if _same_episode(existing, model, onset_time, end_time, gap=gap):
            incident_id = existing.id
            # One episode keeps where it began, when it was first detected and how far it has
            # reached: a later pass re-dating the onset, or seeing only the newest partitions,
            # updates the incident without moving its history.
            if existing.onset_time is not None and existing.onset_time < onset_time:
                onset_time, onset_partition = existing.onset_time, existing.onset_partition
            first_seen = existing.detected_time
            if (
                existing.detected_partition is not None
                and first_seen is not None
                and first_seen < detected_time
            ):
                detected_time, detected_partition = first_seen, existing.detected_partition
            if existing.window_end is not None and existing.window_end > window_end:
                window_end = existing.window_end
            # A loss once confirmed stays confirmed for the episode: a pass that sees only part
            # of it (a blip's worth) does not downgrade it.
            consequential = consequential or (
                existing.consequential and not existing.metadata.get("provisional")
            )
            break
    explaining = result.explaining_causes
    cited = tuple(dict.fromkeys(key for cause in explaining for key in cause.signal_keys))
    return Incident(
        id=incident_id,
        model_asset=model.name,
        metric=model.metric,
        classification=result.classification,
        consequential=consequential,
        onset_time=onset_time,
        onset_partition=onset_partition,
        detected_time=detected_time,
        detected_partition=detected_partition,
        window_start=onset_time,
        window_end=window_end,
        baseline_value=shift.baseline_value,
        observed_value=shift.degraded_value,
        summary=explain_attribution(result),
        causes=result.causes[:10],
        cited_signal_keys=cited,
        created_at=now,
        updated_at=now,
        metadata={"method": result.method, "notes": list(result.notes)},
    )


def _partition_span(points: MetricPoints) -> timedelta:
    """The metric's typical spacing between partitions (a day when it cannot tell)."""
    steps = sorted(b - a for a, b in zip(points.times, points.times[1:], strict=False))
    return steps[len(steps) // 2] if steps else timedelta(days=1)


def _same_episode(
    existing: Incident,
    model: MonitoredModel,
    onset_time: datetime,
    end_time: datetime,
    *,
    gap: timedelta = timedelta(0),
) -> bool:
    """Whether a shift found now is the active incident ``existing`` seen again.

    A shift that continues, or whose onset estimate moved a little (14 days), updates the active
    incident of the same model and metric rather than opening a new one. So does one whose onset
    moved further while its window still overlaps the incident's: a gradual drift is dated
    earlier as more of it is seen (the demo's concept drift, first dated 11-10, was dated 10-13
    four weeks later), and one degradation of one metric is one incident, whose diagnosis is the
    latest pass's — the diagnosis of a slow drift can change between passes, so it does not
    decide identity. A shift that begins within ``gap`` (the episode gap, in the metric's
    partitions) after the active incident's window continues it: the incident is still open,
    so the degradation never ended. A provisional at-risk incident (no performance shift of
    its own, nothing detected) only joins by the 14-day rule.
    """
    if (
        existing.metric != model.metric
        or existing.status not in ACTIVE_STATUSES
        or existing.onset_time is None
    ):
        return False
    if abs(existing.onset_time - onset_time) <= timedelta(days=14):
        return True
    if existing.detected_time is None:
        return False
    existing_end = existing.window_end or existing.onset_time
    return onset_time <= existing_end + gap and existing.onset_time <= end_time


def _affected_runs(  # noqa: PLR0917 — private helper, called once
    instance: dg.DagsterInstance,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    incident: Incident,
    result: AttributionResult,
    points: MetricPoints,
) -> list[AffectedRun]:
    """Exactly the runs that consumed the faulty data versions (transitively), plus, when no
    version is to blame (concept drift, a missing batch), the scoring runs of the degraded
    partitions."""
    shift = result.shift
    assert shift is not None
    degraded = set(shift.degraded_partitions)
    roles = {model.name: "training", model.evaluation.to_user_string(): "evaluation"}
    if model.predictions is not None:
        roles[model.predictions.to_user_string()] = "scoring"
    top = [c for c in result.explaining_causes if c.data_versions][:3]
    affected: dict[str, AffectedRun] = {}
    if top:
        produced = [
            record
            for cause in top
            for record in _faulty_materializations(
                instance, cause.asset_key, cause.data_versions, degraded
            )
        ]
        downstream: set[str] = set()
        for cause in top:
            downstream |= set(descendants_with_distance(lineage, cause.asset_key))
        on_lineage = set(roles) | _between(lineage, model)
        records = _provenance(instance, sorted(downstream & on_lineage), after=produced)
        for item in runs_consuming(records, _pointers(produced)):
            role = roles.get(item.record.asset_key, "upstream")
            run_id = item.record.run_id
            if run_id and run_id not in affected:
                affected[run_id] = AffectedRun(
                    run_id=run_id,
                    asset_key=item.record.asset_key,
                    role=role,
                    partition=item.record.partition,
                    at_risk=False,
                    reason=f"consumed a faulty {item.via[0]} materialization ({item.via[1][:12]})",
                )
    else:
        scored = model.predictions or model.evaluation
        for record in instance_api.materializations_after(
            instance, scored, partitions=sorted(degraded)
        ):
            if record.run_id not in affected:
                affected[record.run_id] = AffectedRun(
                    run_id=record.run_id,
                    asset_key=record.asset_key,
                    role=roles.get(record.asset_key, "scoring"),
                    partition=record.partition,
                    reason=f"scored a degraded partition ({incident.classification.value})",
                )
    return sorted(affected.values(), key=lambda run: (run.partition or "", run.run_id))


def _between(lineage: Mapping[str, Sequence[str]], model: MonitoredModel) -> set[str]:
    """Assets on the model's lineage (ancestors of the evaluation asset, and it)."""
    evaluation = model.evaluation.to_user_string()
    return set(ancestors_with_distance(lineage, evaluation)) | {evaluation}


def _provenance(
    instance: dg.DagsterInstance,
    assets: Sequence[str],
    *,
    after: Sequence[instance_api.MaterializationRecord],
) -> list[ProvenanceRecord]:
    """Provenance of the materializations that can have consumed the ``after`` ones.

    A materialization's identity is :func:`instance_api.consumed_identity` — its data version,
    or for a partition the hash Dagster records in a one-partition consumer's
    ``dagster/input_data_version/<key>`` tag — so consumers match their exact upstream partition.

    A consumer is stored after what it read (the read happens after the write), and so is a
    consumer of that consumer: only materializations after the earliest faulty one are read.
    Reading every materialization of every downstream asset made each pass grow with the
    whole history (two seconds a pass after a daily year).
    """
    if not after:
        return []
    first = min(record.storage_id for record in after)
    records: list[ProvenanceRecord] = []
    for asset in assets:
        key = dg.AssetKey.from_user_string(asset)
        for record in instance_api.all_materializations(instance, key, from_storage_id=first):
            records.append(
                ProvenanceRecord(
                    run_id=record.run_id,
                    asset_key=record.asset_key,
                    data_version=instance_api.consumed_identity(record),
                    input_data_versions=record.input_data_versions,
                    partition=record.partition,
                )
            )
    return records


def _faulty_materializations(
    instance: dg.DagsterInstance,
    asset: str,
    versions: Sequence[str],
    partitions: set[str] | None = None,
) -> list[instance_api.MaterializationRecord]:
    """The materializations of ``asset`` that produced faulty data versions (in ``partitions``,
    when given and the asset is partitioned)."""
    key = dg.AssetKey.from_user_string(asset)
    records: Sequence[instance_api.MaterializationRecord] = []
    if partitions:
        records = instance_api.all_materializations(instance, key, partitions=sorted(partitions))
    if not records:  # no partition given, or an unpartitioned asset: its whole history
        records = instance_api.all_materializations(instance, key)
    wanted = set(versions)
    return [
        record
        for record in records
        if record.data_version in wanted
        and (record.partition is None or partitions is None or record.partition in partitions)
    ]


def _pointers(records: Sequence[instance_api.MaterializationRecord]) -> list[tuple[str, str]]:
    """``(asset, identity)`` of materializations, as consumers record what they read."""
    return [
        (record.asset_key, identity)
        for record in records
        if (identity := instance_api.consumed_identity(record)) is not None
    ]


def upstream_fault_signals(
    store: CorrmonStore, distances: Mapping[str, int], *, since: datetime
) -> list[Signal]:
    """Failed ERROR signals on ancestors since a time: the triggers of *at-risk* flagging.

    Defects only — failed quality, schema, freshness checks and run failures. Drift is left out:
    a shifted distribution is how the world changes as often as how data breaks, so drift alone
    waits for the metric (the correlation pass) before anything is flagged.
    """
    found = store.read_signals(asset_keys=sorted(distances), start=since)
    return [
        s
        for s in found
        if s.passed is False and s.severity is Severity.ERROR and s.kind in DEFECT_KINDS
    ]


def at_risk_resolution(
    store: CorrmonStore,
    incident: Incident,
    *,
    labelled_until: datetime,
    performance: Incident | None,
) -> str | None:
    """Why a provisional *at-risk* incident is over, or ``None`` while it still stands.

    An at-risk incident has no measured loss: it blocks retraining only while the defect may
    still be in the data, or may still turn out to have cost something. It is over

    * when its faulty partitions were **repaired**: every check that failed there, on the
      faulty asset, passed on its latest evaluation (the partitions were re-materialized
      clean — a backfill after the fix); or
    * when **labels** arrived for every partition it covers (``labelled_until`` is at or past
      its window's end) and the correlation pass confirmed no loss over them (``performance``,
      the pass's incident, is not a consequential one reaching into the window): the defect
      was non-consequential. A defect still failing keeps extending the window, so this waits
      until it ended.
    """
    if not incident.metadata.get("provisional") or incident.status not in ACTIVE_STATUSES:
        return None
    cause = incident.top_cause
    start = incident.window_start or incident.onset_time
    if cause is not None and start is not None and cause.signal_keys:
        cited = set(cause.signal_keys)
        latest: dict[tuple[str, str | None, str | None], Signal] = {}
        faulty: set[tuple[str, str | None, str | None]] = set()
        for signal in store.read_signals(asset_key=cause.asset_key, start=start):
            if signal.kind not in DEFECT_KINDS or signal.passed is None:
                continue
            key = (signal.name, signal.column, signal.partition)
            if signal.idempotency_key in cited:
                faulty.add(key)
            seen = latest.get(key)
            if seen is None or _observed_at(signal) >= _observed_at(seen):
                latest[key] = signal
        if faulty and all(latest[key].passed for key in faulty):
            return (
                f"repaired: the checks that failed on {cause.asset_key} pass on the "
                "re-materialized partitions"
            )
    end = incident.window_end or start
    loss_confirmed = (
        performance is not None
        and performance.consequential
        and start is not None
        and end is not None
        and (performance.window_start or performance.onset_time or end) <= end
        and (performance.window_end or labelled_until) >= start
    )
    if end is not None and labelled_until >= end and not loss_confirmed:
        return (
            f"non-consequential: labels through {labelled_until:%Y-%m-%d} cover the affected "
            "partitions and show no performance loss"
        )
    return None


def _observed_at(signal: Signal) -> datetime:
    return signal.observed_at or signal.event_time


# Candidate building reads the metadata of these kinds only (feature importances on drift
# signals, the previous version on code-version changes); the rest is read without it.
_KINDS_WITH_USED_METADATA = frozenset({SignalKind.DRIFT, SignalKind.CODE_VERSION_CHANGE})


def _upstream_signals(
    store: CorrmonStore, assets: Sequence[str], *, start: datetime
) -> list[Signal]:
    """The signals on ``assets`` since ``start`` that candidate building can use: tens of
    thousands over a lookback window, so metadata is decoded only where it is read, and events
    that passed (a schema observation that matched, a fresh partition) are left in the store —
    only a failed or unjudged event can be a cause (:func:`build_candidates`)."""
    return [
        *store.read_signals(asset_keys=assets, start=start, kinds=_KINDS_WITH_USED_METADATA),
        *store.read_signals(
            asset_keys=assets,
            start=start,
            kinds=SERIES_KINDS - _KINDS_WITH_USED_METADATA,
            with_metadata=False,
        ),
        *store.read_signals(
            asset_keys=assets,
            start=start,
            kinds=EVENT_KINDS - _KINDS_WITH_USED_METADATA,
            with_metadata=False,
            exclude_passed=True,
        ),
    ]


def flag_at_risk(
    *,
    instance: dg.DagsterInstance,
    store: CorrmonStore,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    faults: Sequence[Signal],
    now: datetime,
    on_effect: EffectHook | None = None,
) -> Incident | None:
    """Proactive: runs that consumed a faulty upstream version are *at risk* before labels arrive.

    One provisional incident per (model, faulty asset) while it stays open; classified from the
    fault's kind; not consequential until the metric confirms a loss (the correlation pass then
    writes the performance incident).
    """
    # A defect an at-risk incident already answered for (resolved: repaired, or shown
    # non-consequential by the labels) is not flagged again while it stays in the look-back.
    answered = {
        key
        for incident in store.list_incidents(model_asset=model.name)
        if incident.metadata.get("provisional") and incident.status not in ACTIVE_STATUSES
        for key in incident.cited_signal_keys
    }
    versioned = [s for s in faults if s.data_version and s.idempotency_key not in answered]
    if not versioned:
        return None
    first = min(versioned, key=lambda s: s.event_time)
    kinds = {s.kind for s in versioned}
    classification = (
        IncidentClass.UPSTREAM_FAILURE
        if kinds & {SignalKind.RUN_FAILURE, SignalKind.FRESHNESS}
        else IncidentClass.DATA_FAULT
    )
    incident_id = f"risk-{short_id(model.name, first.asset_key)}"
    existing = store.get_incident(incident_id)
    if existing is not None and existing.status not in ACTIVE_STATUSES:
        incident_id = f"risk-{short_id(model.name, first.asset_key, first.event_time.isoformat())}"
    by_asset: dict[str, set[str]] = {}
    for s in versioned:
        if s.data_version:
            by_asset.setdefault(s.asset_key, set()).add(s.data_version)
    partitions = {s.partition for s in versioned if s.partition is not None} or None
    produced = [
        record
        for asset, versions in sorted(by_asset.items())
        for record in _faulty_materializations(instance, asset, sorted(versions), partitions)
    ]
    assets = sorted(by_asset)
    downstream: set[str] = set()
    for asset in assets:
        downstream |= set(descendants_with_distance(lineage, asset))
    records = _provenance(instance, sorted(downstream & _between(lineage, model)), after=produced)
    runs: dict[str, AffectedRun] = {}
    for item in runs_consuming(records, _pointers(produced)):
        run_id = item.record.run_id
        if run_id and run_id not in runs:
            runs[run_id] = AffectedRun(
                run_id=run_id,
                asset_key=item.record.asset_key,
                role="upstream",
                partition=item.record.partition,
                at_risk=True,
                reason=f"consumed a {item.via[0]} materialization failing a check",
            )
    cause = Cause(
        rank=1,
        kind=first.kind.value,
        asset_key=first.asset_key,
        column=first.column,
        partition=first.partition,
        event_time=first.event_time,
        score=1.0,
        signal_keys=tuple(s.idempotency_key for s in versioned),
        data_versions=tuple(sorted({v for versions in by_asset.values() for v in versions})),
        evidence={"check": first.name, "failed_signals": len(versioned)},
    )
    incident = Incident(
        id=incident_id,
        model_asset=model.name,
        metric=model.metric,
        classification=classification,
        consequential=False,
        onset_time=first.event_time,
        onset_partition=first.partition,
        detected_time=now,
        window_start=first.event_time,
        window_end=max(s.event_time for s in versioned),
        summary=(
            f"**At risk**: {markdown_code(cause_label(cause))} failed "
            f"{markdown_code(first.name)} from partition {escape_markdown(first.partition)}; "
            f"{len(runs)} downstream run(s) consumed the faulty data. "
            "Labels have not confirmed a performance loss yet."
        ),
        causes=(cause,),
        affected_runs=tuple(sorted(runs.values(), key=lambda r: (r.partition or "", r.run_id))),
        cited_signal_keys=cause.signal_keys,
        created_at=now,
        updated_at=now,
        metadata={"provisional": True},
    )
    if existing is not None and existing.id == incident_id and existing.onset_time is not None:
        # The same defect seen again: keep where it began, extend where it reaches, and keep
        # every run flagged so far (the look-back window moves on; the fault's start does not).
        if existing.onset_time < incident.onset_time:  # type: ignore[operator]
            incident = replace(
                incident,
                onset_time=existing.onset_time,
                onset_partition=existing.onset_partition,
                window_start=existing.window_start,
            )
        kept = {run.run_id: run for run in existing.affected_runs}
        kept.update({run.run_id: run for run in incident.affected_runs})
        incident = replace(
            incident,
            affected_runs=tuple(sorted(kept.values(), key=lambda r: (r.partition or "", r.run_id))),
        )
    if classification in DATA_FAULT_CLASSES:
        store.upsert_incident(incident)
        stored = store.get_incident(incident.id) or incident
        notify(on_effect, INCIDENT_WRITTEN, stored.id)
        # tags, and a WARN on the model's Checks tab
        apply_incident_effects(instance, store, model, stored, on_effect=on_effect)
    return incident


def utcnow() -> datetime:
    return datetime.now(UTC)
