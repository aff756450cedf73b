"""The ``alerts:`` section of a monitored-pipeline spec (YAML), as pydantic models.

Secrets are named, never written: ``url_env: SLACK_WEBHOOK_URL`` becomes
``dg.EnvVar("SLACK_WEBHOOK_URL")``, read when an alert is sent. ``AlertsSpec.to_alerting()`` builds
the same :class:`~dagster_corrmon.alerts.routes.Alerting` the Python API takes.
"""

import datetime as dt

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dagster_corrmon.alerts.channels import (
    Channel,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from dagster_corrmon.alerts.routes import (
    Alerting,
    AlertRoute,
    AlertSeverity,
    EscalationPolicy,
    MaintenanceWindow,
    QuietHours,
    RateLimit,
    RetryPolicy,
)
from dagster_corrmon.alerts.runbooks import Runbooks
from dagster_corrmon.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSpec(_Model):
    url: str | None = Field(default=None, description="A URL that is not a secret.")
    url_env: str | None = Field(default=None, description="Environment variable with the URL.")
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="header -> environment variable with its value"
    )

    @model_validator(mode="after")
    def _one_url(self) -> "WebhookSpec":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url, url_env")
        return self

    def secret_url(self) -> str:
        return dg.EnvVar(self.url_env) if self.url_env else str(self.url)


class SlackSpec(_Model):
    url_env: str = Field(description="Environment variable with the incoming-webhook URL.")


class EmailSpec(_Model):
    host: str
    port: int = 25
    sender: str
    to: list[str] = Field(default_factory=list)
    to_owners: bool = True
    team_emails: dict[str, str] = Field(default_factory=dict)
    username_env: str | None = None
    password_env: str | None = None
    security: str = "none"


class QuietHoursSpec(_Model):
    start: dt.time
    end: dt.time
    timezone: str = "UTC"
    page_at: AlertSeverity = AlertSeverity.CRITICAL


class MaintenanceSpec(_Model):
    start: dt.datetime
    end: dt.datetime
    reason: str = ""


class RateLimitSpec(_Model):
    max_alerts: int = Field(ge=1)
    per_minutes: float = Field(default=60, gt=0)


class EscalationSpec(_Model):
    confidence: float = Field(default=0.95, gt=0, lt=1)
    on_consequential: bool = True


class RetrySpec(_Model):
    attempts: int = Field(default=3, ge=1)
    backoff_s: float = Field(default=0.5, ge=0)
    timeout_s: float = Field(default=10, gt=0)


class RouteSpec(_Model):
    name: str
    webhook: WebhookSpec | None = None
    slack: SlackSpec | None = None
    email: EmailSpec | None = None
    log: dict[str, str] | None = Field(default=None, description="The Dagster log ({}).")
    min_severity: AlertSeverity = AlertSeverity.WARN
    classifications: list[str] = Field(default_factory=list)
    asset_groups: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)
    quiet_hours: QuietHoursSpec | None = None
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)
    rate_limit: RateLimitSpec | None = None
    retry: RetrySpec = Field(default_factory=RetrySpec)

    @model_validator(mode="after")
    def _one_channel(self) -> "RouteSpec":
        given = [
            name for name in ("webhook", "slack", "email", "log") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"route {self.name!r} needs exactly one channel (webhook, slack, email, log), "
                f"got {given or 'none'}"
            )
        return self

    def channel(self) -> Channel:
        if self.webhook is not None:
            return WebhookChannel(
                url=self.webhook.secret_url(),
                headers={name: dg.EnvVar(env) for name, env in self.webhook.headers_env.items()},
            )
        if self.slack is not None:
            return SlackChannel(url=dg.EnvVar(self.slack.url_env))
        if self.email is not None:
            email = self.email
            return EmailChannel(
                host=email.host,
                port=email.port,
                sender=email.sender,
                to=email.to,
                to_owners=email.to_owners,
                team_emails=email.team_emails,
                username=dg.EnvVar(email.username_env) if email.username_env else None,
                password=dg.EnvVar(email.password_env) if email.password_env else None,
                security=email.security,
            )
        return LogChannel()

    def to_route(self) -> AlertRoute:
        return AlertRoute(
            name=self.name,
            channel=self.channel(),
            min_severity=self.min_severity,
            classifications=self.classifications,
            asset_groups=self.asset_groups,
            owners=self.owners,
            escalation=EscalationPolicy(**self.escalation.model_dump()),
            quiet_hours=QuietHours(**self.quiet_hours.model_dump()) if self.quiet_hours else None,
            maintenance=[MaintenanceWindow(**window.model_dump()) for window in self.maintenance],
            rate_limit=(
                RateLimit(
                    max_alerts=self.rate_limit.max_alerts,
                    per=dt.timedelta(minutes=self.rate_limit.per_minutes),
                )
                if self.rate_limit
                else None
            ),
            retry=RetryPolicy(**self.retry.model_dump()),
        )


class RunbooksSpec(_Model):
    base_url: str | None = None
    overrides: dict[str, str] = Field(
        default_factory=dict, description="'<asset>:<kind>' | '<asset>' | '<kind>' -> path or URL"
    )


class AlertsSpec(_Model):
    """Alert routes, the Dagster UI's base URL (for links) and runbook overrides."""

    routes: list[RouteSpec] = Field(default_factory=list)
    ui_base_url: str | None = None
    runbooks: RunbooksSpec = Field(default_factory=RunbooksSpec)

    def to_alerting(self) -> Alerting:
        try:
            return Alerting(
                routes=[route.to_route() for route in self.routes],
                ui_base_url=self.ui_base_url,
                runbooks=Runbooks(
                    overrides=self.runbooks.overrides, base_url=self.runbooks.base_url
                ),
            )
        except ConfigError as error:
            raise ConfigError(f"spec alerts: {error}") from error
