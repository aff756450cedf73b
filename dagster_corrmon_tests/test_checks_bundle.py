"""``bundle_checks``: each asset's corrmon checks in one step, with the same keys and results.

The hand-written project's checks run twice on the same partitions (four clean days, then a
null spike and a °F→°C unit change), once as the factories return them (one step per check) and
once bundled; every evaluation must agree on pass/fail, severity, description and metadata
(timings and run ids aside), while the bundled runs have one check step per asset.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_corrmon import metadata as md
from dagster_corrmon.checks import build_data_quality_checks, bundle_checks
from dagster_corrmon.checks._common import CheckOutcome, CheckTarget
from dagster_corrmon.checks._plan import CheckCall, CheckPlan, check_definition, plan_of
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.errors import CorrmonError
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon_tests import handwritten_project as hp

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06")
CORRUPTION = {"2024-01-05": "null_spike", "2024-01-06": "unit_change"}
# Per-run or wall-clock values (the two histories are materialized seconds apart, and freshness
# measures lateness from the wall clock): everything else in an evaluation must be identical.
VOLATILE = {
    md.CHECK_SECONDS,
    md.MATERIALIZATION_RUN_ID,
    md.DATA_VERSION,
    md.MATERIALIZED_AT,
    md.LATENESS_SECONDS,
}


def _history(
    checks: Sequence[dg.AssetChecksDefinition], folder: Path
) -> tuple[dict[tuple[str, str], dg.AssetCheckEvaluation], list[set[str]]]:
    """Every check evaluation by (check, partition), and each run's check step keys."""
    url = f"sqlite:///{folder / 'corrmon.db'}"
    found: dict[tuple[str, str], dg.AssetCheckEvaluation] = {}
    steps: list[set[str]] = []
    check_ops = {check.node_def.name for check in checks}
    with dg.instance_for_test() as instance:
        for day in DAYS:
            corruption = CORRUPTION.get(day, "none")
            # a corrupted feed is not scored (the model cannot take NaNs): upstream assets only
            assets = hp.ASSETS if corruption == "none" else (hp.weather, hp.features)
            result = dg.materialize(
                [*hp.ASSETS, *checks],
                selection=dg.AssetSelection.assets(*assets),
                instance=instance,
                partition_key=day,
                resources={"corrmon": CorrmonResource(database_url=url)},
                run_config={
                    "ops": {
                        "weather": {"config": {"corruption": corruption}},
                        **(
                            {"predictions": {"config": {"degrade": False}}}
                            if hp.predictions in assets
                            else {}
                        ),
                    }
                },
            )
            assert result.success
            for evaluation in result.get_asset_check_evaluations():
                found[(evaluation.check_name, day)] = evaluation
            steps.append(
                {
                    event.step_key
                    for event in result.all_events
                    if event.is_step_start and event.step_key in check_ops
                }
            )
    return found, steps


