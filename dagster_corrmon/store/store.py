"""The corrmon store: signals and the incident catalog, in SQLite or PostgreSQL.

:class:`CorrmonStore` speaks core types (:class:`~dagster_corrmon.core.signal.Signal`,
:class:`~dagster_corrmon.core.incident.Incident`) and hides the SQL. Its promises:

* **Idempotent writes.** A signal is stored once per ``Signal.idempotency_key`` (batched
  ``INSERT … ON CONFLICT DO NOTHING``); an incident is stored once per id and re-writing it replaces
  its causes, cited signals and affected runs. Sensor re-ticks and job retries therefore never
  duplicate anything.
* **Transactions.** Each write call is one transaction: a batch that fails stores nothing and loses
  nothing already stored.
* **Aware UTC datetimes** in and out, on both dialects.
* **Costs that grow with new events, not with history:** every hot read is served by an index
  (see :mod:`dagster_corrmon.store.schema`).
* **Errors** are :class:`~dagster_corrmon.errors.StoreError` naming the database URL with its
  password hidden; a database written by another schema version is a
  :class:`~dagster_corrmon.errors.SchemaVersionError` that says what to do.

JSON columns (signal metadata, incident metadata, cause evidence) hold *strict* JSON: NaN and
infinities are rejected (PostgreSQL's JSONB and every browser reject them too), numpy scalars are
converted to plain Python, anything else that ``json`` cannot encode is a ``StoreError`` naming the
signal or incident. A signal ``value`` of NaN means "no value" and is stored as NULL on both
dialects (SQLite would do that silently anyway).
"""

import json
import math
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from dagster_corrmon.core.incident import (
    AffectedRun,
    Cause,
    Incident,
    IncidentClass,
    IncidentStatus,
)
from dagster_corrmon.core.signal import Severity, Signal, SignalKind, ensure_utc
from dagster_corrmon.errors import ConfigError, SchemaVersionError, StoreError
from dagster_corrmon.store import schema
from dagster_corrmon.store.deliveries import DeliveryLogMixin
from dagster_corrmon.store.redact import hide_password, redact_secrets

DATABASE_URL_ENV = "CORRMON_DATABASE_URL"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
DEFAULT_SQLITE_FILENAME = "corrmon.db"

# Statuses a person still has to act on.
ACTIVE_STATUSES: tuple[IncidentStatus, ...] = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)

# The lifecycle: open → acknowledged → resolved | false_positive; open may close directly.
# Closed incidents stay closed: a recurrence is a new incident with its own evidence.
ALLOWED_TRANSITIONS: Mapping[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset(
        {IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED, IncidentStatus.FALSE_POSITIVE}
    ),
    IncidentStatus.ACKNOWLEDGED: frozenset(
        {IncidentStatus.RESOLVED, IncidentStatus.FALSE_POSITIVE}
    ),
    IncidentStatus.RESOLVED: frozenset(),
    IncidentStatus.FALSE_POSITIVE: frozenset(),
}

# Execution option that makes a SQLite transaction BEGIN IMMEDIATE: a writer takes the write
# lock up front instead of upgrading a read lock mid-transaction, which SQLite answers with an
# immediate "database is locked" rather than waiting.
_WRITE_OPTION = "corrmon_write"
# Key of the PostgreSQL advisory lock that serialises concurrent schema upgrades.
_UPGRADE_LOCK_KEY = 0x636F72726D6F6E  # "corrmon"
# Rows per IN (...) list: far below SQLite's bound-parameter limit.
_IN_CHUNK = 500
_SQLITE_BUSY_TIMEOUT_S = 30.0
_POSTGRES_CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalPoint:
    """A stored signal's value and when it was observed, without its metadata
    (:meth:`CorrmonStore.read_signal_points`)."""

    column: str | None
    partition: str | None
    event_time: datetime
    observed_at: datetime | None
    value: float | None
    passed: bool | None


@dataclass(frozen=True, kw_only=True)
class PruneResult:
    """What :meth:`CorrmonStore.prune` did."""

    cutoff: datetime  # signals with event_time before this were candidates
    signals_deleted: int
    cited_signals_kept: int  # older than the cutoff, kept because an incident cites them


@dataclass(frozen=True, kw_only=True)
class UpgradeResult:
    """What :meth:`CorrmonStore.upgrade` did; ``from_version`` is None for a new database."""

    from_version: int | None
    to_version: int

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


@dataclass(frozen=True, kw_only=True)
class StatusChange:
    """One step of an incident's lifecycle: who moved it, when, and why."""

    incident_id: str
    from_status: IncidentStatus | None  # None: the incident was created with ``to_status``
    to_status: IncidentStatus
    changed_at: datetime
    actor: str
    note: str


@dataclass(frozen=True, kw_only=True)
class StoreInfo:
    """A summary for ``corrmon db info``; counts are None when the schema version differs."""

    database_url: str  # password hidden
    schema_version: int | None  # what the database holds; None for an empty database
    expected_schema_version: int
    signal_count: int | None
    incident_counts: Mapping[str, int] | None  # status -> count


