"""The ``corrmon`` command line.

Sub-commands live in their own modules and are imported only when invoked, so ``corrmon --help``
stays fast (great_expectations and evidently take seconds to import). Any :class:`CorrmonError`
becomes one line on stderr and exit code 2 — never a traceback.
"""

import importlib
import sys

import click

from dagster_corrmon.errors import CorrmonError

# command name -> "module:attribute"; each module owns one concept.
_COMMANDS: dict[str, str] = {
    "profile": "dagster_corrmon.cli.drift_cmd:profile_command",
    "drift": "dagster_corrmon.cli.drift_cmd:drift_command",
    "db": "dagster_corrmon.cli.db_cmd:db_group",
    "incidents": "dagster_corrmon.cli.incidents_cmd:incidents_group",
    "explain": "dagster_corrmon.cli.incidents_cmd:explain_command",
    "simulate": "dagster_corrmon.cli.scenario_cmd:simulate_command",
    "score": "dagster_corrmon.cli.scenario_cmd:score_command",
    "scenario-schema": "dagster_corrmon.cli.scenario_cmd:scenario_schema_command",
    "backtest": "dagster_corrmon.cli.backtest_cmd:backtest_command",
    "demo": "dagster_corrmon.cli.scenario_cmd:demo_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self.get_command(ctx, name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # that command is not built yet
                return None
            raise
        return getattr(module, attribute, None)


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
