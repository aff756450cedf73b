"""The pipeline spec: it loads the flights project, and every mistake names its key and line."""

import datetime as dt
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import Field

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.examples.flights import SPEC_PATH
from dagster_corrmon.pipeline import PipelineSpec, SpecError, load_spec, parse_spec
from dagster_corrmon.pipeline.features import as_category_strings, evaluate_expression
from dagster_corrmon.pipeline.spec import SpecModel, expression_columns

MINIMAL = """\
name: toy
sources:
  - name: events
    path: data/events.csv
    time_column: ts
    columns: [ts, user, amount, churned]
row_key: [ts, user]
target: {column: churned}
features:
  numeric: [amount]
partitioning: {start: 2024-01-01, end: 2024-02-01}
training: {start: 2024-01-01, end: 2024-01-15}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_flights_spec_loads_with_its_feeds_join_and_target() -> None:
    spec = load_spec(SPEC_PATH)
    assert [s.name for s in spec.sources] == ["schedule", "outcomes", "weather", "planes"]
    assert spec.base_source.name == "schedule"
    assert spec.target_source.name == "outcomes"
    assert [s.name for s in spec.joined_sources] == ["schedule", "weather", "planes"]
    assert spec.source("planes").static and not spec.source("planes").partitioned
    assert spec.target.describe() == "arr_delay > 15"
    assert spec.partitioning.timezone == "America/New_York"
    assert "dep_hour" in spec.features.columns and "carrier" in spec.features.columns
    assert spec.metrics[:4] == ["precision", "recall", "f1", "roc_auc"]
    assert spec.estimator_path == "sklearn.ensemble.HistGradientBoostingClassifier"
    origins = spec.column_origins()
    assert origins is not None
    assert origins["temp"] == "weather" and origins["plane_year"] == "planes"


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("    time_column: ts\n", "    time_column: ts\n    time_colum: ts\n")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"spec.yaml:{_line_of(text, 'time_colum: ts')}: sources[0].time_colum:" in str(
        caught.value
    )
    assert "unknown key" in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_bad_value_is_named_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("start: 2024-01-01, end: 2024-02-01", "start: soon, end: 2024-02-01")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    (problem,) = caught.value.problems
    assert problem[0] == "partitioning.start"
    assert problem[1] == _line_of(text, "partitioning:")
    assert "date" in problem[2]


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("target: {column: churned}", "target: {column: amount}", "features.numeric[0]"),
        ("numeric: [amount]", "numeric: [ghost]", "features.numeric[0]"),
        ("row_key: [ts, user]", "row_key: [ts, nobody]", "row_key[1]"),
        ("training: {start: 2024-01-01", "training: {start: 2023-12-01", "training"),
    ],
)
def test_cross_field_problems_point_at_the_offending_key(
    tmp_path: Path, old: str, new: str, path: str
) -> None:
    text = MINIMAL.replace(old, new)
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem[0] == path
    item = path.split(".", maxsplit=1)[0].split("[", maxsplit=1)[0]
    assert problem[1] == _line_of(text, "numeric:" if item == "features" else f"{item}:")


def test_join_problems_name_the_step(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "row_key: [ts, user]",
        "joins:\n  base: events\n  steps:\n    - source: wether\n      keys: [user]\n"
        "row_key: [ts, user]",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem[0] == "joins.steps[0].source"
    assert problem[1] == _line_of(text, "source: wether")
    assert "unknown source 'wether' (known: events)" in problem[2]


def test_leaking_target_and_bad_owner_are_refused() -> None:
    data = yaml.safe_load(MINIMAL)
    data["features"] = {"numeric": ["amount", "churned"]}
    with pytest.raises(SpecError, match=r"features\.numeric\[1\].*leakage"):
        parse_spec(data)
    data = yaml.safe_load(MINIMAL) | {"owners": ["alice"]}
    with pytest.raises(SpecError, match=r"owners.*team name"):
        parse_spec(data)


def test_yaml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("row_key: [ts, user]", "row_key: [ts, user")
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem[1] is not None and problem[1] >= _line_of(text, "row_key")


def test_yaml_on_is_a_key_not_a_boolean(tmp_path: Path) -> None:
    # YAML 1.1 reads a bare `on` as True; the spec loader uses YAML 1.2 booleans.
    text = MINIMAL.replace("name: toy", "name: toy\ndescription: on")
    spec = load_spec(_write(tmp_path, text))
    assert spec.description == "on"


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, MINIMAL))
    assert spec.sources[0].path == tmp_path.resolve() / "data" / "events.csv"
    assert parse_spec(yaml.safe_load(MINIMAL), base_dir="/srv/x").sources[0].path == Path(
        "/srv/x/data/events.csv"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pipeline spec"):
        load_spec(tmp_path / "nope.yaml")


def test_training_window_copy_keeps_everything_else() -> None:
    spec = load_spec(SPEC_PATH)
    later = spec.with_training_window(dt.date(2013, 6, 1), dt.date(2013, 7, 1))
    assert (later.training.start, later.training.end) == (dt.date(2013, 6, 1), dt.date(2013, 7, 1))
    assert later.features == spec.features and later.sources == spec.sources


class _Incident(SpecModel):
    kind: str
    source: str


class ScenarioLikeSpec(PipelineSpec):
    """How the scenario lab extends the spec: same validation, new sections."""

    incidents: list[_Incident] = Field(default_factory=list)


def test_spec_is_extendable_by_subclassing(tmp_path: Path) -> None:
    text = MINIMAL + "incidents:\n  - {kind: null_spike, source: events}\n"
    spec = load_spec(_write(tmp_path, text), spec_class=ScenarioLikeSpec)
    assert isinstance(spec, ScenarioLikeSpec)
    assert spec.incidents[0].kind == "null_spike"
    bad = MINIMAL + "incidents:\n  - {kind: null_spike, source: events, colour: red}\n"
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, bad), spec_class=ScenarioLikeSpec)
    assert caught.value.problems[0][0] == "incidents[0].colour"
    with pytest.raises(SpecError, match="incidents: unknown key"):
        load_spec(_write(tmp_path, text))  # the base spec has no incidents section


def test_derived_expressions_compute_like_numpy() -> None:
    times = pd.to_datetime(
        ["2013-01-01T05:30:00Z", "2013-07-04T23:00:00Z", "2013-03-10T07:00:00Z"], utc=True
    )
    frame = pd.DataFrame(
        {"a": [1530.0, np.nan, 5.0], "b": [2.0, 4.0, 0.0], "t": times, "s": ["x", "y", "z"]}
    )
    assert expression_columns("floor(a / 100) + b * a") == ["a", "b"]
    np.testing.assert_array_equal(
        evaluate_expression("floor(a / 100)", frame, timezone="UTC"), [15.0, np.nan, 0.0]
    )
    # division by zero is missing, not infinite; comparisons are 0/1 with NaN propagated
    np.testing.assert_array_equal(
        evaluate_expression("a / b", frame, timezone="UTC"), [765.0, np.nan, np.nan]
    )
    np.testing.assert_array_equal(
        evaluate_expression("a > 100", frame, timezone="UTC"), [1.0, np.nan, 0.0]
    )
    # local hour: 05:30Z is 00:30 in New York (EST), 23:00Z on July 4 is 19:00 (EDT)
    np.testing.assert_array_equal(
        evaluate_expression("hour(t)", frame, timezone="America/New_York"), [0.0, 19.0, 3.0]
    )
    np.testing.assert_array_equal(
        evaluate_expression("dayofweek(t)", frame, timezone="UTC"),
        pd.Series(times).dt.dayofweek.to_numpy(dtype=float),
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function"),
        ("a.real", "Attribute is not allowed"),
        ("a +", "cannot parse"),
        ("hour(a + 1)", "one datetime column"),
        ("'text'", "only numeric constants"),
    ],
)
def test_unsafe_or_broken_expressions_are_spec_errors(expression: str, message: str) -> None:
    data = yaml.safe_load(MINIMAL)
    data["features"]["derived"] = {"bad": expression}
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    path, _, text = caught.value.problems[0]
    assert path == "features.derived.bad"
    assert message in text


def test_categories_are_stable_strings_across_dtypes() -> None:
    as_int = as_category_strings(pd.Series([3, 4, 3]))
    as_float = as_category_strings(pd.Series([3.0, np.nan, 4.0]))
    assert list(as_int) == ["3", "4", "3"]
    assert list(as_float) == ["3", None, "4"]
    assert list(as_category_strings(pd.Series(["UA", None, "AA"]))) == ["UA", None, "AA"]


@pytest.mark.parametrize(
    ("change", "message"),
    [("{latency_p50: 5}", "'latency_p50' is not an evaluated metric"), ("{roc_auc: -1}", ">= 0")],
)
def test_min_change_names_an_evaluated_metric(tmp_path: Path, change: str, message: str) -> None:
    text = MINIMAL + f"monitoring:\n  min_change: {change}\n"
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem[0].startswith("monitoring.min_change")
    assert problem[1] == _line_of(text, "min_change:")
    assert message in problem[2]
    spec = load_spec(_write(tmp_path, MINIMAL + "monitoring:\n  min_change: {latency_p95: 50}\n"))
    assert spec.monitoring.min_change == {"latency_p95": 50.0}