def default_database_url() -> str:
    """The store URL to use when none is given.

    ``$CORRMON_DATABASE_URL`` if set, else SQLite at ``$DAGSTER_HOME/corrmon.db`` beside Dagster's
    own storage, so a local project needs no configuration at all.
    """
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    home = os.environ.get(DAGSTER_HOME_ENV, "").strip()
    if home:
        return f"sqlite:///{Path(home).expanduser().resolve() / DEFAULT_SQLITE_FILENAME}"
    raise ConfigError(
        f"no corrmon database configured: set {DATABASE_URL_ENV} to a SQLAlchemy URL "
        f"(e.g. postgresql+psycopg2://user@host/db), or set {DAGSTER_HOME_ENV} to use "
        f"SQLite at ${DAGSTER_HOME_ENV}/{DEFAULT_SQLITE_FILENAME}, or pass --database-url"
    )


def normalize_database_url(url: str) -> str:
    """Name the PostgreSQL driver explicitly.

    SQLAlchemy 2.1 maps a plain ``postgresql://`` URL to psycopg 3, which is not installed
    (Dagster's dagster-postgres brings psycopg2), so such URLs are rewritten to ``postgresql+psycopg2://``.
    ``postgres://`` (Heroku's spelling, which SQLAlchemy rejects) is rewritten the same way.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class CorrmonStore(DeliveryLogMixin):
    """Signals and the incident catalog in one SQL database (SQLite or PostgreSQL).

    ``CorrmonStore()`` opens :func:`default_database_url`. A brand-new database gets its tables on
    first open; a database at another schema version raises :class:`SchemaVersionError` (pass
    ``check_schema=False`` only to inspect or :meth:`upgrade` it, as ``corrmon db`` does).
    ``must_exist=True`` refuses a SQLite file that does not exist instead of creating it (the
    CLI's readers: a mistyped path is an error, not an empty store).
    Thread-safe like a SQLAlchemy engine; close it (or use it as a context manager) when done.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        check_schema: bool = True,
        must_exist: bool = False,
    ) -> None:
        raw_url = default_database_url() if database_url is None else database_url
        self.database_url = normalize_database_url(raw_url.strip())
        self.safe_database_url = hide_password(self.database_url)
        self._must_exist = must_exist
        self._engine = self._create_engine()
        self._write_engine = self._engine.execution_options(**{_WRITE_OPTION: True})
        if check_schema:
            self._ensure_schema()

    def __repr__(self) -> str:
        return f"CorrmonStore({self.safe_database_url!r})"

    def __enter__(self) -> "CorrmonStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int | None:
        """The schema version the database holds; None when it has no corrmon tables yet."""
        with self._errors("read the schema version"), self._engine.connect() as connection:
            return _read_schema_version(connection)

    def upgrade(self) -> UpgradeResult:
        """Create the tables, or migrate them to :data:`~schema.SCHEMA_VERSION`, in one transaction.

        Safe to run concurrently (PostgreSQL takes an advisory lock, SQLite a write lock) and
        repeatedly (a database already at the current version is left alone).
        """
        with self._errors("upgrade the schema"), self._write_engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(sa.literal(_UPGRADE_LOCK_KEY)))
                )
            found = _read_schema_version(connection)
            if found is not None and found > schema.SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the corrmon store at {self.safe_database_url} has schema version {found}, "
                    f"newer than version {schema.SCHEMA_VERSION} that this dagster-corrmon "
                    "knows: upgrade dagster-corrmon instead (a schema is never downgraded)"
                )
            for version in range((found or 0) + 1, schema.SCHEMA_VERSION + 1):
                schema.MIGRATIONS[version](connection)
            if found != schema.SCHEMA_VERSION:
                _write_schema_version(connection, schema.SCHEMA_VERSION)
        return UpgradeResult(from_version=found, to_version=schema.SCHEMA_VERSION)

    def info(self) -> StoreInfo:
        """URL, schema versions and row counts (counts are full counts: an admin command)."""
        found = self.schema_version()
        signal_count: int | None = None
        incident_counts: dict[str, int] | None = None
        if found == schema.SCHEMA_VERSION:
            with self._errors("count rows"), self._engine.connect() as connection:
                signal_count = int(
                    connection.scalar(sa.select(sa.func.count()).select_from(schema.signals)) or 0
                )
                rows = connection.execute(
                    sa.select(schema.incidents.c.status, sa.func.count()).group_by(
                        schema.incidents.c.status
                    )
                ).all()
                incident_counts = {str(status): int(count) for status, count in rows}
        return StoreInfo(
            database_url=self.safe_database_url,
            schema_version=found,
            expected_schema_version=schema.SCHEMA_VERSION,
            signal_count=signal_count,
            incident_counts=incident_counts,
        )

    # ----------------------------------------------------------------- signals

    def write_signals(self, signals: Iterable[Signal]) -> int:
        """Store signals once each; return how many were new.

        A signal whose idempotency key is already stored (or repeats earlier in the batch) is
        skipped. ``observed_at`` defaults to now. The batch is one transaction.
        """
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        for signal in signals:
            key = signal.idempotency_key
            if key not in rows:
                rows[key] = _signal_row(signal, key=key, now=now)
        if not rows:
            return 0
        statement = (
            self._insert(schema.signals)
            .on_conflict_do_nothing(index_elements=[schema.signals.c.idempotency_key])
            .returning(schema.signals.c.id)
        )
        with self._errors("write signals"), self._write_engine.begin() as connection:
            # executemany with RETURNING: SQLAlchemy batches the rows into multi-row INSERTs and
            # returns one id per row actually inserted, on both dialects.
            inserted = connection.execute(statement, list(rows.values())).all()
        return len(inserted)

    def read_signals(
        self,
        *,
        asset_key: str | None = None,
        name: str | None = None,
        kind: SignalKind | str | None = None,
        column: str | None = None,
        partition: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        asset_keys: Collection[str] | None = None,
        kinds: Collection[SignalKind | str] | None = None,
        limit: int | None = None,
        with_metadata: bool = True,
        exclude_passed: bool = False,
    ) -> list[Signal]:
        """Signals matching every given filter, ordered by ``event_time`` (then write order).

        The window is half-open: ``start <= event_time < end``. Index-backed: (asset_key, name,
        event_time), (kind, event_time) and (event_time); filter by at least one of those for reads
        whose cost does not grow with history. ``kinds``: any of these kinds.

        ``with_metadata=False`` leaves each signal's metadata empty instead of decoding its JSON —
        for bulk reads that use values, times and versions only (decoding is most of their cost).
        ``exclude_passed=True`` leaves out signals that passed (keeps failed and unjudged ones).
        """
        table = schema.signals
        conditions = self._signal_filters(
            asset_key=asset_key,
            name=name,
            kind=kind,
            column=column,
            partition=partition,
            start=start,
            end=end,
            asset_keys=asset_keys,
            kinds=kinds,
        )
        if conditions is None:
            return []
        if exclude_passed:
            conditions.append(sa.or_(table.c.passed.is_(None), table.c.passed.is_(sa.false())))
        columns = [c for c in table.c if with_metadata or c.name != "metadata_json"]
        query = sa.select(*columns).where(*conditions).order_by(table.c.event_time, table.c.id)
        if limit is not None:
            if limit < 0:
                raise ConfigError(f"read_signals: limit must be >= 0, got {limit}")
            query = query.limit(limit)
        with self._errors("read signals"), self._engine.connect() as connection:
            rows = connection.execute(query)
            return [_signal_from_row(row, with_metadata=with_metadata) for row in rows]

    def read_signal_points(
        self,
        *,
        asset_key: str,
        name: str,
        kind: SignalKind | str,
        column: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SignalPoint]:
        """:meth:`read_signals` without the metadata: the points a baseline is fitted on.

        Same filters and order. Decoding each signal's metadata JSON was most of the cost of a
        baseline check's history read (a column's 90 days, for every column, every partition).
        """
        table = schema.signals
        conditions = self._signal_filters(
            asset_key=asset_key, name=name, kind=kind, column=column, start=start, end=end
        )
        assert conditions is not None  # no asset_keys filter: never empty
        query = (
            sa.select(
                table.c.column_name,
                table.c.partition_key,
                table.c.event_time,
                table.c.observed_at,
                table.c.value,
                table.c.passed,
            )
            .where(*conditions)
            .order_by(table.c.event_time, table.c.id)
        )
        with self._errors("read signals"), self._engine.connect() as connection:
            return [
                SignalPoint(
                    column=row.column_name,
                    partition=row.partition_key,
                    event_time=ensure_utc(row.event_time),
                    observed_at=_optional_utc(row.observed_at),
                    value=None if row.value is None else float(row.value),
                    passed=None if row.passed is None else bool(row.passed),
                )
                for row in connection.execute(query)
            ]

    @staticmethod
    def _signal_filters(
        *,
        asset_key: str | None = None,
        name: str | None = None,
        kind: SignalKind | str | None = None,
        column: str | None = None,
        partition: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        asset_keys: Collection[str] | None = None,
        kinds: Collection[SignalKind | str] | None = None,
    ) -> list[sa.ColumnElement[bool]] | None:
        """The WHERE clauses of a signal read; None when ``asset_keys`` or ``kinds`` is empty."""
        table = schema.signals
        conditions: list[sa.ColumnElement[bool]] = []
        if asset_key is not None:
            conditions.append(table.c.asset_key == asset_key)
        if asset_keys is not None:
            keys = sorted(set(asset_keys))
            if not keys:
                return None
            conditions.append(table.c.asset_key.in_(keys))
        if name is not None:
            conditions.append(table.c.name == name)
        if kind is not None:
            conditions.append(table.c.kind == _parse_enum(SignalKind, kind, "signal kind").value)
        if kinds is not None:
            values = sorted({_parse_enum(SignalKind, k, "signal kind").value for k in kinds})
            if not values:
                return None
            conditions.append(table.c.kind.in_(values))
        if column is not None:
            conditions.append(table.c.column_name == column)
        if partition is not None:
            conditions.append(table.c.partition_key == partition)
        if start is not None:
            conditions.append(table.c.event_time >= ensure_utc(start))
        if end is not None:
            conditions.append(table.c.event_time < ensure_utc(end))
        return conditions

    def get_signals_by_keys(self, keys: Iterable[str]) -> list[Signal]:
        """Stored signals with these idempotency keys (unknown keys are absent), by event_time."""
        table = schema.signals
        found: list[sa.Row[Any]] = []
        with self._errors("read signals"), self._engine.connect() as connection:
            for chunk in _chunks(sorted(set(keys))):
                found.extend(
                    connection.execute(sa.select(table).where(table.c.idempotency_key.in_(chunk)))
                )
        found.sort(key=lambda row: (row.event_time, row.id))
        return [_signal_from_row(row) for row in found]

    def prune(self, *, older_than: timedelta, now: datetime) -> PruneResult:
        """Delete signals whose event_time is before ``now - older_than``.

        Never deletes a signal any incident cites (directly or through a cause), and never deletes
        incidents: the catalog keeps its evidence for as long as it keeps the incident.
        """
        if older_than <= timedelta(0):
            raise ConfigError(f"prune: older_than must be positive, got {older_than}")
        cutoff = ensure_utc(now) - older_than
        signals, links = schema.signals, schema.incident_signals
        is_old = signals.c.event_time < cutoff
        is_cited = sa.exists().where(links.c.signal_key == signals.c.idempotency_key)
        with self._errors("prune signals"), self._write_engine.begin() as connection:
            kept = connection.scalar(
                sa.select(sa.func.count()).select_from(signals).where(is_old, is_cited)
            )
            deleted = connection.execute(sa.delete(signals).where(is_old, ~is_cited)).rowcount
        return PruneResult(
            cutoff=cutoff, signals_deleted=int(deleted), cited_signals_kept=int(kept or 0)
        )

    def delete_attempt_signals(self, *, run_ids: Iterable[str], observed_since: datetime) -> int:
        """Delete the signals an abandoned attempt wrote — those of its runs, and any observed
        since it began — and incidents' links to them; returns how many.

        For ``corrmon simulate --resume``, which re-does the attempt: its evidence must not
        stand beside the new attempt's.
        """
        ids = sorted(set(run_ids))
        signals, links = schema.signals, schema.incident_signals
        since = signals.c.observed_at >= ensure_utc(observed_since)
        conditions = [since, *(signals.c.run_id.in_(chunk) for chunk in _chunks(ids))]
        deleted = 0
        with self._errors("delete signals of an attempt"), self._write_engine.begin() as conn:
            for condition in conditions:
                keys = sa.select(signals.c.idempotency_key).where(condition)
                conn.execute(sa.delete(links).where(links.c.signal_key.in_(keys)))
                deleted += conn.execute(sa.delete(signals).where(condition)).rowcount
        return int(deleted)

    # --------------------------------------------------------------- incidents

    def upsert_incident(self, incident: Incident) -> None:
        """Store an incident, or replace a stored one with the same id.

        Re-writing replaces causes, cited signals and affected runs, but keeps ``created_at`` and
        the stored ``status``: the lifecycle belongs to people and moves only through
        :meth:`set_incident_status`, so a re-run of the correlation job never re-opens an
        incident someone acknowledged. A new incident's creation is its first history entry.
        """
        if not incident.id:
            raise ConfigError("upsert_incident: the incident id is empty")
        now = datetime.now(UTC)
        _without_nul({"id": incident.id}, where="an incident")
        values = _incident_values(incident)
        cause_rows = [
            _cause_row(incident.id, position, cause)
            for position, cause in enumerate(incident.causes)
        ]
        run_rows = [
            _run_row(incident.id, position, run)
            for position, run in enumerate(incident.affected_runs)
        ]
        link_rows = _signal_link_rows(incident)
        table = schema.incidents
        with self._errors(f"write incident {incident.id!r}"), self._write_engine.begin() as conn:
            # Insert-or-nothing first, so two writers racing on a new id never collide: the
            # loser waits for the winner's row, then updates it like any re-write.
            created_at = ensure_utc(incident.created_at) if incident.created_at else now
            updated_at = ensure_utc(incident.updated_at) if incident.updated_at else created_at
            created = conn.execute(
                self._insert(table)
                .values(
                    id=incident.id,
                    status=incident.status.value,
                    created_at=created_at,
                    updated_at=updated_at,
                    **values,
                )
                .on_conflict_do_nothing(index_elements=[table.c.id])
                .returning(table.c.id)
            ).first()
            if created is not None:
                conn.execute(
                    sa.insert(schema.incident_status_history).values(
                        incident_id=incident.id,
                        from_status=None,
                        to_status=incident.status.value,
                        changed_at=created_at,
                        actor="corrmon",
                        note="created",
                    )
                )
            else:
                conn.execute(
                    sa.update(table)
                    .where(table.c.id == incident.id)
                    .values(updated_at=now, **values)
                )
                for child in (
                    schema.incident_causes,
                    schema.incident_runs,
                    schema.incident_signals,
                ):
                    conn.execute(sa.delete(child).where(child.c.incident_id == incident.id))
            for child, rows in (
                (schema.incident_causes, cause_rows),
                (schema.incident_runs, run_rows),
                (schema.incident_signals, link_rows),
            ):
                if rows:
                    conn.execute(sa.insert(child), rows)

    def get_incident(self, incident_id: str) -> Incident | None:
        """The incident with this id, or None."""
        table = schema.incidents
        with self._errors(f"read incident {incident_id!r}"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(table.c.id == incident_id)).all()
            incidents = _load_incidents(conn, rows)
        return incidents[0] if incidents else None

    def list_incidents(
        self,
        *,
        model_asset: str | None = None,
        status: IncidentStatus | str | None = None,
        since: datetime | None = None,
    ) -> list[Incident]:
        """Incidents matching every given filter, oldest first (by ``created_at``, then id)."""
        table = schema.incidents
        conditions: list[sa.ColumnElement[bool]] = []
        if model_asset is not None:
            conditions.append(table.c.model_asset == model_asset)
        if status is not None:
            conditions.append(
                table.c.status == _parse_enum(IncidentStatus, status, "incident status").value
            )
        if since is not None:
            conditions.append(table.c.created_at >= ensure_utc(since))
        query = sa.select(table).where(*conditions).order_by(table.c.created_at, table.c.id)
        with self._errors("list incidents"), self._engine.connect() as conn:
            return _load_incidents(conn, conn.execute(query).all())

    def open_incidents_for_assets(self, asset_keys: Iterable[str]) -> list[Incident]:
        """Open or acknowledged incidents on these model assets or blaming one of them in a cause.

        This is the retrain guard's question: "does any ancestor have an unresolved incident?"
        """
        keys = sorted(set(asset_keys))
        if not keys:
            return []
        table, causes = schema.incidents, schema.incident_causes
        found: dict[str, sa.Row[Any]] = {}
        with self._errors("list open incidents"), self._engine.connect() as conn:
            for chunk in _chunks(keys):
                blamed = sa.select(causes.c.incident_id).where(causes.c.asset_key.in_(chunk))
                query = sa.select(table).where(
                    table.c.status.in_([status.value for status in ACTIVE_STATUSES]),
                    sa.or_(table.c.model_asset.in_(chunk), table.c.id.in_(blamed)),
                )
                for row in conn.execute(query):
                    found[row.id] = row
            rows = sorted(found.values(), key=lambda row: (row.created_at, row.id))
            return _load_incidents(conn, rows)

    def set_incident_status(
        self,
        incident_id: str,
        status: IncidentStatus | str,
        *,
        note: str = "",
        actor: str = "",
        at: datetime | None = None,
    ) -> Incident:
        """Move an incident along its lifecycle and record who, when and why; return it.

        Allowed: open → acknowledged | resolved | false_positive, and acknowledged → resolved |
        false_positive. Anything else, or an unknown id, is a :class:`ConfigError`.
        """
        target = _parse_enum(IncidentStatus, status, "incident status")
        changed_at = ensure_utc(at) if at is not None else datetime.now(UTC)
        table = schema.incidents
        with self._errors(f"update incident {incident_id!r}"), self._write_engine.begin() as conn:
            current_value = conn.scalar(
                sa.select(table.c.status).where(table.c.id == incident_id).with_for_update()
            )
            if current_value is None:
                raise ConfigError(f"no incident {incident_id!r} in {self.safe_database_url}")
            current = IncidentStatus(current_value)
            if target not in ALLOWED_TRANSITIONS[current]:
                allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current])
                raise ConfigError(
                    f"incident {incident_id!r} cannot go from {current.value!r} to "
                    f"{target.value!r} (from {current.value!r} allowed: "
                    f"{', '.join(allowed) or 'nothing, it is closed'})"
                )
            conn.execute(
                sa.update(table)
                .where(table.c.id == incident_id)
                .values(status=target.value, updated_at=changed_at)
            )
            conn.execute(
                sa.insert(schema.incident_status_history).values(
                    incident_id=incident_id,
                    from_status=current.value,
                    to_status=target.value,
                    changed_at=changed_at,
                    actor=actor,
                    note=note,
                )
            )
            rows = conn.execute(sa.select(table).where(table.c.id == incident_id)).all()
            return _load_incidents(conn, rows)[0]

    def incident_history(self, incident_id: str) -> list[StatusChange]:
        """The incident's status changes, oldest first (empty for an unknown id)."""
        history = schema.incident_status_history
        query = (
            sa.select(history)
            .where(history.c.incident_id == incident_id)
            .order_by(history.c.changed_at, history.c.id)
        )
        with self._errors(f"read history of incident {incident_id!r}"), self._engine.connect() as c:
            return [
                StatusChange(
                    incident_id=row.incident_id,
                    from_status=IncidentStatus(row.from_status) if row.from_status else None,
                    to_status=IncidentStatus(row.to_status),
                    changed_at=row.changed_at,
                    actor=row.actor,
                    note=row.note,
                )
                for row in c.execute(query)
            ]

    def incident_windows(
        self,
        model_asset: str,
        *,
        statuses: Collection[IncidentStatus | str] = (
            IncidentStatus.RESOLVED,
            IncidentStatus.FALSE_POSITIVE,
        ),
    ) -> list[tuple[datetime, datetime]]:
        """(start, end) of the model's incidents in these statuses, by start: windows to exclude
        from baselines.

        start is ``window_start``, else ``onset_time``; end is ``window_end``, else the moment the
        incident reached its current status (a resolved incident lasted until it was resolved).
        Incidents with neither start are skipped: there is no window to exclude.
        """
        wanted = sorted({_parse_enum(IncidentStatus, s, "incident status").value for s in statuses})
        if not wanted:
            return []
        table, history = schema.incidents, schema.incident_status_history
        reached = (
            sa.select(sa.func.max(history.c.changed_at))
            .where(history.c.incident_id == table.c.id, history.c.to_status == table.c.status)
            .scalar_subquery()
        )
        query = sa.select(
            sa.func.coalesce(table.c.window_start, table.c.onset_time).label("start"),
            table.c.window_end,
            reached.label("reached"),
        ).where(table.c.model_asset == model_asset, table.c.status.in_(wanted))
        windows: list[tuple[datetime, datetime]] = []
        with self._errors("read incident windows"), self._engine.connect() as conn:
            for row in conn.execute(query):
                if row.start is None:
                    continue
                start = row.start
                end = row.window_end if row.window_end is not None else row.reached
                if end is None:
                    continue
                windows.append((start, end))
        return sorted(windows)

    # ----------------------------------------------------------- effect ledger

    def applied_effects(self, subject: str) -> dict[str, str]:
        """``{effect: fingerprint}`` last recorded for ``subject`` (an incident id, a model)."""
        table = schema.effects
        with self._errors(f"read the effects of {subject!r}"), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.effect, table.c.fingerprint).where(table.c.subject == subject)
            ).all()
        return {str(effect): str(fingerprint) for effect, fingerprint in rows}

    def record_effect(self, subject: str, effect: str, fingerprint: str) -> None:
        """Record that ``effect`` of ``subject`` now stands at ``fingerprint`` (replacing any)."""
        table = schema.effects
        row = _without_nul(
            {"subject": subject, "effect": effect, "fingerprint": fingerprint},
            where="an effect record",
        )
        statement = self._insert(table).values(applied_at=datetime.now(UTC), **row)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.subject, table.c.effect],
            set_={"fingerprint": fingerprint, "applied_at": statement.excluded.applied_at},
        )
        action = f"record effect {effect!r} of {subject!r}"
        with self._errors(action), self._write_engine.begin() as conn:
            conn.execute(statement)

    # ---------------------------------------------------------------- plumbing

    def _create_engine(self) -> sa.Engine:
        try:
            url = sa.make_url(self.database_url)
        except sa_exc.ArgumentError:
            raise StoreError(
                f"{self.safe_database_url!r} is not a valid SQLAlchemy database URL "
                "(expected e.g. sqlite:////abs/path/corrmon.db or "
                "postgresql+psycopg2://user@host:5432/db)"
            ) from None
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        in_memory = False
        if backend == "sqlite":
            database = url.database or ""
            in_memory = database in ("", ":memory:") or "mode=memory" in str(url)
            if not in_memory:
                parent = Path(database).expanduser().resolve().parent
                if not parent.is_dir():
                    raise StoreError(
                        f"cannot open the corrmon store at {self.safe_database_url}: "
                        f"directory {parent} does not exist"
                    )
                if self._must_exist and not Path(database).expanduser().is_file():
                    # A reader given a mistyped path must not create an empty store there and
                    # answer "no incidents".
                    raise StoreError(
                        f"no corrmon store at {self.safe_database_url}: the file does not exist "
                        "(check the path; `corrmon db upgrade` creates a new store)"
                    )
            connect_args["timeout"] = _SQLITE_BUSY_TIMEOUT_S
        elif backend == "postgresql":
            if "connect_timeout" not in url.query:
                connect_args["connect_timeout"] = _POSTGRES_CONNECT_TIMEOUT_S
        else:
            raise StoreError(
                f"unsupported database for the corrmon store: {self.safe_database_url} "
                "(use sqlite:// or postgresql+psycopg2://)"
            )
        try:
            engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
            detail = redact_secrets(str(error), self.database_url)
            raise StoreError(
                f"cannot open the corrmon store at {self.safe_database_url}: {detail}"
            ) from None
        if backend == "sqlite":
            _take_over_sqlite_transactions(engine, wal=not in_memory)
        return engine

    def _ensure_schema(self) -> None:
        found = self.schema_version()
        if found is None:
            self.upgrade()
        elif found != schema.SCHEMA_VERSION:
            if found < schema.SCHEMA_VERSION:
                action = "run `corrmon db upgrade` (with --database-url for this database)"
            else:
                action = "it was written by a newer dagster-corrmon: upgrade dagster-corrmon"
            raise SchemaVersionError(
                f"the corrmon store at {self.safe_database_url} has schema version {found}, "
                f"but this dagster-corrmon needs version {schema.SCHEMA_VERSION}: {action}"
            )

    def _insert(self, table: sa.Table) -> Any:
        # Both dialect inserts offer on_conflict_do_nothing with the same signature.
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy/driver errors into a StoreError that names the (safe) URL."""
        try:
            yield
        except ValueError as error:
            # psycopg2 refuses a NUL in any string parameter with a bare ValueError (a query
            # argument from the command line, say); writes are checked before (_without_nul).
            if "NUL" not in str(error):
                raise
            raise StoreError(
                f"could not {action} in the corrmon store at {self.safe_database_url}: "
                "an argument contains a NUL character, which PostgreSQL text cannot hold"
            ) from None
        except sa_exc.SQLAlchemyError as error:
            # The driver's own message, without SQLAlchemy's echo of the SQL and parameters.
            detail = redact_secrets(
                str(getattr(error, "orig", None) or error).strip(), self.database_url
            )
            # from None: the driver's exception repeats what it was given (with an unescaped
            # "@", part of the password as the "host"); its redacted message is all we pass on.
            raise StoreError(
                f"could not {action} in the corrmon store at {self.safe_database_url}: {detail}"
            ) from None


# ------------------------------------------------------------------ helpers


def _take_over_sqlite_transactions(engine: sa.Engine, *, wal: bool) -> None:
    """Let SQLAlchemy emit BEGIN itself (the sqlite3 module's legacy mode makes DDL autocommit and
    SELECTs un-transactioned); writers BEGIN IMMEDIATE; WAL lets the sensor read while a job
    writes."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _read_schema_version(connection: sa.Connection) -> int | None:
    if not sa.inspect(connection).has_table(schema.store_meta.name):
        return None
    meta = schema.store_meta
    value = connection.scalar(
        sa.select(meta.c.value).where(meta.c.key == schema.SCHEMA_VERSION_KEY)
    )
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as error:
        raise SchemaVersionError(
            f"unreadable schema version {value!r} in table {meta.name}"
        ) from error


