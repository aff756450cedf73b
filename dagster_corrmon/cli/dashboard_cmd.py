"""``corrmon dashboard``: the joined HTML dashboard of a store, one file that opens offline."""

from datetime import UTC, datetime
from pathlib import Path

import click

from dagster_corrmon.cli.db_cmd import database_url_option


def build_dashboard_file(
    *,
    database_url: str | None,
    out: Path,
    model: str | None = None,
    metric: str | None = None,
    assets: tuple[str, ...] = (),
    dagster_url: str = "http://localhost:3000",
) -> Path:
    """Read the store at ``database_url`` and write its dashboard to ``out``."""
    from dagster_corrmon.report.dashboard import write_dashboard
    from dagster_corrmon.report.dashboard_data import collect_dashboard_data
    from dagster_corrmon.store import CorrmonStore

    with CorrmonStore(database_url) as store:
        data = collect_dashboard_data(
            store,
            now=datetime.now(UTC),
            model_asset=model,
            metric=metric,
            assets=list(assets) or None,
        )
    return write_dashboard(data, out, dagster_url=dagster_url)


@click.command("dashboard")
@database_url_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("corrmon-dashboard.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--model", metavar="ASSET", help="Only this model asset (shown even without incidents)."
)
@click.option(
    "--metric", metavar="NAME", help="The metric to plot (default: the incidents' metric)."
)
@click.option(
    "--asset",
    "assets",
    multiple=True,
    metavar="ASSET",
    help="Limit the data panels to these upstream assets (repeatable; default: every asset).",
)
@click.option(
    "--dagster-url",
    default="http://localhost:3000",
    show_default=True,
    help="Base URL of the Dagster UI, for the links to runs and checks.",
)
def dashboard_command(
    *,
    database_url: str | None,
    out: Path,
    model: str | None,
    metric: str | None,
    assets: tuple[str, ...],
    dagster_url: str,
) -> None:
    """One offline HTML page of each model's metric, incidents, drift and upstream events.

    Everything on one time axis: the data's own partition times."""
    path = build_dashboard_file(
        database_url=database_url,
        out=out,
        model=model,
        metric=metric,
        assets=assets,
        dagster_url=dagster_url,
    )
    click.echo(f"dashboard: {path}")
