"""Data-quality checks backed by Great Expectations 1.x: completeness, validity, volume, suites.

``build_data_quality_checks`` attaches up to four checks to each asset, each its own row in the
Dagster UI (``<prefix>_completeness``, ``<prefix>_validity``, ``<prefix>_volume``,
``<prefix>_expectation_suite``), and records every per-column judgement as a
:attr:`~dagster_corrmon.core.signal.SignalKind.DATA_QUALITY` signal, so the correlation engine can
line a column's null spike up against a model's drop.

Where Great Expectations is used, and where it is not. Validity rules and user-supplied expectation
suites always run through GX (in-process, one ephemeral context per process: see ``_gx``). Null
fractions and row counts are a single pandas reduction; through GX they cost the GX import (6–17 s
in every process that runs a check — with Dagster's multiprocess executor that is every step) and
~15× the compute, for the same numbers. So completeness and volume default to ``engine="pandas"``;
``engine="great_expectations"`` computes them with ``ExpectColumnValuesToNotBeNull`` instead
(the tests pin that both engines give the same answer).

Each completeness and volume value is judged twice: against the fixed rule, if any (a column's
``max_null_fraction``, ``Volume(min_rows=..., max_rows=...)``) with ``severity``, and against its
adaptive baseline in the store (see ``_baseline``) with the baseline's severity.
"""

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd

from dagster_corrmon import metadata as md
from dagster_corrmon.checks import _gx
from dagster_corrmon.checks._baseline import (
    BaselinePolicy,
    BaselineVerdict,
    coerce_policy,
    judge_columns_against_history,
)
from dagster_corrmon.checks._common import (
    AssetTarget,
    CheckOutcome,
    CheckTarget,
    check_name_prefix,
    failed_outcome,
    fraction,
    input_error_signals,
    missing_columns_message,
    positive_number,
    resolve_targets,
    to_severity,
    worst,
)
from dagster_corrmon.checks._plan import CheckPlan, check_definitions, frame_plan
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.extras import require
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, MaterializationTags

FACTORY = "build_data_quality_checks"

#: Stored signal names (stable identifiers).
NULL_FRACTION = "null_fraction"
ROW_COUNT = "row_count"
VALIDITY_PREFIX = "validity_"  # validity_range, validity_allowed_values, ...
EXPECTATION_PREFIX = "gx:"  # gx:expect_column_values_to_be_between, ...

Engine = Literal["pandas", "great_expectations"]


# ------------------------------------------------------------------------------ validity rules


@dataclass(frozen=True, kw_only=True)
class InRange:
    """Values of ``column`` lie in ``[min_value, max_value]`` (either bound may be open)."""

    column: str
    min_value: float | None = None
    max_value: float | None = None
    mostly: float = 1.0  # share of non-null values that must comply
    severity: Any = Severity.ERROR

    kind = "range"

    def expectation(self) -> dict[str, Any]:
        return {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": self.column,
                "min_value": self.min_value,
                "max_value": self.max_value,
                "mostly": self.mostly,
            },
        }

    def validate(self) -> None:
        if self.min_value is None and self.max_value is None:
            raise ConfigError(f"{FACTORY}: InRange({self.column!r}) needs min_value or max_value")
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ConfigError(
                f"{FACTORY}: InRange({self.column!r}): min_value {self.min_value} > "
                f"max_value {self.max_value}"
            )

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def label(self) -> str:
        return f"{self.column} in [{self.min_value}, {self.max_value}]"


@dataclass(frozen=True, kw_only=True)
class AllowedValues:
    """Values of ``column`` belong to ``values`` (a new category fails it)."""

    column: str
    values: tuple[Any, ...]
    mostly: float = 1.0
    severity: Any = Severity.ERROR

    kind = "allowed_values"

    def expectation(self) -> dict[str, Any]:
        return {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {
                "column": self.column,
                "value_set": list(self.values),
                "mostly": self.mostly,
            },
        }

    def validate(self) -> None:
        if isinstance(self.values, str) or not len(self.values):
            raise ConfigError(
                f"{FACTORY}: AllowedValues({self.column!r}) needs a non-empty collection of values"
            )

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def label(self) -> str:
        return f"{self.column} in {len(self.values)} allowed values"


