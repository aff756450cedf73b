"""A blameless postmortem draft for one incident, from stored records only.

Every value comes from the catalog: the incident and its causes, its status history, the metric
signals over its window, the alert delivery log, and the runbook of its failure kind. What the
records do not hold is left for people to fill in (marked *to fill in*), never guessed.
"""

import html
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from scipy import stats

from dagster_corrmon.alerts.message import cause_label
from dagster_corrmon.alerts.runbooks import Runbooks, follow_ups
from dagster_corrmon.core.incident import Incident, IncidentStatus
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon.store.deliveries import SENT

_TO_FILL = "*to fill in*"


@dataclass(frozen=True, kw_only=True)
class MetricImpact:
    asset_key: str
    partitions: int
    mean: float
    ci_low: float | None  # 95 % t-interval of the window's mean (None below two partitions)
    ci_high: float | None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if abs(hours) >= 48 else f"{hours:.1f} hours"


def metric_impact(store: CorrmonStore, incident: Incident) -> MetricImpact | None:
    """The metric's mean over the incident window, with a t-interval across its partitions."""
    if incident.window_start is None or incident.window_end is None:
        return None
    found = store.read_signals(
        kind=SignalKind.METRIC,
        name=incident.metric,
        start=incident.window_start,
        end=incident.window_end + timedelta(microseconds=1),
        with_metadata=False,
    )
    by_asset: dict[str, list[float]] = {}
    for signal in found:
        if signal.value is not None:
            by_asset.setdefault(signal.asset_key, []).append(signal.value)
    if not by_asset:
        return None
    asset, values = max(by_asset.items(), key=lambda item: len(item[1]))
    mean = statistics.fmean(values)
    low = high = None
    if len(values) >= 2:
        half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
        low, high = mean - float(half), mean + float(half)
    return MetricImpact(
        asset_key=asset, partitions=len(values), mean=mean, ci_low=low, ci_high=high
    )


