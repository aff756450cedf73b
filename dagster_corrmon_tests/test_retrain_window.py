"""A retrain requested on validated decay runs, on a regression model whose labels come late.

Seattle's daily weather (vega_datasets), split the way it would arrive in production: the day's
measurements first, the maximum temperature (the label) one monthly partition later. The
monitored pipeline runs in a real Dagster instance (filesystem IO manager); the retrain guard
decides on a failing RMSE, and the model is retrained on the window
:func:`retrain_partitions` gives. A window ending at the partition just scored asks the model
for a labels-feed partition that is not stored yet: that run fails (as every daily retrain of
the blind evaluation did), the labelled window succeeds.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import Decision, RetrainPolicy, retrain_guard
from dagster_corrmon.errors import ConfigError, InsufficientDataError
from dagster_corrmon.pipeline.builder import (
    build_monitored_pipeline,
    build_partitions_def,
    pipeline_keys,
)
from dagster_corrmon.pipeline.spec import PipelineSpec, parse_spec
from dagster_corrmon.pipeline.training import retrain_partitions
from dagster_corrmon.store import CorrmonStore

SEATTLE = {
    "name": "seattle_late_labels",
    "partitioning": {"cadence": "monthly", "start": "2012-01-01", "end": "2013-01-01"},
    "sources": [
        {
            "name": "daily",
            "package_data": {"package": "vega_datasets", "file": "_data/seattle-weather.csv"},
            "time_column": "date",
            "columns": ["date", "temp_min", "precipitation", "wind", "weather"],
        },
        {
            "name": "outcomes",
            "package_data": {"package": "vega_datasets", "file": "_data/seattle-weather.csv"},
            "time_column": "date",
            "columns": ["date", "temp_max"],
        },
    ],
    "joins": {"base": "daily", "steps": []},
    "row_key": ["date"],
    "target": {"source": "outcomes", "column": "temp_max", "task": "regression"},
    "features": {"numeric": ["temp_min", "precipitation", "wind"], "categorical": ["weather"]},
    "training": {
        "start": "2012-01-01",
        "end": "2012-04-01",
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 30},
        },
        "importance": {"n_repeats": 2, "max_rows": 200},
    },
    "evaluation": {"label_delay": 1, "metrics": ["rmse"]},
    "monitoring": {"enabled": False},
}
TRAINING = ["2012-01-01", "2012-02-01", "2012-03-01"]
SCORED = ["2012-04-01", "2012-05-01", "2012-06-01"]


def _spec() -> PipelineSpec:
    return parse_spec(SEATTLE, base_dir=Path.cwd())


def test_the_window_ends_at_the_last_labelled_partition() -> None:
    scored = ["a", "b", "c", "d", "e"]
    # Labels one partition late: "e" was just scored and has none.
    assert retrain_partitions(scored, labelled={"a", "b", "c", "d"}, window=3) == ["b", "c", "d"]
    # Labels running late inside the window: the unlabelled partition is left out, not read.
    assert retrain_partitions(scored, labelled={"a", "b", "d"}, window=3) == ["a", "b", "d"]
    assert retrain_partitions(scored, labelled={"a"}, window=3) == ["a"]
    with pytest.raises(InsufficientDataError, match="none of the 5 scored"):
        retrain_partitions(scored, labelled=set(), window=3)
    with pytest.raises(ConfigError, match="window"):
        retrain_partitions(scored, labelled={"a"}, window=0)


def test_a_retrain_on_validated_decay_runs_on_the_labelled_window(tmp_path: Path) -> None:
    spec = _spec()
    keys = pipeline_keys(spec)
    name = spec.name
    model = MonitoredModel(model=keys.model, evaluation=keys.evaluation, metric="rmse")
    with dg.instance_for_test() as instance, CorrmonStore(f"sqlite:///{tmp_path}/c.db") as store:

        def run(defs: dg.Definitions, job: str, partition: str | None = None) -> bool:
            result = defs.resolve_job_def(f"{name}_{job}").execute_in_process(
                instance=instance, partition_key=partition, raise_on_error=False
            )
            return result.success

        defs = build_monitored_pipeline(spec)
        for partition in TRAINING:
            assert run(defs, "training_inputs", partition)
        assert run(defs, "train")
        labelled: set[str] = set()
        for index, partition in enumerate(SCORED):
            assert run(defs, "score", partition)
            if index >= 1 and run(defs, "label", SCORED[index - 1]):  # label_delay = 1
                labelled.add(SCORED[index - 1])
        assert labelled == {"2012-04-01", "2012-05-01"}

        # The latest RMSE fails its check: validated decay, the guard asks for a retrain.
        store.write_signals(
            [
                Signal(
                    kind=SignalKind.METRIC,
                    asset_key=keys.evaluation.to_user_string(),
                    name="rmse",
                    partition="2012-05-01",
                    event_time=dt.datetime(2012, 5, 1, tzinfo=dt.UTC),
                    value=9.0,
                    passed=False,
                )
            ]
        )
        lineage = {keys.evaluation.to_user_string(): [keys.model.to_user_string()]}
        decided = retrain_guard(
            store, model, lineage, RetrainPolicy(), dt.datetime(2012, 6, 1, tzinfo=dt.UTC)
        )
        assert decided.decision is Decision.RETRAIN

        def retrain_on(window: list[str]) -> bool:
            partitions = build_partitions_def(spec)
            start = partitions.time_window_for_partition_key(window[0]).start.date()
            end = partitions.time_window_for_partition_key(window[-1]).end.date()
            return run(build_monitored_pipeline(spec.with_training_window(start, end)), "train")

        # The window that ends at the partition just scored reads labels that are not there.
        assert not retrain_on(SCORED[-2:])
        window = retrain_partitions(SCORED, labelled=labelled, window=2)
        assert window == ["2012-04-01", "2012-05-01"]
        assert retrain_on(window)
        latest = instance_api_latest(instance, keys.model)
        assert latest["corrmon/training_partition_count"] == 2


def instance_api_latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, object]:
    """The latest materialization's metadata values of ``key``."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
    materialization = records.records[0].asset_materialization
    assert materialization is not None
    return {k: v.value for k, v in materialization.metadata.items()}
