"""Incidents and their ranked causes: what the attribution engine concludes, and the catalog stores.

``IncidentStatus`` and ``IncidentClass`` values are stable identifiers stored in databases.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class IncidentStatus(StrEnum):
    """Lifecycle: open → acknowledged → resolved | false_positive."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


class IncidentClass(StrEnum):
    """What kind of incident the attribution engine decided this is."""

    DATA_FAULT = "data_fault"  # a defect in upstream data (nulls, units, schema, duplicates, ...)
    UPSTREAM_FAILURE = "upstream_failure"  # an upstream run failed / a batch went missing or late
    CODE_CHANGE = "code_change"  # a new code version of an upstream asset broke it
    CONCEPT_DRIFT = "concept_drift"  # performance decayed and no upstream fault explains it
    BENIGN_DRIFT = "benign_drift"  # inputs drifted but performance did not suffer
    UNKNOWN = "unknown"


# Classes that mean "fix the data first": retraining on top of them is blocked.
DATA_FAULT_CLASSES = frozenset({IncidentClass.DATA_FAULT, IncidentClass.UPSTREAM_FAILURE})


@dataclass(frozen=True, kw_only=True)
class Cause:
    """One ranked candidate cause of an incident, with the evidence for it."""

    rank: int  # 1 = most likely
    kind: str  # the SignalKind of the evidence, or "code_change" / "run_failure"
    asset_key: str
    score: float  # combined evidence score in [0, 1]; higher = more likely the cause
    column: str | None = None
    partition: str | None = None  # the first partition where the candidate shows
    event_time: datetime | None = None
    p_value: float | None = None  # association with the metric series (circular-shift test)
    # after Benjamini–Yekutieli across candidates; None when the history is too short for any
    # q-value to fall below the significance level (the permutation test's resolution)
    q_value: float | None = None
    repair_recovery: float | None = None  # share of the metric loss recovered by the repair test
    lineage_distance: int | None = None  # hops from the model asset
    shift_size: float | None = None  # robust (median/IQR) before-vs-after shift of the signal
    feature_importance: float | None = None
    signal_keys: tuple[str, ...] = ()  # idempotency keys of the signals cited
    data_versions: tuple[str, ...] = ()  # the faulty upstream data versions
    evidence: Mapping[str, Any] = field(default_factory=dict[str, Any])

    @property
    def confidence(self) -> float | None:
        """The probability that this candidate is the cause (``evidence["confidence"]``): a
        softmax over the candidates' scores with a "none of them" option, whose form
        ``core.attribution.AttributionConfig`` documents. Kept in the evidence so that it is
        stored with it."""
        value = self.evidence.get("confidence")
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True, kw_only=True)
class AffectedRun:
    """A Dagster run that consumed a faulty data version (or produced a degraded metric)."""

    run_id: str
    asset_key: str
    role: str  # "training" | "scoring" | "evaluation" | "upstream"
    partition: str | None = None
    at_risk: bool = False  # flagged before labels confirmed the damage
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Incident:
    """A performance shift (or an upstream fault that puts a model at risk), with its causes."""

    id: str
    model_asset: str
    metric: str
    classification: IncidentClass
    status: IncidentStatus = IncidentStatus.OPEN
    consequential: bool = True
    onset_time: datetime | None = None
    onset_partition: str | None = None
    detected_time: datetime | None = None
    detected_partition: str | None = None
    window_start: datetime | None = None  # the window excluded from baselines once confirmed
    window_end: datetime | None = None
    baseline_value: float | None = None
    observed_value: float | None = None
    summary: str = ""  # markdown, for people
    causes: tuple[Cause, ...] = ()
    affected_runs: tuple[AffectedRun, ...] = ()
    cited_signal_keys: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def __post_init__(self) -> None:
        object.__setattr__(self, "classification", IncidentClass(self.classification))
        object.__setattr__(self, "status", IncidentStatus(self.status))

    @property
    def top_cause(self) -> Cause | None:
        return min(self.causes, key=lambda cause: cause.rank) if self.causes else None
