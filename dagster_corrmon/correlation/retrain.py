"""Retraining decisions: retrain on validated concept drift, never on top of a data fault.

Every decision — retrain, skip or blocked — is recorded as a ``retrain_decision`` signal with its
reason, so the history of "why did (or didn't) we retrain?" is queryable and shows in reports.

Two entry points share the same rules. :func:`decide_retrain` judges one correlation pass (the
incident it produced). :func:`retrain_guard` judges "may we retrain now?" from the store alone —
the scheduled retrain, and the ``corrmon_retrain_guard`` check that Declarative Automation reads,
both ask it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from dagster_corrmon.core.incident import DATA_FAULT_CLASSES, Incident, IncidentClass
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import Severity, Signal, SignalKind, ensure_utc
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore

RETRAIN_SIGNAL_NAME = "retrain_decision"
# Open incidents of these classes block retraining: it would learn the defect.
RETRAIN_BLOCKING_CLASSES = DATA_FAULT_CLASSES | {IncidentClass.CODE_CHANGE}

# Who took a decision (stored as ``metadata["trigger"]``; stable identifiers). Only decisions whose
# trigger launches a run count as retrains for the cooldown: the correlation pass (the retrain
# sensor launches it) and the schedule (launches it itself). The guard check only reports a
# verdict; a retrain Declarative Automation launches on it shows as the model's materialization.
TRIGGER_CORRELATION = "correlation"
TRIGGER_SCHEDULE = "schedule"
TRIGGER_GUARD_CHECK = "guard_check"
_LAUNCHING_TRIGGERS = frozenset({TRIGGER_CORRELATION, TRIGGER_SCHEDULE})


class Decision(StrEnum):
    RETRAIN = "retrain"
    SKIP = "skip"
    BLOCKED = "blocked"


@dataclass(frozen=True, kw_only=True)
class RetrainPolicy:
    """When to retrain.

    ``on_concept_drift``: request a retrain when a consequential shift is classified as concept
    drift. ``cooldown``: no second retrain within this span of *event* time (partition time), so
    a retrain has time to show its effect. Retraining is always blocked while the model or one of
    its ancestors has an open data-fault or upstream-failure incident: a model retrained on
    defective data learns the defect.
    """

    on_concept_drift: bool = True
    cooldown: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.cooldown < timedelta(0):
            raise ConfigError("RetrainPolicy.cooldown must not be negative")


@dataclass(frozen=True, kw_only=True)
class RetrainDecision:
    model: str
    decision: Decision
    reason: str
    event_time: datetime
    partition: str | None = None
    incident_id: str | None = None
    trigger: str = TRIGGER_CORRELATION


def blocking_incidents(
    store: CorrmonStore, model: MonitoredModel, lineage: Mapping[str, Sequence[str]]
) -> list[Incident]:
    """Open data-fault / upstream-failure / code-change incidents on the model or blaming one of
    its ancestors: retraining on them would learn the defect (a buggy transform's output is as
    wrong as a broken feed's)."""
    assets = set(ancestors_with_distance(lineage, model.evaluation.to_user_string()))
    assets |= {model.name, model.evaluation.to_user_string()}
    return [
        incident
        for incident in store.open_incidents_for_assets(sorted(assets))
        if incident.classification in RETRAIN_BLOCKING_CLASSES
    ]


def decision_trigger(signal: Signal) -> str:
    """Who took a recorded decision (decisions written before triggers existed: correlation)."""
    return str(signal.metadata.get("trigger") or TRIGGER_CORRELATION)


def last_retrain(store: CorrmonStore, model: MonitoredModel) -> Signal | None:
    """The latest recorded ``retrain`` decision that launched a run (not a guard-check verdict)."""
    decisions = store.read_signals(
        asset_key=model.name, name=RETRAIN_SIGNAL_NAME, kind=SignalKind.RETRAIN_DECISION
    )
    retrains = [
        s
        for s in decisions
        if s.metadata.get("decision") == Decision.RETRAIN.value
        and decision_trigger(s) in _LAUNCHING_TRIGGERS
    ]
    return retrains[-1] if retrains else None


def _blocked_reason(blockers: Sequence[Incident]) -> str:
    first = blockers[0]
    cause = first.top_cause
    where = f" on {cause.asset_key}" if cause is not None else ""
    fix = "the code" if first.classification is IncidentClass.CODE_CHANGE else "the data"
    return (
        f"open {first.classification.value} incident {first.id}{where}: fix {fix} and "
        "backfill the affected partitions first; retraining now would learn the defect"
    )


def _span(delta: timedelta) -> str:
    if delta % timedelta(days=1) == timedelta(0):
        return f"{delta.days} days"
    return str(delta)


def _cooldown_reason(previous: datetime, policy: RetrainPolicy) -> str:
    return f"cooldown: last retrain at {previous:%Y-%m-%d %H:%M}, cooldown {_span(policy.cooldown)}"


def decide_retrain(
    *,
    store: CorrmonStore,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    incident: Incident | None,
    policy: RetrainPolicy,
    event_time: datetime,
    partition: str | None = None,
) -> RetrainDecision:
    """Decide, and record the decision as a signal."""

    def decided(decision: Decision, reason: str) -> RetrainDecision:
        return RetrainDecision(
            model=model.name,
            decision=decision,
            reason=reason,
            event_time=event_time,
            partition=partition,
            incident_id=incident.id if incident is not None else None,
        )

    blockers = blocking_incidents(store, model, lineage)
    if blockers:
        result = decided(Decision.BLOCKED, _blocked_reason(blockers))
    elif incident is None:
        result = decided(Decision.SKIP, "no performance shift")
    elif not incident.consequential:
        result = decided(Decision.SKIP, f"{incident.id} is not consequential")
    elif incident.classification is not IncidentClass.CONCEPT_DRIFT:
        result = decided(
            Decision.SKIP,
            f"{incident.id} is {incident.classification.value}, not concept drift: "
            "retraining would not address it",
        )
    elif not policy.on_concept_drift:
        result = decided(Decision.SKIP, "the policy does not retrain on concept drift")
    else:
        previous = last_retrain(store, model)
        if previous is not None and event_time - previous.event_time < policy.cooldown:
            result = decided(Decision.SKIP, _cooldown_reason(previous.event_time, policy))
        else:
            result = decided(
                Decision.RETRAIN,
                f"validated concept drift ({incident.id}): performance decayed and no upstream "
                "fault explains it",
            )
    record_decision(store, result)
    return result


def record_decision(store: CorrmonStore, decision: RetrainDecision) -> None:
    store.write_signals(
        [
            Signal(
                kind=SignalKind.RETRAIN_DECISION,
                asset_key=decision.model,
                name=RETRAIN_SIGNAL_NAME,
                event_time=decision.event_time,
                partition=decision.partition,
                passed=decision.decision is not Decision.BLOCKED,
                severity=Severity.WARN if decision.decision is Decision.BLOCKED else Severity.INFO,
                value=1.0 if decision.decision is Decision.RETRAIN else 0.0,
                metadata={
                    "decision": decision.decision.value,
                    "reason": decision.reason,
                    "incident": decision.incident_id,
                    "trigger": decision.trigger,
                },
            )
        ]
    )


class RetrainGuard(Protocol):
    """The signature of a retrain guard (:func:`retrain_guard`, or a team's own)."""

    def __call__(
        self,
        store: CorrmonStore,
        model: MonitoredModel,
        lineage: Mapping[str, Sequence[str]],
        policy: RetrainPolicy,
        now: datetime,
        *,
        last_trained: datetime | None = None,
    ) -> RetrainDecision: ...


def retrain_guard(
    store: CorrmonStore,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    policy: RetrainPolicy,
    now: datetime,
    *,
    last_trained: datetime | None = None,
) -> RetrainDecision:
    """May the model be retrained now? Decided from the store alone; nothing is written.

    In order:

    1. **blocked** while :func:`blocking_incidents` is non-empty — an open data-fault,
       upstream-failure or code-change incident on the model or an ancestor: fix the data (or
       the code) and backfill first;
    2. **retrain** needs a reason, looked for since the last retrain (the later of the last
       launched ``retrain`` decision and ``last_trained``, the model's latest materialization):
       a *validated decay* — an open consequential concept-drift incident of the model (when
       ``policy.on_concept_drift``), or the model's latest metric signal failing its check —
       or *consequential drift* — a failed ERROR ``drift`` signal on one of the model's
       ancestors. Without one: **skip**;
    3. **skip** within ``policy.cooldown`` of the last retrain.

    The caller records the decision (:func:`record_decision`), so a dry run stays a dry run.
    """

    def decided(decision: Decision, reason: str, incident_id: str | None = None) -> RetrainDecision:
        return RetrainDecision(
            model=model.name,
            decision=decision,
            reason=reason,
            event_time=now,
            incident_id=incident_id,
        )

    blockers = blocking_incidents(store, model, lineage)
    if blockers:
        return decided(Decision.BLOCKED, _blocked_reason(blockers), blockers[0].id)
    previous_signal = last_retrain(store, model)
    candidates = [
        moment
        for moment in (
            previous_signal.event_time if previous_signal is not None else None,
            ensure_utc(last_trained) if last_trained is not None else None,
        )
        if moment is not None
    ]
    previous = max(candidates) if candidates else None
    reason, incident_id = _retrain_reason(store, model, lineage, policy, since=previous)
    if reason is None:
        since = f" since the last retrain ({previous:%Y-%m-%d %H:%M})" if previous else ""
        return decided(
            Decision.SKIP,
            f"no validated decay (open concept-drift incident or failing {model.metric}) and no "
            f"consequential drift{since}: nothing to retrain for",
        )
    if previous is not None and ensure_utc(now) - previous < policy.cooldown:
        return decided(
            Decision.SKIP, f"{_cooldown_reason(previous, policy)} ({reason})", incident_id
        )
    return decided(Decision.RETRAIN, reason, incident_id)


def _retrain_reason(
    store: CorrmonStore,
    model: MonitoredModel,
    lineage: Mapping[str, Sequence[str]],
    policy: RetrainPolicy,
    *,
    since: datetime | None,
) -> tuple[str | None, str | None]:
    """Why a retrain is called for, and the incident behind it — or ``(None, None)``."""
    if policy.on_concept_drift:
        for incident in store.open_incidents_for_assets([model.name]):
            if (
                incident.model_asset == model.name
                and incident.consequential
                and incident.classification is IncidentClass.CONCEPT_DRIFT
            ):
                return (
                    f"validated decay: open concept-drift incident {incident.id} — performance "
                    "decayed and no upstream fault explains it",
                    incident.id,
                )
    evaluation = model.evaluation.to_user_string()
    metric = [
        s
        for s in store.read_signals(
            asset_key=evaluation, name=model.metric, kind=SignalKind.METRIC, start=since
        )
        if since is None or s.event_time > since  # what the last retrain answered is answered
    ]
    if metric and metric[-1].passed is False:
        latest = metric[-1]
        where = f" (partition {latest.partition})" if latest.partition else ""
        return (
            f"validated decay: the latest {model.metric} on {evaluation}{where} fails its check",
            None,
        )
    ancestors = set(ancestors_with_distance(lineage, evaluation))
    ancestors |= set(ancestors_with_distance(lineage, model.name))
    ancestors.discard(model.name)
    drifted = [
        s
        for s in store.read_signals(asset_keys=ancestors, kind=SignalKind.DRIFT, start=since)
        if s.passed is False
        and s.severity is Severity.ERROR
        and (since is None or s.event_time > since)
    ]
    if drifted:
        columns = sorted(
            {f"{s.asset_key}.{s.column}" if s.column else s.asset_key for s in drifted}
        )
        shown = ", ".join(columns[:5]) + (
            f" and {len(columns) - 5} more" if len(columns) > 5 else ""
        )
        return f"consequential drift on {shown}", None
    return None, None
