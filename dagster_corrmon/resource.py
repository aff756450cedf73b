"""``CorrmonResource``: the Dagster side of the signal store.

Checks, sensors and jobs get the store through this resource rather than opening it themselves, so
a deployment names its database once (``database_url``, or the store's own default) and tests bind
a throwaway SQLite file. The resource also knows how to read the *standard tags* of the
materialization a check judges — asset, partition, run, data version, code version, event time —
from the Dagster instance, and stamps them on every :class:`~dagster_corrmon.core.signal.Signal`
it makes, so the correlation engine can walk from any check result to the exact upstream data
version and run.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from dagster_corrmon.core.signal import Severity, Signal, SignalKind, ensure_utc
from dagster_corrmon.instance_api import latest_materialization
from dagster_corrmon.metadata import to_plain
from dagster_corrmon.store import CorrmonStore

DEFAULT_RESOURCE_KEY = "corrmon"


@dataclass(frozen=True, kw_only=True)
class MaterializationTags:
    """The standard tags of one checked materialization, stamped on every signal about it.

    ``event_time`` is the partition's start for time-partitioned assets (the time the data is
    *about*), else the materialization's time; ``run_id`` is the run that evaluated the check;
    ``materialization_run_id`` and ``storage_id`` point at the materialization that was judged
    (``None`` when the asset has never been materialized for this partition).
    """

    asset_key: str
    partition: str | None
    run_id: str | None
    data_version: str | None
    code_version: str | None
    event_time: datetime
    observed_at: datetime
    materialized_at: datetime | None = None
    materialization_run_id: str | None = None
    storage_id: int | None = None

    def signal(
        self,
        *,
        kind: SignalKind,
        name: str,
        value: float | None = None,
        passed: bool | None = None,
        severity: Severity = Severity.INFO,
        column: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str = "corrmon",
    ) -> Signal:
        """A signal about this materialization: the standard tags plus what the check found.

        Metadata is made JSON-safe (numpy scalars, NaN, timestamps) so the store never refuses
        it; the materialization pointer is added under ``materialization_run_id``/``storage_id``.
        """
        plain = to_plain(dict(metadata or {}))
        if self.materialization_run_id is not None:
            plain.setdefault("materialization_run_id", self.materialization_run_id)
        if self.storage_id is not None:
            plain.setdefault("storage_id", self.storage_id)
        return Signal(
            kind=kind,
            asset_key=self.asset_key,
            name=name,
            event_time=self.event_time,
            observed_at=self.observed_at,
            value=_finite_or_none(value),
            passed=passed,
            severity=severity,
            partition=self.partition,
            column=column,
            run_id=self.run_id,
            data_version=self.data_version,
            code_version=self.code_version,
            source=source,
            metadata=plain,
        )

    def for_partition(self, partition: str, *, event_time: datetime) -> "MaterializationTags":
        """The same tags about another partition (e.g. one found missing), without versions."""
        return replace(
            self,
            partition=partition,
            event_time=ensure_utc(event_time),
            data_version=None,
            code_version=None,
            materialized_at=None,
            materialization_run_id=None,
            storage_id=None,
        )


class CorrmonResource(dg.ConfigurableResource):
    """The corrmon signal store, for checks, sensors and jobs.

    Bind it under the key ``"corrmon"`` (the check factories' default ``resource_key``)::

        defs = dg.Definitions(assets=[...], asset_checks=[...],
                              resources={"corrmon": CorrmonResource()})

    The store is opened once per run (lazily, on first use) and closed when the run ends.
    """

    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the corrmon store, e.g. postgresql+psycopg2://user@host/db or "
            "sqlite:////path/corrmon.db. None: $CORRMON_DATABASE_URL if set, else SQLite at "
            "$DAGSTER_HOME/corrmon.db beside Dagster's own storage."
        ),
    )

    _store: CorrmonStore | None = PrivateAttr(default=None)

    def get_store(self) -> CorrmonStore:
        """The store, opened on first call and reused for the rest of the run."""
        if self._store is None:
            self._store = CorrmonStore(self.database_url)
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def write_signals(self, signals: Iterable[Signal]) -> int:
        """Store ``signals`` (idempotently); return how many were new."""
        return self.get_store().write_signals(signals)

    def materialization_tags(
        self,
        context: dg.AssetCheckExecutionContext | dg.OpExecutionContext,
        asset_key: dg.AssetKey,
        *,
        partition_key: str | None = None,
        partitions_def: dg.PartitionsDefinition | None = None,
        now: datetime | None = None,
    ) -> MaterializationTags:
        """Read the standard tags of ``asset_key``'s latest materialization (of ``partition_key``).

        The data and code versions come from the materialization record's
        ``dagster/data_version`` and ``dagster/code_version`` tags. With no materialization on
        record (a check run on its own before the asset ever ran) the versions are ``None`` and the
        event time is the partition start, else ``now``.
        """
        observed_at = ensure_utc(now) if now is not None else datetime.now(UTC)
        record = latest_materialization(context.instance, asset_key, partition=partition_key)
        materialized_at = (
            datetime.fromtimestamp(record.timestamp, tz=UTC) if record is not None else None
        )
        window_start = partition_start(partitions_def, partition_key)
        event_time = window_start or materialized_at or observed_at
        return MaterializationTags(
            asset_key=asset_key.to_user_string(),
            partition=partition_key,
            run_id=context.run.run_id,
            data_version=record.data_version if record is not None else None,
            code_version=record.code_version if record is not None else None,
            event_time=event_time,
            observed_at=observed_at,
            materialized_at=materialized_at,
            materialization_run_id=record.run_id if record is not None else None,
            storage_id=record.storage_id if record is not None else None,
        )


def partition_start(
    partitions_def: dg.PartitionsDefinition | None, partition_key: str | None
) -> datetime | None:
    """The start of ``partition_key``'s time window; ``None`` if the partitioning has no time."""
    window = partition_window(partitions_def, partition_key)
    return window[0] if window is not None else None


def partition_window(
    partitions_def: dg.PartitionsDefinition | None, partition_key: str | None
) -> tuple[datetime, datetime] | None:
    """``(start, end)`` in UTC of a time (or multi-with-time) partition; ``None`` otherwise."""
    if partitions_def is None or partition_key is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) or (
        isinstance(partitions_def, dg.MultiPartitionsDefinition)
        and partitions_def.has_time_window_dimension
    ):
        window = partitions_def.time_window_for_partition_key(partition_key)
    else:
        return None
    return ensure_utc(window.start), ensure_utc(window.end)


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
