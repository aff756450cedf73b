"""What an alert says: one incident at one lifecycle step, rendered per channel.

Built only from the stored incident, the asset owners and the runbook, so an alert, the delivery
log and a postmortem always agree.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from dagster_corrmon.core.incident import Cause, Incident

SCHEMA = "corrmon.alert.v1"  # the webhook payload's version, for receivers


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert: the facts every channel renders."""

    incident: Incident
    step: str
    severity: str
    owners: tuple[str, ...]
    runbook_kind: str
    runbook_link: str
    links: Mapping[str, str]
    sent_at: datetime

    @property
    def headline(self) -> str:
        incident = self.incident
        what = incident.classification.value.replace("_", " ")
        change = ""
        if incident.baseline_value is not None and incident.observed_value is not None:
            change = (
                f": {incident.metric} {incident.baseline_value:.3g} → {incident.observed_value:.3g}"
            )
        elif incident.metadata.get("provisional"):
            change = ": at risk, labels have not confirmed a loss yet"
        verb = {"opened": "opened", "escalated": "escalated", "resolved": "resolved"}[self.step]
        if self.step == "resolved" and incident.status.value == "false_positive":
            verb = "closed as false positive"
        return f"[{self.severity.upper()}] {incident.model_asset} {what} {verb}{change}"

    @property
    def cause(self) -> str:
        return cause_label(self.incident.top_cause)

    @property
    def evidence(self) -> dict[str, Any]:
        top = self.incident.top_cause
        if top is None:
            return {}
        found = {
            "score": top.score,
            "p_value": top.p_value,
            "q_value": top.q_value,
            "repair_recovery": top.repair_recovery,
            "shift_size": top.shift_size,
            "lineage_distance": top.lineage_distance,
            "first_partition": top.partition,
        }
        return {key: value for key, value in found.items() if value is not None}

    @property
    def affected_runs(self) -> int:
        return len(self.incident.affected_runs)


def cause_label(cause: Cause | None) -> str:
    if cause is None:
        return "no candidate cause"
    where = f"{cause.asset_key}.{cause.column}" if cause.column else cause.asset_key
    return f"{where} ({cause.kind})"


def ui_links(base_url: str | None, incident: Incident, runbook_link: str) -> dict[str, str]:
    """Links into the Dagster UI (when its base URL is configured) and to the runbook."""
    links = {"runbook": runbook_link}
    if not base_url:
        return links

    def asset(key: str) -> str:
        return f"{base_url}/assets/{'/'.join(quote(part, safe='') for part in key.split('/'))}"

    links["model"] = asset(incident.model_asset)
    links["incident_check"] = f"{asset(incident.model_asset)}?view=checks"
    links["affected_runs"] = f"{base_url}/runs?" + urlencode(
        {"q[]": f"tag:corrmon/incident={incident.id}"}
    )
    top = incident.top_cause
    if top is not None:
        links["cause"] = asset(top.asset_key)
    return links


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook body: plain JSON with every fact of the alert."""
    incident = alert.incident
    return {
        "schema": SCHEMA,
        "incident_id": incident.id,
        "step": alert.step,
        "severity": alert.severity,
        "headline": alert.headline,
        "model": incident.model_asset,
        "metric": incident.metric,
        "classification": incident.classification.value,
        "status": incident.status.value,
        "consequential": incident.consequential,
        "baseline_value": incident.baseline_value,
        "observed_value": incident.observed_value,
        "onset_partition": incident.onset_partition,
        "detected_partition": incident.detected_partition,
        "cause": alert.cause,
        "evidence": alert.evidence,
        "affected_runs": alert.affected_runs,
        "owners": list(alert.owners),
        "runbook": {"kind": alert.runbook_kind, "link": alert.runbook_link},
        "links": dict(alert.links),
        "summary": incident.summary,
        "sent_at": alert.sent_at.isoformat(),
    }


def _evidence_text(evidence: Mapping[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.replace('_', ' ')} {shown}")
    return ", ".join(parts) or "none recorded"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body (Block Kit): headline, cause, evidence, runs, links."""
    fields = [
        {"type": "mrkdwn", "text": f"*Cause*\n{alert.cause}"},
        {"type": "mrkdwn", "text": f"*Affected runs*\n{alert.affected_runs}"},
        {"type": "mrkdwn", "text": f"*Classification*\n{alert.incident.classification.value}"},
        {"type": "mrkdwn", "text": f"*Owners*\n{', '.join(alert.owners) or '-'}"},
    ]
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": name.replace("_", " ")},
            "url": url,
        }
        for name, url in alert.links.items()
    ]
    return {
        "text": alert.headline,  # the notification's fallback text
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.headline[:150]}},
            {"type": "section", "fields": fields},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Evidence*: {_evidence_text(alert.evidence)}"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"incident `{alert.incident.id}` · step {alert.step} · "
                        f"runbook: {alert.runbook_kind}",
                    }
                ],
            },
            *([{"type": "actions", "elements": buttons}] if buttons else []),
        ],
    }


def email_text(alert: Alert) -> tuple[str, str]:
    """(subject, plain-text body) of the alert email."""
    incident = alert.incident
    lines = [
        alert.headline,
        "",
        f"Incident:        {incident.id} ({incident.status.value})",
        f"Model:           {incident.model_asset} ({incident.metric})",
        f"Cause:           {alert.cause}",
        f"Evidence:        {_evidence_text(alert.evidence)}",
        f"Affected runs:   {alert.affected_runs}",
        f"Owners:          {', '.join(alert.owners) or '-'}",
        f"Runbook:         {alert.runbook_link}",
    ]
    lines += [
        f"{'Link (' + name.replace('_', ' ') + '):':<17}{url}"
        for name, url in alert.links.items()
        if name != "runbook"
    ]
    if incident.summary:
        lines += ["", incident.summary]
    return alert.headline, "\n".join(lines)


def recipients(owners: Sequence[str], team_emails: Mapping[str, str]) -> list[str]:
    """Email addresses of the owners: addresses as they are, ``team:x`` through ``team_emails``."""
    found: list[str] = []
    for owner in owners:
        address = team_emails.get(owner) if owner.startswith("team:") else owner
        if address and "@" in address and address not in found:
            found.append(address)
    return found