@dataclass(frozen=True, kw_only=True)
class MatchesRegex:
    """Values of ``column`` match ``pattern`` (Python ``re`` syntax, searched, not anchored)."""

    column: str
    pattern: str
    mostly: float = 1.0
    severity: Any = Severity.ERROR

    kind = "regex"

    def expectation(self) -> dict[str, Any]:
        return {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": self.column, "regex": self.pattern, "mostly": self.mostly},
        }

    def validate(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ConfigError(
                f"{FACTORY}: MatchesRegex({self.column!r}): invalid pattern {self.pattern!r}: "
                f"{error}"
            ) from error

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def label(self) -> str:
        return f"{self.column} matches {self.pattern}"


@dataclass(frozen=True, kw_only=True)
class Unique:
    """``columns`` (one, or several together) identify rows uniquely: duplicates fail it."""

    columns: tuple[str, ...]
    severity: Any = Severity.ERROR

    kind = "unique"

    def expectation(self) -> dict[str, Any]:
        if len(self.columns) == 1:
            return {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": self.columns[0]},
            }
        return {
            "type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": list(self.columns)},
        }

    def validate(self) -> None:
        if not self.columns:
            raise ConfigError(f"{FACTORY}: Unique needs at least one column")

    @property
    def label(self) -> str:
        return f"{', '.join(self.columns)} unique"


ValidityRule = InRange | AllowedValues | MatchesRegex | Unique

_RULES_BY_NAME: Mapping[str, type] = {
    "range": InRange,
    "in_range": InRange,
    "allowed_values": AllowedValues,
    "in_set": AllowedValues,
    "regex": MatchesRegex,
    "unique": Unique,
}


def coerce_rule(value: Any) -> ValidityRule:
    """A rule object, or a mapping ``{"rule": "range", "column": ..., ...}`` (YAML-friendly)."""
    if isinstance(value, InRange | AllowedValues | MatchesRegex | Unique):
        rule = value
    elif isinstance(value, Mapping):
        fields = dict(value)
        rule_name = fields.pop("rule", None)
        if rule_name not in _RULES_BY_NAME:
            raise ConfigError(
                f"{FACTORY}: validity rule {value!r} needs 'rule': one of "
                f"{', '.join(sorted(_RULES_BY_NAME))}"
            )
        cls = _RULES_BY_NAME[rule_name]
        if cls is Unique and "column" in fields:
            fields["columns"] = (fields.pop("column"),)
        if "columns" in fields:
            fields["columns"] = tuple(fields["columns"])
        if "values" in fields:
            fields["values"] = tuple(fields["values"])
        try:
            rule = cls(**fields)
        except TypeError as error:
            raise ConfigError(f"{FACTORY}: validity rule {value!r}: {error}") from error
    else:
        raise ConfigError(
            f"{FACTORY}: validity rules must be InRange/AllowedValues/MatchesRegex/Unique or "
            f"mappings; got {value!r}"
        )
    rule.validate()
    for column in rule.columns:
        if not isinstance(column, str) or not column:
            raise ConfigError(f"{FACTORY}: validity rule {rule!r}: columns must be names")
    if not isinstance(rule, Unique):
        fraction(rule.mostly, factory=FACTORY, argument=f"{rule.kind} rule mostly")
    to_severity(rule.severity, factory=FACTORY, argument=f"{rule.kind} rule severity")
    return rule


# ------------------------------------------------------------------------------ volume


@dataclass(frozen=True, kw_only=True)
class Volume:
    """Row-count rules: fixed bounds (``severity`` of the factory) and/or the adaptive baseline.

    ``min_relative_change``: a row count within this fraction of the baseline's expected value is
    never anomalous (daily volumes wobble; a 5 % dip is not an incident).
    """

    min_rows: int | None = None
    max_rows: int | None = None
    baseline: bool = True
    min_relative_change: float = 0.1

    def validate(self) -> "Volume":
        for name in ("min_rows", "max_rows"):
            bound = getattr(self, name)
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise ConfigError(f"{FACTORY}: Volume.{name} must be an int; got {bound!r}")
            if bound is not None and bound < 0:
                raise ConfigError(f"{FACTORY}: Volume.{name} must be >= 0; got {bound!r}")
        if (
            self.min_rows is not None
            and self.max_rows is not None
            and self.min_rows > self.max_rows
        ):
            raise ConfigError(
                f"{FACTORY}: Volume.min_rows {self.min_rows} > max_rows {self.max_rows}"
            )
        positive_number(
            self.min_relative_change,
            factory=FACTORY,
            argument="Volume.min_relative_change",
            allow_zero=True,
        )
        return self


