"""Dagster definitions of the flights reference project (loaded by the top-level workspace.yaml).

The whole project is its spec, ``flights.yaml``: the lineage assets, the corrmon checks and the
jobs all come from :func:`~dagster_corrmon.pipeline.build_monitored_pipeline`. The corrmon store
is ``$CORRMON_DATABASE_URL`` when set, else SQLite beside ``$DAGSTER_HOME``.
"""

import dagster as dg

from dagster_corrmon.examples.flights import SPEC_PATH
from dagster_corrmon.pipeline import build_monitored_pipeline, load_spec
from dagster_corrmon.resource import CorrmonResource

spec = load_spec(SPEC_PATH)

defs: dg.Definitions = build_monitored_pipeline(
    spec, resources={spec.monitoring.resource_key: CorrmonResource()}
)
