"""``corrmon backtest``: which alerts recorded history would have raised under given rules."""

from pathlib import Path

import click

from dagster_corrmon.cli.db_cmd import database_url_option
from dagster_corrmon.errors import ConfigError


@click.command("backtest")
@click.option(
    "--dagster-home",
    "dagster_home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Dagster home whose corrmon.db holds the recorded history (default: $DAGSTER_HOME).",
)
@database_url_option
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML or JSON rules file; default: the live rules (see docs/scenarios.md#backtest).",
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@click.option("--seed", type=int, default=0, show_default=True, help="Change-point test seed.")
def backtest_command(
    dagster_home: Path | None,
    database_url: str | None,
    rules_path: Path | None,
    output_format: str,
    seed: int,
) -> None:
    """Replay a recorded history under alert rules: which alerts would have fired, and when.

    Every rule sees only the history up to the partition it judges (no look-ahead). The
    performance alerts are compared with the incidents the live system recorded.
    """
    from dagster_corrmon.scenarios.backtest import backtest_store, format_table, load_rules
    from dagster_corrmon.store import CorrmonStore

    rules = load_rules(rules_path) if rules_path is not None else None
    url = database_url or _store_url(dagster_home)
    with CorrmonStore(url, must_exist=True) as store:
        result = backtest_store(store, rules=rules, seed=seed)
    click.echo(result.to_json() if output_format == "json" else format_table(result))


def _store_url(dagster_home: Path | None) -> str | None:
    """The Dagster home's corrmon.db; ``None`` falls back to the store's own default."""
    if dagster_home is None:
        return None
    database = dagster_home / "corrmon.db"
    if not database.is_file():
        # Opening a missing SQLite file would create an empty store and report no alerts.
        raise ConfigError(f"--dagster-home {dagster_home}: no corrmon store at {database}")
    return f"sqlite:///{database.resolve()}"
