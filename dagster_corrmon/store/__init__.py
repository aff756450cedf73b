"""The corrmon store: signals and the incident catalog (SQLAlchemy Core; SQLite or PostgreSQL).

Imports no Dagster; speaks the core types. See :class:`CorrmonStore`.
"""

from dagster_corrmon.store.deliveries import Delivery
from dagster_corrmon.store.schema import SCHEMA_VERSION
from dagster_corrmon.store.store import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    DATABASE_URL_ENV,
    CorrmonStore,
    PruneResult,
    SignalPoint,
    StatusChange,
    StoreInfo,
    UpgradeResult,
    default_database_url,
    hide_password,
    normalize_database_url,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ALLOWED_TRANSITIONS",
    "DATABASE_URL_ENV",
    "SCHEMA_VERSION",
    "CorrmonStore",
    "Delivery",
    "PruneResult",
    "SignalPoint",
    "StatusChange",
    "StoreInfo",
    "UpgradeResult",
    "default_database_url",
    "hide_password",
    "normalize_database_url",
]
