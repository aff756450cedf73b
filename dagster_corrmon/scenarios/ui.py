"""A code location for looking at a simulated history in the Dagster UI.

``corrmon simulate`` builds its definitions in-process; this module builds the same ones from
the scenario file named by ``CORRMON_SCENARIO`` (the store from ``CORRMON_DATABASE_URL``, else
``$DAGSTER_HOME/corrmon.db``)::

    CORRMON_SCENARIO=dagster_corrmon/scenarios/builtin/flights_year.yaml \\
    DAGSTER_HOME=$PWD/.corrmon-demo/dagster_home \\
    dagster dev -m dagster_corrmon.scenarios.ui
"""

import os

import dagster as dg

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.scenarios.simulate import scenario_definitions
from dagster_corrmon.scenarios.spec import load_scenario

SCENARIO_ENV = "CORRMON_SCENARIO"


def _load() -> dg.Definitions:
    path = os.environ.get(SCENARIO_ENV)
    if not path:
        raise ConfigError(f"set {SCENARIO_ENV} to the scenario YAML whose simulation to show")
    return scenario_definitions(load_scenario(path))


defs = _load()
