"""Restoring a suspect column: undo monotone corruption, keep rows, refuse when values are gone;
and reading the stored partitions a repair test re-scores."""

from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dagster_corrmon.pipeline.repair import load_partitions, restore_column, scoring_model_versions


def test_quantile_mapping_undoes_a_unit_change_and_keeps_the_row_order() -> None:
    rng = np.random.default_rng(0)
    minutes = pd.Series(rng.gamma(2.0, 15.0, 5000))
    donor = pd.Series(rng.gamma(2.0, 15.0, 20000))  # the last good partitions
    hours = minutes / 60  # the defect
    restored = restore_column(hours, donor, np.random.default_rng(1))
    assert restored is not None
    restored = np.asarray(restored, dtype=float)
    assert stats.spearmanr(restored, minutes).statistic > 0.999  # rows keep their relation
    assert np.median(np.abs(restored - minutes)) < 1.5  # back on the minute scale
    assert stats.ks_2samp(restored, donor).statistic < 0.02


def test_no_verdict_when_most_values_are_missing_and_categories_are_redrawn() -> None:
    rng = np.random.default_rng(0)
    donor = pd.Series(rng.normal(size=1000))
    mostly_missing = pd.Series(np.where(rng.random(1000) < 0.8, np.nan, 1.0))
    assert restore_column(mostly_missing, donor, rng) is None
    categories = pd.Series(["AA", "UA", "__NEW__", "DL"] * 250)
    redrawn = restore_column(categories, pd.Series(["AA", "UA", "DL"] * 100), rng)
    assert redrawn is not None
    assert set(pd.Series(redrawn)) <= {"AA", "UA", "DL"}
    assert (
        pd.Series(redrawn)[categories != "__NEW__"] == categories[categories != "__NEW__"]
    ).all()


DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-10")


@dg.asset(partitions_def=DAYS)
def daily_frame(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"day": [context.partition_key], "value": [len(context.partition_key)]})


def test_load_partitions_reads_each_contiguous_run_once_and_skips_what_was_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = DAYS.get_partition_keys()
    order = {key: index for index, key in enumerate(keys)}
    stored = [k for k in keys if k not in ("2024-01-04", "2024-01-08")]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for day in stored:
            assert dg.materialize([daily_frame], instance=instance, partition_key=day).success
        defs = dg.Definitions(assets=[daily_frame])
        calls: list[str | dg.PartitionKeyRange | None] = []
        read = dg.AssetValueLoader.load_asset_value

        def counted(self: dg.AssetValueLoader, key: Any, **kwargs: Any) -> object:
            calls.append(kwargs.get("partition_key_range") or kwargs.get("partition_key"))
            return read(self, key, **kwargs)

        monkeypatch.setattr(dg.AssetValueLoader, "load_asset_value", counted)
        with defs.get_asset_value_loader(instance) as loader:
            wanted = keys[:7]  # 01-01 .. 01-07; 01-04 was never materialized
            found = load_partitions(loader, instance, daily_frame.key, wanted, order)
            assert sorted(found) == [k for k in wanted if k in stored]
            for day, frame in found.items():
                assert isinstance(frame, pd.DataFrame) and frame["day"].tolist() == [day]
            # Two range reads (01-01..01-03 and 01-05..01-07), nothing for the missing day.
            assert calls == [
                dg.PartitionKeyRange("2024-01-01", "2024-01-03"),
                dg.PartitionKeyRange("2024-01-05", "2024-01-07"),
            ]
            calls.clear()
            single = load_partitions(loader, instance, daily_frame.key, ["2024-01-09"], order)
            assert list(single) == ["2024-01-09"] and calls == ["2024-01-09"]


MODEL_VERSION = {"current": "v1"}


@dg.asset
def tiny_model() -> dg.MaterializeResult:
    version = MODEL_VERSION["current"]
    return dg.MaterializeResult(value=version, data_version=dg.DataVersion(version))


@dg.asset(partitions_def=DAYS)
def tiny_predictions(tiny_model: str) -> str:
    return f"scored by {tiny_model}"


def test_scoring_model_versions_follow_each_partitions_latest_predictions(
    tmp_path: Path,
) -> None:
    """After a retrain, partitions the previous model scored say so: a repair test re-scoring
    them with the new model would measure a loss that model never had."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert dg.materialize([tiny_model], instance=instance).success
        for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
            result = dg.materialize(
                [tiny_model, tiny_predictions],
                instance=instance,
                partition_key=day,
                selection=[tiny_predictions],
            )
            assert result.success
        MODEL_VERSION["current"] = "v2"  # the retrain
        assert dg.materialize([tiny_model], instance=instance).success
        dg.materialize(
            [tiny_model, tiny_predictions],
            instance=instance,
            partition_key="2024-01-03",  # re-scored with the new model
            selection=[tiny_predictions],
        )
        found = scoring_model_versions(
            instance,
            tiny_predictions.key,
            tiny_model.key,
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        )
    MODEL_VERSION["current"] = "v1"
    assert found == {"2024-01-01": "v1", "2024-01-02": "v1", "2024-01-03": "v2", "2024-01-04": None}
