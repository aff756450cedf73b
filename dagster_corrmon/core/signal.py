"""One event schema for everything corrmon observes.

Every check result, metric, drift score, run failure, schema change, data/code version change and
external incident is a :class:`Signal`. ``kind`` and ``severity`` values are stable identifiers:
they live in databases for years, so never rename one.
"""

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class SignalKind(StrEnum):
    """What a signal reports. Stored as its string value."""

    METRIC = "metric"  # a model performance metric value (F1, ROC-AUC, latency p95, ...)
    DRIFT = "drift"  # a per-column distribution drift score against a reference profile
    DATA_QUALITY = "data_quality"  # completeness, validity, volume, expectation-suite results
    SCHEMA_CHANGE = "schema_change"  # columns added / removed / renamed / retyped
    FRESHNESS = "freshness"  # a partition arrived late or not at all
    RUN_FAILURE = "run_failure"  # a run failed, leaving planned assets unmaterialized
    DATA_VERSION_CHANGE = "data_version_change"  # an asset materialized a new data version
    CODE_VERSION_CHANGE = "code_version_change"  # an asset materialized under a new code version
    EXTERNAL_INCIDENT = "external_incident"  # reported from outside (pager, status page, ...)
    RETRAIN_DECISION = "retrain_decision"  # a retrain was requested, skipped or blocked, and why


class Severity(StrEnum):
    """How bad a signal is. ``INFO`` for passing results and plain observations."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; naive datetimes are taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Signal:
    """One observation about one asset (and optionally one partition and one column).

    ``event_time`` is when the observed thing happened (the partition's time, the failure's time);
    ``observed_at`` is when corrmon learned of it. Both are aware UTC datetimes.
    """

    kind: SignalKind
    asset_key: str  # Dagster's user string form: "raw/weather"
    name: str  # check or metric name: "null_fraction", "roc_auc", "drift"
    event_time: datetime
    observed_at: datetime | None = None
    value: float | None = None
    passed: bool | None = None
    severity: Severity = Severity.INFO
    partition: str | None = None
    column: str | None = None
    run_id: str | None = None
    data_version: str | None = None
    code_version: str | None = None
    source: str = "corrmon"
    metadata: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SignalKind(self.kind))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "event_time", ensure_utc(self.event_time))
        if self.observed_at is not None:
            object.__setattr__(self, "observed_at", ensure_utc(self.observed_at))
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))
        if self.passed is not None:
            object.__setattr__(self, "passed", bool(self.passed))

    @functools.cached_property
    def idempotency_key(self) -> str:
        """Stable key: the same observation written twice is stored once.

        (source, run id, asset, partition, name, column, data version) — see DESIGN.md §3. The kind
        is part of it too, so a metric and a check that share a name never collide, and so is the
        event time: without it, a check on an unpartitioned asset with no run id or data version
        would keep its first observation forever and drop every later one as a duplicate.

        Computed once per signal (the correlation job reads tens of thousands per run).
        """
        parts = [
            self.source,
            self.kind.value,
            self.run_id or "",
            self.asset_key,
            self.partition or "",
            self.name,
            self.column or "",
            self.data_version or "",
            self.event_time.isoformat(),
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
