"""Incident response: alerts routed to owners, runbooks, postmortems and retrospectives.

``dispatch`` (called by the correlation job after its effects) delivers each lifecycle step of an
incident — opened, escalated, resolved — once per route, through webhook, Slack, SMTP email or the
Dagster log channels; the store's delivery log makes that hold across ticks, retries and processes.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names `__getattr__` below serves, for type checkers and IDEs
    from dagster_corrmon.alerts.channels import (
        DeliveryFailed,
        EmailChannel,
        LogChannel,
        SlackChannel,
        WebhookChannel,
    )
    from dagster_corrmon.alerts.dispatcher import (
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

# Imported on first use: the CLI's catalog commands read runbooks without importing Dagster.
_LAZY = {
    "Alerting": "dagster_corrmon.alerts.routes",
    "AlertRoute": "dagster_corrmon.alerts.routes",
    "AlertSeverity": "dagster_corrmon.alerts.routes",
    "AssetDirectory": "dagster_corrmon.alerts.owners",
    "AssetInfo": "dagster_corrmon.alerts.owners",
    "DeliveryFailed": "dagster_corrmon.alerts.channels",
    "directory_for": "dagster_corrmon.alerts.owners",
    "dispatch": "dagster_corrmon.alerts.dispatcher",
    "dispatch_for_model": "dagster_corrmon.alerts.dispatcher",
    "DispatchReport": "dagster_corrmon.alerts.dispatcher",
    "EmailChannel": "dagster_corrmon.alerts.channels",
    "EscalationPolicy": "dagster_corrmon.alerts.routes",
    "incidents_to_alert": "dagster_corrmon.alerts.dispatcher",
    "LogChannel": "dagster_corrmon.alerts.channels",
    "MaintenanceWindow": "dagster_corrmon.alerts.routes",
    "QuietHours": "dagster_corrmon.alerts.routes",
    "RateLimit": "dagster_corrmon.alerts.routes",
    "RetryPolicy": "dagster_corrmon.alerts.routes",
    "runbook_kind": "dagster_corrmon.alerts.runbooks",
    "RUNBOOK_KINDS": "dagster_corrmon.alerts.runbooks",
    "Runbooks": "dagster_corrmon.alerts.runbooks",
    "SlackChannel": "dagster_corrmon.alerts.channels",
    "Step": "dagster_corrmon.alerts.routes",
    "WebhookChannel": "dagster_corrmon.alerts.channels",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dagster_corrmon.alerts' has no attribute {name!r}")


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
