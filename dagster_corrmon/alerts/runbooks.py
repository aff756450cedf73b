"""Runbooks: what to do about each failure kind, shipped as markdown and overridable.

Every incident maps to one failure kind (:func:`runbook_kind`) from its classification and its top
cause's evidence. The package ships a default runbook per kind (``runbooks/<kind>.md``); a team
points a kind, an asset, or one asset's kind at its own page (a path or a URL).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dagster_corrmon.core.incident import Incident, IncidentClass
from dagster_corrmon.errors import ConfigError

RUNBOOK_KINDS = (
    "schema_change",
    "null_spike",
    "unit_change",
    "delayed_batch",
    "run_failure",
    "code_change",
    "concept_drift",
    "benign_drift",
)
_NULL_NAMES = re.compile(r"null|complete|missing", re.IGNORECASE)


def runbook_kind(incident: Incident) -> str:
    """The failure kind whose runbook applies to ``incident`` (one of :data:`RUNBOOK_KINDS`)."""
    top = incident.top_cause
    cause_kind = top.kind if top is not None else ""
    if incident.classification is IncidentClass.CONCEPT_DRIFT:
        return "concept_drift"
    if incident.classification is IncidentClass.BENIGN_DRIFT:
        return "benign_drift"
    if incident.classification is IncidentClass.CODE_CHANGE or cause_kind in (
        "code_change",
        "code_version_change",
    ):
        return "code_change"
    if cause_kind == "run_failure":
        return "run_failure"
    if cause_kind == "freshness" or incident.classification is IncidentClass.UPSTREAM_FAILURE:
        return "delayed_batch"
    if cause_kind == "schema_change":
        return "schema_change"
    check = str(top.evidence.get("check", "")) if top is not None else ""
    if cause_kind == "data_quality" and (_NULL_NAMES.search(check) or not check):
        return "null_spike"
    # A value shift (drift of a column, a validity range broken) in a data fault: the classic
    # cause is a unit or encoding change upstream.
    return "unit_change"


def _packaged(kind: str) -> Path:
    return Path(str(resources.files("dagster_corrmon.alerts") / "runbooks" / f"{kind}.md"))


@dataclass(frozen=True, kw_only=True)
class Runbook:
    kind: str
    link: str  # a URL or a file URI
    text: str  # markdown; empty when the runbook is a remote URL


@dataclass(frozen=True, kw_only=True)
class Runbooks:
    """Which runbook an incident links to.

    ``overrides`` keys, most specific first: ``"<asset>:<kind>"``, ``"<asset>"`` (the top cause's
    asset), ``"<kind>"``; values are URLs (``https://…``) or markdown files. ``base_url``, when set,
    is where the team publishes the default runbooks (``<base_url>/<kind>.md``); otherwise the
    link is the packaged file.
    """

    overrides: Mapping[str, str] = field(default_factory=dict[str, str])
    base_url: str | None = None

    def __post_init__(self) -> None:
        for key in self.overrides:
            kind = key.rsplit(":", 1)[-1]
            if ":" in key and kind not in RUNBOOK_KINDS:
                raise ConfigError(
                    f"runbook override {key!r}: unknown kind {kind!r} "
                    f"(known: {', '.join(RUNBOOK_KINDS)})"
                )

    def for_incident(self, incident: Incident) -> Runbook:
        kind = runbook_kind(incident)
        top = incident.top_cause
        keys = [kind]
        if top is not None:
            keys = [f"{top.asset_key}:{kind}", top.asset_key, kind]
        for key in keys:
            target = self.overrides.get(key)
            if target is not None:
                return _resolve(kind, target, where=f"runbook override {key!r}")
        packaged = _packaged(kind)
        text = packaged.read_text(encoding="utf-8")
        if self.base_url:
            return Runbook(kind=kind, link=f"{self.base_url.rstrip('/')}/{kind}.md", text=text)
        return Runbook(kind=kind, link=packaged.as_uri(), text=text)


def _resolve(kind: str, target: str, *, where: str) -> Runbook:
    if re.match(r"^[a-z][a-z0-9+.-]*://", target) and not target.startswith("file://"):
        return Runbook(kind=kind, link=target, text="")
    path = Path(target.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: {path} is not a file")
    return Runbook(kind=kind, link=path.resolve().as_uri(), text=path.read_text(encoding="utf-8"))


def follow_ups(runbook_text: str) -> list[str]:
    """The bullet items of the runbook's ``## Follow-up`` section (postmortem action items)."""
    items: list[str] = []
    inside = False
    for line in runbook_text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower().startswith("follow-up")
            continue
        stripped = line.strip()
        if inside and stripped.startswith(("- ", "* ")):
            items.append(stripped[2:].strip())
    return items
