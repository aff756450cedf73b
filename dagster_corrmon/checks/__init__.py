"""Asset-check factories that work on any user's assets, each result also a corrmon signal.

Every factory is keyword-only, validates its arguments when called (a bad argument is a
:class:`~dagster_corrmon.errors.ConfigError` naming it), and returns a sequence of
``dg.AssetChecksDefinition`` — like Dagster's own ``build_*_checks``. Checks of a partitioned
asset are partitioned the same way and judge the partition they run for. Every check needs a
:class:`~dagster_corrmon.resource.CorrmonResource` bound under ``resource_key`` (default
``"corrmon"``), and writes every result to the store with the standard tags.

:func:`bundle_checks` regroups the corrmon checks of each asset into one step (same checks, keys
and results; far fewer steps per partition) — for pipelines that run many checks per partition.

Great Expectations is imported only when a GX-backed check first runs, never at import or
definition time.
"""

from dagster_corrmon.checks._baseline import BaselinePolicy
from dagster_corrmon.checks._plan import bundle_checks
from dagster_corrmon.checks.drift import build_drift_checks
from dagster_corrmon.checks.freshness import build_freshness_checks, freshness_policy_for
from dagster_corrmon.checks.model_eval import build_model_evaluation_checks
from dagster_corrmon.checks.quality import (
    AllowedValues,
    InRange,
    MatchesRegex,
    Unique,
    Volume,
    build_data_quality_checks,
)
from dagster_corrmon.checks.schema import build_schema_contract_checks

__all__ = [
    "AllowedValues",
    "BaselinePolicy",
    "InRange",
    "MatchesRegex",
    "Unique",
    "Volume",
    "build_data_quality_checks",
    "build_drift_checks",
    "build_freshness_checks",
    "build_model_evaluation_checks",
    "build_schema_contract_checks",
    "bundle_checks",
    "freshness_policy_for",
]