def _coerce_volume(value: Any) -> Volume | None:
    if value is None or value is False:
        return None
    if value is True:
        return Volume()
    if isinstance(value, Volume):
        return value.validate()
    if isinstance(value, Mapping):
        try:
            return Volume(**dict(value)).validate()
        except TypeError as error:
            raise ConfigError(f"{FACTORY}: volume: {error}") from error
    raise ConfigError(f"{FACTORY}: volume must be a Volume, a mapping, True or None; got {value!r}")


# ------------------------------------------------------------------------------ suites


@dataclass(frozen=True)
class LoadedSuite:
    """A GX 1.x expectation suite read from JSON, as plain dicts (GX is imported only to run it)."""

    name: str
    path: str
    expectations: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


def load_suite(path: str | os.PathLike[str]) -> LoadedSuite:
    """Read and structurally validate a GX expectation-suite JSON file (GX 1.x or 0.x shape)."""
    file = Path(path)
    where = f"{FACTORY}: suite file {str(file)!r}"
    if not file.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where} is not valid JSON: {error}") from error
    if not isinstance(data, Mapping) or not isinstance(data.get("expectations"), list):
        raise ConfigError(f"{where} has no 'expectations' list (a GX expectation suite)")
    expectations: list[dict[str, Any]] = []
    for position, item in enumerate(data["expectations"]):
        # GX 0.x called it expectation_type; 1.x calls it type.
        type_name = (
            item.get("type", item.get("expectation_type")) if isinstance(item, dict) else None
        )
        kwargs = item.get("kwargs", {}) if isinstance(item, dict) else None
        if not isinstance(type_name, str) or not isinstance(kwargs, dict):
            raise ConfigError(
                f"{where}: expectation #{position} needs a 'type' string and a 'kwargs' object"
            )
        severity = item.get("severity", "critical")
        if severity not in ("critical", "warning", "info"):
            raise ConfigError(
                f"{where}: expectation #{position} ({type_name}) has severity {severity!r} "
                "(critical, warning or info)"
            )
        expectations.append(
            {
                "type": type_name,
                "kwargs": kwargs,
                "meta": item.get("meta") or {},
                "severity": severity,
            }
        )
    if not expectations:
        raise ConfigError(f"{where} holds no expectations")
    name = data.get("name", data.get("expectation_suite_name")) or file.stem
    return LoadedSuite(name=str(name), path=str(file), expectations=tuple(expectations))


# ------------------------------------------------------------------------------ the factory


@dataclass(frozen=True, kw_only=True)
class _QualityConfig:
    completeness: Mapping[str, float] | None
    track_all_columns: bool
    completeness_min_change: float
    rules: tuple[ValidityRule, ...]
    volume: Volume | None
    suite: LoadedSuite | None
    severity: Severity
    baseline: BaselinePolicy | None
    engine: Engine
    incident_assets: tuple[str, ...]


