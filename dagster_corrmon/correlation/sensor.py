"""The correlation sensor: notices upstream changes and incidents, launches the correlation job.

A plain ``@dg.sensor`` with a JSON cursor kept *per asset and per check key*: Dagster's default
SQLite event log is sharded per run, so there is no global storage id to follow. Each tick reads
only what is new since the cursor — cost grows with new events, not with history:

* materializations of every lineage ancestor of a monitored model: a **new code version**, or a
  partition re-materialized with a **new data version**, becomes a signal and a trigger;
* asset-check evaluations on those assets (data quality, drift, schema, freshness, and the model's
  own metric checks): a failed ERROR check is a trigger;
* run failures that left planned ancestors unmaterialized: a ``run_failure`` signal per asset
  and partition, and a trigger.

Triggers are coalesced into one ``RunRequest`` per model and tick, whose ``run_key`` is derived
from the triggers, so a re-evaluated tick requests nothing twice. A cursor that cannot be read is
logged and replaced by a fresh one (history is then re-read once; signal writes are idempotent).
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dagster_corrmon import instance_api
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.engine import (
    INCIDENT_CHECK_NAME,
    short_id,
    tag_value,
    upstream_map,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, partition_start

CURSOR_VERSION = 1
CORRELATE_OP_NAME = "corrmon_correlate"


def _empty_cursor() -> dict[str, Any]:
    return {"v": CURSOR_VERSION, "mat": {}, "code": {}, "checks": {}, "failures_ts": None}


def load_cursor(raw: str | None, log: Any | None = None) -> dict[str, Any]:
    """Parse the sensor cursor; a corrupt one is logged and replaced by a fresh cursor."""
    if not raw:
        return _empty_cursor()
    try:
        cursor = json.loads(raw)
        if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
            raise ValueError(f"unexpected cursor shape or version: {raw[:80]!r}")
        for key in ("mat", "code", "checks"):
            if not isinstance(cursor.get(key), dict):
                raise ValueError(f"cursor field {key!r} is not an object")
    except ValueError as error:
        if log is not None:
            log.warning(f"corrmon: unreadable sensor cursor ({error}); starting afresh")
        return _empty_cursor()
    return cursor


def build_correlation_sensor(
    *,
    models: Sequence[MonitoredModel],
    job_name: str = "corrmon_correlation_job",
    name: str = "corrmon_correlation_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    resource_key: str = DEFAULT_RESOURCE_KEY,
) -> dg.SensorDefinition:
    """The sensor that launches the correlation job for each model whose lineage changed."""

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        description="corrmon: launches correlation when upstream data, code or checks change.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        corrmon: CorrmonResource = getattr(context.resources, resource_key)
        cursor = load_cursor(context.cursor, context.log)
        repository = context.repository_def
        assert repository is not None
        asset_graph = repository.asset_graph
        lineage = upstream_map(asset_graph)
        signals: list[Signal] = []
        triggers: dict[str, list[str]] = {model.name: [] for model in models}
        watched_by: dict[str, list[str]] = {}
        for model in models:
            evaluation = model.evaluation.to_user_string()
            for asset in [*ancestors_with_distance(lineage, evaluation), evaluation]:
                watched_by.setdefault(asset, []).append(model.name)

        now = datetime.now(UTC)
        for asset in sorted(watched_by):
            key = dg.AssetKey.from_user_string(asset)
            partitions_def = asset_graph.get(key).partitions_def if asset_graph.has(key) else None
            for found in _version_changes(context.instance, cursor, key, partitions_def, now):
                signals.append(found)
                for model_name in watched_by[asset]:
                    triggers[model_name].append(f"{found.kind.value}:{found.idempotency_key}")

        check_keys = [
            check_key
            for check_key in asset_graph.asset_check_keys
            if check_key.asset_key.to_user_string() in watched_by
            and check_key.name != INCIDENT_CHECK_NAME
        ]
        for check_key in sorted(check_keys, key=lambda k: k.to_user_string()):
            for failed in _new_failed_checks(context.instance, cursor, check_key):
                for model_name in watched_by[check_key.asset_key.to_user_string()]:
                    triggers[model_name].append(f"check:{check_key.to_user_string()}:{failed}")

        for found in _run_failures(context.instance, cursor, watched_by, asset_graph, now):
            signals.append(found)
            for model_name in watched_by[found.asset_key]:
                triggers[model_name].append(f"run_failure:{found.idempotency_key}")

        if signals:
            corrmon.write_signals(signals)
        requests = []
        for model in models:
            fired = triggers[model.name]
            if not fired:
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"{model.name}:{short_id(*sorted(fired))}",
                    run_config={
                        "ops": {
                            CORRELATE_OP_NAME: {
                                "config": {"model": model.name, "triggers": sorted(fired)[:50]}
                            }
                        }
                    },
                    tags={
                        "corrmon/model": tag_value(model.name),
                        "corrmon/trigger": tag_value(sorted(fired)[0].split(":")[0]),
                        "corrmon/trigger_count": str(len(fired)),
                    },
                )
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(cursor, sort_keys=True),
            skip_reason=None if requests else "no new upstream change, failed check or failure",
        )

    return _sensor


def _version_changes(
    instance: dg.DagsterInstance,
    cursor: dict[str, Any],
    key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    now: datetime,
) -> list[Signal]:
    """New code versions, and partitions re-materialized with a new data version."""
    asset = key.to_user_string()
    after = cursor["mat"].get(asset)
    records = instance_api.materializations_after(instance, key, after_storage_id=after)
    found: list[Signal] = []
    for record in records:
        cursor["mat"][asset] = record.storage_id
        event_time = partition_start(partitions_def, record.partition) or datetime.fromtimestamp(
            record.timestamp, tz=UTC
        )

        previous_code = cursor["code"].get(asset)
        if record.code_version and previous_code and record.code_version != previous_code:
            found.append(
                _version_signal(
                    SignalKind.CODE_VERSION_CHANGE, record, event_time, now, previous_code
                )
            )
        if record.code_version:
            cursor["code"][asset] = record.code_version
        if record.partition is not None and after is not None:
            # The partition's materialization just before this one (the oldest 50 were read
            # before: past 50 re-materializations that compared with the wrong one).
            previous = instance_api.latest_materialization(
                instance, key, partition=record.partition, before_storage_id=record.storage_id
            )
            if previous is not None and previous.data_version != record.data_version:
                previous_data = previous.data_version or ""
                found.append(
                    _version_signal(
                        SignalKind.DATA_VERSION_CHANGE, record, event_time, now, previous_data
                    )
                )
    return found


def _version_signal(
    kind: SignalKind,
    record: instance_api.MaterializationRecord,
    event_time: datetime,
    now: datetime,
    previous: str,
) -> Signal:
    """A new code or data version of one materialization, as a signal."""
    return Signal(
        kind=kind,
        asset_key=record.asset_key,
        name=kind.value.removesuffix("_change"),
        event_time=event_time,
        observed_at=now,
        partition=record.partition,
        run_id=record.run_id,
        data_version=record.data_version,
        code_version=record.code_version,
        passed=False,
        severity=Severity.WARN,
        metadata={"previous": previous},
    )


def _new_failed_checks(
    instance: dg.DagsterInstance, cursor: dict[str, Any], check_key: dg.AssetCheckKey
) -> list[str]:
    """Ids of check executions newer than the cursor that failed with ERROR severity."""
    name = check_key.to_user_string()
    last_seen = int(cursor["checks"].get(name, 0))
    failed: list[str] = []
    newest = last_seen
    for record in instance_api.check_executions_after(instance, check_key, after_id=last_seen):
        newest = max(newest, record.id)
        evaluation = record.evaluation
        if (
            isinstance(evaluation, dg.AssetCheckEvaluation)
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            failed.append(f"{record.partition or ''}#{record.id}")
    cursor["checks"][name] = newest
    return failed


def _run_failures(
    instance: dg.DagsterInstance,
    cursor: dict[str, Any],
    watched_by: dict[str, list[str]],
    asset_graph: Any,
    now: datetime,
) -> list[Signal]:
    failures = instance_api.run_failures_after(instance, after_timestamp=cursor.get("failures_ts"))
    found: list[Signal] = []
    for failure in failures:
        cursor["failures_ts"] = failure.timestamp
        missing = instance_api.planned_but_unmaterialized(instance, failure.run_id)
        if not missing:
            continue
        tags = instance_api.run_tags(instance, failure.run_id)
        partition = tags.get("dagster/partition")
        for key in sorted(missing, key=lambda k: k.to_user_string()):
            asset = key.to_user_string()
            if asset not in watched_by:
                continue
            partitions_def = asset_graph.get(key).partitions_def if asset_graph.has(key) else None
            event_time = partition_start(partitions_def, partition) or datetime.fromtimestamp(
                failure.timestamp, tz=UTC
            )
            found.append(
                Signal(
                    kind=SignalKind.RUN_FAILURE,
                    asset_key=asset,
                    name="run_failure",
                    event_time=event_time,
                    observed_at=now,
                    partition=partition,
                    run_id=failure.run_id,
                    passed=False,
                    severity=Severity.ERROR,
                    metadata={"job": failure.job_name or "", "planned_not_materialized": True},
                )
            )
    return found
