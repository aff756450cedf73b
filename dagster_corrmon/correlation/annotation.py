"""What an incident does to the Dagster instance — run tags, a check result, an observation —
applied at least once, and each exactly once per state of the incident.

A correlation pass has a pipeline of effects: the incident is written to the store, its affected
runs are tagged, the model's ``corrmon_incident`` check gets an evaluation, the model asset an
observation, and the retrain decision is recorded. A worker killed between two of them (or a
database outage longer than the op's retries) used to leave the incident stored and nothing else,
with the sensor's cursor already past the triggers. Now:

* every effect of an incident is recorded in the store's effect ledger (``corrmon_effects``) with a
  fingerprint of what it wrote; :func:`apply_incident_effects` applies only the effects whose
  fingerprint differs from the stored incident's current one, so a repeated pass writes no second
  check evaluation, and a changed incident (new runs, a status a person set) is shown again;
* every correlation pass starts with :func:`reconcile_incident_effects`, which finishes whatever an
  earlier pass left undone, and marks itself started and finished (:func:`start_pass`,
  :func:`finish_pass`);
* the correlation sensor asks :func:`unfinished_pass` each tick (two small reads): a pass whose run
  is over but never finished has its incident effects applied right there and a new pass
  requested, so the retrain decision is made too.

The window that remains is between an effect and its ledger record: a crash exactly there applies
that effect once more (tags overwrite, so only a check evaluation or observation can repeat).

``on_effect`` is an observer called after each step with ``(effect, subject)``; it is the seam
fault-injection tests use to kill a pass at a given step, and can feed an audit log.
"""

import hashlib
import json
from collections.abc import Callable

import dagster as dg

from dagster_corrmon import instance_api
from dagster_corrmon.alerts.runbooks import Runbooks
from dagster_corrmon.core.incident import AffectedRun, Cause, Incident
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.store import ACTIVE_STATUSES, CorrmonStore

INCIDENT_TAG = "corrmon/incident"
CAUSE_TAG = "corrmon/suspected_cause"
AT_RISK_TAG = "corrmon/at_risk"
INCIDENT_CHECK_NAME = "corrmon_incident"

# The steps of a correlation pass, in order; stable strings (they live in the effect ledger).
INCIDENT_WRITTEN = "incident"
RUN_TAGS = "run_tags"
INCIDENT_CHECK = "incident_check"
OBSERVATION = "observation"
RETRAIN_DECISION = "retrain_decision"
EFFECTS = (
    INCIDENT_WRITTEN,
    RUN_TAGS,
    INCIDENT_CHECK,
    OBSERVATION,
    RETRAIN_DECISION,
)
PASS_STARTED = "pass_started"
PASS_FINISHED = "pass_finished"

EffectHook = Callable[[str, str], None]  # (effect, subject)


def short_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def tag_value(text: str) -> str:
    """A run-tag value within Dagster's conventions: ``[A-Za-z0-9_.-]``, at most 63 characters."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in text)
    if len(cleaned) <= 63:
        return cleaned
    return f"{cleaned[:50]}.{short_id(text)}"


def cause_label(cause: Cause | None) -> str:
    if cause is None:
        return "none"
    return f"{cause.asset_key}.{cause.column}" if cause.column else cause.asset_key


def suspected_cause(incident: Incident) -> Cause | None:
    """The cause an incident blames: its top cause if that one explains the loss, else none.

    Every candidate is ranked, but ranking is not blame: a concept drift, or a loss no candidate
    explains, names no feature (its top candidate may be a feature of negligible importance
    that merely scored highest). Causes without an ``explains`` verdict (an at-risk incident's
    failing check) are what the incident is about.
    """
    cause = incident.top_cause
    if cause is None or not cause.evidence.get("explains", True):
        return None
    return cause


def incident_headline(incident: Incident) -> str:
    """One line naming the incident and what happened, shown inline by the UI as the check's
    description (Dagster keeps markdown metadata behind "Show Markdown")."""
    first = next((line for line in incident.summary.splitlines() if line.strip()), "")
    what = first.replace("**", "").strip() or f"top cause {cause_label(suspected_cause(incident))}"
    return f"{incident.id} · {incident.classification.value.replace('_', ' ')}: {what}"


def notify(on_effect: EffectHook | None, effect: str, subject: str) -> None:
    """Tell the observer that ``effect`` of ``subject`` is done."""
    if on_effect is not None:
        on_effect(effect, subject)


def incident_run_tags(incident: Incident, run: AffectedRun) -> dict[str, str]:
    """The ``corrmon/...`` tags an affected run of ``incident`` carries."""
    return {
        INCIDENT_TAG: tag_value(incident.id),
        CAUSE_TAG: tag_value(cause_label(suspected_cause(incident))),
        AT_RISK_TAG: "true" if run.at_risk else "false",
        "corrmon/classification": incident.classification.value,
    }


def annotate_runs(instance: dg.DagsterInstance, incident: Incident) -> tuple[str, ...]:
    """Tag exactly the incident's affected runs (tags overwrite: re-runs are idempotent)."""
    tagged: list[str] = []
    for run in incident.affected_runs:
        if instance.get_run_by_id(run.run_id) is None:
            continue
        instance_api.add_run_tags(instance, run.run_id, incident_run_tags(incident, run))
        tagged.append(run.run_id)
    return tuple(tagged)


