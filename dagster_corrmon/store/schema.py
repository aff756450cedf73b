"""The corrmon store's tables, in SQLAlchemy Core (no ORM), and its migrations.

Every table name starts with ``corrmon_`` because the store may share a PostgreSQL database with
Dagster's own instance storage (which owns ``runs``, ``event_logs``, ...).

Stored strings (signal kinds, severities, incident statuses and classes) are the stable string
values of the enums in :mod:`dagster_corrmon.core`; they live in databases for years.

Datetimes go through :class:`UTCDateTime`: SQLite has no time-zone type and SQLAlchemy's SQLite
``DATETIME`` drops ``tzinfo`` without converting, so every value is converted to UTC *before* it is
bound and made aware UTC again when read. On SQLite the stored text has a fixed width
(``YYYY-MM-DD HH:MM:SS.ffffff``), so string order is time order and the indexes serve ranges.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dagster_corrmon.core.signal import ensure_utc

# Bump when a table changes, and append the migration that gets there to MIGRATIONS.
SCHEMA_VERSION = 2

SCHEMA_VERSION_KEY = "schema_version"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every dialect (SQLite stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


def _json() -> sa.types.TypeEngine[Any]:
    # JSONB on PostgreSQL so people can query evidence ad hoc; JSON text on SQLite.
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# SQLite only makes an INTEGER PRIMARY KEY an auto-incrementing rowid alias, not a BIGINT one.
_BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

store_meta = sa.Table(
    "corrmon_store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

signals = sa.Table(
    "corrmon_signals",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("asset_key", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("event_time", UTCDateTime, nullable=False),
    sa.Column("observed_at", UTCDateTime, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("passed", sa.Boolean, nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("partition_key", sa.Text, nullable=True),
    sa.Column("column_name", sa.Text, nullable=True),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("data_version", sa.Text, nullable=True),
    sa.Column("code_version", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("metadata_json", _json(), nullable=False),
    # The hot reads: one asset's metric/check series over a window; every signal in a window;
    # every signal of one kind in a window (the sensor's "what changed since").
    sa.Index("ix_corrmon_signals_asset_name_time", "asset_key", "name", "event_time"),
    sa.Index("ix_corrmon_signals_event_time", "event_time"),
    sa.Index("ix_corrmon_signals_kind_time", "kind", "event_time"),
)

incidents = sa.Table(
    "corrmon_incidents",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("model_asset", sa.Text, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("classification", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("consequential", sa.Boolean, nullable=False),
    sa.Column("onset_time", UTCDateTime, nullable=True),
    sa.Column("onset_partition", sa.Text, nullable=True),
    sa.Column("detected_time", UTCDateTime, nullable=True),
    sa.Column("detected_partition", sa.Text, nullable=True),
    sa.Column("window_start", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=True),
    sa.Column("baseline_value", sa.Float, nullable=True),
    sa.Column("observed_value", sa.Float, nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("metadata_json", _json(), nullable=False),
    sa.Index("ix_corrmon_incidents_model_status", "model_asset", "status"),
    sa.Index("ix_corrmon_incidents_status_created", "status", "created_at"),
    sa.Index("ix_corrmon_incidents_created", "created_at"),
)

incident_causes = sa.Table(
    "corrmon_incident_causes",
    metadata,
    sa.Column("incident_id", sa.ForeignKey(incidents.c.id, ondelete="CASCADE"), primary_key=True),
    # Position in Incident.causes, so a round trip keeps the caller's order even on rank ties.
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("asset_key", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("column_name", sa.Text, nullable=True),
    sa.Column("partition_key", sa.Text, nullable=True),
    sa.Column("event_time", UTCDateTime, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("q_value", sa.Float, nullable=True),
    sa.Column("repair_recovery", sa.Float, nullable=True),
    sa.Column("lineage_distance", sa.Integer, nullable=True),
    sa.Column("shift_size", sa.Float, nullable=True),
    sa.Column("feature_importance", sa.Float, nullable=True),
    sa.Column("signal_keys_json", _json(), nullable=False),
    sa.Column("data_versions_json", _json(), nullable=False),
    sa.Column("evidence_json", _json(), nullable=False),
    # "Is there an open incident blaming this upstream asset?" (retrain guard).
    sa.Index("ix_corrmon_incident_causes_asset", "asset_key"),
)

# Every signal an incident cites, directly or through one of its causes: the link retention
# consults (a cited signal is never pruned) and the way from a signal to its incidents.
incident_signals = sa.Table(
    "corrmon_incident_signals",
    metadata,
    sa.Column("incident_id", sa.ForeignKey(incidents.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("signal_key", sa.String(64), primary_key=True),
    # Position in Incident.cited_signal_keys; NULL when only a cause cites the signal.
    sa.Column("position", sa.Integer, nullable=True),
    sa.Index("ix_corrmon_incident_signals_key", "signal_key"),
)

incident_runs = sa.Table(
    "corrmon_incident_runs",
    metadata,
    sa.Column("incident_id", sa.ForeignKey(incidents.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("asset_key", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("partition_key", sa.Text, nullable=True),
    sa.Column("at_risk", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_corrmon_incident_runs_run", "run_id"),
)

incident_status_history = sa.Table(
    "corrmon_incident_status_history",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.ForeignKey(incidents.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("from_status", sa.String(32), nullable=True),  # NULL: the incident was created
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Index("ix_corrmon_incident_status_history_incident", "incident_id", "changed_at"),
)


# The alert delivery log: one row per (incident, lifecycle step, route), the unit that is sent
# exactly once across sensor ticks, job retries and processes. A sender claims a row (a lease in
# ``claimed_until``) before it sends, so two processes never deliver the same step twice.
alert_deliveries = sa.Table(
    "corrmon_alert_deliveries",
    metadata,
    sa.Column("incident_id", sa.ForeignKey(incidents.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.String(16), primary_key=True),  # opened | escalated | resolved
    sa.Column("route", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    # pending | sent | failed | deferred | superseded
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("payload_json", _json(), nullable=False),  # what was sent; never a secret
    # The rate limit counts a route's recent deliveries.
    sa.Index("ix_corrmon_alert_deliveries_route_sent", "route", "sent_at"),
)

# The tables of schema version 1, frozen: later tables are created by their own migration.
_VERSION_1_TABLES = (
    store_meta,
    signals,
    incidents,
    incident_causes,
    incident_signals,
    incident_runs,
    incident_status_history,
)

# What each effect of an incident (run tags, the check evaluation, the observation) last applied,
# and how far each model's correlation pass got: the ledger that makes annotation at-least-once.
# ``fingerprint`` is a hash of what the effect wrote; a differing one means "apply it again".
effects = sa.Table(
    "corrmon_effects",
    metadata,
    sa.Column("subject", sa.Text, primary_key=True),  # an incident id, or "model:<asset>"
    sa.Column("effect", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(128), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


def _migrate_to_1(connection: sa.Connection) -> None:
    metadata.create_all(connection, tables=list(_VERSION_1_TABLES), checkfirst=True)


# Columns that hold names from users' data (assets, checks, columns, partitions, run ids,
# versions). Version 1 bounded them (VARCHAR(512) and less): PostgreSQL refused a whole batch
# over one long check name that SQLite, which ignores lengths, stored. They are TEXT now; the
# store bounds every one at MAX_NAME_LENGTH on both dialects (a clear error, never a lost batch
# on one dialect only), which keeps them within PostgreSQL's b-tree entry limit.
WIDENED_COLUMNS: dict[str, tuple[str, ...]] = {
    "corrmon_signals": (
        "asset_key",
        "name",
        "partition_key",
        "column_name",
        "run_id",
        "data_version",
        "code_version",
        "source",
    ),
    "corrmon_incidents": ("model_asset", "metric", "onset_partition", "detected_partition"),
    "corrmon_incident_causes": ("asset_key", "column_name", "partition_key"),
    "corrmon_incident_runs": ("run_id", "asset_key", "partition_key"),
    "corrmon_incident_status_history": ("actor",),
}
MAX_NAME_LENGTH = 2000


def _migrate_to_2(connection: sa.Connection) -> None:
    # Additive tables — the alert delivery log and the effect ledger — and the name columns
    # widened to TEXT (SQLite ignores declared lengths: nothing to do there).
    alert_deliveries.create(connection, checkfirst=True)
    effects.create(connection, checkfirst=True)
    if connection.dialect.name == "postgresql":
        for table, columns in WIDENED_COLUMNS.items():
            for column in columns:
                connection.execute(
                    sa.text(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE TEXT')
                )


# target version -> the step that takes a database from (target - 1) to target, in one transaction.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
}
