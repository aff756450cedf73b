"""``build_corrmon_defs``: everything corrmon adds to a Dagster project, from one call."""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from dagster_corrmon.core.incident import IncidentStatus
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.correlation.engine import (
    INCIDENT_CHECK_NAME,
    correlate,
    flag_at_risk,
    lineage_for,
    tag_value,
    upstream_fault_signals,
    utcnow,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import (
    RETRAIN_SIGNAL_NAME,
    Decision,
    RetrainPolicy,
    decide_retrain,
)
from dagster_corrmon.correlation.sensor import CORRELATE_OP_NAME, build_correlation_sensor
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource

CORRELATION_JOB_NAME = "corrmon_correlation_job"
RETRAIN_SENSOR_NAME = "corrmon_retrain_sensor"
AT_RISK_WINDOW = timedelta(days=7)
DEFAULT_RETRAIN_POLICY = RetrainPolicy()


def build_correlation_job(
    *,
    models: Sequence[MonitoredModel],
    retrain_policy: RetrainPolicy = DEFAULT_RETRAIN_POLICY,
    name: str = CORRELATION_JOB_NAME,
    resource_key: str = DEFAULT_RESOURCE_KEY,
) -> dg.JobDefinition:
    """The correlation job: one op that explains one model's shift (the model is run config)."""
    by_name = {model.name: model for model in models}

    @dg.op(
        name=CORRELATE_OP_NAME,
        config_schema={
            "model": dg.Field(str, description="The monitored model asset (user string)."),
            "triggers": dg.Field([str], is_required=False, default_value=[]),
        },
        required_resource_keys={resource_key},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=1),
        tags={"kind": "corrmon"},
    )
    def _correlate(context: dg.OpExecutionContext) -> None:
        model_name = context.op_config["model"]
        if model_name not in by_name:
            raise ConfigError(
                f"{CORRELATE_OP_NAME}: model {model_name!r} is not monitored; "
                f"known: {', '.join(sorted(by_name))}"
            )
        model = by_name[model_name]
        store = getattr(context.resources, resource_key).get_store()
        lineage = lineage_for(context, [model.evaluation, model.model])
        now = utcnow()
        outcome = correlate(
            instance=context.instance,
            store=store,
            model=model,
            lineage=lineage,
            now=now,
            log=context.log,
        )
        for note in outcome.notes[:20]:
            context.log.info(note)
        incident = outcome.incident
        result = outcome.result
        if result is not None and result.shift is None:
            for active in store.list_incidents(model_asset=model.name):
                provisional = bool(active.metadata.get("provisional"))
                if (
                    active.metric == model.metric
                    and not provisional
                    and active.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
                ):
                    store.set_incident_status(
                        active.id,
                        IncidentStatus.RESOLVED,
                        note="the metric returned to its baseline",
                        actor="corrmon",
                    )
                    context.log.info(f"{active.id} resolved: the metric is back to baseline")
        if incident is None or not incident.consequential:
            latest = result.shift if result is not None else None
            distances = ancestors_with_distance(lineage, model.evaluation.to_user_string())
            metric_points = store.read_signals(
                asset_key=model.evaluation.to_user_string(), name=model.metric
            )
            anchor = metric_points[-1].event_time if metric_points else now
            faults = upstream_fault_signals(store, distances, since=anchor - AT_RISK_WINDOW)
            if faults and latest is None:
                risk = flag_at_risk(
                    instance=context.instance,
                    store=store,
                    model=model,
                    lineage=lineage,
                    faults=faults,
                    now=now,
                )
                if risk is not None:
                    context.log.info(
                        f"{risk.id}: {len(risk.affected_runs)} run(s) at risk from "
                        f"{risk.causes[0].asset_key}"
                    )
        latest_metric = store.read_signals(
            asset_key=model.evaluation.to_user_string(), name=model.metric
        )
        if incident is not None and incident.detected_time is not None:
            event_time = incident.detected_time
        elif latest_metric:
            event_time = latest_metric[-1].event_time  # the data's time, not the wall clock
        else:
            event_time = now
        decision = decide_retrain(
            store=store,
            model=model,
            lineage=lineage,
            incident=incident,
            policy=retrain_policy,
            event_time=event_time,
            partition=(
                incident.detected_partition
                if incident is not None
                else (latest_metric[-1].partition if latest_metric else None)
            ),
        )
        context.log.info(f"retrain {model.name}: {decision.decision}: {decision.reason}")

    @dg.job(name=name, description="corrmon: attribute a model's performance shift to its causes.")
    def _job() -> None:
        _correlate()

    return _job


