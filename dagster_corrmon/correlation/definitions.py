"""``build_corrmon_defs``: everything corrmon adds to a Dagster project, from one call."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from dagster_corrmon import instance_api
from dagster_corrmon.alerts import Alerting, AlertRoute, directory_for, dispatch_for_model
from dagster_corrmon.core.incident import Incident, IncidentClass, IncidentStatus
from dagster_corrmon.core.lineage import ancestors_with_distance
from dagster_corrmon.core.signal import SignalKind, ensure_utc
from dagster_corrmon.correlation.annotation import (
    INCIDENT_CHECK_NAME,
    RETRAIN_DECISION,
    EffectHook,
    apply_incident_effects,
    finish_pass,
    notify,
    pass_subject,
    reconcile_incident_effects,
    start_pass,
    tag_value,
)
from dagster_corrmon.correlation.engine import (
    at_risk_resolution,
    correlate,
    flag_at_risk,
    lineage_for,
    lineage_from_provenance,
    upstream_fault_signals,
    upstream_map,
    utcnow,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import (
    RETRAIN_SIGNAL_NAME,
    TRIGGER_CORRELATION,
    TRIGGER_GUARD_CHECK,
    TRIGGER_SCHEDULE,
    Decision,
    RetrainDecision,
    RetrainGuard,
    RetrainPolicy,
    decide_retrain,
    decision_trigger,
    record_decision,
    retrain_guard,
)
from dagster_corrmon.correlation.sensor import CORRELATE_OP_NAME, build_correlation_sensor
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource
from dagster_corrmon.store import ACTIVE_STATUSES

CORRELATION_JOB_NAME = "corrmon_correlation_job"
RETRAIN_SENSOR_NAME = "corrmon_retrain_sensor"
RETRAIN_SCHEDULE_PREFIX = "corrmon_retrain_schedule"
RETRAIN_GUARD_CHECK_NAME = "corrmon_retrain_guard"
RETRAIN_TAG = "corrmon/retrain"
REASON_TAG = "corrmon/reason"
TRIGGER_TAG = "corrmon/trigger"
AT_RISK_WINDOW = timedelta(days=7)
DEFAULT_RETRAIN_POLICY = RetrainPolicy()


def _resolution(incident: Incident, *, model_metric: str, labelled_until: datetime) -> str | None:
    """Why an active incident of the model is over, when the pass found no shift (else None).

    A performance incident is over when its metric is back to baseline. A provisional *at-risk*
    **upstream-failure** incident (runs failed or data came late; no loss confirmed) is over once
    the failure has not been seen for :data:`AT_RISK_WINDOW` of labelled partitions and the labels
    show no shift: the risk did not materialize, and a retrain would learn nothing wrong from data
    that is merely absent. Until then it stays open — and blocks retraining — as before; a failure
    that persists keeps extending its window. Any at-risk incident, a data fault included, is
    also closed by :func:`~dagster_corrmon.correlation.engine.at_risk_resolution` once its
    partitions are re-materialized clean, or once labels cover them and show no loss.
    """
    if incident.metric != model_metric or incident.status not in ACTIVE_STATUSES:
        return None
    if not incident.metadata.get("provisional"):
        return "the metric returned to its baseline"
    if incident.classification is not IncidentClass.UPSTREAM_FAILURE:
        return None
    last_seen = incident.window_end
    if last_seen is not None and last_seen < labelled_until - AT_RISK_WINDOW:
        return (
            f"the risk did not materialize: the defect was last seen at {last_seen:%Y-%m-%d}, "
            f"and the labels through {labelled_until:%Y-%m-%d} show no performance shift"
        )
    return None


def build_correlation_job(
    *,
    models: Sequence[MonitoredModel],
    retrain_policy: RetrainPolicy = DEFAULT_RETRAIN_POLICY,
    name: str = CORRELATION_JOB_NAME,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    alerts: Alerting | Sequence[AlertRoute] = (),
    on_effect: EffectHook | None = None,
) -> dg.JobDefinition:
    """The correlation job: one op that explains one model's shift (the model is run config).

    A pass first finishes what an earlier pass of the model left undone
    (:func:`~dagster_corrmon.correlation.annotation.reconcile_incident_effects`), and marks
    itself started and finished in the store, so the sensor can tell a pass that died.
    ``on_effect`` observes each effect step (``(effect, subject)``), e.g. for an audit log.
    With ``alerts``, the pass ends by alerting the routes on the model's incidents.
    """
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
        start_pass(store, model, context.run_id)
        repaired = reconcile_incident_effects(context.instance, store, model, on_effect=on_effect)
        if repaired:
            context.log.info(f"finished the annotation an earlier pass left: {list(repaired)}")
        lineage = lineage_for(context, [model.evaluation, model.model])
        now = utcnow()
        outcome = correlate(
            instance=context.instance,
            store=store,
            model=model,
            lineage=lineage,
            now=now,
            log=context.log,
            on_effect=on_effect,
        )
        for note in outcome.notes[:20]:
            context.log.info(note)
        incident = outcome.incident
        result = outcome.result
        metric_points = store.read_signals(
            asset_key=model.evaluation.to_user_string(), name=model.metric
        )
        anchor = metric_points[-1].event_time if metric_points else now
        if result is not None and result.shift is None:
            for active in store.list_incidents(model_asset=model.name):
                note = _resolution(active, model_metric=model.metric, labelled_until=anchor)
                if note is not None:
                    resolved = store.set_incident_status(
                        active.id, IncidentStatus.RESOLVED, note=note, actor="corrmon"
                    )
                    apply_incident_effects(
                        context.instance, store, model, resolved, on_effect=on_effect
                    )
                    context.log.info(f"{active.id} resolved: {note}")
        if result is not None:
            for active in store.list_incidents(model_asset=model.name):
                note = at_risk_resolution(
                    store, active, labelled_until=anchor, performance=incident
                )
                if note is not None:
                    resolved = store.set_incident_status(
                        active.id, IncidentStatus.RESOLVED, note=note, actor="corrmon"
                    )
                    apply_incident_effects(
                        context.instance, store, model, resolved, on_effect=on_effect
                    )
                    context.log.info(f"{active.id} resolved: {note}")
        if incident is None or not incident.consequential:
            latest = result.shift if result is not None else None
            distances = ancestors_with_distance(lineage, model.evaluation.to_user_string())
            faults = upstream_fault_signals(store, distances, since=anchor - AT_RISK_WINDOW)
            if faults and latest is None:
                risk = flag_at_risk(
                    instance=context.instance,
                    store=store,
                    model=model,
                    lineage=lineage,
                    faults=faults,
                    now=now,
                    on_effect=on_effect,
                )
                if risk is not None:
                    context.log.info(
                        f"{risk.id}: {len(risk.affected_runs)} run(s) at risk from "
                        f"{risk.causes[0].asset_key}"
                    )
        # A decision is stamped with the newest evaluated partition (the data's time, not the
        # wall clock), so each pass records its own: an incident first judged not consequential
        # and confirmed a partition later gets its retrain decision then.
        decision = decide_retrain(
            store=store,
            model=model,
            lineage=lineage,
            incident=incident,
            policy=retrain_policy,
            event_time=metric_points[-1].event_time if metric_points else now,
            partition=metric_points[-1].partition if metric_points else None,
        )
        notify(on_effect, RETRAIN_DECISION, pass_subject(model))
        finish_pass(store, model, context.run_id)
        context.log.info(f"retrain {model.name}: {decision.decision}: {decision.reason}")
        if alerts:  # after every effect of the pass; a failed delivery is retried next pass
            directory = directory_for(context)
            dispatch_for_model(
                store, model.name, alerts, now=now, directory=directory, log=context.log
            )

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
                if decision_trigger(decision) != TRIGGER_CORRELATION:
                    # The schedule launched its own run; a guard-check verdict launches nothing
                    # here (Declarative Automation acts on the check result).
                    continue
                incident = str(decision.metadata.get("incident") or "none")
                requests.append(
                    dg.RunRequest(
                        run_key=f"retrain:{decision.idempotency_key}",
                        asset_selection=[model.model],
                        tags={
                            RETRAIN_TAG: "true",
                            "corrmon/incident": tag_value(incident),
                            REASON_TAG: str(decision.metadata.get("reason", ""))[:200],
                        },
                    )
                )
        # run_key de-duplicates across ticks: a decision is acted on once.
        return dg.SensorResult(run_requests=requests)

    return _sensor


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def _last_trained(instance: dg.DagsterInstance, model: MonitoredModel) -> datetime | None:
    """When the model asset was last materialized (a retrain by any route counts for cooldown)."""
    record = instance_api.latest_materialization(instance, model.model)
    return datetime.fromtimestamp(record.timestamp, tz=UTC) if record is not None else None


def _schedule_lineage(
    context: dg.ScheduleEvaluationContext, model: MonitoredModel
) -> dict[str, list[str]]:
    """The declared asset graph when the tick knows its repository, else recorded provenance."""
    try:
        repository = context.repository_def
    except dg.DagsterInvariantViolationError:
        return lineage_from_provenance(context.instance, [model.evaluation, model.model])
    return upstream_map(repository.asset_graph)


def _scheduled_time(context: dg.ScheduleEvaluationContext) -> datetime:
    try:
        return ensure_utc(context.scheduled_execution_time)
    except Exception as error:
        # Dagster raises its internal CheckError when the context was built without a time.
        if type(error).__name__ != "CheckError":
            raise
        return utcnow()


def _retrain_tags(decision: RetrainDecision, trigger: str) -> dict[str, str]:
    tags = {RETRAIN_TAG: "true", REASON_TAG: decision.reason[:200], TRIGGER_TAG: trigger}
    if decision.incident_id is not None:
        tags["corrmon/incident"] = tag_value(decision.incident_id)
    return tags


def build_retrain_schedule(
    *,
    model: MonitoredModel,
    cron_schedule: str,
    guard: RetrainGuard = retrain_guard,
    policy: RetrainPolicy = DEFAULT_RETRAIN_POLICY,
    name: str | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
    execution_timezone: str | None = None,
) -> dg.ScheduleDefinition:
    """A scheduled retrain of ``model`` that runs only when its guard holds.

    On each tick the guard (:func:`~dagster_corrmon.correlation.retrain.retrain_guard` unless
    given) decides from the store: retrain on validated decay or consequential drift since the
    last retrain, never while the model or an ancestor has an open data-fault or upstream-failure
    incident, and not within the cooldown. The decision is recorded as a ``retrain_decision``
    signal either way; a tick that does not retrain returns a ``SkipReason`` with the reason, so
    it is visible on the schedule's tick history. A retrain is one run of the model asset tagged
    ``corrmon/retrain=true`` and ``corrmon/reason``.
    """

    @dg.schedule(
        cron_schedule,
        name=name or f"{RETRAIN_SCHEDULE_PREFIX}_{_slug(model.name)}",
        target=[model.model],
        required_resource_keys={resource_key},
        default_status=default_status,
        execution_timezone=execution_timezone,
        description=(
            f"corrmon: retrains {model.name} on schedule, only on validated decay or consequential "
            "drift, never on top of an open data fault."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        store = getattr(context.resources, resource_key).get_store()
        now = _scheduled_time(context)
        verdict = guard(
            store,
            model,
            _schedule_lineage(context, model),
            policy,
            now,
            last_trained=_last_trained(context.instance, model),
        )
        decision = replace(verdict, trigger=TRIGGER_SCHEDULE)
        record_decision(store, decision)
        if decision.decision is not Decision.RETRAIN:
            return dg.SkipReason(f"{decision.decision.value}: {decision.reason}")
        return dg.RunRequest(
            run_key=f"retrain:{model.name}:{now.isoformat()}",
            asset_selection=[model.model],
            tags=_retrain_tags(decision, TRIGGER_SCHEDULE),
        )

    return _schedule


def retrain_guard_condition(
    *, cron_schedule: str, cron_timezone: str = "UTC"
) -> dg.AutomationCondition:
    """When the ``corrmon_retrain_guard`` check re-judges the guard: once per cron tick."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron_schedule, cron_timezone)
        .since_last_handled()
        .with_label("corrmon_retrain_guard_on_cron")
    )


