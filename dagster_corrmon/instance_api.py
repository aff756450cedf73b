"""Every call corrmon makes into Dagster's instance that is not decorated ``@public``, in one place.

Dagster 1.13 has no public API for adding tags to a finished run, for the assets a run planned but
did not materialize, or for an asset check's execution history. These functions wrap the internal
calls the Dagster UI itself uses, so a Dagster upgrade that moves them is a one-file change here.
Public reads (``fetch_materializations``, ``fetch_run_status_changes``) are wrapped too, to keep the
provenance conventions (``dagster/input_data_version/<key>`` tags) in one module.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_DATA_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer/"


@dataclass(frozen=True)
class MaterializationRecord:
    """One materialization with its provenance: what it is, and exactly what it consumed."""

    storage_id: int
    asset_key: str
    partition: str | None
    run_id: str
    timestamp: float
    data_version: str | None
    code_version: str | None
    input_data_versions: Mapping[str, str]  # upstream asset key (user string) -> data version
    input_event_pointers: Mapping[str, int]  # upstream asset key -> storage id consumed


def partition_input_data_version(partition_data_versions: Iterable[tuple[str, str]]) -> str:
    """What Dagster records as ``dagster/input_data_version/<key>`` for a partitioned input.

    Dagster 1.13 hashes the consumed partitions' data versions (sorted by partition key,
    concatenated) with SHA-256 — even for a single partition. Given ``(partition_key,
    data_version)`` pairs this recomputes it, so a consumer's tag can be matched to the exact
    upstream partitions it read. (``dagster/input_event_pointer/<key>`` is no substitute: it
    points at the upstream asset's latest materialization of *any* partition.)
    """
    ordered = [version for _, version in sorted(partition_data_versions)]
    return hashlib.sha256("".join(ordered).encode()).hexdigest()


def consumed_identity(record: "MaterializationRecord") -> str | None:
    """The value a one-partition consumer records as this materialization's input version."""
    if record.data_version is None:
        return None
    if record.partition is None:
        return record.data_version
    return partition_input_data_version([(record.partition, record.data_version)])


def _to_record(record: dg.EventLogRecord) -> MaterializationRecord:
    materialization = record.asset_materialization
    tags: Mapping[str, str] = (materialization.tags if materialization else None) or {}
    input_versions = {
        key.removeprefix(INPUT_DATA_VERSION_PREFIX): value
        for key, value in tags.items()
        if key.startswith(INPUT_DATA_VERSION_PREFIX)
    }
    input_pointers = {
        key.removeprefix(INPUT_EVENT_POINTER_PREFIX): int(value)
        for key, value in tags.items()
        if key.startswith(INPUT_EVENT_POINTER_PREFIX) and value.isdigit()
    }
    asset_key = record.asset_key
    return MaterializationRecord(
        storage_id=record.storage_id,
        asset_key=asset_key.to_user_string() if asset_key else "",
        partition=record.partition_key,
        run_id=record.run_id,
        timestamp=record.timestamp,
        data_version=tags.get(DATA_VERSION_TAG),
        code_version=tags.get(CODE_VERSION_TAG),
        input_data_versions=input_versions,
        input_event_pointers=input_pointers,
    )


def materializations_after(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    after_storage_id: int | None = None,
    partitions: Sequence[str] | None = None,
    limit: int = 1000,
) -> list[MaterializationRecord]:
    """Materializations of one asset newer than a storage id, oldest first (for sensor cursors)."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key,
            after_storage_id=after_storage_id,
            asset_partitions=list(partitions) if partitions is not None else None,
        ),
        limit=limit,
        ascending=True,
    )
    return [_to_record(record) for record in result.records]


def materialized_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> set[str]:
    """Which of ``partitions`` of an asset have been materialized at least once: one query
    (latest storage id per partition, restricted to these partitions), whatever the history."""
    wanted = set(partitions)
    if not wanted:
        return set()
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=wanted
    )
    return set(latest) & wanted


def latest_materialization(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    partition: str | None = None,
    before_storage_id: int | None = None,
) -> MaterializationRecord | None:
    """The newest materialization of an asset (of one partition, if given; stored before
    ``before_storage_id``, if given)."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key,
            asset_partitions=[partition] if partition is not None else None,
            before_storage_id=before_storage_id,
        ),
        limit=1,
        ascending=False,
    )
    return _to_record(result.records[0]) if result.records else None


