"""``corrmon db …``: create or migrate the corrmon store, prune old signals, show what it holds."""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore

_Command = TypeVar("_Command", bound=Callable[..., Any])

_DURATION_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def database_url_option(command: _Command) -> _Command:
    """The ``--database-url`` option every store-backed command shares."""
    return click.option(
        "--database-url",
        metavar="URL",
        default=None,
        help=(
            "SQLAlchemy URL of the corrmon store. Default: $CORRMON_DATABASE_URL, "
            "else SQLite at $DAGSTER_HOME/corrmon.db."
        ),
    )(command)


def parse_duration(text: str) -> timedelta:
    """``"180d"`` → 180 days; units ``h`` (hours), ``d`` (days), ``w`` (weeks); positive only."""
    match = re.fullmatch(r"(\d+)([hdw])", text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(
            f"invalid duration {text!r}: expected a positive whole number followed by "
            "h, d or w (e.g. 12h, 180d, 26w)"
        )
    try:
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    except OverflowError:
        raise ConfigError(
            f"invalid duration {text!r}: longer than {timedelta.max.days} days"
        ) from None


class _DurationType(click.ParamType):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ConfigError as error:
            self.fail(str(error), param, ctx)


@click.group("db")
def db_group() -> None:
    """Create, migrate, prune and inspect the corrmon store."""


@db_group.command("upgrade")
@database_url_option
def upgrade_command(database_url: str | None) -> None:
    """Create the store's tables, or migrate them to this version's schema."""
    with CorrmonStore(database_url, check_schema=False) as store:
        result = store.upgrade()
        if result.from_version is None:
            click.echo(
                f"created the corrmon store (schema version {result.to_version}) "
                f"at {store.safe_database_url}"
            )
        elif result.changed:
            click.echo(
                f"migrated the corrmon store at {store.safe_database_url} from schema version "
                f"{result.from_version} to {result.to_version}"
            )
        else:
            click.echo(
                f"the corrmon store at {store.safe_database_url} is already at schema version "
                f"{result.to_version}"
            )


@db_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=_DurationType(),
    required=True,
    help="Delete signals whose event time is older than this, e.g. 180d, 26w, 48h.",
)
@database_url_option
def prune_command(older_than: timedelta, database_url: str | None) -> None:
    """Delete old signals; keep every incident and every signal an incident cites."""
    with CorrmonStore(database_url, must_exist=True) as store:
        result = store.prune(older_than=older_than, now=datetime.now(UTC))
        click.echo(
            f"deleted {result.signals_deleted} signal(s) with event time before "
            f"{result.cutoff.isoformat()}; kept {result.cited_signals_kept} older signal(s) "
            "that incidents cite (incidents are never pruned)"
        )


@db_group.command("info")
@database_url_option
def info_command(database_url: str | None) -> None:
    """Show the store's URL (password hidden), schema version and row counts."""
    with CorrmonStore(database_url, check_schema=False, must_exist=True) as store:
        info = store.info()
    click.echo(f"database:       {info.database_url}")
    if info.schema_version is None:
        click.echo(
            "schema version: none (no corrmon tables yet; `corrmon db upgrade` creates them, "
            "and so does first use)"
        )
    elif info.schema_version > info.expected_schema_version:
        # `db upgrade` never downgrades: only a newer dagster-corrmon can use this store.
        click.echo(
            f"schema version: {info.schema_version} (written by a newer dagster-corrmon; this "
            f"one knows version {info.expected_schema_version}: upgrade dagster-corrmon)"
        )
    elif info.schema_version != info.expected_schema_version:
        click.echo(
            f"schema version: {info.schema_version} (this dagster-corrmon needs "
            f"{info.expected_schema_version}: run `corrmon db upgrade`)"
        )
    else:
        click.echo(f"schema version: {info.schema_version}")
    if info.signal_count is not None:
        click.echo(f"signals:        {info.signal_count}")
    if info.incident_counts is not None:
        total = sum(info.incident_counts.values())
        by_status = ", ".join(
            f"{status} {count}" for status, count in sorted(info.incident_counts.items())
        )
        click.echo(f"incidents:      {total}" + (f" ({by_status})" if by_status else ""))