def build_retrain_guard_check(
    *,
    model: MonitoredModel,
    guard: RetrainGuard = retrain_guard,
    policy: RetrainPolicy = DEFAULT_RETRAIN_POLICY,
    cron_schedule: str | None = None,
    cron_timezone: str = "UTC",
    resource_key: str = DEFAULT_RESOURCE_KEY,
) -> dg.AssetChecksDefinition:
    """``corrmon_retrain_guard``: the retrain guard as a blocking check on the model asset.

    Passes when retraining is allowed now (decay or consequential drift, no open data fault,
    outside the cooldown — the model's latest materialization counts as the last retrain).
    Fails with ERROR while an open data-fault / upstream-failure incident blocks retraining
    (fix the data and backfill first), with WARN when there is simply nothing to retrain for.
    Its verdict is recorded (trigger ``guard_check``) but launches nothing itself:
    :func:`retrain_condition` on the model acts on it. With ``cron_schedule`` the check
    re-judges itself once per cron tick under Declarative Automation.
    """

    @dg.asset_check(
        asset=model.model,
        name=RETRAIN_GUARD_CHECK_NAME,
        blocking=True,
        required_resource_keys={resource_key},
        automation_condition=(
            retrain_guard_condition(cron_schedule=cron_schedule, cron_timezone=cron_timezone)
            if cron_schedule is not None
            else None
        ),
        description=(
            "corrmon: passes when retraining this model is allowed now (validated decay or "
            "consequential drift, no open data fault upstream, outside the cooldown)."
        ),
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        store = getattr(context.resources, resource_key).get_store()
        lineage = lineage_for(context.op_execution_context, [model.evaluation, model.model])
        verdict = guard(
            store,
            model,
            lineage,
            policy,
            utcnow(),
            last_trained=_last_trained(context.instance, model),
        )
        decision = replace(verdict, trigger=TRIGGER_GUARD_CHECK)
        record_decision(store, decision)
        allowed = decision.decision is Decision.RETRAIN
        return dg.AssetCheckResult(
            passed=allowed,
            severity=(
                dg.AssetCheckSeverity.ERROR
                if decision.decision is Decision.BLOCKED
                else dg.AssetCheckSeverity.WARN
            ),
            description=f"{decision.decision.value}: {decision.reason}",
            metadata={
                "corrmon/decision": decision.decision.value,
                "corrmon/reason": decision.reason,
                "corrmon/incident": decision.incident_id or "",
            },
        )

    return _check


def retrain_condition(
    *, cron_schedule: str | None = None, cron_timezone: str = "UTC"
) -> dg.AutomationCondition:
    """corrmon's retrain policy as a Declarative Automation condition for the model asset.

    Dagster's conditions cannot read corrmon's store, so the policy reaches them through the
    ``corrmon_retrain_guard`` check (:func:`build_retrain_guard_check`; it must be defined —
    with no blocking check on the model this condition has nothing to wait for). The model is
    requested when all its blocking checks — the guard among them — have *newly* passed against
    its latest materialization, while every upstream blocking check passes and no run of it is in
    progress. After the retrain the guard's result refers to an older materialization, so the
    condition stays false until the guard passes again: one retrain per passing guard run.
    With ``cron_schedule`` additionally at most one retrain per cron tick.

    ::

        @dg.asset(automation_condition=cm.retrain_condition())
        def model(): ...

        guard = cm.build_retrain_guard_check(model=monitored, cron_schedule="0 4 * * *")

    The guard is re-judged only when its check runs (on its cron under Declarative Automation,
    or on demand), so the decision is as fresh as that run; the automation sensor must be on
    (Dagster's default one starts stopped).
    """
    guard_passed = dg.AutomationCondition.all_checks_match(
        dg.AutomationCondition.check_passed(), blocking_only=True
    ).with_label("corrmon_retrain_guard_passed")
    condition = (
        guard_passed.newly_true().with_label("corrmon_retrain_guard_newly_passed")
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & ~dg.AutomationCondition.in_progress()
    )
    if cron_schedule is not None:
        condition = (
            dg.AutomationCondition.cron_tick_passed(cron_schedule, cron_timezone)
            .since_last_handled()
            .with_label("corrmon_retrain_cron")
            & condition
        )
    return condition.with_label("corrmon_retrain")


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
            if incident.status in ACTIVE_STATUSES
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
    retrain_schedule: str | None = None,
    sensor_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    alerts: Alerting | Sequence[AlertRoute] = (),
) -> dg.Definitions:
    """Monitoring for an existing Dagster project: merge the result into its definitions.

    ``sensor_status`` is the default status of the correlation and retrain sensors (running,
    so monitoring works once the daemon runs; ``STOPPED`` to look at a recorded history
    without acting on it).

    ``retrain_schedule`` (a cron string) adds, per model, a guarded scheduled retrain
    (:func:`build_retrain_schedule`) and the ``corrmon_retrain_guard`` check that shows the
    guard's verdict in the Checks tab (run on demand; for Declarative Automation build it with
    :func:`build_retrain_guard_check` and a ``cron_schedule`` instead).

    ``alerts`` (routes, or :class:`~dagster_corrmon.alerts.Alerting` with the UI's base URL and
    runbooks) alerts each incident's lifecycle steps after every correlation pass.

    ::

        defs = dg.Definitions.merge(my_defs, build_corrmon_defs(models=[MonitoredModel(...)]))
    """
    if not models:
        raise ConfigError("build_corrmon_defs: models must name at least one MonitoredModel")
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"build_corrmon_defs: a model is listed twice: {names}")
    job = build_correlation_job(
        models=models, retrain_policy=retrain_policy, resource_key=resource_key, alerts=alerts
    )
    guard_checks: list[dg.AssetChecksDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    if retrain_schedule is not None:
        for model in models:
            guard_checks.append(
                build_retrain_guard_check(
                    model=model, policy=retrain_policy, resource_key=resource_key
                )
            )
            schedules.append(
                build_retrain_schedule(
                    model=model,
                    cron_schedule=retrain_schedule,
                    policy=retrain_policy,
                    resource_key=resource_key,
                )
            )
    return dg.Definitions(
        asset_checks=[
            *data_checks,
            *build_incident_checks(models=models, resource_key=resource_key),
            *guard_checks,
        ],
        jobs=[job],
        schedules=schedules,
        sensors=[
            build_correlation_sensor(
                models=models,
                job_name=job.name,
                minimum_interval_seconds=sensor_interval_seconds,
                default_status=sensor_status,
                resource_key=resource_key,
            ),
            build_retrain_sensor(
                models=models, default_status=sensor_status, resource_key=resource_key
            ),
        ],
        resources={resource_key: store or CorrmonResource()},
    )
