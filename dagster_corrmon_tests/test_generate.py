"""The scenario generator: importance tiers, counterfactual ground truth, loadable scenarios."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import root_mean_squared_error

from dagster_corrmon.pipeline.spec import load_spec
from dagster_corrmon.scenarios.generate import counterfactual, feature_targets, generate
from dagster_corrmon.scenarios.injections import CodeChange, CovariateShift, UpstreamRunFailure
from dagster_corrmon.scenarios.offline import OfflinePipeline
from dagster_corrmon.scenarios.spec import load_scenario

SEATTLE = (
    Path(__file__).resolve().parent.parent
    / "dagster_corrmon"
    / "examples"
    / "seattle"
    / "seattle_weather.yaml"
)


@pytest.fixture(scope="module")
def seattle() -> tuple[OfflinePipeline, object]:
    pipeline = OfflinePipeline(load_spec(SEATTLE))
    return pipeline, pipeline.train()


def test_tiers_split_the_models_features_by_importance_rank(seattle) -> None:
    pipeline, model = seattle
    targets = feature_targets(pipeline.spec, model)
    ranked = sorted(model.feature_importances, key=lambda f: -model.feature_importances[f])
    tier_of = {t.feature: t.tier for t in targets}
    size = -(-len(ranked) // 3)
    assert [tier_of[f] for f in ranked if f in tier_of] == [
        ("top", "middle", "near_zero")[min(i // size, 2)]
        for i, f in enumerate(ranked)
        if f in tier_of
    ]
    # every feed of the spec carries a feature (daily measurements, the conditions feed)
    assert {t.source for t in targets} == {source.name for source in pipeline.spec.sources}
    assert "temp_max" not in {t.column for t in targets}  # the label is never a target
    # nor the row key / time column (``month`` derives from ``date``: corrupting it un-joins rows)
    assert "date" not in {t.column for t in targets} and "month" in model.feature_importances
    assert {t.feature: t.numeric for t in targets}["weather"] is False


def test_counterfactual_measures_the_metric_loss_against_its_bootstrap_noise(seattle) -> None:
    pipeline, model = seattle
    partitions = pipeline.scoring_keys()[:6]
    start = dt.date.fromisoformat(partitions[2][:10])
    top = max(model.feature_importances, key=model.feature_importances.get)
    shift = CovariateShift(id="s", source="daily", column=top, shift_std=3.0, start=start)
    truth = counterfactual(pipeline, model, shift, partitions, metric="rmse")
    clean = [pipeline.evaluate(p, model).frame for p in partitions[2:]]
    injected = [pipeline.evaluate(p, model, [shift]).frame for p in partitions[2:]]
    oracle = root_mean_squared_error(
        np.concatenate([f["label"] for f in injected]),
        np.concatenate([f["score"] for f in injected]),
    ) - root_mean_squared_error(
        np.concatenate([f["label"] for f in clean]), np.concatenate([f["score"] for f in clean])
    )
    assert truth.loss == pytest.approx(oracle)
    assert truth.loss_low is not None and truth.loss_low <= truth.loss <= truth.loss_high
    assert truth.consequential and truth.loss_low > 0  # 3 σ on the top feature hurts
    # a "bug" that changes nothing: no loss, and the interval straddles zero
    harmless = CodeChange(id="c", column=top, scale=1.0, start=start)
    truth = counterfactual(pipeline, model, harmless, partitions, metric="rmse")
    assert truth.loss == 0 and not truth.consequential
    # nothing scored: no measurable loss, hence not consequential (an at-risk expectation)
    failure = UpstreamRunFailure(id="f", source="daily", start=start)
    truth = counterfactual(pipeline, model, failure, partitions, metric="rmse")
    assert truth.loss is None and not truth.consequential and "no prediction" in (truth.note or "")


def test_generated_scenarios_load_carry_their_truth_and_repeat_with_the_seed(
    tmp_path: Path,
) -> None:
    first = generate(SEATTLE, n=7, seed=3, out_dir=tmp_path / "a", progress=lambda _: None)
    again = generate(SEATTLE, n=7, seed=3, out_dir=tmp_path / "b", progress=lambda _: None)
    names = sorted(first["scenarios"])
    assert len(names) == 7
    for name in names:
        text_a = (tmp_path / "a" / f"{name}.yaml").read_text()
        assert (
            text_a.split("base:")[1:]
            == (tmp_path / "b" / f"{name}.yaml").read_text().split("base:")[1:]
        )
        scenario = load_scenario(tmp_path / "a" / f"{name}.yaml")
        entry = first["scenarios"][name]
        truth = entry["counterfactual"]
        assert {e.injection for e in scenario.expect.incidents} == set(truth)
        for expected in scenario.expect.incidents:
            assert expected.consequential == truth[expected.injection]["consequential"]
            assert expected.detect_within == (1 if expected.consequential else 0)
        assert scenario.expect.control == (not any(t["consequential"] for t in truth.values()))
        assert set(entry["tiers"]) == set(truth)
    kinds = [s["kind"] for e in first["scenarios"].values() for s in e["strata"].values()]
    assert len(set(kinds)) >= 6  # the kinds are drawn in turn, not at random
    assert any(not e["strata"] for e in first["scenarios"].values())  # a pure control
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["dataset"] == "seattle_weather" and manifest["cadence"] == "monthly"
    assert again["scenarios"] == first["scenarios"]


def test_offline_batches_are_the_ones_a_dagster_run_materializes(seattle, tmp_path: Path) -> None:
    """The counterfactual is measured on the rows the simulator injects: the same feeds, joins,
    features and seeded corruption as a real materialization of the spec's assets."""
    import dagster as dg
    import pandas as pd

    from dagster_corrmon.pipeline.builder import build_monitored_pipeline, pipeline_keys
    from dagster_corrmon.scenarios.injections import NullSpike, injection_rng

    pipeline, _ = seattle
    spec = pipeline.spec
    partition = pipeline.scoring_keys()[3]
    spike = NullSpike(
        id="n", source="daily", column="wind", fraction=0.5, start=dt.date.fromisoformat(partition)
    )

    def inject(source: str, key: str | None, frame: pd.DataFrame) -> pd.DataFrame:
        if key is None or source != spike.source:
            return frame
        return spike.apply(frame, injection_rng(spike.id or "", key, pipeline.seed))

    keys = pipeline_keys(spec)
    defs = build_monitored_pipeline(spec, source_transform=inject, with_checks=False)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize(
            [defs.get_assets_def(k) for k in [*keys.raw.values(), keys.joined, keys.features]],
            partition_key=partition,
            instance=instance,
        )
        materialized = result.output_for_node(keys.features.to_python_identifier())
    offline, _ = pipeline.features(partition, [spike])
    offline.attrs.clear()
    materialized.attrs.clear()
    assert materialized["wind"].isna().sum() > 0
    pd.testing.assert_frame_equal(
        offline.reset_index(drop=True), materialized.reset_index(drop=True)
    )
