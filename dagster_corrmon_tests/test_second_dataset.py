"""Any tabular dataset, both tasks: a regression scenario on a second real dataset.

Seattle's daily weather 2012–2015 (shipped in the vega_datasets package), monthly partitions,
predicting the maximum temperature; from September 2012 the feed reports ``temp_min`` in °F
instead of °C. The simulation runs end to end on it (a real Dagster instance) and the report's
metric is a regression metric. (On this data the unit change does not raise the RMSE: the model,
trained on January–June, extrapolates poorly to late summer anyway — a real finding, not a bug.)
"""

import json
from pathlib import Path

import pytest

from dagster_corrmon.cli.main import main
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.store import CorrmonStore

SPEC = Path(__file__).resolve().parent.parent / "dagster_corrmon" / "examples" / "seattle"

SCENARIO = f"""
base: {SPEC / "seattle_weather.yaml"}
name: seattle_units
training: {{start: 2012-01-01, end: 2012-07-01}}
simulation: {{end: 2012-11-01}}
incidents:
  - {{id: temp_min_fahrenheit, kind: unit_change, source: daily, column: temp_min,
     scale: 1.8, offset: 32, start: 2012-09-01}}
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seattle")
    (folder / "scenario.yaml").write_text(SCENARIO)
    main(["simulate", str(folder / "scenario.yaml"), "--out", str(folder / "out")])
    return folder / "out"


def test_regression_scenario_on_a_second_dataset(simulated: Path) -> None:
    report = json.loads((simulated / "report.json").read_text())
    assert report["metric"] == "rmse"
    assert report["partitions"] == ["2012-07-01", "2012-08-01", "2012-09-01", "2012-10-01"]
    assert report["failed_runs"] == []
    with CorrmonStore(f"sqlite:///{simulated / 'dagster_home' / 'corrmon.db'}") as store:
        rmse = store.read_signals(asset_key="evaluation", name="rmse", kind=SignalKind.METRIC)
        drift = store.read_signals(asset_key="features", kind=SignalKind.DRIFT, column="temp_min")
    assert [s.partition for s in rmse] == report["partitions"]
    by_partition = {s.partition: s for s in drift}
    # Summer already drifts from a January–June reference (real seasonality: KS ≈ 0.87); the
    # °C → °F change separates the distributions completely (KS = 1) from September on.
    assert by_partition["2012-08-01"].value < 0.95
    assert by_partition["2012-09-01"].value == pytest.approx(1.0)
    assert by_partition["2012-10-01"].value == pytest.approx(1.0)
    assert all(s.metadata.get("method") == "ks" for s in drift)  # ≤ 1000 reference rows