def _write_schema_version(connection: sa.Connection, version: int) -> None:
    meta = schema.store_meta
    connection.execute(sa.delete(meta).where(meta.c.key == schema.SCHEMA_VERSION_KEY))
    connection.execute(sa.insert(meta).values(key=schema.SCHEMA_VERSION_KEY, value=str(version)))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for begin in range(0, len(items), _IN_CHUNK):
        yield items[begin : begin + _IN_CHUNK]


_Enum = TypeVar("_Enum", SignalKind, IncidentStatus)


def _parse_enum(enum: type[_Enum], value: _Enum | str, what: str) -> _Enum:
    try:
        return enum(value)
    except ValueError as error:
        choices = ", ".join(member.value for member in enum)
        raise ConfigError(f"unknown {what} {value!r} (one of: {choices})") from error


def _json_default(value: object) -> object:
    # numpy scalars (np.int64, np.bool_, np.float32, ...) without importing numpy here.
    item = getattr(value, "item", None)
    if callable(item) and hasattr(value, "dtype"):
        return item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")


def _strict_json(value: Mapping[str, Any], *, where: str) -> Any:
    """A plain-JSON copy of ``value`` (what will read back), or a StoreError naming ``where``."""
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"{where} cannot be stored as JSON: {error} (use plain str/int/float/bool/None, "
            "lists and dicts; no NaN/inf; datetimes as ISO strings)"
        ) from error


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


