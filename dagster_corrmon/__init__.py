"""dagster-corrmon: which upstream change made the model worse, and which runs it hit.

The public API, in three groups:

* attaching corrmon to a Dagster project: :func:`build_corrmon_defs` with :class:`MonitoredModel`
  and :class:`CorrmonResource`, the check factories (``build_*_checks``, :func:`bundle_checks`)
  with the argument types they take (:class:`BaselinePolicy`, the validity rules
  :class:`InRange`, :class:`AllowedValues`, :class:`MatchesRegex`, :class:`Unique`,
  :class:`Volume`, :class:`RetrainPolicy`, :class:`AttributionConfig`), retraining under
  Declarative Automation or a schedule, the repair test on any project
  (:func:`build_rescoring_repair`), and :class:`CorrmonComponent` for ``dg`` projects;
* the spec-driven monitored pipeline: :func:`load_spec`, :func:`build_monitored_pipeline`;
* the results and errors: incidents, signals and the :class:`CorrmonError` tree.

The Dagster layer is imported on first use, so ``import dagster_corrmon`` (and the CLI) stays
light; ``dir(dagster_corrmon)`` lists every name either way.
"""

from typing import TYPE_CHECKING

from dagster_corrmon.core.incident import (
    AffectedRun,
    Cause,
    Incident,
    IncidentClass,
    IncidentStatus,
)
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import (
    ConfigError,
    CorrmonError,
    InputDataError,
    InsufficientDataError,
    SchemaVersionError,
    StoreError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # the names `__getattr__` below serves, for type checkers and IDEs
    from dagster_corrmon.checks import (
        AllowedValues,
        BaselinePolicy,
        InRange,
        MatchesRegex,
        Unique,
        Volume,
        build_data_quality_checks,
        build_drift_checks,
        build_freshness_checks,
        build_model_evaluation_checks,
        build_schema_contract_checks,
        bundle_checks,
    )
    from dagster_corrmon.components import CorrmonComponent
    from dagster_corrmon.core.attribution import AttributionConfig
    from dagster_corrmon.correlation.definitions import (
        build_corrmon_defs,
        build_retrain_guard_check,
        build_retrain_schedule,
        retrain_condition,
    )
    from dagster_corrmon.correlation.model import MonitoredModel
    from dagster_corrmon.correlation.retrain import RetrainPolicy
    from dagster_corrmon.pipeline.builder import build_monitored_pipeline
    from dagster_corrmon.pipeline.repair import build_rescoring_repair
    from dagster_corrmon.pipeline.spec import load_spec
    from dagster_corrmon.resource import CorrmonResource

# name -> the module that defines it; imported on first attribute access.
_LAZY = {
    "CorrmonResource": "dagster_corrmon.resource",
    "CorrmonComponent": "dagster_corrmon.components",
    "MonitoredModel": "dagster_corrmon.correlation.model",
    "RetrainPolicy": "dagster_corrmon.correlation.retrain",
    "AttributionConfig": "dagster_corrmon.core.attribution",
    "build_corrmon_defs": "dagster_corrmon.correlation.definitions",
    "build_retrain_schedule": "dagster_corrmon.correlation.definitions",
    "build_retrain_guard_check": "dagster_corrmon.correlation.definitions",
    "retrain_condition": "dagster_corrmon.correlation.definitions",
    "build_data_quality_checks": "dagster_corrmon.checks",
    "build_drift_checks": "dagster_corrmon.checks",
    "build_freshness_checks": "dagster_corrmon.checks",
    "build_model_evaluation_checks": "dagster_corrmon.checks",
    "build_schema_contract_checks": "dagster_corrmon.checks",
    "bundle_checks": "dagster_corrmon.checks",
    "BaselinePolicy": "dagster_corrmon.checks",
    "AllowedValues": "dagster_corrmon.checks",
    "InRange": "dagster_corrmon.checks",
    "MatchesRegex": "dagster_corrmon.checks",
    "Unique": "dagster_corrmon.checks",
    "Volume": "dagster_corrmon.checks",
    "build_monitored_pipeline": "dagster_corrmon.pipeline.builder",
    "build_rescoring_repair": "dagster_corrmon.pipeline.repair",
    "load_spec": "dagster_corrmon.pipeline.spec",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dagster_corrmon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [  # noqa: RUF022 — core types and errors, then the (lazy) Dagster layer
    "AffectedRun",
    "Cause",
    "ConfigError",
    "CorrmonError",
    "Incident",
    "IncidentClass",
    "IncidentStatus",
    "InputDataError",
    "InsufficientDataError",
    "SchemaVersionError",
    "Severity",
    "Signal",
    "SignalKind",
    "StoreError",
    "__version__",
    # the Dagster layer (lazy)
    "AllowedValues",
    "AttributionConfig",
    "BaselinePolicy",
    "CorrmonComponent",
    "CorrmonResource",
    "InRange",
    "MatchesRegex",
    "MonitoredModel",
    "RetrainPolicy",
    "Unique",
    "Volume",
    "build_corrmon_defs",
    "build_data_quality_checks",
    "build_drift_checks",
    "build_freshness_checks",
    "build_model_evaluation_checks",
    "build_monitored_pipeline",
    "build_rescoring_repair",
    "build_retrain_guard_check",
    "build_retrain_schedule",
    "build_schema_contract_checks",
    "bundle_checks",
    "load_spec",
    "retrain_condition",
]
