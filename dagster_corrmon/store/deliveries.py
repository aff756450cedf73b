"""The alert delivery log: which lifecycle step of which incident reached which route, and when.

One row per (incident, step, route). A sender **claims** the row before it sends — a conditional
``UPDATE`` that only one process can win while the lease (``claimed_until``) runs — and marks it
``sent`` afterwards, so sensor re-ticks, job retries and concurrent processes deliver each step
once. A failed send keeps the row (``failed``, with ``next_attempt_at``) for the next pass to retry.

Mixed into :class:`~dagster_corrmon.store.CorrmonStore`; speaks plain strings and datetimes (the
alerting layer above owns the meaning of steps and statuses).
"""

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dagster_corrmon.core.incident import IncidentStatus
from dagster_corrmon.core.signal import ensure_utc
from dagster_corrmon.store import schema

# Row statuses: stable strings stored in databases.
PENDING = "pending"
SENT = "sent"
FAILED = "failed"
DEFERRED = "deferred"  # held back by a maintenance window, quiet hours or the rate limit
SUPERSEDED = "superseded"  # a later step of the incident made this one moot before it was sent
DELIVERY_STATUSES = (PENDING, SENT, FAILED, DEFERRED, SUPERSEDED)
_CLOSED_INCIDENT = (IncidentStatus.RESOLVED.value, IncidentStatus.FALSE_POSITIVE.value)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One stored row of the delivery log."""

    incident_id: str
    step: str
    route: str
    channel: str
    severity: str
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str
    payload: Mapping[str, Any]


class DeliveryLogMixin:
    """The delivery-log half of :class:`~dagster_corrmon.store.CorrmonStore`."""

    # Provided by CorrmonStore.
    _engine: sa.Engine
    _write_engine: sa.Engine

    def _errors(self, action: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _insert(self, table: sa.Table) -> Any:
        raise NotImplementedError

    def _ensure_delivery_row(
        self,
        connection: sa.Connection,
        *,
        incident_id: str,
        step: str,
        route: str,
        channel: str,
        severity: str,
        now: datetime,
    ) -> None:
        """Create the step's row (``pending``) unless it exists; racing creators both succeed."""
        table = schema.alert_deliveries
        connection.execute(
            self._insert(table)
            .values(
                incident_id=incident_id,
                step=step,
                route=route,
                channel=channel,
                severity=severity,
                status=PENDING,
                attempts=0,
                created_at=now,
                last_error="",
                payload_json={},
            )
            .on_conflict_do_nothing(
                index_elements=[table.c.incident_id, table.c.step, table.c.route]
            )
        )

    def deliveries(
        self, *, incident_ids: Collection[str] | None = None, route: str | None = None
    ) -> list[Delivery]:
        """Delivery rows, oldest first; ``incident_ids`` / ``route`` narrow the read."""
        table = schema.alert_deliveries
        conditions: list[sa.ColumnElement[bool]] = []
        if incident_ids is not None:
            if not incident_ids:
                return []
            conditions.append(table.c.incident_id.in_(sorted(set(incident_ids))))
        if route is not None:
            conditions.append(table.c.route == route)
        query = (
            sa.select(table)
            .where(*conditions)
            .order_by(table.c.created_at, table.c.incident_id, table.c.step, table.c.route)
        )
        with self._errors("read alert deliveries"), self._engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def claim_delivery(
        self,
        *,
        incident_id: str,
        step: str,
        route: str,
        channel: str,
        severity: str,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Take the right to send this step to this route now; False when it is sent or claimed.

        The row is created on first sight. Claiming counts an attempt; a claim whose lease ran out
        (its process died mid-send) can be taken again.
        """
        table = schema.alert_deliveries
        now = ensure_utc(now)
        key = _key(table, incident_id, step, route)
        with self._errors("claim an alert delivery"), self._write_engine.begin() as connection:
            self._ensure_delivery_row(
                connection,
                incident_id=incident_id,
                step=step,
                route=route,
                channel=channel,
                severity=severity,
                now=now,
            )
            claimed = connection.execute(
                sa.update(table)
                .where(
                    key,
                    table.c.status.notin_([SENT, SUPERSEDED]),
                    sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                )
                .values(
                    claimed_until=ensure_utc(lease_until),
                    attempts=table.c.attempts + 1,
                    last_attempt_at=now,
                    channel=channel,
                    severity=severity,
                )
            ).rowcount
        return claimed == 1

    def finish_delivery(
        self,
        *,
        incident_id: str,
        step: str,
        route: str,
        now: datetime,
        payload: Mapping[str, Any],
        error: str = "",
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record a claimed send's outcome: ``sent`` when ``error`` is empty, else ``failed``."""
        table = schema.alert_deliveries
        values: dict[str, Any] = {"claimed_until": None, "payload_json": dict(payload)}
        if error:
            values |= {
                "status": FAILED,
                "last_error": error,
                "next_attempt_at": None if next_attempt_at is None else ensure_utc(next_attempt_at),
            }
        else:
            values |= {
                "status": SENT,
                "sent_at": ensure_utc(now),
                "last_error": "",
                "next_attempt_at": None,
            }
        with self._errors("record an alert delivery"), self._write_engine.begin() as connection:
            connection.execute(
                sa.update(table).where(_key(table, incident_id, step, route)).values(**values)
            )

    def hold_delivery(
        self,
        *,
        incident_id: str,
        step: str,
        route: str,
        channel: str,
        severity: str,
        status: str,
        reason: str,
        now: datetime,
        until: datetime | None = None,
    ) -> None:
        """Record a step that is not sent now (``deferred`` until ``until``, or ``superseded``).

        A step already sent stays sent.
        """
        if status not in (DEFERRED, SUPERSEDED):
            raise ValueError(f"hold_delivery: status must be deferred or superseded, not {status}")
        table = schema.alert_deliveries
        now = ensure_utc(now)
        with self._errors("record an alert delivery"), self._write_engine.begin() as connection:
            self._ensure_delivery_row(
                connection,
                incident_id=incident_id,
                step=step,
                route=route,
                channel=channel,
                severity=severity,
                now=now,
            )
            connection.execute(
                sa.update(table)
                .where(
                    _key(table, incident_id, step, route),
                    table.c.status.notin_([SENT, SUPERSEDED]),
                )
                .values(
                    status=status,
                    last_error=reason,
                    next_attempt_at=None if until is None else ensure_utc(until),
                )
            )

    def count_sent(self, *, route: str, since: datetime) -> int:
        """How many alerts the route delivered at or after ``since`` (its rate limit)."""
        table = schema.alert_deliveries
        query = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.route == route, table.c.sent_at >= ensure_utc(since))
        )
        with self._errors("count alert deliveries"), self._engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def incidents_awaiting_resolution_alerts(self, model_asset: str) -> list[str]:
        """Closed incidents of the model that a route was alerted about but not told are over."""
        table, incidents = schema.alert_deliveries, schema.incidents
        resolved = sa.alias(table)
        told_over = (
            sa.select(resolved.c.incident_id)
            .where(
                resolved.c.incident_id == table.c.incident_id,
                resolved.c.route == table.c.route,
                resolved.c.step == "resolved",
                resolved.c.status.in_([SENT, SUPERSEDED]),
            )
            .exists()
        )
        query = (
            sa.select(table.c.incident_id)
            .distinct()
            .join(incidents, incidents.c.id == table.c.incident_id)
            .where(
                incidents.c.model_asset == model_asset,
                incidents.c.status.in_(_CLOSED_INCIDENT),
                table.c.step != "resolved",
                table.c.status == SENT,
                ~told_over,
            )
        )
        with self._errors("read alert deliveries"), self._engine.connect() as connection:
            return sorted(str(value) for value in connection.scalars(query))


def _key(table: sa.Table, incident_id: str, step: str, route: str) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.incident_id == incident_id, table.c.step == step, table.c.route == route)


def _delivery(row: sa.Row[Any]) -> Delivery:
    return Delivery(
        incident_id=row.incident_id,
        step=row.step,
        route=row.route,
        channel=row.channel,
        severity=row.severity,
        status=row.status,
        attempts=int(row.attempts),
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        payload=row.payload_json,
    )
