"""Incident response: alerts routed to owners, runbooks, postmortems and retrospectives.

``dispatch`` (called by the correlation job after its effects) delivers each lifecycle step of an
incident — opened, escalated, resolved — once per route, through webhook, Slack, SMTP email or the
Dagster log channels; the store's delivery log makes that hold across ticks, retries and processes.
"""

from dagster_corrmon.alerts.channels import (
    DeliveryFailed,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from dagster_corrmon.alerts.dispatch import (
    DispatchReport,
    dispatch,
    dispatch_for_model,
    incidents_to_alert,
)
from dagster_corrmon.alerts.owners import AssetDirectory, AssetInfo, directory_for
from dagster_corrmon.alerts.routes import (
    Alerting,
    AlertRoute,
    AlertSeverity,
    EscalationPolicy,
    MaintenanceWindow,
    QuietHours,
    RateLimit,
    RetryPolicy,
    Step,
)
from dagster_corrmon.alerts.runbooks import RUNBOOK_KINDS, Runbooks, runbook_kind

__all__ = [
    "RUNBOOK_KINDS",
    "AlertRoute",
    "AlertSeverity",
    "Alerting",
    "AssetDirectory",
    "AssetInfo",
    "DeliveryFailed",
    "DispatchReport",
    "EmailChannel",
    "EscalationPolicy",
    "LogChannel",
    "MaintenanceWindow",
    "QuietHours",
    "RateLimit",
    "RetryPolicy",
    "Runbooks",
    "SlackChannel",
    "Step",
    "WebhookChannel",
    "directory_for",
    "dispatch",
    "dispatch_for_model",
    "incidents_to_alert",
    "runbook_kind",
]