_NAME_COLUMNS = frozenset(
    column for columns in schema.WIDENED_COLUMNS.values() for column in columns
)


def _without_nul(row: dict[str, Any], *, where: str) -> dict[str, Any]:
    """PostgreSQL text cannot hold NUL characters (psycopg2 raises a bare ValueError), nor index
    a very long name; refuse both on both dialects, so a signal that SQLite accepts never breaks
    a PostgreSQL deployment."""
    for column, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            raise StoreError(f"{where}: {column} {value!r} contains a NUL character")
        if (
            isinstance(value, str)
            and column in _NAME_COLUMNS
            and len(value) > schema.MAX_NAME_LENGTH
        ):
            raise StoreError(
                f"{where}: {column} is {len(value)} characters long, over the store's "
                f"{schema.MAX_NAME_LENGTH} ({value[:60]!r}...)"
            )
    return row


def _signal_row(signal: Signal, *, key: str, now: datetime) -> dict[str, Any]:
    where = f"signal {signal.kind.value} {signal.name[:80]!r} on {signal.asset_key[:80]!r}"
    return _without_nul(
        {
            "idempotency_key": key,
            "kind": signal.kind.value,
            "asset_key": signal.asset_key,
            "name": signal.name,
            "event_time": signal.event_time,
            "observed_at": signal.observed_at if signal.observed_at is not None else now,
            "value": _finite_or_none(signal.value),
            "passed": signal.passed,
            "severity": signal.severity.value,
            "partition_key": signal.partition,
            "column_name": signal.column,
            "run_id": signal.run_id,
            "data_version": signal.data_version,
            "code_version": signal.code_version,
            "source": signal.source,
            "metadata_json": _strict_json(signal.metadata, where=where),
        },
        where=f"signal {signal.kind.value} {signal.name!r} on {signal.asset_key!r}",
    )


