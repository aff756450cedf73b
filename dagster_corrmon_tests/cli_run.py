"""Run the `corrmon` entry point in-process, as a shell would: exit code and everything printed."""

import contextlib
import io

from dagster_corrmon.cli.main import main


def corrmon(*args: str) -> tuple[int, str]:
    """``(exit code, stdout + stderr)`` of ``corrmon ARGS``."""
    printed = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            main(list(args))
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, printed.getvalue()
