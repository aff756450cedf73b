"""``corrmon postmortem INCIDENT``: a blameless postmortem draft from the catalog."""

from pathlib import Path

import click

from dagster_corrmon.alerts.postmortem import build_postmortem, markdown_to_html
from dagster_corrmon.alerts.runbooks import Runbooks
from dagster_corrmon.cli.db_cmd import database_url_option
from dagster_corrmon.store import CorrmonStore


@click.command("postmortem")
@click.argument("incident_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["md", "html"]),
    default="md",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the draft to this file instead of stdout.",
)
@click.option(
    "--runbook-base-url",
    metavar="URL",
    help="Where your team publishes the runbooks (<URL>/<kind>.md); default: the packaged file.",
)
@database_url_option
def postmortem_command(
    incident_id: str,
    output_format: str,
    out: Path | None,
    runbook_base_url: str | None,
    database_url: str | None,
) -> None:
    """Draft a blameless postmortem of INCIDENT_ID from its stored records."""
    with CorrmonStore(database_url) as store:
        draft = build_postmortem(store, incident_id, runbooks=Runbooks(base_url=runbook_base_url))
    if output_format == "html":
        draft = markdown_to_html(draft, title=f"Postmortem {incident_id}")
    if out is None:
        click.echo(draft, nl=False)
    else:
        out.write_text(draft, encoding="utf-8")
        click.echo(f"wrote {out}")
