"""SQLite storages for a simulated Dagster home: Dagster's own, with one engine per database.

Dagster's SQLite run, schedule and consolidated event-log storages build a new SQLAlchemy engine
for every connection. A new engine has an empty compiled-statement cache and runs the dialect's
first-connect probe, so each of the ~100 events a run writes recompiles its INSERT; a simulated
year writes several hundred thousand. These subclasses keep one engine per database (so statements
compile once) and open its connections with ``synchronous=NORMAL``, the setting SQLite recommends
for WAL databases (Dagster creates them in WAL mode): a commit no longer waits for an fsync, and
an application crash still loses nothing committed — only a power cut can drop the last commits,
which a re-run of the simulation restores.

Schema, queries and files are Dagster's: a home written with these classes opens with the default
ones, and the reverse. They are named in the simulated home's ``dagster.yaml``
(:func:`dagster_corrmon.scenarios.simulate.instance_yaml`), so ``dagster dev`` on that home uses
them too. Not meant for a production instance — use PostgreSQL there.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import event
from sqlalchemy.pool import NullPool

_ENGINES: dict[str, db.Engine] = {}


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def shared_engine(conn_string: str) -> db.Engine:
    """One engine per SQLite URL in this process, its connections set to ``synchronous=NORMAL``.

    ``NullPool`` as in Dagster: a connection is opened per use and closed after it, so no
    connection outlives a thread or a fork; what is shared is the engine's compiled-statement cache
    and its dialect, probed once.
    """
    engine = _ENGINES.get(conn_string)
    if engine is None:
        engine = db.create_engine(
            conn_string,
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _set_pragmas)
        _ENGINES[conn_string] = engine
    return engine


@contextmanager
def _transaction(conn_string: str) -> Iterator[db.Connection]:
    with shared_engine(conn_string).connect() as conn, conn.begin():
        yield conn


class SimulationEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log with one shared engine (see the module)."""

    @contextmanager
    def _connect(self) -> Iterator[db.Connection]:
        with _transaction(self._conn_string) as conn:
            yield conn


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


class SimulationRunStorage(_SharedEngineStorage, SqliteRunStorage):
    """Dagster's SQLite run storage with one shared engine (see the module)."""


class SimulationScheduleStorage(_SharedEngineStorage, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage (sensor cursors, ticks) with one shared engine."""