def build_retrain_sensor(
    *,
    models: Sequence[MonitoredModel],
    name: str = RETRAIN_SENSOR_NAME,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    resource_key: str = DEFAULT_RESOURCE_KEY,
) -> dg.SensorDefinition:
    """Turns recorded ``retrain`` decisions into runs of the model asset, once each."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        target=[model.model for model in models],
        description="corrmon: retrains a model when a concept-drift incident calls for it.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        store = getattr(context.resources, resource_key).get_store()
        requests = []
        for model in models:
            decisions = store.read_signals(
                asset_key=model.name, name=RETRAIN_SIGNAL_NAME, kind=SignalKind.RETRAIN_DECISION
            )
            for decision in decisions:
                if decision.metadata.get("decision") != Decision.RETRAIN.value:
                    continue
                incident = str(decision.metadata.get("incident") or "none")
                requests.append(
                    dg.RunRequest(
                        run_key=f"retrain:{decision.idempotency_key}",
                        asset_selection=[model.model],
                        tags={
                            "corrmon/retrain": "true",
                            "corrmon/incident": tag_value(incident),
                            "corrmon/reason": str(decision.metadata.get("reason", ""))[:200],
                        },
                    )
                )
        # run_key de-duplicates across ticks: a decision is acted on once.
        return dg.SensorResult(run_requests=requests)

    return _sensor


def build_incident_checks(
    *, models: Sequence[MonitoredModel], resource_key: str = DEFAULT_RESOURCE_KEY
) -> list[dg.AssetChecksDefinition]:
    """Declare ``corrmon_incident`` on every model asset, so it shows in the Checks tab.

    The correlation job reports into it runlessly; run on its own, it re-reads the model's
    active incidents from the store.
    """
    return [_incident_check(model, resource_key) for model in models]


def _incident_check(model: MonitoredModel, resource_key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=model.model,
        name=INCIDENT_CHECK_NAME,
        required_resource_keys={resource_key},
        description="corrmon: open performance incidents on this model and their causes.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        store = getattr(context.resources, resource_key).get_store()
        active = [
            incident
            for incident in store.list_incidents(model_asset=model.name)
            if incident.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
        ]
        if not active:
            return dg.AssetCheckResult(passed=True, metadata={"corrmon/open_incidents": 0})
        latest = active[-1]
        return dg.AssetCheckResult(
            passed=False,
            severity=(
                dg.AssetCheckSeverity.ERROR if latest.consequential else dg.AssetCheckSeverity.WARN
            ),
            description=f"{latest.classification.value}: {latest.id}",
            metadata={
                "corrmon/open_incidents": len(active),
                "corrmon/incident": latest.id,
                "corrmon/explanation": dg.MetadataValue.md(latest.summary or ""),
            },
        )

    return _check


def build_corrmon_defs(
    *,
    models: Sequence[MonitoredModel],
    data_checks: Sequence[dg.AssetChecksDefinition] = (),
    store: CorrmonResource | None = None,
    retrain_policy: RetrainPolicy = DEFAULT_RETRAIN_POLICY,
    sensor_interval_seconds: int = 30,
    resource_key: str = DEFAULT_RESOURCE_KEY,
) -> dg.Definitions:
    """Monitoring for an existing Dagster project: merge the result into its definitions.

    ::

        defs = dg.Definitions.merge(my_defs, build_corrmon_defs(models=[MonitoredModel(...)]))
    """
    if not models:
        raise ConfigError("build_corrmon_defs: models must name at least one MonitoredModel")
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"build_corrmon_defs: a model is listed twice: {names}")
    job = build_correlation_job(
        models=models, retrain_policy=retrain_policy, resource_key=resource_key
    )
    return dg.Definitions(
        asset_checks=[
            *data_checks,
            *build_incident_checks(models=models, resource_key=resource_key),
        ],
        jobs=[job],
        sensors=[
            build_correlation_sensor(
                models=models,
                job_name=job.name,
                minimum_interval_seconds=sensor_interval_seconds,
                resource_key=resource_key,
            ),
            build_retrain_sensor(models=models, resource_key=resource_key),
        ],
        resources={resource_key: store or CorrmonResource()},
    )
