"""What every corrmon check factory shares: targets, argument validation, outcomes, recording.

A check follows one life cycle (run by :mod:`dagster_corrmon.checks._plan`, which turns each
factory's check plans into Dagster definitions)::

    tags    = corrmon.materialization_tags(context, key, partition_key=...)   # standard tags
    outcome = plan.evaluate(CheckCall(tags, value, ...))   # pure-ish: CheckOutcome with signals
    return finish(corrmon, tags, outcome)                   # signals -> store, -> AssetCheckResult

A failed judgement is data (``passed=False`` with a severity), never an exception. Data the check
cannot judge at all (a configured column missing, a value that is not a table) is a failed ERROR
check whose description names the column and the asset, plus a signal saying so.
"""

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias

import dagster as dg
import pandas as pd

from dagster_corrmon import metadata as md
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import CorrmonResource, MaterializationTags

AssetTarget: TypeAlias = str | Sequence[str] | dg.AssetKey | dg.AssetsDefinition | dg.AssetSpec

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class CheckTarget:
    """One asset a factory attaches a check to, with the partitioning its check must share."""

    key: dg.AssetKey
    partitions_def: dg.PartitionsDefinition | None


def resolve_targets(
    assets: Iterable[AssetTarget] | AssetTarget,
    *,
    factory: str,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> list[CheckTarget]:
    """The check targets named by ``assets`` (keys, ``AssetsDefinition``s, ``AssetSpec``s).

    An ``AssetsDefinition`` contributes every key it produces, with its own partitioning; a bare
    key takes ``partitions_def`` (so checks on a partitioned asset known only by key still run
    per partition). Duplicates and an empty selection are configuration errors.
    """
    if isinstance(assets, str | dg.AssetKey | dg.AssetsDefinition | dg.AssetSpec):
        items: list[Any] = [assets]
    else:
        items = list(assets)
    if not items:
        raise ConfigError(f"{factory}: assets must name at least one asset")
    targets: list[CheckTarget] = []
    for item in items:
        if isinstance(item, dg.AssetsDefinition):
            for key in sorted(item.keys, key=lambda k: k.to_user_string()):
                spec = item.specs_by_key[key]
                targets.append(CheckTarget(key, spec.partitions_def or item.partitions_def))
        elif isinstance(item, dg.AssetSpec):
            targets.append(CheckTarget(item.key, item.partitions_def or partitions_def))
        elif isinstance(item, str | dg.AssetKey) or (
            isinstance(item, Sequence) and all(isinstance(part, str) for part in item)
        ):
            targets.append(CheckTarget(dg.AssetKey.from_coercible(item), partitions_def))
        else:
            raise ConfigError(
                f"{factory}: assets must be asset keys, AssetsDefinitions or AssetSpecs; "
                f"got {type(item).__name__} {item!r}"
            )
    seen: set[dg.AssetKey] = set()
    for target in targets:
        if target.key in seen:
            raise ConfigError(f"{factory}: asset {target.key.to_user_string()!r} is named twice")
        seen.add(target.key)
        if (
            partitions_def is not None
            and target.partitions_def is not None
            and target.partitions_def != partitions_def
        ):
            raise ConfigError(
                f"{factory}: partitions_def={partitions_def} differs from the partitioning of "
                f"asset {target.key.to_user_string()!r} ({target.partitions_def})"
            )
    return targets


def check_name_prefix(name_prefix: str, *, factory: str) -> str:
    """Validate a check-name prefix: Dagster names are ``[A-Za-z0-9_]+``."""
    if not name_prefix or not all(ch.isalnum() or ch == "_" for ch in name_prefix):
        raise ConfigError(
            f"{factory}: name_prefix must be letters, digits and underscores; got {name_prefix!r}"
        )
    return name_prefix


def to_severity(value: Any, *, factory: str, argument: str) -> Severity:
    """A corrmon severity from ``Severity``, ``dg.AssetCheckSeverity`` or a string."""
    if isinstance(value, dg.AssetCheckSeverity):
        return Severity.ERROR if value == dg.AssetCheckSeverity.ERROR else Severity.WARN
    try:
        severity = Severity(str(value).lower())
    except ValueError as error:
        raise ConfigError(
            f"{factory}: {argument} must be 'warn' or 'error' (or a dg.AssetCheckSeverity); "
            f"got {value!r}"
        ) from error
    if severity is Severity.INFO:
        raise ConfigError(f"{factory}: {argument} must be 'warn' or 'error', not 'info'")
    return severity


def dagster_severity(severity: Severity) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if severity is Severity.ERROR else dg.AssetCheckSeverity.WARN


def worst(severities: Iterable[Severity]) -> Severity:
    """The most severe of ``severities`` (``INFO`` when there are none)."""
    return max(severities, key=_SEVERITY_RANK.__getitem__, default=Severity.INFO)


def positive_number(value: Any, *, factory: str, argument: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{factory}: {argument} must be a number; got {value!r}")
    number = float(value)
    if math.isnan(number) or not (number >= 0 if allow_zero else number > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{factory}: {argument} must be {bound}; got {value!r}")
    return number


def positive_int(value: Any, *, factory: str, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{factory}: {argument} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def fraction(value: Any, *, factory: str, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{factory}: {argument} must be a number in [0, 1]; got {value!r}")
    return float(value)


def timedelta_arg(value: Any, *, factory: str, argument: str) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ConfigError(f"{factory}: {argument} must be a non-negative timedelta; got {value!r}")
    return value


def column_names(value: Any, *, factory: str, argument: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable) or not all(isinstance(c, str) and c for c in value):
        raise ConfigError(f"{factory}: {argument} must be column names; got {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """What a check concluded, before it is recorded: the result plus its detailed signals."""

    passed: bool
    severity: Severity  # INFO when passed
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict[str, Any])
    signals: Sequence[Signal] = ()
    failed_count: int = 0


def failed_outcome(
    *,
    severity: Severity,
    description: str,
    signals: Sequence[Signal] = (),
    metadata: Mapping[str, Any] | None = None,
    failed_count: int = 1,
) -> CheckOutcome:
    return CheckOutcome(
        passed=False,
        severity=severity,
        description=description,
        metadata=metadata or {},
        signals=signals,
        failed_count=failed_count,
    )


def input_failure(
    tags: MaterializationTags,
    *,
    kind: SignalKind,
    name: str,
    message: str,
    severity: Severity = Severity.ERROR,
    columns: Sequence[str | None] = (None,),
    metadata: Mapping[str, Any] | None = None,
    failed_count: int = 1,
) -> CheckOutcome:
    """The failed outcome of a check that could not judge its input, with its error signals."""
    return failed_outcome(
        severity=severity,
        description=message,
        signals=input_error_signals(tags, kind=kind, name=name, columns=columns, message=message),
        metadata={**(metadata or {}), md.INPUT_ERROR: message},
        failed_count=failed_count,
    )


def missing_columns_message(
    missing: Sequence[str], *, argument: str, factory: str, asset_key: str, available: Sequence[str]
) -> str:
    shown = ", ".join(repr(c) for c in list(available)[:30])
    more = "" if len(available) <= 30 else f", ... ({len(available)} in all)"
    names = ", ".join(repr(c) for c in missing)
    noun = "column" if len(missing) == 1 else "columns"
    return (
        f"{noun} {names} named in {factory}({argument}=...) not found in asset "
        f"{asset_key!r} (its columns: {shown}{more})"
    )


def input_error_signals(
    tags: MaterializationTags,
    *,
    kind: SignalKind,
    name: str,
    columns: Sequence[str | None],
    message: str,
) -> list[Signal]:
    """ERROR signals saying the check could not judge these columns (one per column)."""
    return [
        tags.signal(
            kind=kind,
            name=name,
            passed=False,
            severity=Severity.ERROR,
            column=column,
            metadata={"input_error": message},
        )
        for column in columns
    ]


def as_frame(value: Any) -> pd.DataFrame | None:
    """The asset value as a pandas DataFrame (pandas, pyarrow, polars), or None if it is not one."""
    if isinstance(value, pd.DataFrame):
        return value
    to_pandas: Callable[[], Any] | None = getattr(value, "to_pandas", None)
    if callable(to_pandas):
        converted = to_pandas()
        if isinstance(converted, pd.DataFrame):
            return converted
    return None


def not_a_frame_message(value: Any, *, asset_key: str, check: str) -> str:
    return (
        f"check {check!r}: the value of asset {asset_key!r} is a {type(value).__name__}, not a "
        "pandas DataFrame (or something with .to_pandas()); corrmon data checks judge tables"
    )


def get_corrmon(context: dg.AssetCheckExecutionContext, resource_key: str) -> CorrmonResource:
    resource = getattr(context.resources, resource_key, None)
    if not isinstance(resource, CorrmonResource):
        raise ConfigError(
            f"check {context.check_specs[0].name!r} needs a CorrmonResource bound to resource "
            f"key {resource_key!r}; found {type(resource).__name__}"
        )
    return resource


def open_check(
    context: dg.AssetCheckExecutionContext,
    target: CheckTarget,
    resource_key: str,
    *,
    now: datetime | None = None,
) -> tuple[CorrmonResource, MaterializationTags]:
    """The store resource and the standard tags of the materialization this check judges."""
    corrmon = get_corrmon(context, resource_key)
    tags = corrmon.materialization_tags(
        context,
        target.key,
        partition_key=current_partition(context),
        partitions_def=target.partitions_def,
        now=now,
    )
    return corrmon, tags


def current_partition(context: dg.AssetCheckExecutionContext) -> str | None:
    return context.partition_key if context.has_partition_key else None


def finish(
    corrmon: CorrmonResource,
    tags: MaterializationTags,
    *,
    check_name: str,
    kind: SignalKind,
    outcome: CheckOutcome,
    started: float | None = None,
    asset_key: dg.AssetKey | None = None,
) -> dg.AssetCheckResult:
    """Record ``outcome`` (its signals plus one summary signal for the check) and build the result.

    The summary signal is named after the check, so "every result of check X" is one store read.
    ``started`` (a ``time.perf_counter()`` reading) adds the check's own cost, store writes
    included, as ``corrmon/check_seconds`` — plottable, so a check that grows slow shows.
    """
    summary = tags.signal(
        kind=kind,
        name=check_name,
        value=float(outcome.failed_count),
        passed=outcome.passed,
        severity=Severity.INFO if outcome.passed else outcome.severity,
        metadata={"check": check_name, "description": outcome.description},
    )
    written = corrmon.write_signals([*outcome.signals, summary])
    result_metadata: dict[str, Any] = {
        md.PARTITION: tags.partition,
        md.DATA_VERSION: tags.data_version,
        md.CODE_VERSION: tags.code_version,
        md.EVENT_TIME: tags.event_time,
        md.MATERIALIZATION_RUN_ID: tags.materialization_run_id,
        md.FAILED_COUNT: outcome.failed_count,
        md.SIGNALS_WRITTEN: written,
        **outcome.metadata,
    }
    if started is not None:
        result_metadata[md.CHECK_SECONDS] = time.perf_counter() - started
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name if asset_key is not None else None,
        passed=bool(outcome.passed),
        severity=dagster_severity(outcome.severity),
        description=outcome.description[:4000],
        metadata=md.to_metadata(
            {key: value for key, value in result_metadata.items() if value is not None}
        ),
    )


def not_a_frame_outcome(
    value: Any, *, tags: MaterializationTags, kind: SignalKind, check_name: str
) -> CheckOutcome:
    """The failed ERROR outcome for an asset value that is not a table."""
    message = not_a_frame_message(value, asset_key=tags.asset_key, check=check_name)
    return input_failure(tags, kind=kind, name=check_name, message=message)


class HistoryPoint(Protocol):
    """What a baseline needs of a stored observation: a :class:`Signal` or a ``SignalPoint``."""

    @property
    def partition(self) -> str | None: ...
    @property
    def event_time(self) -> datetime: ...
    @property
    def observed_at(self) -> datetime | None: ...
    @property
    def value(self) -> float | None: ...


def history_points(
    signals: Iterable[HistoryPoint],
) -> tuple[list[float], list[datetime]]:
    """Values and times of stored signals, one per partition/event time (the latest write wins).

    A check re-run on the same partition in a new run writes a second signal; counting both would
    weight that partition twice in a baseline.
    """
    latest: dict[tuple[str | None, datetime], HistoryPoint] = {}
    for signal in signals:
        if signal.value is None:
            continue
        key = (signal.partition, signal.event_time)
        previous = latest.get(key)
        if previous is None or _observed(signal) >= _observed(previous):
            latest[key] = signal
    ordered = sorted(latest.values(), key=lambda s: s.event_time)
    return [float(s.value) for s in ordered if s.value is not None], [s.event_time for s in ordered]


def _observed(signal: HistoryPoint) -> datetime:
    return signal.observed_at or signal.event_time
