"""dagster-corrmon: which upstream change made the model worse, and which runs it hit."""

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

__all__ = [
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
]
