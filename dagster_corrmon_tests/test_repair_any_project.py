"""The repair test on a hand-written project (plain ``@dg.asset``s, no spec), through the
documented protocol: the model asset's value offers ``feature_columns`` and ``score(frame)``,
the features asset holds those columns and the label — from Python
(``build_rescoring_repair``) and from a component's ``defs.yaml`` (``models[].repair``)."""

from collections.abc import Callable

import dagster as dg
import pandas as pd
from dagster.components.testing import create_defs_folder_sandbox
from sklearn.metrics import roc_auc_score

from dagster_corrmon.components import CorrmonComponent
from dagster_corrmon.core.attribution import (
    CandidateSeries,
    RepairFunction,
    RepairOutcome,
    RepairRequest,
)
from dagster_corrmon.pipeline.repair import build_rescoring_repair
from dagster_corrmon_tests import handwritten_project as project
from dagster_corrmon_tests.test_component import ASSETS_MODULE

GOOD = [f"2024-01-{day:02d}" for day in range(8, 12)]
BROKEN = [f"2024-01-{day:02d}" for day in range(12, 15)]


def _materialize_unit_change(instance: dg.DagsterInstance) -> None:
    """The model, four good days, then three days of temp_f delivered in °C."""
    dg.materialize([project.delay_model], instance=instance)
    for partition in [*GOOD, *BROKEN]:
        corruption = "unit_change" if partition in BROKEN else "none"
        dg.materialize(
            [project.weather, project.features],
            partition_key=partition,
            instance=instance,
            run_config={"ops": {"weather": {"config": {"corruption": corruption}}}},
        )


def _ask(repair: RepairFunction, asset: str, column: str) -> float | RepairOutcome | None:
    candidate = CandidateSeries(
        asset_key=asset, name="mean", partitions=BROKEN, values=[1.0] * len(BROKEN), column=column
    )
    return repair(
        RepairRequest(
            candidate=candidate,
            partitions=tuple(BROKEN),
            onset_partition=BROKEN[0],
            degraded_value=0.0,
            baseline_value=0.0,
        )
    )


def _assert_repair_separates_cause_from_bystander(
    provider: Callable[[dg.DagsterInstance], RepairFunction | None], instance: dg.DagsterInstance
) -> None:
    repair = provider(instance)
    assert repair is not None
    cause = _ask(repair, "weather", "temp_f")
    bystander = _ask(repair, "features", "humidity")
    assert isinstance(cause, RepairOutcome) and isinstance(bystander, RepairOutcome)
    # a column the model does not read gets no verdict
    assert _ask(repair, "weather", "reading_id") is None

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
    loss = clean_auc - broken_auc
    assert abs(bystander.repaired_value - bystander.degraded_value) < 0.25 * loss, bystander


def test_python_route_restoring_the_unit_changed_column_recovers_the_loss() -> None:
    defs = dg.Definitions(assets=project.ASSETS)
    provider = build_rescoring_repair(
        definitions=lambda: defs,
        model="delay_model",
        features="features",
        label_column="delayed",
        partitions_def=project.daily,
        metric="roc_auc",
    )
    with dg.instance_for_test() as instance:
        _materialize_unit_change(instance)
        _assert_repair_separates_cause_from_bystander(provider, instance)


DEFS_YAML = """\
type: dagster_corrmon.CorrmonComponent
attributes:
  partitions: {type: daily, start_date: "2024-01-01", end_date: "2024-03-01"}
  models:
    - model: delay_model
      evaluation: predictions
      repair: {features: features, label_column: delayed}
"""


def test_defs_yaml_route_gives_the_model_the_same_repair_test() -> None:
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "assets.py").write_text(ASSETS_MODULE)
        folder = sandbox.defs_folder_path / "corrmon"
        folder.mkdir()
        (folder / "defs.yaml").write_text(DEFS_YAML)
        with sandbox.build_component_tree() as tree, dg.instance_for_test() as instance:
            component = tree.load_component(folder)
            assert isinstance(component, CorrmonComponent)
            (model,) = component.build_models(tree.load_context)
            assert model.repair is not None
            _materialize_unit_change(instance)
            _assert_repair_separates_cause_from_bystander(model.repair, instance)