_KINDS = {kind.value: kind for kind in SignalKind}
_SEVERITIES = {severity.value: severity for severity in Severity}


def _signal_from_row(row: sa.Row[Any], *, with_metadata: bool = True) -> Signal:
    """A stored signal, built without re-running :class:`Signal`'s conversions.

    Every row was written from a ``Signal`` (its kind, severity, value and flag already
    normalised; times come back aware UTC from :class:`~.schema.UTCDateTime`), so only enum
    members are mapped back. The
    correlation job reads tens of thousands of rows a pass; the dataclass constructor and its
    ``__post_init__`` were half of that. The stored idempotency key is kept (no re-hashing).
    """
    signal = object.__new__(Signal)
    signal.__dict__.update(
        kind=_KINDS.get(row.kind) or SignalKind(row.kind),
        asset_key=row.asset_key,
        name=row.name,
        event_time=row.event_time,  # UTCDateTime: aware UTC on every dialect
        observed_at=row.observed_at,
        value=None if row.value is None else float(row.value),
        passed=None if row.passed is None else bool(row.passed),
        severity=_SEVERITIES.get(row.severity) or Severity(row.severity),
        partition=row.partition_key,
        column=row.column_name,
        run_id=row.run_id,
        data_version=row.data_version,
        code_version=row.code_version,
        source=row.source,
        metadata=row.metadata_json if with_metadata else {},
        idempotency_key=row.idempotency_key,
    )
    return signal


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else ensure_utc(value)


