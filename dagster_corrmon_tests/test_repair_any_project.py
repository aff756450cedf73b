"""The repair test on a hand-written project (plain ``@dg.asset``s, no spec), through the
documented protocol: the model asset's value offers ``feature_columns`` and ``score(frame)``,
the features asset holds those columns and the label."""

import dagster as dg
import pandas as pd
from sklearn.metrics import roc_auc_score

from dagster_corrmon.core.attribution import CandidateSeries, RepairOutcome, RepairRequest
from dagster_corrmon.pipeline.repair import build_rescoring_repair
from dagster_corrmon_tests import handwritten_project as project

GOOD = [f"2024-01-{day:02d}" for day in range(8, 12)]
BROKEN = [f"2024-01-{day:02d}" for day in range(12, 15)]


def _candidate(asset: str, column: str) -> CandidateSeries:
    return CandidateSeries(
        asset_key=asset, name="mean", partitions=BROKEN, values=[1.0] * len(BROKEN), column=column
    )


def test_restoring_the_unit_changed_column_recovers_the_loss_and_a_bystander_does_not() -> None:
    defs = dg.Definitions(assets=project.ASSETS)
    with dg.instance_for_test() as instance:
        dg.materialize([project.delay_model], instance=instance)
        for partition in [*GOOD, *BROKEN]:
            corruption = "unit_change" if partition in BROKEN else "none"
            dg.materialize(
                [project.weather, project.features],
                partition_key=partition,
                instance=instance,
                run_config={"ops": {"weather": {"config": {"corruption": corruption}}}},
            )
        provider = build_rescoring_repair(
            definitions=lambda: defs,
            model="delay_model",
            features="features",
            label_column="delayed",
            partitions_def=project.daily,
            metric="roc_auc",
        )
        repair = provider(instance)
        assert repair is not None

        def request(candidate: CandidateSeries) -> RepairOutcome:
            outcome = repair(
                RepairRequest(
                    candidate=candidate,
                    partitions=tuple(BROKEN),
                    onset_partition=BROKEN[0],
                    degraded_value=0.0,
                    baseline_value=0.0,
                )
            )
            assert isinstance(outcome, RepairOutcome)
            return outcome

        cause = request(_candidate("weather", "temp_f"))
        bystander = request(_candidate("features", "humidity"))
        # a column the model does not read gets no verdict
        assert (
            repair(
                RepairRequest(
                    candidate=_candidate("weather", "reading_id"),
                    partitions=tuple(BROKEN),
                    onset_partition=BROKEN[0],
                    degraded_value=0.0,
                    baseline_value=0.0,
                )
            )
            is None
        )

    # the oracle: the same model on the same days, delivered in °F
    model = project.train_delay_model()
    clean = pd.concat([project.make_weather(p) for p in BROKEN], ignore_index=True)
    clean_auc = roc_auc_score(clean["delayed"], model.score(clean))
    broken = project.corrupt_weather(clean, "unit_change")
    broken_auc = roc_auc_score(broken["delayed"], model.score(broken))
    assert abs(cause.degraded_value - broken_auc) < 1e-9
    # on the same rows, so the loss is paired: no sampling noise between the two values
    assert clean_auc - broken_auc > 0.005, "the unit change must cost the model something"
    recovered = (cause.repaired_value - broken_auc) / (clean_auc - broken_auc)
    assert recovered > 0.8, (clean_auc, broken_auc, cause)
    assert abs(bystander.repaired_value - bystander.degraded_value) < 0.25 * (
        clean_auc - broken_auc
    ), bystander
