"""A concept drift names no feature as its suspected cause when no feature explains the loss.

Attribution ranks every candidate, so a concept-drift incident still has a top-ranked one — on
a real model, often a feature of negligible importance that happened to score highest. The run
tags and the ``corrmon_incident`` check must not present that ranking as blame.
"""

import dagster as dg

from dagster_corrmon.core.incident import AffectedRun, Cause, Incident, IncidentClass
from dagster_corrmon.correlation.engine import (
    CAUSE_TAG,
    INCIDENT_CHECK_NAME,
    annotate_runs,
    report_incident_check,
)
from dagster_corrmon.correlation.model import MonitoredModel


@dg.asset
def scored() -> int:
    return 1


def _incident(run_id: str, *, explains: bool) -> Incident:
    cause = Cause(
        rank=1,
        kind="drift",
        asset_key="features",
        column="wind_gust",
        score=0.41,
        feature_importance=5e-06,
        evidence={"explains": explains},
    )
    return Incident(
        id="inc-drift",
        model_asset="model",
        metric="rmse",
        classification=IncidentClass.CONCEPT_DRIFT if not explains else IncidentClass.DATA_FAULT,
        causes=(cause,),
        affected_runs=(AffectedRun(run_id=run_id, asset_key="scored", role="scoring"),),
    )


def test_no_feature_is_blamed_when_none_explains_the_loss() -> None:
    model = MonitoredModel(model=dg.AssetKey("model"), evaluation=dg.AssetKey("scored"))
    with dg.instance_for_test() as instance:
        run_id = dg.materialize([scored], instance=instance).run_id
        drift = _incident(run_id, explains=False)
        assert annotate_runs(instance, drift) == (run_id,)
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.tags[CAUSE_TAG] == "none"
        report_incident_check(instance, model, drift)
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("model"), INCIDENT_CHECK_NAME)]
        )
        evaluation = check[dg.AssetCheckKey(dg.AssetKey("model"), INCIDENT_CHECK_NAME)]
        assert evaluation.event is not None
        details = evaluation.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert details.metadata["corrmon/suspected_cause"].value == "none"  # type: ignore[union-attr]
        # A cause that explains the loss is named.
        annotate_runs(instance, _incident(run_id, explains=True))
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.tags[CAUSE_TAG] == "features.wind_gust"