def build_data_quality_checks(
    *,
    assets: Sequence[AssetTarget] | AssetTarget,
    completeness: Mapping[str, float] | None = None,
    track_all_columns: bool = True,
    validity: Sequence[ValidityRule | Mapping[str, Any]] | None = None,
    volume: Volume | Mapping[str, Any] | bool | None = True,
    suite: str | os.PathLike[str] | None = None,
    severity: Any = Severity.ERROR,
    baseline: BaselinePolicy | Mapping[str, Any] | bool | None = True,
    completeness_min_change: float = 0.02,
    engine: Engine = "pandas",
    incident_assets: Sequence[str | dg.AssetKey] = (),
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    name_prefix: str = "corrmon",
    blocking: bool = False,
) -> Sequence[dg.AssetChecksDefinition]:
    """Data-quality checks for each asset (a pandas DataFrame, or anything with ``.to_pandas()``).

    Args:
        assets: the assets to check (keys, ``AssetsDefinition``s or ``AssetSpec``s).
        completeness: ``{column: max_null_fraction}``: hard limits, failing with ``severity``.
        track_all_columns: also judge every column's null fraction against its baseline (the
            completeness check exists whenever this is true or ``completeness`` is given).
        validity: rules — :class:`InRange`, :class:`AllowedValues`, :class:`MatchesRegex`,
            :class:`Unique`, or mappings ``{"rule": "range", "column": "temp", "max_value": 60}``
            — run as one GX suite; each rule fails with its own ``severity`` (default ERROR).
        volume: :class:`Volume` rules for the row count (``True``: baseline only; ``None``: no
            volume check).
        suite: path to a GX expectation-suite JSON, run as its own check; an expectation's GX
            severity ``critical`` fails with ERROR, ``warning`` with WARN, ``info`` is recorded
            but never fails the check.
        severity: severity of fixed-rule failures (completeness limits, volume bounds).
        baseline: :class:`~dagster_corrmon.checks.BaselinePolicy` for adaptive judgements
            (``True``: defaults; ``None``: fixed rules only).
        completeness_min_change: a null-fraction rise smaller than this is never anomalous.
        engine: how completeness and volume are computed: ``"pandas"`` (default, see module
            docstring) or ``"great_expectations"``.
        incident_assets: assets (e.g. the model) whose resolved incident windows are also left out
            of this asset's baselines.
        partitions_def: partitioning for assets given only by key.
        resource_key: the key a :class:`~dagster_corrmon.resource.CorrmonResource` is bound to.
        name_prefix: check names are ``<name_prefix>_completeness`` etc.
        blocking: make the checks blocking (an ERROR failure stops downstream assets in the run).
    """
    targets = resolve_targets(assets, factory=FACTORY, partitions_def=partitions_def)
    prefix = check_name_prefix(name_prefix, factory=FACTORY)
    if completeness is not None:
        if not isinstance(completeness, Mapping) or not completeness:
            raise ConfigError(
                f"{FACTORY}: completeness must be a non-empty mapping of column to "
                f"max_null_fraction; got {completeness!r}"
            )
        completeness = {
            str(column): fraction(limit, factory=FACTORY, argument=f"completeness[{column!r}]")
            for column, limit in completeness.items()
        }
    if engine not in ("pandas", "great_expectations"):
        raise ConfigError(
            f"{FACTORY}: engine must be 'pandas' or 'great_expectations'; got {engine!r}"
        )
    if validity is not None and (
        isinstance(validity, str | Mapping) or not isinstance(validity, Sequence)
    ):
        raise ConfigError(f"{FACTORY}: validity must be a list of rules; got {validity!r}")
    if validity or suite is not None or engine == "great_expectations":
        require("great_expectations", purpose=f"{FACTORY}: {_gx.GX_PURPOSE}")
    config = _QualityConfig(
        completeness=completeness,
        track_all_columns=bool(track_all_columns),
        completeness_min_change=fraction(
            completeness_min_change, factory=FACTORY, argument="completeness_min_change"
        ),
        rules=tuple(coerce_rule(rule) for rule in (validity or ())),
        volume=_coerce_volume(volume),
        suite=load_suite(suite) if suite is not None else None,
        severity=to_severity(severity, factory=FACTORY, argument="severity"),
        baseline=coerce_policy(baseline, factory=FACTORY),
        engine=engine,
        incident_assets=tuple(
            dg.AssetKey.from_coercible(a).to_user_string() for a in incident_assets
        ),
    )
    checks: list[CheckPlan] = []
    for target in targets:
        if config.completeness is not None or config.track_all_columns:
            checks.append(
                _data_check(
                    target,
                    name=f"{prefix}_completeness",
                    description=_completeness_description(config),
                    judge=_judge_completeness,
                    config=config,
                    resource_key=resource_key,
                    blocking=blocking,
                )
            )
        if config.rules:
            checks.append(
                _data_check(
                    target,
                    name=f"{prefix}_validity",
                    description="Validity (Great Expectations): "
                    + "; ".join(rule.label for rule in config.rules),
                    judge=_judge_validity,
                    config=config,
                    resource_key=resource_key,
                    blocking=blocking,
                )
            )
        if config.volume is not None:
            checks.append(
                _data_check(
                    target,
                    name=f"{prefix}_volume",
                    description=_volume_description(config.volume),
                    judge=_judge_volume,
                    config=config,
                    resource_key=resource_key,
                    blocking=blocking,
                )
            )
        if config.suite is not None:
            checks.append(
                _data_check(
                    target,
                    name=f"{prefix}_expectation_suite",
                    description=(
                        f"Great Expectations suite {config.suite.name!r} "
                        f"({len(config.suite.expectations)} expectations, {config.suite.path})"
                    ),
                    judge=_judge_suite,
                    config=config,
                    resource_key=resource_key,
                    blocking=blocking,
                )
            )
    return check_definitions(checks)


