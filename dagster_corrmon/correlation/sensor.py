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
from the triggers, so a re-evaluated tick requests nothing twice. The cursor is parsed into a
typed, frozen :class:`SensorCursor`: an unreadable one is replaced whole, a wrong-typed entry is
dropped (what it tracked is re-read once; signal writes are idempotent), and either is logged.
A tick has a time budget, and finishes any correlation pass that died (see ``annotation.py``).
"""

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dagster_corrmon import instance_api
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.annotation import (
    INCIDENT_CHECK_NAME,
    reconcile_incident_effects,
    short_id,
    tag_value,
    unfinished_pass,
)
from dagster_corrmon.correlation.engine import upstream_map
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, partition_start

CURSOR_VERSION = 1
CORRELATE_OP_NAME = "corrmon_correlate"


DEFAULT_TICK_BUDGET_SECONDS = 40.0  # Dagster gives a sensor tick 60 s by default


@dataclass(frozen=True, kw_only=True)
class SensorCursor:
    """The correlation sensor's cursor, parsed and validated.

    ``materializations``: per watched asset, the storage id of the last materialization read;
    ``code_versions``: per asset, the last code version seen; ``checks``: per check key, the id of
    the last execution read; ``failures_ts``: the timestamp of the last run failure read.
    """

    materializations: Mapping[str, int] = field(default_factory=dict)
    code_versions: Mapping[str, str] = field(default_factory=dict)
    checks: Mapping[str, int] = field(default_factory=dict)
    failures_ts: float | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "mat": dict(self.materializations),
                "code": dict(self.code_versions),
                "checks": dict(self.checks),
                "failures_ts": self.failures_ts,
            },
            sort_keys=True,
        )

    def working_copy(self) -> dict[str, Any]:
        """A mutable copy the tick advances as it reads (see :func:`_from_working_copy`)."""
        return {
            "mat": dict(self.materializations),
            "code": dict(self.code_versions),
            "checks": dict(self.checks),
            "failures_ts": self.failures_ts,
        }


def _from_working_copy(work: Mapping[str, Any]) -> SensorCursor:
    return SensorCursor(
        materializations=dict(work["mat"]),
        code_versions=dict(work["code"]),
        checks=dict(work["checks"]),
        failures_ts=work["failures_ts"],
    )


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_timestamp(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _entries(
    raw: object, field_name: str, valid: Callable[[object], bool], problems: list[str]
) -> tuple[dict[str, Any], set[str]]:
    """The valid ``{str: value}`` entries of one cursor field, and the keys of invalid ones
    (each also described in ``problems``)."""
    if not isinstance(raw, dict):
        problems.append(f"field {field_name!r} is {type(raw).__name__}, not an object")
        return {}, set()
    kept: dict[str, Any] = {}
    bad: set[str] = set()
    for key, value in raw.items():
        if isinstance(key, str) and valid(value):
            kept[key] = value
        else:
            problems.append(f"{field_name}[{str(key)[:60]!r}] = {str(value)[:40]!r}")
            bad.add(str(key))
    return kept, bad


def parse_cursor(raw: str | None) -> tuple[SensorCursor, tuple[str, ...]]:
    """The cursor in ``raw`` and what was wrong with it (empty when it was sound).

    Invalid entries are dropped, so what they tracked is read again from the start (signal
    writes are idempotent): an asset's materialization id and code version go together, a check
    key's execution id alone, an invalid failure timestamp re-reads run failures. An unreadable
    or foreign cursor is replaced whole.
    """
    if not raw:
        return SensorCursor(), ()
    try:
        loaded = json.loads(raw)
    except ValueError as error:
        return SensorCursor(), (f"not JSON ({error})",)
    if not isinstance(loaded, dict) or loaded.get("v") != CURSOR_VERSION:
        return SensorCursor(), (f"unexpected cursor shape or version: {raw[:80]!r}",)
    problems: list[str] = []
    materializations, bad_mat = _entries(loaded.get("mat"), "mat", _is_id, problems)
    code_versions, bad_code = _entries(
        loaded.get("code"), "code", lambda value: isinstance(value, str), problems
    )
    checks, _ = _entries(loaded.get("checks"), "checks", _is_id, problems)
    # An asset's id and code version describe one reading position: drop both together.
    for asset in bad_mat | bad_code:
        materializations.pop(asset, None)
        code_versions.pop(asset, None)
    if not (isinstance(loaded.get("mat"), dict) and isinstance(loaded.get("code"), dict)):
        materializations, code_versions = {}, {}
    failures_ts = loaded.get("failures_ts")
    if failures_ts is not None and not _is_timestamp(failures_ts):
        problems.append(f"failures_ts = {str(failures_ts)[:40]!r}")
        failures_ts = None
    cursor = SensorCursor(
        materializations=materializations,
        code_versions=code_versions,
        checks=checks,
        failures_ts=None if failures_ts is None else float(failures_ts),
    )
    return cursor, tuple(problems)


def load_cursor(raw: str | None, log: Any | None = None) -> SensorCursor:
    """Parse the sensor cursor; what is invalid in it is logged and read again from scratch."""
    cursor, problems = parse_cursor(raw)
    if problems and log is not None:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        log.warning(f"corrmon: invalid sensor cursor ({shown}); rebuilding what it tracked")
    return cursor


def build_correlation_sensor(
    *,
    models: Sequence[MonitoredModel],
    job_name: str = "corrmon_correlation_job",
    name: str = "corrmon_correlation_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    tick_budget_seconds: float = DEFAULT_TICK_BUDGET_SECONDS,
) -> dg.SensorDefinition:
    """The sensor that launches the correlation job for each model whose lineage changed.

    A tick stops reading further assets and check keys once ``tick_budget_seconds`` have passed
    and it has moved the cursor (so every tick makes progress and a backlog drains): what it did
    not reach keeps its cursor position and is read on the next tick. Each tick also finishes,
    for each model, a correlation pass whose run ended before the pass did: its incident effects
    are applied at once and a new pass is requested
    (:func:`~dagster_corrmon.correlation.annotation.unfinished_pass`).
    """

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
        deadline = time.monotonic() + tick_budget_seconds
        cursor = load_cursor(context.cursor, context.log).working_copy()
        at_start = json.dumps(cursor, sort_keys=True)

        def in_budget() -> bool:
            # Past the deadline, stop once the tick has moved the cursor at all: every tick
            # makes progress, so a backlog drains however slow one read is.
            return time.monotonic() < deadline or json.dumps(cursor, sort_keys=True) == at_start

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
            if not in_budget():
                break
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
            if not in_budget():
                break
            for failed in _new_failed_checks(context.instance, cursor, check_key):
                for model_name in watched_by[check_key.asset_key.to_user_string()]:
                    triggers[model_name].append(f"check:{check_key.to_user_string()}:{failed}")

        failures = (
            _run_failures(context.instance, cursor, watched_by, asset_graph, now)
            if in_budget()
            else []
        )
        for found in failures:
            signals.append(found)
            for model_name in watched_by[found.asset_key]:
                triggers[model_name].append(f"run_failure:{found.idempotency_key}")

        if signals:
            corrmon.write_signals(signals)
        store = corrmon.get_store()
        for model in models:
            dead = unfinished_pass(context.instance, store, model)
            if dead is None:
                continue
            repaired = reconcile_incident_effects(context.instance, store, model)
            context.log.warning(
                f"corrmon: the correlation pass of {model.name} in run {dead} did not finish; "
                f"annotation completed for {list(repaired) or 'no incident'}, a new pass requested"
            )
            triggers[model.name].append(f"reconcile:{dead}")
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
            cursor=_from_working_copy(cursor).to_json(),
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