def _comparable(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {
        "passed": evaluation.passed,
        "severity": evaluation.severity,
        # freshness says how many days late a historical load is, to 0.1 d: wall clock again
        "description": None
        if evaluation.check_name.endswith("freshness")
        else evaluation.description,
        "metadata": {
            key: value.value for key, value in evaluation.metadata.items() if key not in VOLATILE
        },
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    single = _history(hp.CHECKS, tmp_path_factory.mktemp("single"))
    bundled = _history(bundle_checks(hp.CHECKS), tmp_path_factory.mktemp("bundled"))
    yield single, bundled


def test_bundled_checks_conclude_exactly_what_single_checks_do(both: tuple[Any, Any]) -> None:
    (single, _), (bundled, _) = both
    assert set(bundled) == set(single)
    every_check = sum(len(list(c.check_keys)) for c in hp.CHECKS)
    on_predictions = sum(len(list(c.check_keys)) for c in hp.performance_checks)
    assert len(single) == len(DAYS) * every_check - len(CORRUPTION) * on_predictions
    for key, evaluation in single.items():
        assert _comparable(bundled[key]) == _comparable(evaluation), key
    # the injected defects are seen either way (so the comparison is not of two blind runs)
    assert not single[("corrmon_completeness", "2024-01-05")].passed
    assert not single[("corrmon_drift", "2024-01-06")].passed


def test_bundled_checks_run_in_one_step_per_asset(both: tuple[Any, Any]) -> None:
    (_, single_steps), (_, bundled_steps) = both
    assert [len(steps) for steps in single_steps] == [
        len(hp.CHECKS) - (len(hp.performance_checks) if day in CORRUPTION else 0) for day in DAYS
    ]
    # weather's quality, schema and freshness checks share a step; the drift check reads the
    # model, so it has its own; the performance check is alone on predictions.
    upstream = {"weather_corrmon_checks", "features_corrmon_checks_vs_delay_model"}
    assert bundled_steps == [
        upstream if day in CORRUPTION else {*upstream, "predictions_corrmon_checks"} for day in DAYS
    ]


def test_other_checks_pass_through_and_order_is_kept() -> None:
    @dg.asset_check(asset=hp.weather)
    def my_own_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    bundled = bundle_checks([my_own_check, *hp.quality_checks, *hp.performance_checks])
    assert bundled[0] is my_own_check
    assert [c.node_def.name for c in bundled[1:]] == [
        "weather_corrmon_checks",
        "predictions_corrmon_checks",
    ]
    assert plan_of(my_own_check) is None
    assert {k.name for k in bundled[1].check_keys} == {
        k.name for c in hp.quality_checks for k in c.check_keys
    }


def test_a_raising_check_does_not_hide_its_siblings(tmp_path: Path) -> None:
    target = CheckTarget(dg.AssetKey("weather"), hp.daily)

    def explode(call: CheckCall) -> CheckOutcome:
        raise ValueError("the judge tripped over a value")

    exploding = check_definition(
        CheckPlan(
            target=target,
            name="exploding",
            description="raises",
            kind=SignalKind.DATA_QUALITY,
            evaluate=explode,
            resource_key="corrmon",
        )
    )
    bundle = bundle_checks([exploding, *hp.quality_checks])
    assert len(bundle) == 1
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [hp.weather, *bundle],
            instance=instance,
            partition_key="2024-01-01",
            resources={"corrmon": CorrmonResource(database_url=f"sqlite:///{tmp_path / 's.db'}")},
            raise_on_error=False,
        )
        assert not result.success
        recorded = {e.check_name for e in result.get_asset_check_evaluations()}
        assert recorded == {k.name for c in hp.quality_checks for k in c.check_keys}
        failure = result.failure_data_for_node("weather_corrmon_checks")
        assert failure is not None and failure.error is not None
        message = failure.error.to_string()  # Dagster's wrapper, then corrmon's error as cause
        assert "corrmon check(s) exploding on 'weather' raised" in message
        assert "the judge tripped over a value" in message


def test_a_bundle_can_run_one_of_its_checks(tmp_path: Path) -> None:
    bundle = bundle_checks(hp.quality_checks)
    wanted = dg.AssetCheckKey(dg.AssetKey("weather"), "corrmon_volume")
    assert wanted in set(bundle[0].check_keys)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [hp.weather, *bundle],
            selection=(
                dg.AssetSelection.assets(hp.weather).without_checks()
                | dg.AssetSelection.checks(wanted)
            ),
            instance=instance,
            partition_key="2024-01-01",
            resources={"corrmon": CorrmonResource(database_url=f"sqlite:///{tmp_path / 's.db'}")},
        )
    assert [e.check_name for e in result.get_asset_check_evaluations()] == ["corrmon_volume"]


def test_checks_of_two_stores_on_one_asset_get_a_step_each() -> None:
    other = build_data_quality_checks(
        assets=[hp.weather], completeness={"temp_f": 0.1}, name_prefix="ops", resource_key="ops"
    )
    names = [c.node_def.name for c in bundle_checks([*hp.quality_checks, *other])]
    assert names == ["weather_corrmon_checks_corrmon", "weather_corrmon_checks_ops"]


def test_a_non_table_value_fails_every_bundled_frame_check(tmp_path: Path) -> None:
    @dg.asset(partitions_def=hp.daily, name="weather")
    def not_a_table() -> list[int]:
        return [1, 2, 3]

    bundle = bundle_checks(
        [
            *build_data_quality_checks(
                assets=["weather"], completeness={"temp_f": 0.1}, volume=None
            ),
            *hp.schema_checks,
        ]
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [not_a_table, *bundle],
            instance=instance,
            partition_key="2024-01-01",
            resources={"corrmon": CorrmonResource(database_url=f"sqlite:///{tmp_path / 's.db'}")},
        )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2
    for evaluation in evaluations:
        assert not evaluation.passed
        assert "is a list, not a pandas DataFrame" in (evaluation.description or "")


def test_bundling_refuses_two_checks_with_one_name() -> None:
    with pytest.raises(CorrmonError, match="share a name"):
        bundle_checks([*hp.quality_checks, *build_data_quality_checks(assets=[hp.weather])])
