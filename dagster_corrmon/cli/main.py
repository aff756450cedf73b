"""The ``corrmon`` command line.

Sub-commands live in their own modules and are imported only when invoked, so ``corrmon --help``
imports neither Dagster nor pandas and stays fast (a test checks it). Any :class:`CorrmonError`
becomes one line on stderr and exit code 2 — never a traceback.
"""

import importlib
import sys
from dataclasses import dataclass

import click

from dagster_corrmon.errors import CorrmonError


@dataclass(frozen=True)
class _Command:
    """Where a sub-command lives, and the one line ``corrmon --help`` shows for it.

    The line is kept here so that listing the commands imports none of them (a test checks it
    matches the command's own docstring).
    """

    target: str  # "module:attribute"
    summary: str


# To add a command: one line here, ``"name": _Command("module:attribute", "Its docstring's
# first line.")``; its module is imported only when the command runs (or shows its own help).
_COMMANDS: dict[str, _Command] = {
    "profile": _Command(
        "dagster_corrmon.cli.drift_cmd:profile_command",
        "Profile DATA (CSV or Parquet) as a drift reference and write it to --out as JSON.",
    ),
    "drift": _Command(
        "dagster_corrmon.cli.drift_cmd:drift_command",
        "Test each column of --current for drift against a reference table or profile.",
    ),
    "db": _Command(
        "dagster_corrmon.cli.db_cmd:db_group",
        "Create, migrate, prune and inspect the corrmon store.",
    ),
    "incidents": _Command(
        "dagster_corrmon.cli.incidents_cmd:incidents_group",
        "The incident catalog: list, show, acknowledge, resolve, mark false positive.",
    ),
    "explain": _Command(
        "dagster_corrmon.cli.incidents_cmd:explain_command",
        "Why did MODEL_ASSET's performance shift? Ranked upstream causes with their evidence.",
    ),
    "simulate": _Command(
        "dagster_corrmon.cli.scenario_cmd:simulate_command",
        "Run SCENARIO's pipeline partition by partition in a real Dagster instance under OUT.",
    ),
    "score": _Command(
        "dagster_corrmon.cli.scenario_cmd:score_command",
        "Score simulation output folders (or report.json files) against their expectations.",
    ),
    "scenario-schema": _Command(
        "dagster_corrmon.cli.scenario_cmd:scenario_schema_command",
        "Print the JSON schema of a scenario (after ``base:`` is merged in).",
    ),
    "backtest": _Command(
        "dagster_corrmon.cli.backtest_cmd:backtest_command",
        "Replay a recorded history under alert rules: which alerts would have fired, and when.",
    ),
    "demo": _Command(
        "dagster_corrmon.cli.scenario_cmd:demo_command",
        "The flights demo: a simulated year with injected incidents, explained; then the UI.",
    ),
    "generate": _Command(
        "dagster_corrmon.cli.scenario_cmd:generate_command",
        "Draw N seeded scenarios over the pipeline SPEC into OUT, with counterfactual truth.",
    ),
    "evaluate": _Command(
        "dagster_corrmon.cli.scenario_cmd:evaluate_command",
        "Score the engine on N generated scenarios per spec, on the fast path and a full subset.",
    ),
    "postmortem": _Command(
        "dagster_corrmon.cli.postmortem_cmd:postmortem_command",
        "Draft a blameless postmortem of INCIDENT_ID from its stored records.",
    ),
    "retrospective": _Command(
        "dagster_corrmon.cli.retro_cmd:retrospective_command",
        "Incidents per asset and kind, after code changes, MTTD/MTTR, false positives per check.",
    ),
    "dashboard": _Command(
        "dagster_corrmon.cli.dashboard_cmd:dashboard_command",
        "One offline HTML page of each model's metric, incidents, drift and upstream events.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = _COMMANDS.get(cmd_name)
        if command is None:
            return None
        module_name, attribute = command.target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the registry's summaries: no command module is imported."""
        rows = [(name, _COMMANDS[name].summary) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dagster-corrmon")
def cli() -> None:
    """dagster-corrmon: which upstream change made the model worse, and which runs it hit."""


def error_line(error: BaseException | str, argv: list[str] | None = None) -> str:
    """``error`` as one terminal-safe line: line breaks as spaces, control characters (ANSI
    escape sequences from a column name, say) as ``\\xNN``, and no secret of a database URL
    given on the command line or in ``$CORRMON_DATABASE_URL``."""
    import itertools
    import os

    from dagster_corrmon.core.markdown import one_line
    from dagster_corrmon.store.redact import redact_secrets

    text = one_line(str(error))
    args = list(sys.argv[1:] if argv is None else argv)
    urls = [os.environ.get("CORRMON_DATABASE_URL")]
    urls += [value for flag, value in itertools.pairwise(args) if flag == "--database-url"]
    urls += [arg.split("=", 1)[1] for arg in args if arg.startswith("--database-url=")]
    for url in urls:
        text = redact_secrets(text, url)
    return text


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``corrmon`` script."""
    try:
        status = cli.main(args=argv, prog_name="corrmon", standalone_mode=False)
    except CorrmonError as error:
        click.echo(f"corrmon: error: {error_line(error, argv)}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("corrmon: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        # Usage errors too are one line (click's own form takes three, the usage first).
        click.echo(f"corrmon: error: {error_line(error.format_message(), argv)}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Exit as error:
        sys.exit(error.exit_code)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
