"""``CorrmonComponent``: corrmon attached to a ``dg`` project from one ``defs.yaml``.

The component is a YAML face of the Python API and nothing more: ``build_defs`` calls the same
factories a Python user calls (``build_*_checks``, ``bundle_checks``, ``build_corrmon_defs``),
passing only the keys the YAML sets, so every default and every validation lives in one place
(the factory). Unknown or mistyped keys are rejected by Dagster's own resolution, which names the
``defs.yaml`` line; a value a factory rejects is re-raised as a :class:`ConfigError` naming the
file, line and key path of the entry it came from.

File paths (a GX suite, a schema contract, a reference profile) are relative to the folder of the
``defs.yaml``, like dagster-sling's ``replication.yaml``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from dagster.components.resolved.core_models import (
    DailyPartitionsDefinitionModel,
    HourlyPartitionsDefinitionModel,
    StaticPartitionsDefinitionModel,
    TimeWindowPartitionsDefinitionModel,
    WeeklyPartitionsDefinitionModel,
    resolve_partitions_def,
)
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from dagster_corrmon.checks import (
    build_data_quality_checks,
    build_drift_checks,
    build_freshness_checks,
    build_model_evaluation_checks,
    build_schema_contract_checks,
    bundle_checks,
)
from dagster_corrmon.components.scaffolder import CorrmonScaffolder
from dagster_corrmon.correlation.definitions import build_corrmon_defs
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import RetrainPolicy
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.repair import build_rescoring_repair
from dagster_corrmon.resource import CorrmonResource

Severity = Literal["info", "warn", "error"]
# A duration in YAML: seconds, or ISO 8601 (PT6H, P7D); turned into a timedelta for the factory.
Duration = int | float | str
_DURATIONS = TypeAdapter(timedelta)


# Dagster's own partitions attribute (as on its asset attributes):
# ``{type: daily, start_date: ...}``.
Partitions = Annotated[
    dg.PartitionsDefinition | None,
    dg.Resolver(
        resolve_partitions_def,
        model_field_name="partitions",
        model_field_type=HourlyPartitionsDefinitionModel
        | DailyPartitionsDefinitionModel
        | WeeklyPartitionsDefinitionModel
        | TimeWindowPartitionsDefinitionModel
        | StaticPartitionsDefinitionModel,
        description="The asset's partitioning, so its checks run per partition, e.g. "
        "{type: daily, start_date: '2024-01-01'}.",
    ),
]


class ModelEntry(dg.Model):
    """One monitored model (:class:`~dagster_corrmon.MonitoredModel`), by asset key strings."""

    model: str = Field(description="The training asset; its materializations are model versions.")
    evaluation: str = Field(description="The asset whose evaluation checks record the metric.")
    predictions: str | None = Field(
        default=None, description="The scoring asset, whose runs get flagged at risk."
    )
    metric: str | None = Field(default=None, description="The metric incidents are about.")
    lookback_partitions: int | None = None
    repair: "RepairArgs | None" = Field(
        default=None,
        description="The repair test (build_rescoring_repair): the model asset's value offers "
        "feature_columns and score(frame); each partition of `features` holds them and the label.",
    )


class RepairArgs(dg.Model):
    """Where the repair test reads the rows it re-scores."""

    features: str = Field(description="The features asset (feature columns and the label).")
    label_column: str


ModelEntry.model_rebuild()


class QualityArgs(dg.Model):
    """Arguments of :func:`~dagster_corrmon.build_data_quality_checks` (unset = its default)."""

    completeness: dict[str, float] | None = None
    track_all_columns: bool | None = None
    validity: list[dict[str, Any]] | None = Field(
        default=None,
        description="Rules as mappings, e.g. {rule: range, column: temp, max_value: 60}.",
    )
    volume: bool | dict[str, Any] | None = None
    suite: str | None = Field(
        default=None, description="A GX 1.x expectation suite JSON, relative to this folder."
    )
    severity: Severity | None = None
    baseline: bool | dict[str, Any] | None = None
    completeness_min_change: float | None = None
    engine: Literal["pandas", "great_expectations"] | None = None
    incident_assets: list[str] | None = None
    blocking: bool | None = None


class SchemaArgs(dg.Model):
    """Arguments of :func:`~dagster_corrmon.build_schema_contract_checks`."""

    contract: str | dict[str, Any] | None = Field(
        default=None, description="A contract (mapping) or a JSON/YAML file, relative to here."
    )
    rename_tolerance: float | None = None
    history_lookback: Duration | None = None
    blocking: bool | None = None


class FreshnessArgs(dg.Model):
    """Arguments of :func:`~dagster_corrmon.build_freshness_checks` (durations: ISO 8601 or s)."""

    allowed_lateness: Duration | None = None
    lookback_partitions: int | None = None
    max_age: Duration | None = Field(
        default=None, description="Needed for an unpartitioned asset, e.g. PT6H."
    )
    historical_horizon: Duration | None = None
    late_severity: Severity | None = None
    missing_severity: Severity | None = None
    blocking: bool | None = None


class DriftArgs(dg.Model):
    """Arguments of :func:`~dagster_corrmon.build_drift_checks`."""

    reference: str = Field(
        description="The reference model's asset key, or a profile JSON (`corrmon profile`) "
        "path relative to this folder (ending in .json)."
    )
    feature_importance: dict[str, float] | Literal["from_reference_asset"] | None = None
    consequential_importance: float | None = None
    columns: list[str] | None = None
    method: str | None = None
    per_column_method: dict[str, str] | None = None
    threshold: float | None = None
    per_column_threshold: dict[str, float] | None = None
    consequential_severity: Severity | None = None
    benign_severity: Severity | None = None
    blocking: bool | None = None


class ModelEvaluationArgs(dg.Model):
    """Arguments of :func:`~dagster_corrmon.build_model_evaluation_checks`."""

    task: Literal["classification", "regression"] | None = None
    label_column: str
    score_column: str | None = None
    prediction_column: str | None = None
    latency_column: str | None = None
    error_column: str | None = None
    metrics: list[str] | None = None
    threshold: float | None = None
    confidence: float | None = None
    n_resamples: int | None = None
    seed: int | None = None
    baseline: bool | dict[str, Any] | None = None
    min_change: dict[str, float] | None = None
    limits: dict[str, float] | None = None
    severity: Severity | None = None
    incident_assets: list[str] | None = None
    blocking: bool | None = None


@dataclass(frozen=True)
class AssetChecks(dg.Resolvable):
    """The corrmon checks of one asset; each kind is optional."""

    asset: Annotated[str, dg.Resolver.default(description="The asset key, e.g. raw/weather.")]
    partitions_def: Partitions = None
    quality: QualityArgs | None = None
    schema_contract: SchemaArgs | None = None
    freshness: FreshnessArgs | None = None
    drift: DriftArgs | None = None
    model_evaluation: ModelEvaluationArgs | None = None


class RetrainArgs(dg.Model):
    """Retraining (:class:`~dagster_corrmon.RetrainPolicy`, plus an optional guarded schedule)."""

    on_concept_drift: bool | None = None
    cooldown: Duration | None = Field(default=None, description="e.g. P7D")
    schedule: str | None = Field(
        default=None, description="A cron string: a guarded scheduled retrain per model."
    )


_FACTORIES: dict[str, Callable[..., Sequence[dg.AssetChecksDefinition]]] = {
    "quality": build_data_quality_checks,
    "schema_contract": build_schema_contract_checks,
    "freshness": build_freshness_checks,
    "drift": build_drift_checks,
    "model_evaluation": build_model_evaluation_checks,
}


@dg.scaffold_with(CorrmonScaffolder)
@dataclass(frozen=True)
class CorrmonComponent(dg.Component, dg.Resolvable):
    """Explain which upstream change made a model worse, and tag the runs it hit.

    Adds corrmon's asset checks to existing assets, the correlation sensor and job, the retrain
    sensor, a ``corrmon_incident`` check on each model and the store resource — exactly what
    ``dagster_corrmon.build_corrmon_defs`` adds from Python. See ``docs/component.md``.
    """

    models: Annotated[
        list[ModelEntry],
        dg.Resolver.default(description="The models whose performance corrmon explains."),
    ]
    checks: Annotated[
        list[AssetChecks],
        dg.Resolver.default(description="Per asset: quality, schema, freshness, drift checks."),
    ] = field(default_factory=list)
    database_url: Annotated[
        str | None,
        dg.Resolver.default(
            description="The signal store; unset: $CORRMON_DATABASE_URL, else SQLite in "
            "$DAGSTER_HOME."
        ),
    ] = None
    bundle: Annotated[
        bool,
        dg.Resolver.default(description="Run each asset's corrmon checks in one step."),
    ] = True
    partitions_def: Partitions = None
    retrain: RetrainArgs | None = None
    sensor_interval_seconds: int | None = None
    sensor_status: Literal["running", "stopped"] | None = None

    def build_models(self, context: dg.ComponentLoadContext) -> list[MonitoredModel]:
        """One :class:`MonitoredModel` per entry of ``models``, with its repair test if asked."""
        models = []
        for index, entry in enumerate(self.models):
            with _located(context, ["models", index]):
                model = MonitoredModel(**_set_fields(entry, exclude=("repair",)))
                if entry.repair is not None:
                    if self.partitions_def is None:
                        raise ConfigError(
                            "repair: re-scoring reads the features per partition; set the "
                            "component's partitions"
                        )
                    model = replace(
                        model,
                        repair=build_rescoring_repair(
                            # the whole project's definitions, built when a repair is asked
                            definitions=context.component_tree.build_defs,
                            model=model.model,
                            features=entry.repair.features,
                            label_column=entry.repair.label_column,
                            partitions_def=self.partitions_def,
                            metric=model.metric,
                        ),
                    )
            models.append(model)
        return models

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        models = self.build_models(context)
        data_checks: list[dg.AssetChecksDefinition] = []
        for index, entry in enumerate(self.checks):
            data_checks.extend(self._asset_checks(context, index, entry))
        options: dict[str, Any] = {}
        if self.sensor_interval_seconds is not None:
            options["sensor_interval_seconds"] = self.sensor_interval_seconds
        if self.sensor_status is not None:
            options["sensor_status"] = dg.DefaultSensorStatus(self.sensor_status.upper())
        if self.retrain is not None:
            with _located(context, ["retrain"]):
                options["retrain_policy"] = RetrainPolicy(
                    **_set_fields(self.retrain, exclude=("schedule",))
                )
                options["retrain_schedule"] = self.retrain.schedule
        with _located(context, []):
            return build_corrmon_defs(
                models=models,
                data_checks=bundle_checks(data_checks) if self.bundle else data_checks,
                store=CorrmonResource(database_url=self.database_url),
                **options,
            )

    def _asset_checks(
        self, context: dg.ComponentLoadContext, index: int, entry: AssetChecks
    ) -> list[dg.AssetChecksDefinition]:
        key = dg.AssetKey.from_user_string(entry.asset)
        built: list[dg.AssetChecksDefinition] = []
        for kind, factory in _FACTORIES.items():
            args = getattr(entry, kind)
            if args is None:
                continue
            target: dict[str, Any] = (
                {"asset": key} if kind == "model_evaluation" else {"assets": [key]}
            )
            with _located(context, ["checks", index, kind], keys=list(args.model_fields_set)):
                kwargs = _factory_arguments(kind, _set_fields(args, exclude=()), context.path)
                partitions_def = entry.partitions_def or self.partitions_def
                built.extend(factory(**target, **kwargs, partitions_def=partitions_def))
        return built


def _set_fields(model: BaseModel, *, exclude: Sequence[str]) -> dict[str, Any]:
    """The keys the YAML set, durations as timedeltas: the rest keeps the factory's default."""
    values: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if name in exclude or value is None:
            continue
        if type(model).model_fields[name].annotation == Duration | None:
            try:
                value = _DURATIONS.validate_python(value)
            except ValidationError as error:
                raise ConfigError(
                    f"{name}: {value!r} is not a duration (seconds, or ISO 8601 such as PT6H, "
                    f"P7D): {error.errors()[0]['msg']}"
                ) from error
        values[name] = value
    return values


