"""``corrmon retrospective``: recurring patterns across the incident catalog."""

import json
import re
from datetime import UTC, datetime, timedelta

import click

from dagster_corrmon.alerts.retrospective import build_retrospective, retrospective_markdown
from dagster_corrmon.cli.db_cmd import database_url_option
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore

_PERIOD = re.compile(r"^(\d+)([dhw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_period(text: str, *, option: str) -> timedelta:
    """``90d``, ``12h``, ``4w`` as a timedelta; anything else is a ConfigError naming the option."""
    match = _PERIOD.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"{option} {text!r}: expected a positive period like 90d, 12h or 4w")
    return int(match.group(1)) * _UNITS[match.group(2)]


@click.command("retrospective")
@click.option("--since", default="90d", show_default=True, help="Period to look back (90d, 4w).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
)
@database_url_option
def retrospective_command(since: str, output_format: str, database_url: str | None) -> None:
    """Incidents per asset and kind, after code changes, MTTD/MTTR, false positives per check."""
    start = datetime.now(UTC) - parse_period(since, option="--since")
    with CorrmonStore(database_url) as store:
        retro = build_retrospective(store, since=start)
    if output_format == "json":
        click.echo(json.dumps(retro.to_json(), indent=2))
    else:
        click.echo(retrospective_markdown(retro), nl=False)
