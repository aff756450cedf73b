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

from dagster_corrmon.correlation.definitions import build_corrmon_defs
from dagster_corrmon.correlation.retrain import RetrainPolicy
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.builder import build_monitored_pipeline, build_partitions_def
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.scenarios.simulate import _partition_span, monitored_model
from dagster_corrmon.scenarios.spec import load_scenario

SCENARIO_ENV = "CORRMON_SCENARIO"


def scenario_definitions(path: str) -> dg.Definitions:
    """The definitions a simulation of ``path`` ran (incidents are data, not definitions)."""
    spec = load_scenario(path)
    resource = CorrmonResource()
    pipeline = build_monitored_pipeline(spec, resources={spec.monitoring.resource_key: resource})
    # The simulation's retrain policy, by the simulation's rule: a correlation run launched from
    # the UI must not decide retraining under the library default (a 7-day cooldown).
    keys = list(build_partitions_def(spec).get_partition_keys())
    policy = RetrainPolicy(
        on_concept_drift=spec.retraining.on_concept_drift,
        cooldown=_partition_span(keys) * spec.retraining.cooldown_partitions,
    )
    return dg.Definitions.merge(
        pipeline,
        build_corrmon_defs(models=[monitored_model(spec)], store=resource, retrain_policy=policy),
    )


def _load() -> dg.Definitions:
    path = os.environ.get(SCENARIO_ENV)
    if not path:
        raise ConfigError(f"set {SCENARIO_ENV} to the scenario YAML whose simulation to show")
    return scenario_definitions(path)


defs = _load()
