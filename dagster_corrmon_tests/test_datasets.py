"""Every example dataset's pipeline, materialized for real on a few partitions.

Each spec of ``dagster_corrmon.examples.SPECS`` (other than the flights reference and its
at-departure variant, which ``test_pipeline.py`` and the built-in scenarios cover in depth) is
cut to a short training window and one scored partition, built into Dagster definitions and
materialized in a test instance: feeds, joins, features, training, predictions and evaluation.
The oracle for "the model learned something" is an independent trivial baseline —
scikit-learn's ``DummyRegressor`` / ``DummyClassifier`` fitted on the same training partitions'
labels, read straight from the raw target feed — scored on the same evaluated rows.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor

from dagster_corrmon.examples import SPECS, spec_path
from dagster_corrmon.pipeline import (
    PipelineSpec,
    build_monitored_pipeline,
    load_spec,
    parse_spec,
    pipeline_keys,
    training_partition_keys,
)


@dataclass(frozen=True)
class Cut:
    """A short slice of a spec: its partitioned range, training window and scored partitions.

    Daily specs are cut into coarser partitions: a model needs several hundred training rows
    (bikeshare's hour of day is a 24-level categorical) or weeks of them (the glucose sensor's
    calibration), and three weekly runs cost far less than twenty-one daily ones. The specs' own
    partitions are built by the test above.
    """

    cadence: str
    start: dt.date
    end: dt.date
    training_end: dt.date
    scored: tuple[str, ...]
    model_params: Mapping[str, Any]


CUTS = {
    "flights_wide": Cut(
        "weekly",
        dt.date(2013, 1, 6),
        dt.date(2013, 2, 10),
        dt.date(2013, 1, 27),
        ("2013-01-27",),
        {"max_iter": 60},
    ),
    "seattle_weather": Cut(
        "monthly",
        dt.date(2012, 1, 1),
        dt.date(2012, 8, 1),
        dt.date(2012, 5, 1),
        ("2012-05-01",),
        {"max_iter": 40, "min_samples_leaf": 5},
    ),
    "bikeshare": Cut(
        "weekly",
        dt.date(2011, 1, 2),
        dt.date(2011, 2, 13),
        dt.date(2011, 1, 23),
        ("2011-01-23",),
        {"max_iter": 60},
    ),
    "california_housing": Cut(  # rows walk across the state: a month covers a region
        "monthly",
        dt.date(2020, 10, 1),
        dt.date(2021, 3, 1),
        dt.date(2021, 1, 1),
        ("2021-01-01",),
        {"max_iter": 60},
    ),
    "glucose": Cut(  # the sensor's calibration moves daily: five weeks to learn it
        "monthly",
        dt.date(2010, 3, 1),
        dt.date(2010, 7, 1),
        dt.date(2010, 5, 1),
        ("2010-05-01",),
        {"max_iter": 60},
    ),
}


def _cut_spec(name: str) -> PipelineSpec:
    cut = CUTS[name]
    path = spec_path(name)
    data = load_spec(path).model_dump(mode="json", exclude_unset=True)
    data["partitioning"].update(
        cadence=cut.cadence, start=cut.start.isoformat(), end=cut.end.isoformat()
    )
    data["training"].update(
        start=cut.start.isoformat(),
        end=cut.training_end.isoformat(),
        model={**data["training"]["model"], "params": dict(cut.model_params)},
        importance={"n_repeats": 2, "max_rows": 300},
    )
    data["monitoring"] = {"enabled": False}
    return parse_spec(data, base_dir=path.parent)


def _labels(spec: PipelineSpec, feed: pd.DataFrame) -> pd.Series:
    """The target as the spec defines it, computed here independently of the pipeline."""
    values = feed[spec.target.column]
    if spec.target.task == "regression":
        return values.dropna().astype(float)
    if spec.target.positive_value is not None:
        return (values == spec.target.positive_value).astype(float)
    assert spec.target.threshold is not None and spec.target.operator == ">"
    values = values.dropna()
    return (values > spec.target.threshold).astype(float)


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, selection, partition=None):
    return dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        instance=instance,
        selection=selection,
        partition_key=partition,
    )


def test_every_example_other_than_flights_is_exercised_here() -> None:
    assert set(SPECS) - {"flights", "flights_at_departure"} == set(CUTS)


@pytest.mark.parametrize("name", sorted(CUTS))
def test_the_full_spec_builds_with_its_monitoring(name: str) -> None:
    spec = load_spec(spec_path(name))
    defs = build_monitored_pipeline(spec)
    graph = defs.resolve_asset_graph()
    keys = pipeline_keys(spec)
    assert keys.evaluation in graph.get_all_asset_keys()
    assert len(spec.sources) >= 2
    assert training_partition_keys(spec)  # the training window holds whole partitions
    checks = {key.name for key in graph.asset_check_keys}
    assert {"corrmon_model_performance", "corrmon_drift"} <= checks


@pytest.mark.parametrize("name", sorted(CUTS))
def test_the_model_trains_and_beats_a_trivial_baseline(name: str) -> None:
    spec = _cut_spec(name)
    keys = pipeline_keys(spec)
    defs = build_monitored_pipeline(spec)
    target_feed = keys.raw[spec.target_source.name]
    training_labels: list[pd.Series] = []
    with dg.instance_for_test() as instance:
        if keys.static:
            _materialize(defs, instance, keys.static)
        for partition in training_partition_keys(spec):
            result = _materialize(defs, instance, keys.training_inputs, partition)
            training_labels.append(_labels(spec, result.asset_value(target_feed)))
        _materialize(defs, instance, [keys.model])
        evaluations = [
            _materialize(defs, instance, keys.partition, partition).asset_value(keys.evaluation)
            for partition in CUTS[name].scored
        ]
    train_y = pd.concat(training_labels, ignore_index=True).to_numpy()
    evaluation = pd.concat(evaluations, ignore_index=True)
    evaluation = evaluation[evaluation["label"].notna()]
    assert len(evaluation) >= 20
    y = evaluation["label"].to_numpy(dtype=float)
    features = np.zeros((len(y), 1))
    if spec.target.task == "regression":
        dummy = DummyRegressor().fit(np.zeros((len(train_y), 1)), train_y)
        baseline_loss = (y - dummy.predict(features)) ** 2
        model_loss = (y - evaluation["prediction"].to_numpy(dtype=float)) ** 2
    else:
        dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(train_y), 1)), train_y)
        baseline_loss = (y - dummy.predict_proba(features)[:, 1]) ** 2  # Brier, per row
        model_loss = (y - evaluation["score"].to_numpy(dtype=float)) ** 2
    # the model's loss is lower than the baseline's beyond sampling noise: the upper end of a
    # paired bootstrap 95 % interval of the mean loss difference is below zero
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(y), size=(2000, len(y)))
    differences = (model_loss - baseline_loss)[rows].mean(axis=1)
    upper = float(np.quantile(differences, 0.975))
    assert upper < 0, (
        f"{name}: model loss {model_loss.mean():.4g} vs trivial baseline "
        f"{baseline_loss.mean():.4g} (95 % upper bound of the difference {upper:.4g})"
    )
