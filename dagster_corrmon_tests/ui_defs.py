"""The code location the GraphQL test loads, the way ``dagster dev -m`` / the webserver loads one.

``dagster dev -m dagster_corrmon_tests.ui_defs`` serves it too. The store resource is left at its
default (``$CORRMON_DATABASE_URL``, else ``$DAGSTER_HOME/corrmon.db``) — what a user deploying
corrmon beside their instance writes — so the code server and the test that builds the history
resolve the same store from the same environment.
"""

from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon_tests.correlation_project import build_defs

defs = build_defs(store=CorrmonResource())