def incident_check_events(
    model: MonitoredModel, incident: Incident
) -> tuple[dg.AssetCheckEvaluation, dg.AssetObservation]:
    """The ``corrmon_incident`` check result and the observation that show ``incident``."""
    severity = dg.AssetCheckSeverity.ERROR if incident.consequential else dg.AssetCheckSeverity.WARN
    cause = suspected_cause(incident)
    metadata: dict[str, dg.RawMetadataValue] = {
        "corrmon/incident": incident.id,
        "corrmon/classification": incident.classification.value,
        "corrmon/consequential": bool(incident.consequential),
        "corrmon/suspected_cause": cause_label(cause),
        "corrmon/onset_partition": incident.onset_partition or "",
        "corrmon/affected_runs": len(incident.affected_runs),
        "corrmon/explanation": dg.MetadataValue.md(incident.summary or "(no explanation)"),
        "corrmon/runbook": dg.MetadataValue.url(Runbooks().for_incident(incident).link),
    }
    if cause is not None:
        metadata["corrmon/cause_score"] = float(cause.score)
        if cause.repair_recovery is not None:
            metadata["corrmon/repair_recovery"] = float(cause.repair_recovery)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=model.model,
        check_name=INCIDENT_CHECK_NAME,
        passed=incident.status not in ACTIVE_STATUSES,
        severity=severity,
        metadata=metadata,
        description=incident_headline(incident),
    )
    return evaluation, dg.AssetObservation(asset_key=model.model, metadata=metadata)


def report_incident_check(
    instance: dg.DagsterInstance, model: MonitoredModel, incident: Incident
) -> None:
    """Show the incident on the model asset: a ``corrmon_incident`` check result + observation."""
    for event in incident_check_events(model, incident):
        instance.report_runless_asset_event(event)


def _fingerprint(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def _tags_fingerprint(incident: Incident) -> str:
    wanted = {run.run_id: incident_run_tags(incident, run) for run in incident.affected_runs}
    return _fingerprint(json.dumps(wanted, sort_keys=True))


def apply_incident_effects(
    instance: dg.DagsterInstance,
    store: CorrmonStore,
    model: MonitoredModel,
    incident: Incident,
    *,
    on_effect: EffectHook | None = None,
) -> tuple[str, ...]:
    """Tag the runs, report the check result and the observation of the *stored* ``incident``,
    each only if the ledger does not already hold it for this state; returns the tagged runs."""
    applied = store.applied_effects(incident.id)
    tags = _tags_fingerprint(incident)
    if applied.get(RUN_TAGS) != tags:
        tagged = annotate_runs(instance, incident)
        store.record_effect(incident.id, RUN_TAGS, tags)
    else:
        tagged = tuple(run.run_id for run in incident.affected_runs)
    notify(on_effect, RUN_TAGS, incident.id)
    evaluation, observation = incident_check_events(model, incident)
    for effect, event in ((INCIDENT_CHECK, evaluation), (OBSERVATION, observation)):
        fingerprint = _fingerprint(dg.serialize_value(event))
        if applied.get(effect) != fingerprint:
            instance.report_runless_asset_event(event)
            store.record_effect(incident.id, effect, fingerprint)
        notify(on_effect, effect, incident.id)
    return tagged


def reconcile_incident_effects(
    instance: dg.DagsterInstance,
    store: CorrmonStore,
    model: MonitoredModel,
    *,
    on_effect: EffectHook | None = None,
) -> tuple[str, ...]:
    """Finish every incident effect of ``model`` that an earlier pass left undone.

    Returns the ids of the incidents whose effects were (re-)applied. Incidents oldest first,
    so the check's latest evaluation stays the newest incident's.
    """
    repaired: list[str] = []
    for incident in store.list_incidents(model_asset=model.name):
        before = store.applied_effects(incident.id)
        apply_incident_effects(instance, store, model, incident, on_effect=on_effect)
        if store.applied_effects(incident.id) != before:
            repaired.append(incident.id)
    return tuple(repaired)


def pass_subject(model: MonitoredModel) -> str:
    """The effect ledger's subject for ``model``'s correlation passes."""
    return f"model:{model.name}"


def start_pass(store: CorrmonStore, model: MonitoredModel, run_id: str) -> None:
    store.record_effect(pass_subject(model), PASS_STARTED, run_id)


def finish_pass(store: CorrmonStore, model: MonitoredModel, run_id: str) -> None:
    store.record_effect(pass_subject(model), PASS_FINISHED, run_id)


def unfinished_pass(
    instance: dg.DagsterInstance, store: CorrmonStore, model: MonitoredModel
) -> str | None:
    """The run id of ``model``'s last correlation pass if it stopped before finishing.

    A pass whose run is still queued or running is not unfinished yet; one whose run is over
    (failed, canceled, or gone from the instance) without the finished mark is.
    """
    ledger = store.applied_effects(pass_subject(model))
    started = ledger.get(PASS_STARTED)
    if started is None or ledger.get(PASS_FINISHED) == started:
        return None
    run = instance.get_run_by_id(started)
    if run is not None and not run.is_finished:
        return None
    return started
