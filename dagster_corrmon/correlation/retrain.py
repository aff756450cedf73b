"""Retraining decisions: retrain on validated concept drift, never on top of a data fault.

Every decision — retrain, skip or blocked — is recorded as a ``retrain_decision`` signal with its
reason, so the history of "why did (or didn't) we retrain?" is queryable and shows in reports.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dagster_corrmon.core.incident import DATA_FAULT_CLASSES, Incident, IncidentClass
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore

RETRAIN_SIGNAL_NAME = "retrain_decision"


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


def blocking_incidents(
    store: CorrmonStore, model: MonitoredModel, lineage: Mapping[str, Sequence[str]]
) -> list[Incident]:
    """Open data-fault / upstream-failure incidents on the model or blaming one of its ancestors."""
    assets = set(ancestors_with_distance(lineage, model.evaluation.to_user_string()))
    assets |= {model.name, model.evaluation.to_user_string()}
    return [
        incident
        for incident in store.open_incidents_for_assets(sorted(assets))
        if incident.classification in DATA_FAULT_CLASSES
    ]


def last_retrain(store: CorrmonStore, model: MonitoredModel) -> Signal | None:
    decisions = store.read_signals(
        asset_key=model.name, name=RETRAIN_SIGNAL_NAME, kind=SignalKind.RETRAIN_DECISION
    )
    retrains = [s for s in decisions if s.metadata.get("decision") == Decision.RETRAIN.value]
    return retrains[-1] if retrains else None


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
        first = blockers[0]
        cause = first.top_cause
        where = f" on {cause.asset_key}" if cause is not None else ""
        result = decided(
            Decision.BLOCKED,
            f"open {first.classification.value} incident {first.id}{where}: fix the data and "
            "backfill the affected partitions first; retraining now would learn the defect",
        )
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
            result = decided(
                Decision.SKIP,
                f"cooldown: last retrain at {previous.event_time:%Y-%m-%d}, "
                f"cooldown {policy.cooldown.days} days",
            )
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
                },
            )
        ]
    )