def _completeness_description(config: _QualityConfig) -> str:
    parts = []
    if config.completeness:
        parts.append(
            "null fraction at most "
            + ", ".join(f"{c}: {limit:g}" for c, limit in config.completeness.items())
        )
    if config.baseline is not None:
        parts.append(
            ("every column's" if config.track_all_columns else "these columns'")
            + " null fraction against its adaptive baseline"
        )
    return "Completeness: " + "; ".join(parts or ["null fraction recorded per column"])


def _volume_description(volume: Volume) -> str:
    parts = []
    if volume.min_rows is not None:
        parts.append(f"at least {volume.min_rows} rows")
    if volume.max_rows is not None:
        parts.append(f"at most {volume.max_rows} rows")
    if volume.baseline:
        parts.append("row count against its adaptive baseline")
    return "Volume: " + "; ".join(parts or ["row count recorded"])


def _data_check(
    target: CheckTarget,
    *,
    name: str,
    description: str,
    judge: Any,
    config: _QualityConfig,
    resource_key: str,
    blocking: bool,
) -> CheckPlan:
    def bound(frame: pd.DataFrame, tags: MaterializationTags, corrmon: CorrmonResource):
        return judge(frame, tags=tags, corrmon=corrmon, config=config, check_name=name)

    return frame_plan(
        target,
        name=name,
        description=description,
        kind=SignalKind.DATA_QUALITY,
        judge=bound,
        resource_key=resource_key,
        blocking=blocking,
    )


# ------------------------------------------------------------------------------ judgements


def null_fractions(
    frame: pd.DataFrame, columns: Sequence[str], *, engine: Engine
) -> dict[str, float]:
    """The null fraction of each column, by pandas or by Great Expectations (same numbers)."""
    if engine == "pandas":
        return {column: float(frame[column].isna().mean()) for column in columns}
    outcomes = _gx.validate_frame(
        frame,
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}}
            for column in columns
        ],
        suite_name="corrmon_completeness",
    )
    fractions: dict[str, float] = {}
    for column, outcome in zip(columns, outcomes, strict=True):
        count, nulls = outcome.element_count, outcome.unexpected_count
        fractions[column] = float(nulls) / count if count and nulls is not None else 0.0
    return fractions


