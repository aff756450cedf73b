"""Channels: how an alert leaves — a JSON webhook, a Slack incoming webhook, SMTP email, the log.

Secrets (webhook URLs, SMTP passwords) are given as ``dg.EnvVar("NAME")``: the configuration
holds the variable's *name*, and the value is read at send time, so it is never stored in the
delivery log, printed in an error, or shown in a ``repr``.

A channel renders an :class:`~dagster_corrmon.alerts.message.Alert` into a payload (what the
delivery log keeps) and sends a payload. A send that fails raises :class:`DeliveryFailed`,
``transient`` for what a retry may cure (HTTP 5xx and 429, timeouts, refused or dropped
connections, SMTP 4xx replies).
"""

import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any, Protocol

import dagster as dg

from dagster_corrmon.alerts.message import (
    Alert,
    email_text,
    recipients,
    slack_payload,
    webhook_payload,
)
from dagster_corrmon.errors import ConfigError

Secret = str | dg.EnvVar
_LOGGER = logging.getLogger("dagster_corrmon.alerts")


class DeliveryFailed(Exception):
    """A send did not go through; the message never contains a secret."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Channel(Protocol):
    @property
    def kind(self) -> str: ...

    def render(self, alert: Alert) -> dict[str, Any]: ...

    def send(self, payload: Mapping[str, Any], *, timeout_s: float, log: Any = None) -> None: ...


def reveal(secret: Secret, *, what: str) -> str:
    """The secret's value now: an ``EnvVar`` is read from the environment at this moment."""
    if isinstance(secret, dg.EnvVar):
        value = os.environ.get(secret.env_var_name, "")
        if not value:
            # Not transient in the retry sense, but the next pass re-reads the environment.
            raise DeliveryFailed(
                f"{what}: environment variable {secret.env_var_name} is not set", transient=False
            )
        return value
    return secret


def _check_secret(value: object, *, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string or dg.EnvVar('NAME')")


def _post_json(
    url: str, body: Mapping[str, Any], *, headers: Mapping[str, str], timeout_s: float, what: str
) -> None:
    data = json.dumps(body, allow_nan=False).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "dagster-corrmon", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as error:
        transient = error.code >= 500 or error.code == 429
        raise DeliveryFailed(f"{what}: HTTP {error.code}", transient=transient) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryFailed(
            f"{what}: cannot reach the endpoint ({type(reason).__name__}: {reason})",
            transient=True,
        ) from None


@dataclass(frozen=True, kw_only=True)
class WebhookChannel:
    """POST the alert as JSON (:func:`~dagster_corrmon.alerts.message.webhook_payload`)."""

    url: Secret = field(repr=False)
    headers: Mapping[str, Secret] = field(default_factory=dict[str, Secret], repr=False)
    kind: str = "webhook"

    def __post_init__(self) -> None:
        _check_secret(self.url, what=f"{type(self).__name__}.url")

    def render(self, alert: Alert) -> dict[str, Any]:
        return webhook_payload(alert)

    def send(self, payload: Mapping[str, Any], *, timeout_s: float, log: Any = None) -> None:
        headers = {
            name: reveal(value, what=f"webhook header {name}")
            for name, value in self.headers.items()
        }
        _post_json(
            reveal(self.url, what=f"{self.kind} webhook url"),
            payload,
            headers=headers,
            timeout_s=timeout_s,
            what=self.kind,
        )


@dataclass(frozen=True, kw_only=True)
class SlackChannel(WebhookChannel):
    """POST Block Kit to a Slack incoming webhook (the URL is the secret)."""

    kind: str = "slack"

    def render(self, alert: Alert) -> dict[str, Any]:
        return slack_payload(alert)


@dataclass(frozen=True, kw_only=True)
class EmailChannel:
    """Email through an SMTP server (stdlib ``smtplib``).

    Recipients: ``to`` plus, with ``to_owners``, the owners of the cause and model assets
    (email owners as they are, ``team:`` owners through ``team_emails``). ``security``:
    ``"none"``, ``"starttls"`` or ``"ssl"``.
    """

    host: str
    sender: str
    port: int = 25
    to: Sequence[str] = ()
    to_owners: bool = True
    team_emails: Mapping[str, str] = field(default_factory=dict[str, str])
    username: Secret | None = field(default=None, repr=False)
    password: Secret | None = field(default=None, repr=False)
    security: str = "none"
    kind: str = "email"

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "ssl"):
            raise ConfigError(
                f"EmailChannel.security must be none|starttls|ssl, not {self.security!r}"
            )
        if isinstance(self.password, str) and not isinstance(self.password, dg.EnvVar):
            raise ConfigError("EmailChannel.password must be dg.EnvVar('NAME'), never a literal")
        if "@" not in self.sender:
            raise ConfigError(f"EmailChannel.sender {self.sender!r} is not an email address")
        object.__setattr__(self, "to", tuple(self.to))

    def render(self, alert: Alert) -> dict[str, Any]:
        subject, body = email_text(alert)
        found = list(self.to)
        if self.to_owners:
            found += [r for r in recipients(alert.owners, self.team_emails) if r not in found]
        return {"subject": subject, "to": found, "body": body}

    def send(self, payload: Mapping[str, Any], *, timeout_s: float, log: Any = None) -> None:
        to = list(payload["to"])
        if not to:
            raise DeliveryFailed(
                "email: no recipients (no `to` and no email owners)", transient=False
            )
        message = EmailMessage(policy=email_policy.SMTP)
        message["Subject"] = payload["subject"]
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message.set_content(payload["body"])
        smtp_class = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
        try:
            with smtp_class(self.host, self.port, timeout=timeout_s) as client:
                if self.security == "starttls":
                    client.starttls()
                if self.username is not None:
                    client.login(
                        reveal(self.username, what="smtp username"),
                        reveal(self.password or "", what="smtp password"),
                    )
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryFailed(
                f"email: recipients refused: {', '.join(sorted(error.recipients))}",
                transient=False,
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryFailed(
                f"email: SMTP {error.smtp_code} from {self.host}:{self.port}",
                transient=400 <= error.smtp_code < 500,
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(
                f"email: cannot deliver through {self.host}:{self.port} ({type(error).__name__})",
                transient=True,
            ) from None


@dataclass(frozen=True, kw_only=True)
class LogChannel:
    """Write the alert to the Dagster run's log (or the ``dagster_corrmon.alerts`` logger)."""

    kind: str = "log"

    def render(self, alert: Alert) -> dict[str, Any]:
        return {"severity": alert.severity, "text": email_text(alert)[1]}

    def send(self, payload: Mapping[str, Any], *, timeout_s: float, log: Any = None) -> None:
        logger = log if log is not None else _LOGGER
        method = {"critical": logger.error, "warn": logger.warning}.get(
            str(payload["severity"]), logger.info
        )
        method(payload["text"])