def _incident_values(incident: Incident) -> dict[str, Any]:
    """The incident's own columns, except id, status and the created/updated stamps."""
    return _without_nul(
        {
            "model_asset": incident.model_asset,
            "metric": incident.metric,
            "classification": incident.classification.value,
            "consequential": bool(incident.consequential),
            "onset_time": _optional_utc(incident.onset_time),
            "onset_partition": incident.onset_partition,
            "detected_time": _optional_utc(incident.detected_time),
            "detected_partition": incident.detected_partition,
            "window_start": _optional_utc(incident.window_start),
            "window_end": _optional_utc(incident.window_end),
            "baseline_value": _finite_or_none(incident.baseline_value),
            "observed_value": _finite_or_none(incident.observed_value),
            "summary": incident.summary,
            "metadata_json": _strict_json(
                incident.metadata, where=f"metadata of incident {incident.id!r}"
            ),
        },
        where=f"incident {incident.id!r}",
    )


def _cause_row(incident_id: str, position: int, cause: Cause) -> dict[str, Any]:
    where = f"evidence of cause #{cause.rank} ({cause.asset_key}) of incident {incident_id!r}"
    return _without_nul(
        {
            "incident_id": incident_id,
            "position": position,
            "rank": int(cause.rank),
            "kind": cause.kind,
            "asset_key": cause.asset_key,
            "score": float(cause.score),
            "column_name": cause.column,
            "partition_key": cause.partition,
            "event_time": _optional_utc(cause.event_time),
            "p_value": _finite_or_none(cause.p_value),
            "q_value": _finite_or_none(cause.q_value),
            "repair_recovery": _finite_or_none(cause.repair_recovery),
            "lineage_distance": None
            if cause.lineage_distance is None
            else int(cause.lineage_distance),
            "shift_size": _finite_or_none(cause.shift_size),
            "feature_importance": _finite_or_none(cause.feature_importance),
            "signal_keys_json": list(cause.signal_keys),
            "data_versions_json": list(cause.data_versions),
            "evidence_json": _strict_json(cause.evidence, where=where),
        },
        where=f"cause #{cause.rank} of incident {incident_id!r}",
    )


