"""One alerting pass: decide which lifecycle step each route is owed, and deliver it once.

Per incident and route (matching the route's filters):

* **opened** — once the incident is in the catalog and active; at ``critical`` when it is already
  significant (the route's :class:`~dagster_corrmon.alerts.routes.EscalationPolicy`), else
  ``warn`` (an at-risk incident);
* **escalated** — when an incident opened at ``warn`` becomes significant while still *open*:
  an acknowledgement stops escalation;
* **resolved** — when a route that heard of the incident sees it resolved or closed as a false
  positive; steps not sent by then are superseded.

Each step is delivered once per route across passes and processes (the store's delivery log);
a failure is recorded and retried on a later pass, never raised: alerting cannot fail the
correlation job. Maintenance windows, quiet hours and the rate limit defer a step to a later pass.
"""

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dagster_corrmon.alerts.channels import DeliveryFailed
from dagster_corrmon.alerts.message import Alert, ui_links
from dagster_corrmon.alerts.owners import AssetDirectory
from dagster_corrmon.alerts.routes import Alerting, AlertRoute, AlertSeverity, Step
from dagster_corrmon.core.incident import Incident, IncidentStatus
from dagster_corrmon.core.signal import ensure_utc
from dagster_corrmon.store import ACTIVE_STATUSES, CorrmonStore, Delivery
from dagster_corrmon.store.deliveries import DEFERRED, FAILED, SENT, SUPERSEDED

# How long a claim keeps other processes off a step: longer than one send with its retries.
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class DeliveryOutcome:
    incident_id: str
    step: str
    route: str
    status: str  # sent | failed | deferred | superseded
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class DispatchReport:
    outcomes: tuple[DeliveryOutcome, ...]

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)


def incidents_to_alert(store: CorrmonStore, model_asset: str) -> list[Incident]:
    """The model's active incidents, and closed ones some route still has to hear are over."""
    active = [
        incident
        for status in ACTIVE_STATUSES
        for incident in store.list_incidents(model_asset=model_asset, status=status)
    ]
    closed = [
        incident
        for incident_id in store.incidents_awaiting_resolution_alerts(model_asset)
        if (incident := store.get_incident(incident_id)) is not None
    ]
    return sorted(
        [*active, *closed], key=lambda i: (i.created_at or ensure_utc(datetime.min), i.id)
    )


def _owners_and_groups(
    incident: Incident, directory: AssetDirectory
) -> tuple[list[str], list[str]]:
    assets = [incident.model_asset]
    top = incident.top_cause
    if top is not None:
        assets.insert(0, top.asset_key)
    owners: list[str] = []
    groups: list[str] = []
    for asset in assets:
        info = directory.info(asset)
        owners += [owner for owner in info.owners if owner not in owners]
        if info.group is not None and info.group not in groups:
            groups.append(info.group)
    return owners, groups


def _due_step(
    incident: Incident, route: AlertRoute, sent: dict[str, Delivery]
) -> tuple[Step, AlertSeverity] | None:
    significant = route.escalation.significant(incident)
    if incident.status not in ACTIVE_STATUSES:
        if Step.RESOLVED in sent or not sent:
            return None
        return Step.RESOLVED, AlertSeverity.INFO
    opened = sent.get(Step.OPENED)
    if opened is None:
        return Step.OPENED, AlertSeverity.CRITICAL if significant else AlertSeverity.WARN
    if (
        significant
        and incident.status is IncidentStatus.OPEN
        and opened.severity == AlertSeverity.WARN
        and Step.ESCALATED not in sent
    ):
        return Step.ESCALATED, AlertSeverity.CRITICAL
    return None