def _judge_completeness(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    config: _QualityConfig,
    check_name: str,
) -> CheckOutcome:
    available = [str(c) for c in frame.columns]
    limits = dict(config.completeness or {})
    missing = [c for c in limits if c not in available]
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []
    severities: list[Severity] = []
    metadata: dict[str, Any] = {md.ROW_COUNT: len(frame)}
    if missing:
        message = missing_columns_message(
            missing,
            argument="completeness",
            factory=FACTORY,
            asset_key=tags.asset_key,
            available=available,
        )
        signals += input_error_signals(
            tags, kind=SignalKind.DATA_QUALITY, name=NULL_FRACTION, columns=missing, message=message
        )
        failures += [{"column": c, "problem": "missing column"} for c in missing]
        severities.append(Severity.ERROR)
        metadata[md.INPUT_ERROR] = message
    if len(frame) == 0:
        message = f"asset {tags.asset_key!r} has 0 rows: completeness cannot be judged"
        signals += input_error_signals(
            tags, kind=SignalKind.DATA_QUALITY, name=check_name, columns=[None], message=message
        )
        return failed_outcome(
            severity=Severity.ERROR,
            description=message,
            signals=signals,
            metadata={**metadata, md.INPUT_ERROR: message},
            failed_count=len(failures) + 1,
        )
    judged = available if config.track_all_columns else [c for c in limits if c in available]
    fractions = null_fractions(frame, judged, engine=config.engine)
    notes: list[str] = []
    verdicts = _baseline_verdicts(
        corrmon,
        tags=tags,
        config=config,
        name=NULL_FRACTION,
        values={column: fractions[column] for column in judged},
        # both ways: a column that fills (1.0 → 0.0 nulls) has changed as much as one that
        # empties; the binomial floor keeps a small improvement from counting
        direction="both",
        min_change=config.completeness_min_change,
        proportion_rows=len(frame),
    )
    for column in judged:
        value = fractions[column]
        limit = limits.get(column)
        over_limit = limit is not None and value > limit
        verdict = verdicts.get(column)
        column_severities = []
        problems = []
        if over_limit:
            column_severities.append(config.severity)
            problems.append(f"null fraction {value:.2%} > limit {limit:.2%}")
        if verdict is not None and verdict.anomalous:
            assert config.baseline is not None
            expected = verdict.expected or 0.0
            # A change of state — most values present before, most missing now, or the
            # reverse — is a defect whatever the baseline's severity: consumers built on the
            # old state break.
            flipped = (value > 0.5) != (expected > 0.5)
            column_severities.append(
                config.severity if flipped else config.baseline.failure_severity
            )
            problems.append(
                f"null fraction {value:.2%} vs baseline {expected:.2%} "
                f"(z = {_z_text(verdict.z)})"
                + (
                    ": most values are now "
                    + ("missing" if value > 0.5 else "present")
                    + " (a change of the column's state)"
                    if flipped
                    else ""
                )
            )
        if verdict is not None and verdict.note and verdict.status == "insufficient_history":
            notes.append(verdict.note)
        column_severity = worst(column_severities)
        signals.append(
            tags.signal(
                kind=SignalKind.DATA_QUALITY,
                name=NULL_FRACTION,
                column=column,
                value=value,
                passed=not problems,
                severity=column_severity,
                metadata={
                    "max_null_fraction": limit,
                    "engine": config.engine,
                    **(verdict.as_metadata() if verdict is not None else {}),
                },
            )
        )
        metadata[md.column_key("null_fraction", column)] = value
        if problems:
            severities.append(column_severity)
            failures.append({"column": column, "problem": "; ".join(problems)})
    if fractions:
        metadata[md.NULL_FRACTION] = max(fractions.values())
    if limits:
        metadata[md.MAX_NULL_FRACTION] = limits
    return _outcome(
        failures=failures,
        severities=severities,
        signals=signals,
        metadata=metadata,
        notes=_summarize_notes(notes),
        ok=f"{len(judged)} column(s) complete enough ({len(frame)} rows)",
        subject=f"completeness of {tags.asset_key!r}",
    )


def _judge_volume(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    config: _QualityConfig,
    check_name: str,
) -> CheckOutcome:
    volume = config.volume
    assert volume is not None
    if config.engine == "great_expectations":
        outcome = _gx.validate_frame(
            frame,
            [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}}],
            suite_name="corrmon_volume",
        )[0]
        rows = int(outcome.observed_value if outcome.observed_value is not None else len(frame))
    else:
        rows = len(frame)
    problems: list[str] = []
    severities: list[Severity] = []
    if volume.min_rows is not None and rows < volume.min_rows:
        problems.append(f"{rows} rows < min_rows {volume.min_rows}")
        severities.append(config.severity)
    if volume.max_rows is not None and rows > volume.max_rows:
        problems.append(f"{rows} rows > max_rows {volume.max_rows}")
        severities.append(config.severity)
    verdict = None
    if volume.baseline:
        verdict = _baseline_verdicts(
            corrmon,
            tags=tags,
            config=config,
            name=ROW_COUNT,
            values={None: float(rows)},
            direction="both",
            min_change=0.0,
        ).get(None)
        if verdict is not None and verdict.anomalous:
            expected = verdict.expected or 0.0
            if abs(rows - expected) >= volume.min_relative_change * max(expected, 1.0):
                assert config.baseline is not None
                problems.append(
                    f"{rows} rows vs baseline {expected:.0f} (z = {_z_text(verdict.z)})"
                )
                severities.append(config.baseline.failure_severity)
    severity = worst(severities)
    signal = tags.signal(
        kind=SignalKind.DATA_QUALITY,
        name=ROW_COUNT,
        value=float(rows),
        passed=not problems,
        severity=severity,
        metadata={
            "min_rows": volume.min_rows,
            "max_rows": volume.max_rows,
            **(verdict.as_metadata() if verdict is not None else {}),
        },
    )
    metadata: dict[str, Any] = {md.ROW_COUNT: rows}
    if verdict is not None and verdict.expected is not None:
        metadata[md.ROW_COUNT_BASELINE] = verdict.expected
        if verdict.z is not None:
            metadata[md.ANOMALY_SCORE] = verdict.z
    notes = [verdict.note] if verdict is not None and verdict.note else []
    return _outcome(
        failures=[{"column": None, "problem": p} for p in problems],
        severities=severities,
        signals=[signal],
        metadata=metadata,
        notes=notes,
        ok=f"{rows} rows",
        subject=f"volume of {tags.asset_key!r}",
    )