def _run_row(incident_id: str, position: int, run: AffectedRun) -> dict[str, Any]:
    return _without_nul(
        {
            "incident_id": incident_id,
            "position": position,
            "run_id": run.run_id,
            "asset_key": run.asset_key,
            "role": run.role,
            "partition_key": run.partition,
            "at_risk": bool(run.at_risk),
            "reason": run.reason,
        },
        where=f"affected run of incident {incident_id!r}",
    )


def _signal_link_rows(incident: Incident) -> list[dict[str, Any]]:
    """One row per distinct signal the incident cites: directly (with position) or via a cause."""
    positions: dict[str, int | None] = {}
    for position, key in enumerate(incident.cited_signal_keys):
        positions.setdefault(key, position)
    for cause in incident.causes:
        for key in cause.signal_keys:
            positions.setdefault(key, None)
    return [
        {"incident_id": incident.id, "signal_key": key, "position": position}
        for key, position in positions.items()
    ]


def _load_incidents(connection: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[Incident]:
    """Assemble incidents from their rows with one query per child table (not one per incident)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    causes: dict[str, list[sa.Row[Any]]] = {incident_id: [] for incident_id in ids}
    runs: dict[str, list[sa.Row[Any]]] = {incident_id: [] for incident_id in ids}
    cited: dict[str, list[sa.Row[Any]]] = {incident_id: [] for incident_id in ids}
    for child, into in (
        (schema.incident_causes, causes),
        (schema.incident_runs, runs),
        (schema.incident_signals, cited),
    ):
        for chunk in _chunks(ids):
            for child_row in connection.execute(
                sa.select(child).where(child.c.incident_id.in_(chunk))
            ):
                into[child_row.incident_id].append(child_row)
    return [
        Incident(
            id=row.id,
            model_asset=row.model_asset,
            metric=row.metric,
            classification=IncidentClass(row.classification),
            status=IncidentStatus(row.status),
            consequential=bool(row.consequential),
            onset_time=row.onset_time,
            onset_partition=row.onset_partition,
            detected_time=row.detected_time,
            detected_partition=row.detected_partition,
            window_start=row.window_start,
            window_end=row.window_end,
            baseline_value=row.baseline_value,
            observed_value=row.observed_value,
            summary=row.summary,
            causes=tuple(
                _cause_from_row(cause_row)
                for cause_row in sorted(causes[row.id], key=lambda r: r.position)
            ),
            affected_runs=tuple(
                _run_from_row(run_row) for run_row in sorted(runs[row.id], key=lambda r: r.position)
            ),
            cited_signal_keys=tuple(
                link.signal_key
                for link in sorted(
                    (link for link in cited[row.id] if link.position is not None),
                    key=lambda r: r.position,
                )
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
            metadata=row.metadata_json,
        )
        for row in rows
    ]


def _cause_from_row(row: sa.Row[Any]) -> Cause:
    return Cause(
        rank=row.rank,
        kind=row.kind,
        asset_key=row.asset_key,
        score=row.score,
        column=row.column_name,
        partition=row.partition_key,
        event_time=row.event_time,
        p_value=row.p_value,
        q_value=row.q_value,
        repair_recovery=row.repair_recovery,
        lineage_distance=row.lineage_distance,
        shift_size=row.shift_size,
        feature_importance=row.feature_importance,
        signal_keys=tuple(row.signal_keys_json),
        data_versions=tuple(row.data_versions_json),
        evidence=row.evidence_json,
    )


def _run_from_row(row: sa.Row[Any]) -> AffectedRun:
    return AffectedRun(
        run_id=row.run_id,
        asset_key=row.asset_key,
        role=row.role,
        partition=row.partition_key,
        at_risk=bool(row.at_risk),
        reason=row.reason,
    )