def dispatch(
    store: CorrmonStore,
    incidents: Iterable[Incident],
    alerting: Alerting | Sequence[AlertRoute],
    *,
    now: datetime,
    directory: AssetDirectory | None = None,
    log: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DispatchReport:
    """Deliver every lifecycle step the routes are owed for ``incidents``; never raises on a
    failed delivery (it is recorded and retried on a later pass)."""
    if not isinstance(alerting, Alerting):
        alerting = Alerting(routes=alerting)
    directory = directory or AssetDirectory()
    now = ensure_utc(now)
    incidents = list(incidents)
    rows = store.deliveries(incident_ids=[incident.id for incident in incidents])
    by_key: dict[tuple[str, str], dict[str, Delivery]] = {}
    for row in rows:
        by_key.setdefault((row.incident_id, row.route), {})[row.step] = row
    outcomes: list[DeliveryOutcome] = []
    for incident in incidents:
        owners, groups = _owners_and_groups(incident, directory)
        runbook = alerting.runbooks.for_incident(incident)
        for route in alerting.routes:
            existing = by_key.get((incident.id, route.name), {})
            peak = (
                AlertSeverity.CRITICAL
                if route.escalation.significant(incident)
                else AlertSeverity.WARN
            )
            if not route.matches(incident, severity=peak, groups=groups, owners=owners):
                continue
            sent = {step: row for step, row in existing.items() if row.status == SENT}
            if incident.status not in ACTIVE_STATUSES:
                _supersede(store, incident, route, existing, now=now)
            due = _due_step(incident, route, sent)
            if due is None:
                continue
            step, severity = due
            alert = Alert(
                incident=incident,
                step=step.value,
                severity=severity.value,
                owners=tuple(owners),
                runbook_kind=runbook.kind,
                runbook_link=runbook.link,
                links=ui_links(alerting.ui_base_url, incident, runbook.link),
                sent_at=now,
            )
            outcomes.append(
                _deliver(
                    store, route, alert, existing.get(step.value), now=now, log=log, sleep=sleep
                )
            )
    return DispatchReport(outcomes=tuple(outcomes))


def _supersede(
    store: CorrmonStore,
    incident: Incident,
    route: AlertRoute,
    existing: dict[str, Delivery],
    *,
    now: datetime,
) -> None:
    """Steps of a closed incident that never went out are moot: only its closing is news."""
    for row in existing.values():
        if row.step != Step.RESOLVED and row.status not in (SENT, SUPERSEDED):
            store.hold_delivery(
                incident_id=incident.id,
                step=row.step,
                route=route.name,
                channel=route.channel.kind,
                severity=row.severity,
                status=SUPERSEDED,
                reason="the incident closed before this step was delivered",
                now=now,
            )


def _hold_reason(
    store: CorrmonStore, route: AlertRoute, severity: AlertSeverity, now: datetime
) -> tuple[datetime | None, str] | None:
    held = route.held_until(now, severity)
    if held is not None:
        return held, f"maintenance window or quiet hours until {held.isoformat()}"
    limit = route.rate_limit
    if limit is not None and store.count_sent(route=route.name, since=now - limit.per) >= (
        limit.max_alerts
    ):
        return None, f"rate limit of {limit.max_alerts} per {limit.per} reached"
    return None


def _deliver(
    store: CorrmonStore,
    route: AlertRoute,
    alert: Alert,
    previous: Delivery | None,
    *,
    now: datetime,
    log: Any,
    sleep: Callable[[float], None],
) -> DeliveryOutcome:
    key: dict[str, Any] = {
        "incident_id": alert.incident.id,
        "step": alert.step,
        "route": route.name,
    }
    if (
        previous is not None
        and previous.status in (FAILED, DEFERRED)
        and previous.next_attempt_at is not None
        and previous.next_attempt_at > now
    ):
        return DeliveryOutcome(**key, status=previous.status, detail="waiting to retry")
    severity = AlertSeverity(alert.severity)
    hold = _hold_reason(store, route, severity, now)
    if hold is not None:
        until, reason = hold
        store.hold_delivery(
            **key,
            channel=route.channel.kind,
            severity=alert.severity,
            status=DEFERRED,
            reason=reason,
            now=now,
            until=until,
        )
        return DeliveryOutcome(**key, status=DEFERRED, detail=reason)
    if not store.claim_delivery(
        **key,
        channel=route.channel.kind,
        severity=alert.severity,
        now=now,
        lease_until=now + CLAIM_LEASE,
    ):
        return DeliveryOutcome(**key, status="claimed", detail="sent or being sent elsewhere")
    payload = route.channel.render(alert)
    error: DeliveryFailed | None = None
    for attempt in range(1, route.retry.attempts + 1):
        if attempt > 1:
            sleep(route.retry.pause_before(attempt))
        try:
            route.channel.send(payload, timeout_s=route.retry.timeout_s, log=log)
        except DeliveryFailed as failed:
            error = failed
            if not failed.transient:
                break
            continue
        error = None
        break
    if error is None:
        store.finish_delivery(**key, now=now, payload=payload)
        if log is not None:
            log.info(f"alert {alert.step} of {alert.incident.id} sent to route {route.name}")
        return DeliveryOutcome(**key, status=SENT)
    failures = (previous.attempts if previous is not None else 0) + 1
    retry_at = now + route.retry.next_pass_after(failures)
    store.finish_delivery(
        **key, now=now, payload=payload, error=str(error), next_attempt_at=retry_at
    )
    if log is not None:
        log.warning(
            f"alert {alert.step} of {alert.incident.id} to route {route.name} failed: {error}; "
            f"retried after {retry_at.isoformat()}"
        )
    return DeliveryOutcome(**key, status=FAILED, detail=str(error))


def dispatch_for_model(
    store: CorrmonStore,
    model_asset: str,
    alerting: Alerting | Sequence[AlertRoute],
    *,
    now: datetime,
    directory: AssetDirectory | None = None,
    log: Any = None,
) -> DispatchReport:
    """The correlation job's hook: alert on the model's incidents after the pass's effects."""
    return dispatch(
        store,
        incidents_to_alert(store, model_asset),
        alerting,
        now=now,
        directory=directory,
        log=log,
    )
