"""Where alerts go and when: routes, their filters, escalation, quiet hours, rate limits, retries.

A route is one channel plus the rules that decide which incidents reach it. Each route sees each
lifecycle step of an incident (opened → escalated → resolved) at most once.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster_corrmon.alerts.channels import Channel
from dagster_corrmon.alerts.runbooks import Runbooks
from dagster_corrmon.core.incident import Incident, IncidentClass
from dagster_corrmon.core.signal import ensure_utc
from dagster_corrmon.errors import ConfigError


class Step(StrEnum):
    """A lifecycle step that is alerted once per route (stored in the delivery log)."""

    OPENED = "opened"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class AlertSeverity(StrEnum):
    """How loud an alert is; ordered info < warn < critical."""

    INFO = "info"
    WARN = "warn"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(AlertSeverity).index(self)


@dataclass(frozen=True, kw_only=True)
class EscalationPolicy:
    """When an incident is *significant*: alerted at ``critical`` rather than ``warn``.

    Significant when the consequential flag is set (labels confirmed a loss that matters), or when
    the top cause's association is significant at ``confidence``: its q-value (Benjamini–Yekutieli
    across the candidates) — or its p-value when no q-value was computed — is at most
    ``1 - confidence``.
    """

    confidence: float = 0.95
    on_consequential: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ConfigError(
                f"EscalationPolicy.confidence must be in (0, 1), not {self.confidence}"
            )

    def significant(self, incident: Incident) -> bool:
        if self.on_consequential and incident.consequential:
            return True
        top = incident.top_cause
        if top is None:
            return False
        evidence = top.q_value if top.q_value is not None else top.p_value
        return evidence is not None and evidence <= 1 - self.confidence


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    """A daily quiet period (local time of ``timezone``; may span midnight).

    Alerts below ``page_at`` wait until it ends; ``page_at`` and louder go out at once.
    """

    start: dt.time
    end: dt.time
    timezone: str = "UTC"
    page_at: AlertSeverity = AlertSeverity.CRITICAL

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ConfigError("QuietHours: start and end are equal (an empty or whole-day period)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConfigError(f"QuietHours: unknown timezone {self.timezone!r}") from error

    def holds_until(self, now: dt.datetime, severity: AlertSeverity) -> dt.datetime | None:
        """When the quiet period around ``now`` ends, if it holds back an alert of ``severity``."""
        if severity.rank >= self.page_at.rank:
            return None
        local = ensure_utc(now).astimezone(ZoneInfo(self.timezone))
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= clock < self.end
        else:
            inside = clock >= self.start or clock < self.end
        if not inside:
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += dt.timedelta(days=1)
        return end.astimezone(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class MaintenanceWindow:
    """A planned period in which the route sends nothing (alerts wait until it ends)."""

    start: dt.datetime
    end: dt.datetime
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start))
        object.__setattr__(self, "end", ensure_utc(self.end))
        if self.end <= self.start:
            raise ConfigError(f"MaintenanceWindow: end {self.end} is not after start {self.start}")

    def holds_until(self, now: dt.datetime) -> dt.datetime | None:
        return self.end if self.start <= ensure_utc(now) < self.end else None


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """At most ``max_alerts`` deliveries per ``per`` on the route; the rest wait their turn."""

    max_alerts: int
    per: dt.timedelta = dt.timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_alerts < 1 or self.per <= dt.timedelta(0):
            raise ConfigError("RateLimit: max_alerts must be >= 1 and per positive")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of a failed send: within one pass (5xx, timeouts, refused connections) and across
    passes (any failure waits ``next_pass_backoff`` x 2^(failures-1), at most ``max_next_pass``)."""

    attempts: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 10.0
    next_pass_backoff: dt.timedelta = dt.timedelta(minutes=1)
    max_next_pass: dt.timedelta = dt.timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise ConfigError("RetryPolicy: attempts >= 1, backoff_s >= 0 and timeout_s > 0")

    def pause_before(self, attempt: int) -> float:
        """Seconds to wait before in-pass attempt ``attempt`` (2, 3, ...)."""
        return min(self.backoff_s * 2 ** (attempt - 2), self.max_backoff_s)

    def next_pass_after(self, failures: int) -> dt.timedelta:
        return min(self.next_pass_backoff * 2 ** max(failures - 1, 0), self.max_next_pass)


@dataclass(frozen=True, kw_only=True)
class AlertRoute:
    """One channel and the incidents that reach it.

    Filters (all must hold; an empty filter lets everything through): ``min_severity`` of the
    incident (``warn`` = at risk, ``critical`` = significant); ``classifications``;
    ``asset_groups`` of the cause or the model asset; ``owners`` — the route is for incidents
    whose cause or model asset is owned by one of these (Dagster asset owners, e.g.
    ``"team:ml"`` or an email address).
    """

    name: str
    channel: Channel
    min_severity: AlertSeverity = AlertSeverity.WARN
    classifications: Sequence[IncidentClass | str] = ()
    asset_groups: Sequence[str] = ()
    owners: Sequence[str] = ()
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)
    quiet_hours: QuietHours | None = None
    maintenance: Sequence[MaintenanceWindow] = ()
    rate_limit: RateLimit | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 128:
            raise ConfigError(f"AlertRoute.name must be 1-128 characters, got {self.name!r}")
        object.__setattr__(self, "min_severity", AlertSeverity(self.min_severity))
        try:
            classes = tuple(IncidentClass(value) for value in self.classifications)
        except ValueError as error:
            known = ", ".join(c.value for c in IncidentClass)
            raise ConfigError(f"AlertRoute {self.name!r}: {error} (known: {known})") from error
        object.__setattr__(self, "classifications", classes)
        object.__setattr__(self, "asset_groups", tuple(self.asset_groups))
        object.__setattr__(self, "owners", tuple(self.owners))
        object.__setattr__(self, "maintenance", tuple(self.maintenance))

    def matches(
        self,
        incident: Incident,
        *,
        severity: AlertSeverity,
        groups: Sequence[str],
        owners: Sequence[str],
    ) -> bool:
        if severity.rank < self.min_severity.rank:
            return False
        if self.classifications and incident.classification not in self.classifications:
            return False
        if self.asset_groups and not set(self.asset_groups) & set(groups):
            return False
        return not (self.owners and not set(self.owners) & set(owners))

    def held_until(self, now: dt.datetime, severity: AlertSeverity) -> dt.datetime | None:
        """The end of a maintenance window or quiet period that holds this alert back now."""
        ends = [window.holds_until(now) for window in self.maintenance]
        if self.quiet_hours is not None:
            ends.append(self.quiet_hours.holds_until(now, severity))
        found = [end for end in ends if end is not None]
        return max(found) if found else None


@dataclass(frozen=True, kw_only=True)
class Alerting:
    """Everything alerting needs: the routes, where the Dagster UI is, and the runbooks.

    ``ui_base_url`` (e.g. ``http://localhost:3000``) makes alerts link into the Dagster UI.
    """

    routes: Sequence[AlertRoute]
    ui_base_url: str | None = None
    runbooks: Runbooks = field(default_factory=Runbooks)

    def __post_init__(self) -> None:
        names = [route.name for route in self.routes]
        if len(set(names)) != len(names):
            raise ConfigError(f"Alerting: route names must be unique, got {names}")
        object.__setattr__(self, "routes", tuple(self.routes))
        if self.ui_base_url is not None:
            object.__setattr__(self, "ui_base_url", self.ui_base_url.rstrip("/"))
