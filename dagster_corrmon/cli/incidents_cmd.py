"""``corrmon incidents …``: read the incident catalog and move incidents along their lifecycle.

Lifecycle: open → acknowledged → resolved | false_positive (open may close directly). Closing an
incident feeds back: resolved and false-positive windows are excluded from metric baselines.
"""

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from dagster_corrmon.alerts.runbooks import Runbooks
from dagster_corrmon.cli.db_cmd import database_url_option
from dagster_corrmon.core.incident import Incident, IncidentStatus
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import ACTIVE_STATUSES, CorrmonStore, StatusChange

_STATUS_CHOICES = [status.value for status in IncidentStatus]


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    """The incident as plain JSON-ready data (datetimes as ISO 8601 strings, enums as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(incident), default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


@click.group("incidents")
def incidents_group() -> None:
    """The incident catalog: list, show, acknowledge, resolve, mark false positive."""


@incidents_group.command("list")
@click.option("--model", "model_asset", metavar="ASSET", help="Only incidents on this model asset.")
@click.option("--status", type=click.Choice(_STATUS_CHOICES), help="Only incidents in this status.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@database_url_option
def list_command(
    model_asset: str | None, status: str | None, output_format: str, database_url: str | None
) -> None:
    """List incidents, newest first."""
    with CorrmonStore(database_url, must_exist=True) as store:
        incidents = store.list_incidents(model_asset=model_asset, status=status)
    incidents.reverse()
    if output_format == "json":
        click.echo(json.dumps([incident_to_dict(incident) for incident in incidents], indent=2))
        return
    if not incidents:
        click.echo("no incidents")
        return
    rows = []
    for incident in incidents:
        top = incident.top_cause
        cause = "-"
        if top is not None:
            cause = top.asset_key + (f".{top.column}" if top.column else "") + f" ({top.kind})"
        rows.append(
            [
                incident.id,
                incident.status.value,
                incident.classification.value,
                incident.model_asset,
                incident.metric,
                cause,
                _when(incident.detected_time or incident.created_at),
            ]
        )
    click.echo(_table(["ID", "STATUS", "CLASS", "MODEL", "METRIC", "TOP CAUSE", "DETECTED"], rows))


def _describe(incident: Incident, history: Sequence[StatusChange]) -> str:
    lines = [
        f"incident {incident.id}: {incident.classification.value} on {incident.model_asset} "
        f"({incident.metric}), {incident.status.value}",
        f"  consequential:  {'yes' if incident.consequential else 'no'}",
        f"  {incident.metric}: baseline {_number(incident.baseline_value)}, "
        f"observed {_number(incident.observed_value)}",
        f"  onset:          {_when(incident.onset_time)}"
        + (f" (partition {incident.onset_partition})" if incident.onset_partition else ""),
        f"  detected:       {_when(incident.detected_time)}"
        + (f" (partition {incident.detected_partition})" if incident.detected_partition else ""),
        f"  window:         {_when(incident.window_start)} → {_when(incident.window_end)}",
        f"  created:        {_when(incident.created_at)}; updated {_when(incident.updated_at)}",
    ]
    if incident.summary:
        lines += ["", *("  " + line for line in incident.summary.splitlines())]
    lines += ["", f"causes ({len(incident.causes)}):"]
    for cause in sorted(incident.causes, key=lambda cause: cause.rank):
        target = cause.asset_key + (f" column {cause.column}" if cause.column else "")
        lines.append(f"  #{cause.rank} {target} ({cause.kind}) score {_number(cause.score, 3)}")
        facts = [
            ("first seen", _when(cause.event_time) if cause.event_time else None),
            ("partition", cause.partition),
            ("p-value", _number(cause.p_value) if cause.p_value is not None else None),
            ("q-value", _number(cause.q_value) if cause.q_value is not None else None),
            (
                "repair recovers",
                f"{cause.repair_recovery:.0%} of the loss"
                if cause.repair_recovery is not None
                else None,
            ),
            (
                "lineage distance",
                str(cause.lineage_distance) if cause.lineage_distance is not None else None,
            ),
            ("shift size", _number(cause.shift_size) if cause.shift_size is not None else None),
            (
                "feature importance",
                _number(cause.feature_importance) if cause.feature_importance is not None else None,
            ),
            ("data versions", ", ".join(cause.data_versions) or None),
            ("signals cited", str(len(cause.signal_keys)) if cause.signal_keys else None),
        ]
        lines += [f"      {label}: {value}" for label, value in facts if value is not None]
        lines += [
            f"      {key}: {json.dumps(value)}" for key, value in sorted(cause.evidence.items())
        ]
    lines += ["", f"affected runs ({len(incident.affected_runs)}):"]
    for run in incident.affected_runs:
        flags = " AT RISK" if run.at_risk else ""
        where = f" partition {run.partition}" if run.partition else ""
        reason = f": {run.reason}" if run.reason else ""
        lines.append(f"  {run.run_id} {run.role} of {run.asset_key}{where}{flags}{reason}")
    lines += ["", f"signals cited: {len(incident.cited_signal_keys)}", "", "history:"]
    for change in history:
        step = (
            f"{change.from_status.value} → {change.to_status.value}"
            if change.from_status is not None
            else f"created {change.to_status.value}"
        )
        who = f" by {change.actor}" if change.actor else ""
        why = f": {change.note}" if change.note else ""
        lines.append(f"  {_when(change.changed_at)} {step}{who}{why}")
    return "\n".join(lines)


@incidents_group.command("show")
@click.argument("incident_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@database_url_option
def show_command(incident_id: str, output_format: str, database_url: str | None) -> None:
    """Show one incident: ranked causes with their evidence, affected runs, history."""
    with CorrmonStore(database_url, must_exist=True) as store:
        incident = store.get_incident(incident_id)
        if incident is None:
            raise ConfigError(f"no incident {incident_id!r} in {store.safe_database_url}")
        history = store.incident_history(incident_id)
    if output_format == "json":
        payload = incident_to_dict(incident)
        payload["history"] = [
            json.loads(json.dumps(dataclasses.asdict(change), default=_json_default))
            for change in history
        ]
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(_describe(incident, history))


def _status_command(name: str, target: IncidentStatus, help_text: str) -> click.Command:
    @click.argument("incident_id")
    @click.option("--note", default="", help="Why (kept in the incident's history).")
    @click.option(
        "--actor",
        default="",
        envvar="USER",
        show_envvar=True,
        help="Who (kept in the incident's history).",
    )
    @database_url_option
    def command(incident_id: str, note: str, actor: str, database_url: str | None) -> None:
        with CorrmonStore(database_url, must_exist=True) as store:
            before = store.get_incident(incident_id)
            if before is None:
                raise ConfigError(f"no incident {incident_id!r} in {store.safe_database_url}")
            after = store.set_incident_status(incident_id, target, note=note, actor=actor)
        click.echo(f"incident {incident_id}: {before.status.value} → {after.status.value}")

    return click.command(name, help=help_text)(command)


incidents_group.add_command(
    _status_command("ack", IncidentStatus.ACKNOWLEDGED, "Acknowledge an open incident.")
)
incidents_group.add_command(
    _status_command(
        "resolve",
        IncidentStatus.RESOLVED,
        "Resolve an incident; its window is then excluded from baselines.",
    )
)
incidents_group.add_command(
    _status_command(
        "false-positive",
        IncidentStatus.FALSE_POSITIVE,
        "Mark an incident a false positive; its window is then excluded from baselines.",
    )
)


def _select_incident(incidents: Sequence[Incident], partition: str | None) -> Incident | None:
    """The incident to explain: the one covering ``partition``, else the latest active one."""
    if partition is not None:
        covering = [
            incident
            for incident in incidents
            if incident.onset_partition is not None
            and incident.onset_partition <= partition
            and (
                incident.window_end is None
                or partition <= incident.window_end.strftime("%Y-%m-%d")
                or incident.status in ACTIVE_STATUSES
            )
        ]
        return covering[-1] if covering else None
    active = [
        incident
        for incident in incidents
        if incident.status in ACTIVE_STATUSES and not incident.metadata.get("provisional")
    ]
    return (active or list(incidents) or [None])[-1]


def explain_text(incident: Incident, *, max_causes: int = 5) -> str:
    """Ranked causes with their evidence, in words a person can act on."""
    lines = [
        f"Incident {incident.id} on {incident.model_asset} ({incident.metric}) "
        f"— {incident.classification.value}, {incident.status.value}"
        + ("" if incident.consequential else ", not consequential"),
        "",
        incident.summary.strip() or "(no explanation recorded)",
        "",
        "Evidence per cause (score in [0, 1]; conf = probability that it is the cause, a "
        "softmax of the scores against 'none of them'; p from a circular-shift test, whose "
        "smallest attainable value is 1/(rotations + 1); q after Benjamini–Yekutieli, '-' when "
        "the history is too short for any q to fall below the significance level; repair = "
        "share of the loss recovered when the suspect is restored):",
    ]
    rows = [
        [
            str(cause.rank),
            f"{cause.asset_key}.{cause.column}" if cause.column else cause.asset_key,
            cause.kind,
            _number(cause.score, 3),
            _number(cause.confidence, 2),
            _number(cause.p_value, 3),
            _number(cause.q_value, 3),
            _number(cause.repair_recovery, 3),
            _number(cause.shift_size, 3),
            "-" if cause.lineage_distance is None else str(cause.lineage_distance),
            cause.partition or "-",
        ]
        for cause in sorted(incident.causes, key=lambda c: c.rank)[:max_causes]
    ]
    headers = ["#", "cause", "kind", "score", "conf", "p", "q", "repair", "shift", "hops", "from"]
    lines.append(_table(headers, rows) if rows else "(no candidate causes)")
    runbook = Runbooks().for_incident(incident)
    lines += ["", f"Runbook ({runbook.kind}): {runbook.link}"]
    runs = incident.affected_runs
    if runs:
        roles: dict[str, int] = {}
        for run in runs:
            roles[run.role] = roles.get(run.role, 0) + 1
        summary = ", ".join(f"{count} {role}" for role, count in sorted(roles.items()))
        lines += [
            "",
            f"Affected runs: {len(runs)} ({summary}); tagged corrmon/incident={incident.id}",
        ]
    return "\n".join(lines)


@click.command("explain")
@click.argument("model_asset")
@click.option("--partition", metavar="KEY", help="Explain the incident covering this partition.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@database_url_option
def explain_command(
    model_asset: str, partition: str | None, output_format: str, database_url: str | None
) -> None:
    """Why did MODEL_ASSET's performance shift? Ranked upstream causes with their evidence."""
    with CorrmonStore(database_url, must_exist=True) as store:
        incidents = store.list_incidents(model_asset=model_asset)
    if not incidents:
        raise ConfigError(
            f"no incidents recorded for model {model_asset!r} "
            "(is the correlation sensor running, and is this the model asset's key?)"
        )
    incident = _select_incident(incidents, partition)
    if incident is None:
        raise ConfigError(f"no incident of {model_asset!r} covers partition {partition!r}")
    if output_format == "json":
        click.echo(json.dumps(incident_to_dict(incident), indent=2))
    else:
        click.echo(explain_text(incident))