def _judge_validity(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    config: _QualityConfig,
    check_name: str,
) -> CheckOutcome:
    available = {str(c) for c in frame.columns}
    runnable: list[ValidityRule] = []
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []
    severities: list[Severity] = []
    metadata: dict[str, Any] = {}
    missing_all: list[str] = []
    for rule in config.rules:
        missing = [c for c in rule.columns if c not in available]
        if missing:
            missing_all += [c for c in missing if c not in missing_all]
            continue
        runnable.append(rule)
    if missing_all:
        message = missing_columns_message(
            missing_all,
            argument="validity",
            factory=FACTORY,
            asset_key=tags.asset_key,
            available=sorted(available),
        )
        signals += input_error_signals(
            tags,
            kind=SignalKind.DATA_QUALITY,
            name=f"{VALIDITY_PREFIX}input",
            columns=missing_all,
            message=message,
        )
        failures += [{"column": c, "problem": "missing column"} for c in missing_all]
        severities.append(Severity.ERROR)
        metadata[md.INPUT_ERROR] = message
    outcomes = (
        _gx.validate_frame(
            frame,
            [rule.expectation() for rule in runnable],
            suite_name=check_name,
            labels=[rule.label for rule in runnable],
        )
        if runnable
        else []
    )
    names = _unique_names(
        [(f"{VALIDITY_PREFIX}{rule.kind}", ",".join(rule.columns)) for rule in runnable]
    )
    for rule, outcome, name in zip(runnable, outcomes, names, strict=True):
        rule_severity = to_severity(rule.severity, factory=FACTORY, argument="severity")
        column = ",".join(rule.columns)
        signals.append(
            _expectation_signal(
                tags, outcome, name=name, column=column, severity=rule_severity, label=rule.label
            )
        )
        if not outcome.success:
            severities.append(rule_severity)
            failures.append(_expectation_failure(outcome, column=column, label=rule.label))
    metadata[md.EXPECTATIONS_EVALUATED] = len(outcomes)
    metadata[md.EXPECTATIONS_FAILED] = sum(not o.success for o in outcomes)
    return _outcome(
        failures=failures,
        severities=severities,
        signals=signals,
        metadata=metadata,
        notes=[],
        ok=f"{len(outcomes)} validity rule(s) hold",
        subject=f"validity of {tags.asset_key!r}",
    )


def _judge_suite(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    corrmon: CorrmonResource,
    config: _QualityConfig,
    check_name: str,
) -> CheckOutcome:
    suite = config.suite
    assert suite is not None
    outcomes = _gx.validate_frame(frame, list(suite.expectations), suite_name=suite.name)
    names = _unique_names(
        [(f"{EXPECTATION_PREFIX}{o.expectation_type}", o.column or "") for o in outcomes]
    )
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []
    severities: list[Severity] = []
    for outcome, name in zip(outcomes, names, strict=True):
        severity = _GX_SEVERITY.get(outcome.gx_severity, Severity.ERROR)
        if outcome.error is not None:
            severity = Severity.ERROR  # GX could not even evaluate it: the suite is broken here
        signals.append(
            _expectation_signal(
                tags, outcome, name=name, column=outcome.column, severity=severity, label=None
            )
        )
        if not outcome.success and severity is not Severity.INFO:
            severities.append(severity)
            failures.append(_expectation_failure(outcome, column=outcome.column, label=None))
    evaluated = len(outcomes)
    succeeded = sum(o.success for o in outcomes)
    metadata = {
        md.EXPECTATIONS_EVALUATED: evaluated,
        md.EXPECTATIONS_FAILED: evaluated - succeeded,
        md.SUCCESS_PERCENT: 100.0 * succeeded / evaluated if evaluated else 100.0,
    }
    return _outcome(
        failures=failures,
        severities=severities,
        signals=signals,
        metadata=metadata,
        notes=[],
        ok=f"suite {suite.name!r}: {evaluated} expectation(s) met",
        subject=f"suite {suite.name!r} on {tags.asset_key!r}",
    )


_GX_SEVERITY = {"critical": Severity.ERROR, "warning": Severity.WARN, "info": Severity.INFO}


