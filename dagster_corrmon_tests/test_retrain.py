"""Retraining triggers in a real instance with a real store: the guarded schedule, the guard check
and the Declarative Automation condition built on it, and ``decide_retrain``'s cooldown.

A tiny hand-written graph (raw → features → model → evaluation, plus ``other_model`` sharing the
raw feed) stands for a project. Incidents and signals are written through ``CorrmonStore`` as the
correlation job and the checks write them; the schedule is evaluated with
``dg.build_schedule_context``, the automation condition tick by tick with
``dg.evaluate_automation_conditions``.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.incident import Cause, Incident, IncidentClass, IncidentStatus
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.definitions import (
    CORRELATION_JOB_NAME,
    RETRAIN_GUARD_CHECK_NAME,
    RETRAIN_SENSOR_NAME,
    build_corrmon_defs,
    build_retrain_guard_check,
    build_retrain_schedule,
    build_retrain_sensor,
    retrain_condition,
)
from dagster_corrmon.correlation.engine import upstream_map
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import (
    RETRAIN_SIGNAL_NAME,
    Decision,
    RetrainPolicy,
    decide_retrain,
    retrain_guard,
)
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore

MODEL = MonitoredModel(model=dg.AssetKey("model"), evaluation=dg.AssetKey("evaluation"))
CRON = "0 4 * * *"
DAY = dt.datetime(2024, 3, 1, 4, tzinfo=dt.UTC)


@dg.asset
def raw() -> int:
    return 1


@dg.asset(deps=[raw])
def features() -> int:
    return 2


@dg.asset(deps=[raw])
def other_model() -> int:
    return 3


def _model(condition: dg.AutomationCondition | None = None) -> dg.AssetsDefinition:
    @dg.asset(name="model", deps=[features], automation_condition=condition)
    def _trained() -> int:
        return 4

    return _trained


@dg.asset(deps=["model", features])
def evaluation() -> int:
    return 5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CorrmonStore]:
    with CorrmonStore(f"sqlite:///{tmp_path}/corrmon.db") as opened:
        yield opened


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


def _resource(store: CorrmonStore) -> CorrmonResource:
    return CorrmonResource(database_url=store.database_url)


def _defs(store: CorrmonStore, *extra_checks: dg.AssetChecksDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw, features, other_model, _model(), evaluation],
        asset_checks=list(extra_checks),
        resources={"corrmon": _resource(store)},
    )


def _incident(
    incident_id: str,
    classification: IncidentClass,
    *,
    model_asset: str = "model",
    cause_asset: str | None = None,
    consequential: bool = True,
) -> Incident:
    causes = (
        (Cause(rank=1, kind="data_quality", asset_key=cause_asset, column="temp", score=0.9),)
        if cause_asset
        else ()
    )
    return Incident(
        id=incident_id,
        model_asset=model_asset,
        metric="roc_auc",
        classification=classification,
        consequential=consequential,
        causes=causes,
        created_at=DAY - dt.timedelta(days=1),
    )


def _tick(
    schedule: dg.ScheduleDefinition,
    store: CorrmonStore,
    instance: dg.DagsterInstance,
    when: dt.datetime,
) -> dg.RunRequest | dg.SkipReason:
    defs = _defs(store)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"corrmon": _resource(store)},
        repository_def=defs.get_repository_def(),
    ) as context:
        data = schedule.evaluate_tick(context)
    if data.run_requests:
        assert len(data.run_requests) == 1
        return data.run_requests[0]
    assert data.skip_message
    return dg.SkipReason(data.skip_message)


def _decisions(store: CorrmonStore) -> list[Signal]:
    return store.read_signals(
        asset_key="model", name=RETRAIN_SIGNAL_NAME, kind=SignalKind.RETRAIN_DECISION
    )


def _schedule(policy: RetrainPolicy | None = None) -> dg.ScheduleDefinition:
    return build_retrain_schedule(model=MODEL, cron_schedule=CRON, policy=policy or RetrainPolicy())


def test_schedule_skips_with_a_visible_reason_when_nothing_decayed(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    # A benign-drift incident and a passing metric are no reason to retrain.
    store.upsert_incident(_incident("inc-benign", IncidentClass.BENIGN_DRIFT, consequential=False))
    store.write_signals(
        [
            Signal(
                kind=SignalKind.METRIC,
                asset_key="evaluation",
                name="roc_auc",
                event_time=DAY - dt.timedelta(days=1),
                value=0.81,
                passed=True,
            )
        ]
    )
    outcome = _tick(_schedule(), store, instance, DAY)
    assert isinstance(outcome, dg.SkipReason)
    assert outcome.skip_message is not None
    assert outcome.skip_message.startswith("skip: no validated decay")
    [decision] = _decisions(store)
    assert decision.metadata["decision"] == "skip"
    assert decision.metadata["trigger"] == "schedule"
    assert decision.metadata["reason"] in outcome.skip_message
    assert decision.event_time == DAY


def test_schedule_retrains_on_concept_drift_once_per_cooldown(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    store.upsert_incident(_incident("inc-drift", IncidentClass.CONCEPT_DRIFT))
    schedule = _schedule(RetrainPolicy(cooldown=dt.timedelta(days=7)))

    first = _tick(schedule, store, instance, DAY)
    assert isinstance(first, dg.RunRequest)
    assert first.asset_selection == [dg.AssetKey("model")]
    assert first.tags["corrmon/retrain"] == "true"
    assert first.tags["corrmon/incident"] == "inc-drift"
    assert "concept-drift incident inc-drift" in first.tags["corrmon/reason"]

    # Within the cooldown the same incident does not retrain again, and says why.
    second = _tick(schedule, store, instance, DAY + dt.timedelta(days=1))
    assert isinstance(second, dg.SkipReason)
    assert second.skip_message is not None and "cooldown" in second.skip_message
    # After it, the still-open incident retrains again.
    third = _tick(schedule, store, instance, DAY + dt.timedelta(days=8))
    assert isinstance(third, dg.RunRequest)
    assert third.run_key != first.run_key
    assert [d.metadata["decision"] for d in _decisions(store)] == ["retrain", "skip", "retrain"]

    # The retrain sensor does not launch the schedule's retrains a second time.
    sensor = build_retrain_sensor(models=[MODEL])
    with dg.build_sensor_context(
        instance=instance,
        resources={"corrmon": _resource(store)},
        definitions=_defs(store),
    ) as context:
        assert not sensor.evaluate_tick(context).run_requests


def test_schedule_is_blocked_by_an_open_data_fault_on_an_ancestor(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    store.upsert_incident(_incident("inc-drift", IncidentClass.CONCEPT_DRIFT))
    # Another model's incident blames the raw feed this model is built from.
    store.upsert_incident(
        _incident(
            "inc-fault", IncidentClass.DATA_FAULT, model_asset="other_model", cause_asset="raw"
        )
    )
    schedule = _schedule()
    blocked = _tick(schedule, store, instance, DAY)
    assert isinstance(blocked, dg.SkipReason)
    assert blocked.skip_message is not None
    assert blocked.skip_message.startswith("blocked: open data_fault incident inc-fault on raw")
    assert "fix the data and backfill" in blocked.skip_message
    [decision] = _decisions(store)
    assert decision.metadata["decision"] == "blocked"
    assert decision.passed is False and decision.severity is Severity.WARN

    # A buggy features release blocks too: retraining would learn the bug.
    store.set_incident_status("inc-fault", IncidentStatus.RESOLVED, note="backfilled")
    store.upsert_incident(
        _incident("inc-code", IncidentClass.CODE_CHANGE, model_asset="model", cause_asset="raw")
    )
    by_code = _tick(schedule, store, instance, DAY + dt.timedelta(minutes=30))
    assert isinstance(by_code, dg.SkipReason) and by_code.skip_message is not None
    assert by_code.skip_message.startswith("blocked: open code_change incident inc-code on raw")
    assert "fix the code and backfill" in by_code.skip_message
    store.set_incident_status("inc-code", IncidentStatus.RESOLVED, note="reverted")

    # A data fault on an asset outside the lineage does not block.
    store.upsert_incident(
        _incident("inc-else", IncidentClass.DATA_FAULT, model_asset="x", cause_asset="unrelated")
    )
    assert isinstance(_tick(schedule, store, instance, DAY + dt.timedelta(hours=1)), dg.RunRequest)


def test_guard_retrains_on_failing_metric_or_consequential_drift_only(
    store: CorrmonStore,
) -> None:
    lineage = upstream_map(_defs(store).get_repository_def().asset_graph)
    policy = RetrainPolicy()

    def verdict(now: dt.datetime) -> tuple[Decision, str]:
        decided = retrain_guard(store, MODEL, lineage, policy, now)
        return decided.decision, decided.reason

    # Drift judged benign (WARN) is no reason; consequential (ERROR) drift on a feature is.
    drift = {"kind": SignalKind.DRIFT, "asset_key": "features", "name": "psi", "passed": False}
    store.write_signals([Signal(column="wind", event_time=DAY, severity=Severity.WARN, **drift)])
    assert verdict(DAY)[0] is Decision.SKIP
    # ERROR drift on an asset outside the model's lineage is no reason either.
    store.write_signals(
        [
            Signal(
                kind=SignalKind.DRIFT,
                asset_key="other_model",
                name="psi",
                passed=False,
                severity=Severity.ERROR,
                event_time=DAY,
            )
        ]
    )
    assert verdict(DAY)[0] is Decision.SKIP
    store.write_signals([Signal(column="temp", event_time=DAY, severity=Severity.ERROR, **drift)])
    decision, reason = verdict(DAY)
    assert decision is Decision.RETRAIN and reason == "consequential drift on features.temp"
    # ... but not once a retrain after it is on record: it is drift *since the last retrain*.
    later = DAY + dt.timedelta(days=10)
    retrained = retrain_guard(
        store, MODEL, lineage, policy, later, last_trained=DAY + dt.timedelta(days=1)
    )
    assert retrained.decision is Decision.SKIP
    assert retrained.reason.startswith("no validated decay")

    # The model's latest metric failing its check is validated decay.
    metric = {"kind": SignalKind.METRIC, "asset_key": "evaluation", "name": "roc_auc"}
    store.write_signals(
        [
            Signal(event_time=later - dt.timedelta(days=2), passed=False, value=0.6, **metric),
            Signal(event_time=later - dt.timedelta(days=1), passed=True, value=0.8, **metric),
        ]
    )
    assert (
        retrain_guard(store, MODEL, lineage, policy, later, last_trained=DAY).decision
        is Decision.SKIP
    )
    store.write_signals(
        [Signal(event_time=later, passed=False, value=0.6, partition="p", **metric)]
    )
    decided = retrain_guard(store, MODEL, lineage, policy, later, last_trained=DAY)
    assert decided.decision is Decision.RETRAIN
    assert decided.reason.startswith("validated decay: the latest roc_auc on evaluation")
    # The guard is a dry run: nothing was recorded.
    assert _decisions(store) == []


def test_decide_retrain_respects_the_cooldown_in_event_time(store: CorrmonStore) -> None:
    incident = _incident("inc-drift", IncidentClass.CONCEPT_DRIFT)
    policy = RetrainPolicy(cooldown=dt.timedelta(days=3))
    lineage = {"evaluation": ["model"], "model": ["features"], "features": ["raw"], "raw": []}

    def decide(when: dt.datetime) -> Decision:
        return decide_retrain(
            store=store,
            model=MODEL,
            lineage=lineage,
            incident=incident,
            policy=policy,
            event_time=when,
        ).decision

    assert decide(DAY) is Decision.RETRAIN
    assert decide(DAY + dt.timedelta(days=2)) is Decision.SKIP
    assert decide(DAY + dt.timedelta(days=3)) is Decision.RETRAIN
    reasons = [d.metadata["reason"] for d in _decisions(store)]
    assert reasons[1].startswith("cooldown: last retrain at 2024-03-01 04:00, cooldown 3 days")
    with pytest.raises(Exception, match="cooldown must not be negative"):
        RetrainPolicy(cooldown=dt.timedelta(days=-1))


def test_automation_condition_waits_for_the_data_fault_then_retrains_once(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    # cooldown 0: the model's first training (below) would otherwise count as a recent retrain.
    guard = build_retrain_guard_check(model=MODEL, policy=RetrainPolicy(cooldown=dt.timedelta(0)))
    model = _model(retrain_condition())
    assets = [raw, features, other_model, model, evaluation]
    resources = {"corrmon": _resource(store)}
    defs = dg.Definitions(assets=assets, asset_checks=[guard], resources=resources)

    def judge() -> dg.AssetCheckEvaluation:
        result = dg.materialize(
            [*assets, guard],
            instance=instance,
            selection=dg.AssetSelection.checks(guard),
            resources=resources,
            raise_on_error=False,  # a failing blocking ERROR check fails its run, by design
        )
        [evaluation_] = result.get_asset_check_evaluations()
        return evaluation_

    assert dg.materialize([raw, features, model], instance=instance).success
    store.upsert_incident(_incident("inc-drift", IncidentClass.CONCEPT_DRIFT))
    store.upsert_incident(
        _incident("inc-fault", IncidentClass.DATA_FAULT, model_asset="model", cause_asset="raw")
    )
    blocked = judge()
    assert blocked.check_name == RETRAIN_GUARD_CHECK_NAME
    assert not blocked.passed and blocked.severity is dg.AssetCheckSeverity.ERROR
    assert blocked.metadata["corrmon/decision"].value == "blocked"

    key = dg.AssetKey("model")
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert tick.get_num_requested(key) == 0
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.get_num_requested(key) == 0

    store.set_incident_status("inc-fault", IncidentStatus.RESOLVED, note="fixed and backfilled")
    allowed = judge()
    assert allowed.passed, allowed.description
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.get_num_requested(key) == 1
    assert tick.total_requested == 1
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.get_num_requested(key) == 0

    verdicts = [(d.metadata["decision"], d.metadata["trigger"]) for d in _decisions(store)]
    assert verdicts == [("blocked", "guard_check"), ("retrain", "guard_check")]


def test_build_corrmon_defs_wires_the_schedule_and_the_guard_check(store: CorrmonStore) -> None:
    defs = dg.Definitions.merge(
        dg.Definitions(assets=[raw, features, other_model, _model(), evaluation]),
        build_corrmon_defs(models=[MODEL], store=_resource(store), retrain_schedule=CRON),
    )
    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("corrmon_retrain_schedule_model")
    assert schedule.cron_schedule == CRON
    assert defs.resolve_sensor_def(RETRAIN_SENSOR_NAME) is not None
    checks = defs.resolve_asset_graph().asset_check_keys
    guard_key = dg.AssetCheckKey(dg.AssetKey("model"), RETRAIN_GUARD_CHECK_NAME)
    assert guard_key in checks
    assert defs.resolve_asset_graph().get(guard_key).blocking
    # Without retrain_schedule nothing of it is added.
    plain = build_corrmon_defs(models=[MODEL], store=_resource(store))
    assert not list(plain.schedules or [])


def test_after_a_retrain_the_incident_resolves_when_the_metric_is_back_at_baseline(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    model = MonitoredModel(
        model=dg.AssetKey("model"),
        evaluation=dg.AssetKey("evaluation"),
        config=AttributionConfig(min_reference=12),
    )
    store.upsert_incident(_incident("inc-drift", IncidentClass.CONCEPT_DRIFT))
    rng = np.random.default_rng(7)
    store.write_signals(
        Signal(
            kind=SignalKind.METRIC,
            asset_key="evaluation",
            name="roc_auc",
            event_time=DAY + dt.timedelta(days=index),
            partition=(DAY + dt.timedelta(days=index)).date().isoformat(),
            value=0.82 + 0.01 * float(rng.standard_normal()),
            passed=True,
        )
        for index in range(24)
    )
    defs = dg.Definitions.merge(
        dg.Definitions(assets=[raw, features, other_model, _model(), evaluation]),
        build_corrmon_defs(models=[model], store=_resource(store)),
    )
    job = defs.resolve_job_def(CORRELATION_JOB_NAME)
    result = job.execute_in_process(
        instance=instance, run_config={"ops": {"corrmon_correlate": {"config": {"model": "model"}}}}
    )
    assert result.success
    resolved = store.get_incident("inc-drift")
    assert resolved is not None and resolved.status is IncidentStatus.RESOLVED
    history = store.incident_history("inc-drift")
    assert history[-1].note == "the metric returned to its baseline"
    # With the incident resolved, the pass decides there is nothing to retrain for.
    assert _decisions(store)[-1].metadata["reason"] == "no performance shift"


def test_guard_check_rejudges_itself_once_per_cron_tick(
    store: CorrmonStore, instance: dg.DagsterInstance
) -> None:
    guard = build_retrain_guard_check(model=MODEL, cron_schedule=CRON)
    model = _model(retrain_condition(cron_schedule=CRON))
    defs = dg.Definitions(
        assets=[raw, features, other_model, model, evaluation],
        asset_checks=[guard],
        resources={"corrmon": _resource(store)},
    )
    guard_key = dg.AssetCheckKey(dg.AssetKey("model"), RETRAIN_GUARD_CHECK_NAME)

    def requested(tick: dg.EvaluateAutomationConditionsResult) -> int:
        return sum(r.true_subset.size for r in tick.results if r.key == guard_key)

    start = DAY + dt.timedelta(minutes=30)  # just after a cron tick
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=start)
    counts = []
    for hours in (1, 23, 25, 26):  # the next cron tick is DAY + 24 h
        tick = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=DAY + dt.timedelta(hours=hours),
            cursor=tick.cursor,
        )
        counts.append(requested(tick))
        # No passing guard: the model itself is never requested.
        assert tick.get_num_requested(dg.AssetKey("model")) == 0
    assert counts == [0, 0, 1, 0]


def test_an_at_risk_upstream_failure_closes_once_labels_past_it_show_no_loss() -> None:
    from dagster_corrmon.correlation.definitions import AT_RISK_WINDOW, _resolution

    outage_end = dt.datetime(2013, 7, 14, tzinfo=dt.UTC)
    risk = Incident(
        id="risk-1",
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.UPSTREAM_FAILURE,
        consequential=False,
        window_start=outage_end - dt.timedelta(days=6),
        window_end=outage_end,
        metadata={"provisional": True},
    )
    # Labels only up to the outage, or within the at-risk window after it: still at risk.
    assert _resolution(risk, model_metric="roc_auc", labelled_until=outage_end) is None
    near = outage_end + AT_RISK_WINDOW
    assert _resolution(risk, model_metric="roc_auc", labelled_until=near) is None
    # Labels past it with no shift: the risk did not materialize, and the note says why.
    later = outage_end + AT_RISK_WINDOW + dt.timedelta(days=1)
    note = _resolution(risk, model_metric="roc_auc", labelled_until=later)
    assert note is not None and "did not materialize" in note and "2013-07-14" in note
    # An at-risk data fault (wrong values, which a retrain would learn) waits for a fix.
    fault = replace(risk, classification=IncidentClass.DATA_FAULT)
    assert _resolution(fault, model_metric="roc_auc", labelled_until=later) is None
    # Another metric's, or an already resolved, incident is not this pass's business.
    assert _resolution(risk, model_metric="f1", labelled_until=later) is None
    done = replace(risk, status=IncidentStatus.RESOLVED)
    assert _resolution(done, model_metric="roc_auc", labelled_until=later) is None
    # A performance incident closes as soon as the metric is back, whatever its window.
    confirmed = replace(risk, metadata={}, consequential=True)
    assert _resolution(confirmed, model_metric="roc_auc", labelled_until=outage_end) == (
        "the metric returned to its baseline"
    )