def build_postmortem(
    store: CorrmonStore, incident_id: str, *, runbooks: Runbooks | None = None
) -> str:
    """The postmortem draft of ``incident_id`` as markdown."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise ConfigError(f"no incident {incident_id!r} in {store.safe_database_url}")
    history = store.incident_history(incident_id)
    sent = sorted(
        (row for row in store.deliveries(incident_ids=[incident_id]) if row.status == SENT),
        key=lambda row: (row.sent_at or row.created_at, row.route),
    )
    runbook = (runbooks or Runbooks()).for_incident(incident)
    top = incident.top_cause
    impact = metric_impact(store, incident)
    first_event = min(
        (cause.event_time for cause in incident.causes if cause.event_time is not None),
        default=None,
    )
    acknowledged = next((c for c in history if c.to_status is IncidentStatus.ACKNOWLEDGED), None)
    closed = next(
        (
            c
            for c in history
            if c.to_status in (IncidentStatus.RESOLVED, IncidentStatus.FALSE_POSITIVE)
        ),
        None,
    )

    lines = [
        f"# Postmortem (draft): incident {incident.id}",
        "",
        "Blameless: this draft describes what the systems recorded; it assigns no fault to people.",
        "",
        "## Summary",
        "",
        f"- Model: `{incident.model_asset}`, metric `{incident.metric}`",
        f"- Classification: {incident.classification.value}"
        + (" (consequential)" if incident.consequential else " (not consequential)"),
        f"- Status: {incident.status.value}",
        f"- Most likely cause: {cause_label(top)}",
    ]
    if incident.summary:
        lines += ["", incident.summary.strip()]
    lines += ["", "## Impact", ""]
    if incident.baseline_value is not None and incident.observed_value is not None:
        loss = incident.baseline_value - incident.observed_value
        relative = loss / incident.baseline_value if incident.baseline_value else float("nan")
        lines.append(
            f"- {incident.metric}: baseline {incident.baseline_value:.4g}, degraded "
            f"{incident.observed_value:.4g} (change {-loss:+.4g}, {-relative:+.1%})"
        )
    if impact is not None:
        interval = (
            f", 95% CI [{impact.ci_low:.4g}, {impact.ci_high:.4g}]"
            if impact.ci_low is not None and impact.ci_high is not None
            else ""
        )
        lines.append(
            f"- Mean {incident.metric} on `{impact.asset_key}` over the incident window: "
            f"{impact.mean:.4g}{interval} ({impact.partitions} partitions)"
        )
    roles: dict[str, int] = {}
    for run in incident.affected_runs:
        roles[run.role] = roles.get(run.role, 0) + 1
    partitions = sorted({run.partition for run in incident.affected_runs if run.partition})
    lines.append(
        f"- Affected runs: {len(incident.affected_runs)}"
        + (f" ({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))})" if roles else "")
        + f", tagged `corrmon/incident={incident.id}`"
    )
    if partitions:
        lines.append(
            f"- Affected partitions: {len(partitions)} ({partitions[0]} … {partitions[-1]})"
        )

    events: list[tuple[datetime | None, str]] = [
        (first_event, f"first upstream event: {cause_label(top)}"),
        (incident.onset_time, f"performance onset (partition {incident.onset_partition or '-'})"),
        (
            incident.detected_time,
            f"detected (partition {incident.detected_partition or '-'})",
        ),
        (incident.created_at, "incident recorded in the catalog"),
    ]
    events += [
        (row.sent_at, f"alert `{row.step}` ({row.severity}) sent to route `{row.route}`")
        for row in sent
    ]
    events += [
        (
            change.changed_at,
            f"{change.from_status.value} → {change.to_status.value}"
            + (f" by {change.actor}" if change.actor else "")
            + (f": {change.note}" if change.note else ""),
        )
        for change in history
        if change.from_status is not None
    ]
    lines += ["", "## Timeline", "", "Data time for the first three entries; wall time after.", ""]
    lines += [f"- {_when(moment)} — {what}" for moment, what in events if moment is not None]

    lines += ["", "## Root cause", ""]
    if top is None:
        lines.append(f"No candidate cause was recorded. {_TO_FILL}")
    else:
        facts = [
            ("score", top.score),
            ("p-value", top.p_value),
            ("q-value", top.q_value),
            ("repair recovery", top.repair_recovery),
            ("shift (IQR)", top.shift_size),
            ("lineage distance", top.lineage_distance),
            ("feature importance", top.feature_importance),
        ]
        lines.append(f"{cause_label(top)}, first seen in partition {top.partition or '-'}.")
        lines.append("")
        lines += [
            f"- {label}: {value:.4g}" if isinstance(value, float) else f"- {label}: {value}"
            for label, value in facts
            if value is not None
        ]
        if top.data_versions:
            lines.append(f"- faulty data versions: {', '.join(top.data_versions[:10])}")
        others = sorted(incident.causes, key=lambda c: c.rank)[1:4]
        if others:
            lines += [
                "",
                "Other candidates: "
                + "; ".join(f"#{c.rank} {cause_label(c)} (score {c.score:.3g})" for c in others),
            ]

    detection_delay = (
        incident.detected_time - first_event
        if incident.detected_time is not None
        and incident.detected_partition is not None  # else detected_time is wall time
        and first_event is not None
        else None
    )
    first_alert = sent[0].sent_at if sent else None
    alert_delay = (
        first_alert - incident.created_at
        if first_alert is not None and incident.created_at is not None
        else None
    )
    ack_delay = (
        acknowledged.changed_at - first_alert
        if acknowledged is not None and first_alert is not None
        else None
    )
    resolve_time = (
        closed.changed_at - incident.created_at
        if closed is not None and incident.created_at is not None
        else None
    )
    lines += [
        "",
        "## What went well / what went badly",
        "",
        f"- Detection delay (first upstream event → detection, data time): "
        f"{_duration(detection_delay)}",
        f"- Alert delay (recorded → first alert): {_duration(alert_delay)}"
        + ("" if sent else " — no alert was delivered"),
        f"- Acknowledgement delay (first alert → acknowledged): {_duration(ack_delay)}",
        f"- Time to resolve (recorded → closed): {_duration(resolve_time)}",
        f"- Went well: {_TO_FILL}",
        f"- Went badly: {_TO_FILL}",
        "",
        "## Follow-up actions",
        "",
        f"From the `{runbook.kind}` runbook ({runbook.link}):",
        "",
    ]
    actions = follow_ups(runbook.text)
    lines += [f"- [ ] {action}" for action in actions] or [f"- [ ] {_TO_FILL}"]
    return "\n".join(lines) + "\n"


def markdown_to_html(markdown: str, *, title: str) -> str:
    """A self-contained HTML page of the draft (headings, lists, paragraphs; text escaped)."""
    body: list[str] = []
    in_list = False
    for line in markdown.splitlines():
        is_item = line.startswith("- ")
        if in_list and not is_item:
            body.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif is_item:
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_list:
        body.append("</ul>")
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