def _expectation_signal(
    tags: MaterializationTags,
    outcome: _gx.ExpectationOutcome,
    *,
    name: str,
    column: str | None,
    severity: Severity,
    label: str | None,
) -> Signal:
    return tags.signal(
        kind=SignalKind.DATA_QUALITY,
        name=name,
        column=column or None,
        value=outcome.unexpected_fraction,
        passed=outcome.success,
        severity=Severity.INFO if outcome.success else severity,
        metadata={
            "expectation_type": outcome.expectation_type,
            "kwargs": outcome.kwargs,
            "rule": label,
            "element_count": outcome.element_count,
            "unexpected_count": outcome.unexpected_count,
            "unexpected_sample": list(outcome.unexpected_sample),
            "observed_value": outcome.observed_value,
            "error": outcome.error,
        },
    )


def _expectation_failure(
    outcome: _gx.ExpectationOutcome, *, column: str | None, label: str | None
) -> dict[str, Any]:
    if outcome.error is not None:
        problem = f"{outcome.expectation_type}: {outcome.error}"
    elif outcome.unexpected_fraction is not None:
        sample = ", ".join(repr(v) for v in outcome.unexpected_sample[:3])
        problem = (
            f"{label or outcome.expectation_type}: {outcome.unexpected_fraction:.2%} of values "
            f"violate it" + (f" (e.g. {sample})" if sample else "")
        )
    else:
        problem = f"{label or outcome.expectation_type}: observed {outcome.observed_value!r}"
    return {"column": column, "problem": problem}


def _baseline_verdicts(
    corrmon: CorrmonResource,
    *,
    tags: MaterializationTags,
    config: _QualityConfig,
    name: str,
    values: Mapping[str | None, float],
    direction: Literal["increase", "decrease", "both"],
    min_change: float,
    proportion_rows: int | None = None,
) -> dict[str | None, BaselineVerdict]:
    """One verdict per column (none without a baseline policy), from one read of the store."""
    if config.baseline is None or not values:
        return {}
    return judge_columns_against_history(
        corrmon.get_store(),
        asset_key=tags.asset_key,
        name=name,
        kind=SignalKind.DATA_QUALITY,
        values=values,
        event_time=tags.event_time,
        direction=direction,
        policy=config.baseline,
        min_change=min_change,
        incident_assets=config.incident_assets,
        proportion_rows=proportion_rows,
    )


def _outcome(
    *,
    failures: Sequence[Mapping[str, Any]],
    severities: Sequence[Severity],
    signals: Sequence[Signal],
    metadata: dict[str, Any],
    notes: Sequence[str],
    ok: str,
    subject: str,
) -> CheckOutcome:
    if notes:
        metadata[md.NOTES] = list(notes)
    if not failures:
        suffix = f" (note: {'; '.join(notes)})" if notes else ""
        return CheckOutcome(
            passed=True,
            severity=Severity.INFO,
            description=ok + suffix,
            metadata=metadata,
            signals=signals,
        )
    lines = [
        (f"column {f['column']!r}: " if f.get("column") else "") + str(f["problem"])
        for f in failures
    ]
    metadata[md.FAILURES] = list(failures)
    # Column names and problems quote the data: escaped, so a "|" or "[x](url)" stays text.
    metadata[md.SUMMARY] = dg.MetadataValue.md(
        "\n".join(f"- {md.escape_markdown(line)}" for line in lines)
    )
    return CheckOutcome(
        passed=False,
        severity=worst(severities),
        description=f"{subject} failed: " + "; ".join(lines),
        metadata=metadata,
        signals=signals,
        failed_count=len(failures),
    )


def _unique_names(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Signal names, suffixed ``#2``, ``#3``… where (name, column) repeats within one check.

    (name, column) is part of a signal's idempotency key: two rules on one column must not collide.
    """
    seen: dict[tuple[str, str], int] = {}
    names = []
    for name, column in pairs:
        count = seen.get((name, column), 0) + 1
        seen[(name, column)] = count
        names.append(name if count == 1 else f"{name}#{count}")
    return names


def _summarize_notes(notes: Sequence[str]) -> list[str]:
    if len(notes) <= 3:
        return list(notes)
    return [*notes[:2], f"... and {len(notes) - 2} more column(s) without enough history"]


def _z_text(z: float | None) -> str:
    if z is None:
        return "n/a"
    return f"{z:.1f}" if abs(z) != float("inf") else "∞"
