"""Recurring patterns across the incident catalog: a retrospective over a period.

Incidents per upstream asset and failure kind, incidents that followed a ``code_version`` change
of their cause asset, mean time to detect and to resolve per kind, the false-positive rate per
check (from incidents people marked false positive), and the checks that never fired.
"""

import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from dagster_corrmon.alerts.runbooks import runbook_kind
from dagster_corrmon.core.incident import Incident, IncidentStatus
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.store import CorrmonStore

CHECK_KINDS = (
    SignalKind.DATA_QUALITY,
    SignalKind.SCHEMA_CHANGE,
    SignalKind.FRESHNESS,
    SignalKind.DRIFT,
)
_CLOSED = (IncidentStatus.RESOLVED, IncidentStatus.FALSE_POSITIVE)


@dataclass(frozen=True, kw_only=True)
class CheckRecord:
    check: str  # "<asset>:<signal name>"
    fired: int  # incidents whose top cause cites it
    false_positives: int

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positives / self.fired if self.fired else None


@dataclass(frozen=True, kw_only=True)
class Retrospective:
    since: datetime
    incidents: int
    by_asset_and_kind: dict[str, int]  # "<asset> / <kind>" -> incidents
    after_code_change: list[dict[str, str]]  # incident, asset, code version, when
    mttd_hours: dict[str, float]  # kind -> mean hours from first upstream event to detection
    mttr_hours: dict[str, float]  # kind -> mean hours from recorded to closed
    checks: list[CheckRecord]
    never_fired: list[str]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat()
        data["checks"] = [
            {**asdict(check), "false_positive_rate": check.false_positive_rate}
            for check in self.checks
        ]
        return data


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def build_retrospective(
    store: CorrmonStore,
    *,
    since: datetime,
    code_change_window: timedelta = timedelta(days=7),
) -> Retrospective:
    """The retrospective of incidents recorded at or after ``since``."""
    incidents = store.list_incidents(since=since)
    by_asset_and_kind: Counter[str] = Counter()
    after_code_change: list[dict[str, str]] = []
    detect: defaultdict[str, list[float]] = defaultdict(list)
    resolve: defaultdict[str, list[float]] = defaultdict(list)
    fired: Counter[str] = Counter()
    false_positives: Counter[str] = Counter()
    for incident in incidents:
        kind = runbook_kind(incident)
        top = incident.top_cause
        asset = top.asset_key if top is not None else "-"
        by_asset_and_kind[f"{asset} / {kind}"] += 1
        first = top.event_time if top is not None and top.event_time else incident.onset_time
        # A provisional (at-risk) incident has no detection partition: its detected_time is the
        # wall clock of the pass, not comparable with the data time of its first event.
        if incident.detected_partition is not None and incident.detected_time and first:
            detect[kind].append(_hours(incident.detected_time - first))
        closed = _closed_at(store, incident)
        if closed is not None and incident.created_at is not None:
            resolve[kind].append(_hours(closed - incident.created_at))
        if top is not None and first is not None:
            releases = store.read_signals(
                asset_key=top.asset_key,
                kind=SignalKind.CODE_VERSION_CHANGE,
                start=first - code_change_window,
                end=first + timedelta(microseconds=1),
                with_metadata=False,
            )
            if releases:
                release = releases[-1]
                after_code_change.append(
                    {
                        "incident": incident.id,
                        "asset": top.asset_key,
                        "code_version": release.code_version or "-",
                        "released": release.event_time.isoformat(),
                    }
                )
        if top is not None:
            for check in _checks_cited(store, incident):
                fired[check] += 1
                if incident.status is IncidentStatus.FALSE_POSITIVE:
                    false_positives[check] += 1
    seen: set[str] = set()
    failing: set[str] = set()
    for signal in store.read_signals(kinds=CHECK_KINDS, start=since, with_metadata=False):
        check = f"{signal.asset_key}:{signal.name}"
        seen.add(check)
        if signal.passed is False:
            failing.add(check)
    return Retrospective(
        since=since,
        incidents=len(incidents),
        by_asset_and_kind=dict(sorted(by_asset_and_kind.items())),
        after_code_change=after_code_change,
        mttd_hours={k: statistics.fmean(v) for k, v in sorted(detect.items())},
        mttr_hours={k: statistics.fmean(v) for k, v in sorted(resolve.items())},
        checks=[
            CheckRecord(check=c, fired=n, false_positives=false_positives[c])
            for c, n in sorted(fired.items())
        ],
        never_fired=sorted(seen - failing - set(fired)),
    )


def _closed_at(store: CorrmonStore, incident: Incident) -> datetime | None:
    if incident.status not in _CLOSED:
        return None
    changes = [c for c in store.incident_history(incident.id) if c.to_status in _CLOSED]
    return changes[-1].changed_at if changes else None


def _checks_cited(store: CorrmonStore, incident: Incident) -> set[str]:
    top = incident.top_cause
    if top is None:
        return set()
    cited = store.get_signals_by_keys(top.signal_keys) if top.signal_keys else []
    return {f"{s.asset_key}:{s.name}" for s in cited if s.kind in CHECK_KINDS}


def retrospective_markdown(retro: Retrospective) -> str:
    lines = [
        f"# Retrospective since {retro.since:%Y-%m-%d}",
        "",
        f"{retro.incidents} incident(s).",
        "",
        "## Incidents per upstream asset and kind",
        "",
    ]
    lines += [f"- {key}: {n}" for key, n in retro.by_asset_and_kind.items()] or ["- none"]
    lines += ["", "## Incidents after a code_version change of their cause asset", ""]
    lines += [
        f"- {row['incident']}: `{row['asset']}` released code version {row['code_version']} "
        f"at {row['released']}"
        for row in retro.after_code_change
    ] or ["- none"]
    lines += ["", "## Mean time to detect / resolve per kind (hours)", ""]
    kinds = sorted(set(retro.mttd_hours) | set(retro.mttr_hours))
    for kind in kinds:
        mttd = retro.mttd_hours.get(kind)
        mttr = retro.mttr_hours.get(kind)
        lines.append(
            f"- {kind}: MTTD {'-' if mttd is None else f'{mttd:.1f}'}, "
            f"MTTR {'-' if mttr is None else f'{mttr:.1f}'}"
        )
    if not kinds:
        lines.append("- none")
    lines += ["", "## False-positive rate per check", ""]
    lines += [
        f"- {c.check}: fired {c.fired}, false positives {c.false_positives} "
        f"({c.false_positive_rate:.0%})"
        for c in retro.checks
        if c.false_positive_rate is not None
    ] or ["- none"]
    lines += ["", "## Checks that never fired", ""]
    lines += [f"- {check}" for check in retro.never_fired] or ["- none"]
    return "\n".join(lines) + "\n"
