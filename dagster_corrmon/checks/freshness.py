"""Freshness and lateness of partitions, as asset checks whose results are corrmon signals.

What Dagster offers, and what this adds. ``dg.FreshnessPolicy`` (1.13; the OSS
``FreshnessDaemon`` evaluates it) answers *"is the asset's latest materialization recent enough,
right now?"*: it judges the asset as a whole, continuously, and is the right tool for a trailing gap
(the feed stopped and nothing new arrived). It cannot say that partition 2013-03-08 arrived six
hours after its deadline, nor that 2013-03-07 is missing while 03-08 and 03-09 exist, and its
evaluations never reach the corrmon store, so the correlation engine could not cite them. The
superseded ``build_time_partition_freshness_checks`` only asks whether the latest partition exists
by a cron deadline.

So there are two parts, meant to be used together:

* :func:`build_freshness_checks` — one ``<prefix>_freshness`` check per asset. For a
  time-partitioned asset, run with the partition it judges: the partition is **late** when its
  *first* materialization happened after its expected arrival (partition end + ``allowed_lateness``;
  re-materializing an old partition later is not lateness), and earlier partitions within
  ``lookback_partitions`` that were never materialized are **missing** (a later partition exists).
  For an unpartitioned asset, the check fails when the latest materialization is older than
  ``max_age`` when the check runs (schedule the check to make that meaningful).
* :func:`freshness_policy_for` — the matching ``dg.FreshnessPolicy`` (fail after one partition
  period plus the allowed lateness), to attach with ``dg.apply_freshness_policy`` so Dagster's own
  daemon and UI cover the trailing gap these checks cannot see.

Backfills are not arrivals: partitions first materialized by a run tagged ``dagster/backfill`` are
not judged late, and a partition first materialized more than ``historical_horizon`` after its
expected arrival is treated as a historical load (recorded, with a note, but passing). Set
``historical_horizon=None`` to judge every partition.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from dagster_corrmon import metadata as md
from dagster_corrmon.checks._common import (
    AssetTarget,
    CheckOutcome,
    CheckTarget,
    check_name_prefix,
    positive_int,
    resolve_targets,
    timedelta_arg,
    to_severity,
    worst,
)
from dagster_corrmon.checks._plan import CheckCall, CheckPlan, check_definitions
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.instance_api import materializations_after, materialized_partitions, run_tags
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, MaterializationTags, partition_window

FACTORY = "build_freshness_checks"

#: Stored signal names (stable identifiers).
PARTITION_LATENESS = "partition_lateness"
PARTITION_MISSING = "partition_missing"
ASSET_AGE = "asset_age"

BACKFILL_TAG = "dagster/backfill"


def freshness_policy_for(
    partitions_def: dg.PartitionsDefinition,
    *,
    allowed_lateness: timedelta = timedelta(0),
) -> dg.FreshnessPolicy:
    """The ``dg.FreshnessPolicy`` matching :func:`build_freshness_checks` for this partitioning.

    A time-partitioned feed that delivers each partition by its end + ``allowed_lateness`` always
    has a materialization younger than one partition period + ``allowed_lateness``; the policy
    fails past that and warns past one period. Attach it with
    ``defs.map_asset_specs(func=lambda spec: dg.apply_freshness_policy(spec, policy))``.
    """
    allowed_lateness = timedelta_arg(
        allowed_lateness, factory="freshness_policy_for", argument="allowed_lateness"
    )
    period = _partition_period(partitions_def)
    return dg.FreshnessPolicy.time_window(
        fail_window=period + allowed_lateness, warn_window=period if allowed_lateness else None
    )


def _partition_period(partitions_def: dg.PartitionsDefinition) -> timedelta:
    time_def = _time_partitions(partitions_def)
    if time_def is None:
        raise ConfigError(
            f"freshness_policy_for: {partitions_def} has no time dimension; use "
            "dg.FreshnessPolicy.time_window(fail_window=...) with the age you expect"
        )
    first = time_def.get_first_partition_window()
    if first is None:
        raise ConfigError(f"freshness_policy_for: {partitions_def} has no partitions yet")
    return first.end - first.start


def _time_partitions(
    partitions_def: dg.PartitionsDefinition | None,
) -> dg.TimeWindowPartitionsDefinition | None:
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return partitions_def
    if (
        isinstance(partitions_def, dg.MultiPartitionsDefinition)
        and partitions_def.has_time_window_dimension
    ):
        return partitions_def.time_window_partitions_def
    return None


def build_freshness_checks(
    *,
    assets: Sequence[AssetTarget] | AssetTarget,
    allowed_lateness: timedelta = timedelta(0),
    lookback_partitions: int = 7,
    max_age: timedelta | None = None,
    historical_horizon: timedelta | None = timedelta(days=30),
    late_severity: Any = Severity.WARN,
    missing_severity: Any = Severity.ERROR,
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    name_prefix: str = "corrmon",
    blocking: bool = False,
) -> Sequence[dg.AssetChecksDefinition]:
    """One ``<prefix>_freshness`` check per asset (see the module docstring for the semantics).

    Args:
        assets: the assets to check.
        allowed_lateness: how long after its partition ends a partition may still arrive on time.
        lookback_partitions: how many partitions before the judged one are checked for gaps.
        max_age: required for unpartitioned assets: the oldest acceptable latest materialization.
        historical_horizon: lateness beyond this is a historical load, not a late arrival
            (``None``: judge every partition).
        late_severity: severity of a late partition or a too-old asset (default WARN).
        missing_severity: severity of a missing partition (default ERROR).
        partitions_def: partitioning for assets given only by key.
        resource_key: the key a :class:`~dagster_corrmon.resource.CorrmonResource` is bound to.
        name_prefix: check names are ``<name_prefix>_freshness``.
        blocking: make the checks blocking.
    """
    targets = resolve_targets(assets, factory=FACTORY, partitions_def=partitions_def)
    prefix = check_name_prefix(name_prefix, factory=FACTORY)
    lateness = timedelta_arg(allowed_lateness, factory=FACTORY, argument="allowed_lateness")
    lookback = positive_int(
        lookback_partitions, factory=FACTORY, argument="lookback_partitions", minimum=0
    )
    if max_age is not None:
        max_age = timedelta_arg(max_age, factory=FACTORY, argument="max_age")
    if historical_horizon is not None:
        historical_horizon = timedelta_arg(
            historical_horizon, factory=FACTORY, argument="historical_horizon"
        )
    late = to_severity(late_severity, factory=FACTORY, argument="late_severity")
    missing = to_severity(missing_severity, factory=FACTORY, argument="missing_severity")
    check_name = f"{prefix}_freshness"

    def freshness_plan(
        target: CheckTarget, time_def: dg.TimeWindowPartitionsDefinition | None
    ) -> CheckPlan:
        def evaluate(call: CheckCall) -> CheckOutcome:
            partition = call.tags.partition
            if time_def is None or partition is None:
                assert max_age is not None  # checked at definition time
                return _judge_age(call.tags, now=call.now, max_age=max_age, severity=late)
            return _judge_partition(
                call.context.instance,
                target.key,
                tags=call.tags,
                time_def=time_def,
                partitions_def=target.partitions_def,
                allowed_lateness=lateness,
                lookback=lookback,
                historical_horizon=historical_horizon,
                late=late,
                missing=missing,
            )

        return CheckPlan(
            target=target,
            name=check_name,
            description=(
                f"Partition arrival: late when first materialized after partition end + "
                f"{lateness}; missing when absent while a later partition exists."
                if time_def is not None
                else f"The latest materialization is at most {max_age} old."
            ),
            kind=SignalKind.FRESHNESS,
            evaluate=evaluate,
            resource_key=resource_key,
            blocking=blocking,
            reads_value=False,
        )

    checks: list[CheckPlan] = []
    for target in targets:
        time_def = _time_partitions(target.partitions_def)
        if time_def is None and max_age is None:
            raise ConfigError(
                f"{FACTORY}: asset {target.key.to_user_string()!r} is not time-partitioned, so "
                "lateness has no deadline: pass max_age= (the oldest acceptable materialization)"
            )
        checks.append(freshness_plan(target, time_def))
    return check_definitions(checks)


def _judge_age(
    tags: MaterializationTags, *, now: datetime, max_age: timedelta, severity: Severity
) -> CheckOutcome:
    if tags.materialized_at is None:
        signal = tags.signal(
            kind=SignalKind.FRESHNESS, name=ASSET_AGE, passed=False, severity=severity
        )
        return CheckOutcome(
            passed=False,
            severity=severity,
            description=f"asset {tags.asset_key!r} has never been materialized",
            signals=[signal],
            failed_count=1,
        )
    age = now - tags.materialized_at
    passed = age <= max_age
    signal = tags.signal(
        kind=SignalKind.FRESHNESS,
        name=ASSET_AGE,
        value=age.total_seconds(),
        passed=passed,
        severity=Severity.INFO if passed else severity,
        metadata={"max_age_seconds": max_age.total_seconds()},
    )
    return CheckOutcome(
        passed=passed,
        severity=Severity.INFO if passed else severity,
        description=(
            f"latest materialization of {tags.asset_key!r} is {_human(age)} old "
            f"({'within' if passed else 'beyond'} the allowed {_human(max_age)})"
        ),
        metadata={md.LATENESS_SECONDS: max(0.0, (age - max_age).total_seconds())},
        signals=[signal],
        failed_count=0 if passed else 1,
    )


def _judge_partition(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    tags: MaterializationTags,
    time_def: dg.TimeWindowPartitionsDefinition,
    partitions_def: dg.PartitionsDefinition | None,
    allowed_lateness: timedelta,
    lookback: int,
    historical_horizon: timedelta | None,
    late: Severity,
    missing: Severity,
) -> CheckOutcome:
    partition = tags.partition
    assert partition is not None
    window = partition_window(partitions_def, partition)
    assert window is not None
    expected_by = window[1] + allowed_lateness
    signals: list[Signal] = []
    problems: list[str] = []
    notes: list[str] = []
    severities: list[Severity] = []
    metadata: dict[str, Any] = {md.EXPECTED_BY: expected_by}

    first = materializations_after(instance, asset_key, partitions=[partition], limit=1)
    if not first:
        # The check ran on its own for a partition that was never materialized.
        signals.append(
            tags.signal(
                kind=SignalKind.FRESHNESS,
                name=PARTITION_MISSING,
                passed=False,
                severity=missing,
                metadata={"expected_by": expected_by},
            )
        )
        problems.append(f"partition {partition} has not been materialized")
        severities.append(missing)
    else:
        arrived = datetime.fromtimestamp(first[0].timestamp, tz=UTC)
        lateness = arrived - expected_by
        metadata[md.MATERIALIZED_AT] = arrived
        metadata[md.LATENESS_SECONDS] = max(0.0, lateness.total_seconds())
        is_backfill = BACKFILL_TAG in run_tags(instance, first[0].run_id)
        historical = historical_horizon is not None and lateness > historical_horizon
        is_late = lateness > timedelta(0) and not is_backfill and not historical
        if lateness > timedelta(0) and is_backfill:
            notes.append("first materialized by a backfill: not judged as an arrival")
        elif lateness > timedelta(0) and historical:
            notes.append(
                f"first materialized {_human(lateness)} after its deadline, beyond the "
                f"historical horizon ({_human(historical_horizon or timedelta(0))}): a "
                "historical load, not a late arrival"
            )
        signals.append(
            tags.signal(
                kind=SignalKind.FRESHNESS,
                name=PARTITION_LATENESS,
                value=max(0.0, lateness.total_seconds()),
                passed=not is_late,
                severity=late if is_late else Severity.INFO,
                metadata={
                    "expected_by": expected_by,
                    "first_materialized_at": arrived,
                    "first_materialization_run_id": first[0].run_id,
                    "notes": notes,
                },
            )
        )
        if is_late:
            problems.append(
                f"partition {partition} arrived {_human(lateness)} late (expected by "
                f"{expected_by.isoformat()}, first materialized {arrived.isoformat()})"
            )
            severities.append(late)

    absent = _missing_before(instance, asset_key, time_def, window[0], lookback)
    if absent:
        metadata[md.MISSING_PARTITIONS] = absent
        severities.append(missing)
        problems.append(
            f"{len(absent)} earlier partition(s) missing while {partition} exists: "
            + ", ".join(absent)
        )
        for key in absent:
            start = time_def.time_window_for_partition_key(key).start
            # run_id=None: every later partition re-reports the gap; the store keeps it once.
            missing_tags = tags.for_partition(key, event_time=start)
            signals.append(
                replace(
                    missing_tags.signal(
                        kind=SignalKind.FRESHNESS,
                        name=PARTITION_MISSING,
                        passed=False,
                        severity=missing,
                        metadata={"seen_missing_by_partition": partition},
                    ),
                    run_id=None,
                )
            )
    if notes:
        metadata[md.NOTES] = notes
    if not problems:
        return CheckOutcome(
            passed=True,
            severity=Severity.INFO,
            description=f"partition {partition} arrived on time"
            + (f" ({'; '.join(notes)})" if notes else ""),
            metadata=metadata,
            signals=signals,
        )
    return CheckOutcome(
        passed=False,
        severity=worst(severities),
        description="; ".join(problems),
        metadata=metadata,
        signals=signals,
        failed_count=len(problems),
    )


def _missing_before(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    time_def: dg.TimeWindowPartitionsDefinition,
    start: datetime,
    lookback: int,
) -> list[str]:
    """Partitions among the ``lookback`` before ``start`` that were never materialized."""
    if lookback == 0 or not isinstance(time_def, dg.TimeWindowPartitionsDefinition):
        return []
    earlier: list[str] = []
    cursor = start
    for _ in range(lookback):
        previous = time_def.get_prev_partition_window(cursor)
        if previous is None:
            break
        earlier.append(time_def.get_partition_key_for_timestamp(previous.start.timestamp()))
        cursor = previous.start
    if not earlier:
        return []
    # One query for the latest materialization of each of these partitions: a partition
    # re-materialized many times cannot crowd another out, and the cost does not grow with history.
    return sorted(set(earlier) - materialized_partitions(instance, asset_key, earlier))


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if abs(seconds) >= 86400:
        return f"{seconds / 86400:.1f} d"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
