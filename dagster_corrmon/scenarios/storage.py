"""SQLite storages for a simulated Dagster home: Dagster's own, with one pooled engine per database.

Dagster's SQLite run, schedule and consolidated event-log storages build a new SQLAlchemy engine
for every connection, with ``NullPool``: each of the ~100 events a run writes opens a SQLite
connection (which re-parses Dagster's schema), recompiles its INSERT, commits and closes it — and
closing the last connection to a WAL database checkpoints the log into the file. A simulated year
writes several hundred thousand events; measured on a daily simulation, opening and closing
connections was a third of a score run's time.

These subclasses keep one engine per database with a connection pool, so statements compile once
and connections are reused, and open its connections with ``synchronous=NORMAL``, the setting
SQLite recommends for WAL databases (Dagster creates them in WAL mode): a commit no longer waits
for an fsync, and an application crash still loses nothing committed — only a power cut can drop
the last commits, which a re-run of the simulation restores. Disposing a storage (as
``DagsterInstance`` does when it closes) closes its idle pooled connections; a forked child starts
with empty pools instead of sharing its parent's connections.

Schema, queries and files are Dagster's: a home written with these classes opens with the default
ones, and the reverse. They are named in the simulated home's ``dagster.yaml``
(:func:`dagster_corrmon.scenarios.simulate.instance_yaml`), so ``dagster dev`` on that home uses
them too. Not meant for a production instance — use PostgreSQL there.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import event

_ENGINES: dict[str, db.Engine] = {}


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def shared_engine(conn_string: str) -> db.Engine:
    """One engine per SQLite URL in this process, its connections set to ``synchronous=NORMAL``.

    SQLAlchemy's default pool for a SQLite file (a ``QueuePool``, connections usable from any
    thread, one thread at a time; each is rolled back when returned). ``max_overflow=-1``: a burst
    of threads (the webserver's) waits on SQLite's own lock, never on the pool.
    """
    engine = _ENGINES.get(conn_string)
    if engine is None:
        engine = db.create_engine(
            conn_string,
            max_overflow=-1,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _set_pragmas)
        _ENGINES[conn_string] = engine
    return engine


def _forget_parent_connections() -> None:
    """In a forked child: new pools, leaving the parent's connections to the parent (SQLAlchemy's
    recipe; a SQLite connection must not be used on both sides of a fork)."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def _close_idle_connections(conn_string: str) -> None:
    engine = _ENGINES.get(conn_string)
    if engine is not None:
        engine.dispose()


@contextmanager
def _transaction(conn_string: str) -> Iterator[db.Connection]:
    with shared_engine(conn_string).connect() as conn, conn.begin():
        yield conn


class SimulationEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log with one shared engine (see the module)."""

    _tables_found: frozenset[str] = frozenset()

    @contextmanager
    def _connect(self) -> Iterator[db.Connection]:
        with _transaction(self._conn_string) as conn:
            yield conn

    def has_table(self, table_name: str) -> bool:
        """Whether the table exists, asked on the shared engine and remembered once it does.

        Dagster asks before storing every asset-check event (``supports_asset_checks``), each
        time on a new engine and connection: ~1 ms per event, 34 events a score run. A table
        is never dropped under a running instance, so only "absent" is asked again (a
        migration may add it).
        """
        if table_name in self._tables_found:
            return True
        with self._connect() as conn:
            found = bool(db.inspect(conn).has_table(table_name))
        if found:
            self._tables_found = self._tables_found | {table_name}
        return found

    def dispose(self) -> None:
        super().dispose()
        _close_idle_connections(self._conn_string)


class _SharedEngineStorage:
    """``connect`` on the shared engine, and a ``from_config_value`` that builds the subclass.

    For Dagster's run and schedule storages, whose ``from_config_value`` names their own class.
    """

    _conn_string: str

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)  # pyright: ignore[reportAttributeAccessIssue]

    @contextmanager
    def connect(self) -> Iterator[db.Connection]:
        with _transaction(self._conn_string) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()  # pyright: ignore[reportAttributeAccessIssue]
        _close_idle_connections(self._conn_string)


class SimulationRunStorage(_SharedEngineStorage, SqliteRunStorage):
    """Dagster's SQLite run storage with one shared engine (see the module)."""


class SimulationScheduleStorage(_SharedEngineStorage, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage (sensor cursors, ticks) with one shared engine."""