def _factory_arguments(kind: str, kwargs: dict[str, Any], folder: Path) -> dict[str, Any]:
    """YAML values turned into what the factory takes: relative paths, asset keys."""
    for name in ("suite", "contract"):
        if isinstance(kwargs.get(name), str):
            kwargs[name] = folder / kwargs[name]
    if kind == "drift":
        reference = kwargs["reference"]
        kwargs["reference"] = (
            folder / reference
            if reference.endswith(".json")
            else dg.AssetKey.from_user_string(reference)
        )
    return kwargs


class _located:
    """Re-raise a factory's ``ConfigError`` with the ``defs.yaml`` file, line and key path.

    The line is the entry's, or that of the entry's key the message names (factories name the
    argument they reject), so the user lands on the value to fix.
    """

    def __init__(
        self,
        context: dg.ComponentLoadContext,
        path: Sequence[str | int],
        keys: Sequence[str] = (),
    ) -> None:
        self._context = context
        self._path: list[str | int] = ["attributes", *path]
        self._keys = keys

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if not isinstance(error, ConfigError):
            return
        named = [key for key in self._keys if key in str(error)]
        path = [*self._path, max(named, key=len)] if named else self._path
        raise ConfigError(f"{_where(self._context, path)}: {error}") from error


def _where(context: dg.ComponentLoadContext, path: Sequence[str | int]) -> str:
    dotted = ".".join(str(part) for part in path)
    tree = context.resolution_context.source_position_tree
    if tree is None:  # at build time the position tree lives on the YAML declaration
        source = getattr(context.component_decl, "source_tree", None)
        tree = source.source_position_tree if source is not None else None
    if tree is None:  # built from Python, not from a defs.yaml
        return dotted
    position, _ = tree.lookup_closest_and_path(list(path), trace=None)
    return f"{position.filename}:{position.start.line} ({dotted})"