def all_materializations(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    from_storage_id: int | None = None,
    partitions: Sequence[str] | None = None,
    page_size: int = 1000,
) -> list[MaterializationRecord]:
    """Every materialization of an asset (from ``from_storage_id`` on, inclusive; of these
    ``partitions`` only, if given), oldest first, read page by page."""
    records: list[MaterializationRecord] = []
    after = None if from_storage_id is None else from_storage_id - 1
    while True:
        page = materializations_after(
            instance, asset_key, after_storage_id=after, partitions=partitions, limit=page_size
        )
        records.extend(page)
        if len(page) < page_size:
            return records
        after = page[-1].storage_id


def add_run_tags(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """Merge tags into a (possibly finished) run. Internal API: no public equivalent in 1.13."""
    instance.add_run_tags(run_id, dict(tags))


def planned_but_unmaterialized(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    """Assets a run planned to materialize but did not (OSS stores no asset-failure events)."""
    planned = instance.get_asset_keys_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    )
    done = instance.get_asset_keys_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return set(planned) - set(done)


def planned_partitions(instance: dg.DagsterInstance, run_id: str) -> Mapping[dg.AssetKey, set[str]]:
    """Partitions per asset that a run planned to materialize."""
    found = instance.get_asset_partitions_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    )
    return {key: {p for p in partitions if p is not None} for key, partitions in found.items()}


@dataclass(frozen=True)
class RunFailureRecord:
    storage_id: int
    run_id: str
    timestamp: float
    job_name: str | None


def run_failures_after(
    instance: dg.DagsterInstance, *, after_timestamp: float | None, limit: int = 200
) -> list[RunFailureRecord]:
    """Run failures newer than a timestamp, oldest first.

    A timestamp cursor, not a storage id: on the default run-sharded SQLite event log, storage ids
    of run-level events are not comparable across shards.
    """
    result = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_FAILURE, after_timestamp=after_timestamp
        ),
        limit=limit,
        ascending=True,
    )
    failures: list[RunFailureRecord] = []
    for record in result.records:
        run = instance.get_run_by_id(record.run_id)
        failures.append(
            RunFailureRecord(
                storage_id=record.storage_id,
                run_id=record.run_id,
                timestamp=record.timestamp,
                job_name=run.job_name if run else None,
            )
        )
    return failures


def run_tags(instance: dg.DagsterInstance, run_id: str) -> Mapping[str, str]:
    run = instance.get_run_by_id(run_id)
    return dict(run.tags) if run else {}


def check_executions_after(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    *,
    after_id: int,
    first_page: int = 2,
    max_page: int = 256,
) -> list[Any]:
    """Executions of ``check_key`` with an id above ``after_id``, newest first.

    Dagster pages check history backwards from the newest, and decodes every record of a page
    (its evaluation event with all metadata). A sensor tick usually finds one new execution per
    check: the first page holds two records (the new one and the one already seen), and each
    further page doubles up to ``max_page``, so a tick costs what is new, not a fixed page of
    history per check (at 20 records a page that was ~4 ms per check on a year's history).
    """
    storage = instance.event_log_storage
    found: list[Any] = []
    cursor: int | None = None
    page = max(1, min(first_page, max_page))
    while True:
        records = storage.get_asset_check_execution_history(check_key, limit=page, cursor=cursor)
        for record in records:
            if record.id <= after_id:
                return found
            found.append(record)
        if len(records) < page:
            return found
        cursor = records[-1].id
        page = min(page * 2, max_page)
