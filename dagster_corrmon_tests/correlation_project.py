"""A hand-written daily pipeline with a known data fault, shared by the correlation tests.

The graph (daily partitions, plus an unpartitioned model)::

    raw ──> features ──> predictions ──> evaluation
                  ╲          ↑
                   model ────┘

From day ``FAULT_DAY`` on, the raw feed's ``temp`` column goes mostly missing; the ``temp_complete``
check on ``raw`` fails from then on, and the model's metric drops. ``signals_for`` writes what
corrmon's completeness and metric checks record for one partition (kind, asset, partition, data
version of the checked materialization), so a test can build a realistic history in seconds
without the full scenario lab.

It lives in its own module so the test that drives the correlation job and the code location the
GraphQL test loads (``ui_defs``) build the very same definitions.
"""

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import cast

import dagster as dg
import numpy as np
import pandas as pd
from pandas import util as pandas_util

from dagster_corrmon import instance_api
from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.definitions import build_corrmon_defs
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore

START = dt.date(2024, 1, 1)
DAYS = 20
FAULT_DAY = 13  # 0-based index of the first faulty partition
daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-31")
# the public pd.util.hash_pandas_object, typed (its decorators hide the signature from pyright)
_hash_rows = cast(Callable[..., pd.Series], pandas_util.hash_pandas_object)


def day(index: int) -> str:
    """The partition key of day ``index`` (0-based) of the history."""
    return (START + dt.timedelta(days=index)).isoformat()


def is_faulty(partition: str) -> bool:
    """Whether the raw feed of ``partition`` carries the injected null spike."""
    return partition >= day(FAULT_DAY)


def _versioned(frame: pd.DataFrame) -> dg.Output:
    """Content-hash data versions, as a well-instrumented project (and corrmon's pipeline) has."""
    digest = hashlib.sha256(_hash_rows(frame).to_numpy().tobytes()).hexdigest()
    return dg.Output(frame, data_version=dg.DataVersion(digest[:16]))


@dg.asset(partitions_def=daily, code_version="1")
def raw(context: dg.AssetExecutionContext) -> dg.Output:
    ordinal = dt.date.fromisoformat(context.partition_key).toordinal()
    rng = np.random.default_rng(ordinal)
    temp = rng.normal(50, 10, 200)
    if is_faulty(context.partition_key):
        temp[rng.random(200) < 0.7] = np.nan
    return _versioned(pd.DataFrame({"temp": temp, "wind": rng.normal(10, 3, 200)}))


@dg.asset(partitions_def=daily, code_version="1")
def features(raw: pd.DataFrame) -> dg.Output:
    return _versioned(raw.fillna(0.0))


@dg.asset(code_version="1", deps=[features])
def model() -> dict:
    return {"weights": [1.0, 0.1]}


@dg.asset(partitions_def=daily, code_version="1")
def predictions(features: pd.DataFrame, model: dict) -> dg.Output:
    return _versioned(features.assign(score=features["temp"] * model["weights"][0]))


@dg.asset(partitions_def=daily, code_version="1")
def evaluation(predictions: pd.DataFrame) -> dg.Output:
    return _versioned(predictions)


@dg.asset_check(asset=raw, partitions_def=daily)
def temp_complete(raw: pd.DataFrame) -> dg.AssetCheckResult:
    null_fraction = float(raw["temp"].isna().mean())
    return dg.AssetCheckResult(
        passed=null_fraction < 0.2, metadata={"null_fraction": null_fraction}
    )


MODEL = MonitoredModel(
    model=dg.AssetKey("model"),
    evaluation=dg.AssetKey("evaluation"),
    predictions=dg.AssetKey("predictions"),
    metric="roc_auc",
    # a short history keeps the tests fast; the default asks for more reference partitions
    config=AttributionConfig(min_reference=12),
)


def build_defs(*, store: CorrmonResource) -> dg.Definitions:
    """The project's assets plus corrmon's monitoring (sensor, correlation job, incident check)."""
    return dg.Definitions.merge(
        dg.Definitions(assets=[raw, features, model, predictions, evaluation]),
        build_corrmon_defs(models=[MODEL], data_checks=[temp_complete], store=store),
    )


def signals_for(instance: dg.DagsterInstance, partition: str, index: int) -> list[Signal]:
    """What corrmon's completeness and metric checks record for one partition."""
    record = instance_api.latest_materialization(instance, dg.AssetKey("raw"), partition=partition)
    assert record is not None
    event_time = dt.datetime.combine(START + dt.timedelta(days=index), dt.time(), tzinfo=dt.UTC)
    rng = np.random.default_rng(index)
    faulty = is_faulty(partition)
    return [
        Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key="raw",
            name="null_fraction",
            column="temp",
            event_time=event_time,
            value=0.7 if faulty else 0.01 + 0.005 * rng.random(),
            passed=not faulty,
            severity=Severity.ERROR if faulty else Severity.INFO,
            partition=partition,
            run_id=record.run_id,
            data_version=record.data_version,
        ),
        Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key="raw",
            name="null_fraction",
            column="wind",
            event_time=event_time,
            value=0.01 + 0.005 * rng.random(),
            passed=True,
            partition=partition,
            data_version=record.data_version,
        ),
        Signal(
            kind=SignalKind.METRIC,
            asset_key="evaluation",
            name="roc_auc",
            event_time=event_time,
            value=(0.66 if faulty else 0.82) + 0.01 * rng.standard_normal(),
            partition=partition,
        ),
    ]


def materialize_history(
    instance: dg.DagsterInstance, store: CorrmonStore, *, days: int = DAYS
) -> None:
    """Run the pipeline partition by partition (model trained once on day 0) and record signals."""
    dg.materialize([raw, features], instance=instance, partition_key=day(0))
    dg.materialize([model], instance=instance, selection=[model], resources={})
    for index in range(days):
        partition = day(index)
        dg.materialize(
            [raw, features, model, predictions, evaluation, temp_complete],
            instance=instance,
            partition_key=partition,
            selection=[raw, features, predictions, evaluation, temp_complete],
        )
        store.write_signals(signals_for(instance, partition, index))
