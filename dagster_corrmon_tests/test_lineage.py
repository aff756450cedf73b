"""Lineage distances and affected-run sets, checked against exact expected answers."""

import pytest

from dagster_corrmon.core.lineage import (
    ProvenanceRecord,
    affected_run_ids,
    ancestors_with_distance,
    descendants_with_distance,
    runs_consuming,
)
from dagster_corrmon.errors import InputDataError

# raw_weather ─┐
#              ├─> cleaned ─> features ─> model ─> predictions ─> evaluation
# raw_flights ─┘                  ^          ^
# raw_planes ─────────────────────┘          │
# labels ────────────────────────────────────┘ (a shortcut: labels feed the model directly)
GRAPH = {
    "cleaned": ["raw_weather", "raw_flights"],
    "features": ["cleaned", "raw_planes"],
    "model": ["features", "labels"],
    "predictions": ["model", "features"],
    "evaluation": ["predictions", "labels"],
}


def test_ancestors_are_found_at_their_shortest_distance() -> None:
    assert ancestors_with_distance(GRAPH, "predictions") == {
        "model": 1,
        "features": 1,  # also reachable through the model at 2 hops: the shorter path wins
        "labels": 2,
        "cleaned": 2,
        "raw_planes": 2,
        "raw_weather": 3,
        "raw_flights": 3,
    }


def test_max_distance_cuts_the_walk() -> None:
    assert ancestors_with_distance(GRAPH, "predictions", max_distance=1) == {
        "model": 1,
        "features": 1,
    }
    assert ancestors_with_distance(GRAPH, "predictions", max_distance=0) == {}
    with pytest.raises(InputDataError, match="max_distance"):
        ancestors_with_distance(GRAPH, "predictions", max_distance=-1)


def test_roots_and_unknown_assets_have_no_ancestors() -> None:
    assert ancestors_with_distance(GRAPH, "raw_weather") == {}
    assert ancestors_with_distance(GRAPH, "not_in_graph") == {}


def test_cycles_terminate_and_never_list_the_asset_itself() -> None:
    cyclic = {"a": ["b"], "b": ["c"], "c": ["a", "d"]}
    assert ancestors_with_distance(cyclic, "a") == {"b": 1, "c": 2, "d": 3}


def test_descendants_mirror_ancestors() -> None:
    assert descendants_with_distance(GRAPH, "raw_weather") == {
        "cleaned": 1,
        "features": 2,
        "model": 3,
        "predictions": 3,
        "evaluation": 4,
    }
    assert descendants_with_distance(GRAPH, "evaluation") == {}


def _record(
    run_id: str, asset: str, version: str | None, partition: str | None = None, **inputs: str
) -> ProvenanceRecord:
    return ProvenanceRecord(
        run_id=run_id,
        asset_key=asset,
        data_version=version,
        input_data_versions=inputs,
        partition=partition,
    )


# Three days of features; the 06-03 weather batch is bad (w3). The model trained on 06-04 reads
# the bad features f3 (through its history) and produces model version m2; scoring runs after
# that load m2 and are affected too, even on clean features.
RECORDS = [
    _record("r-w1", "raw_weather", "w1", "06-01"),
    _record("r-w2", "raw_weather", "w2", "06-02"),
    _record("r-w3", "raw_weather", "w3", "06-03"),
    _record("r-w4", "raw_weather", "w4", "06-04"),
    _record("r-f1", "features", "f1", "06-01", raw_weather="w1"),
    _record("r-f2", "features", "f2", "06-02", raw_weather="w2"),
    _record("r-f3", "features", "f3", "06-03", raw_weather="w3"),
    _record("r-f4", "features", "f4", "06-04", raw_weather="w4"),
    _record("r-train1", "model", "m1", None, features="f2"),
    _record("r-train2", "model", "m2", None, features="f3"),
    _record("r-s1", "predictions", "p1", "06-01", model="m1", features="f1"),
    _record("r-s2", "predictions", "p2", "06-02", model="m1", features="f2"),
    _record("r-s3", "predictions", "p3", "06-03", model="m1", features="f3"),
    _record("r-s4", "predictions", "p4", "06-04", model="m2", features="f4"),
    _record("r-s4b", "predictions", "p4b", "06-04", model="m1", features="f4"),
    _record("r-e3", "evaluation", None, "06-03", predictions="p3"),
]


def test_runs_that_consumed_a_faulty_version_are_found_transitively_and_exactly() -> None:
    affected = runs_consuming(RECORDS, [("raw_weather", "w3")])
    assert [(item.record.run_id, item.via, item.hops) for item in affected] == [
        ("r-f3", ("raw_weather", "w3"), 1),
        ("r-s3", ("features", "f3"), 2),
        ("r-train2", ("features", "f3"), 2),
        ("r-e3", ("predictions", "p3"), 3),
        ("r-s4", ("model", "m2"), 3),
    ]
    # Runs that read good versions of the same assets (w4, f4, m1) are not flagged; nor is the
    # run that produced the faulty version.
    assert affected_run_ids(RECORDS, [("raw_weather", "w3")]) == {
        "r-f3",
        "r-s3",
        "r-train2",
        "r-e3",
        "r-s4",
    }


def test_a_faulty_model_version_taints_only_its_scoring_runs() -> None:
    assert affected_run_ids(RECORDS, [("model", "m1")]) == {"r-s1", "r-s2", "r-s3", "r-s4b", "r-e3"}


def test_no_faulty_versions_or_unknown_versions_affect_nothing() -> None:
    assert runs_consuming(RECORDS, []) == []
    assert affected_run_ids(RECORDS, [("raw_weather", "never-produced")]) == frozenset()


def test_a_materialization_without_a_data_version_stops_propagation() -> None:
    records = [
        _record("r1", "features", None, raw_weather="bad"),
        _record("r2", "model", "m", features="unknown"),
    ]
    assert affected_run_ids(records, [("raw_weather", "bad")]) == {"r1"}


def test_a_multi_asset_run_is_reported_once_per_materialization() -> None:
    records = [
        _record("multi", "features", "f9", raw_weather="bad"),
        _record("multi", "labels_clean", "l9", raw_weather="bad"),
        _record("train", "model", "m9", features="f9", labels_clean="l9"),
    ]
    affected = runs_consuming(records, [("raw_weather", "bad")])
    assert [(item.record.run_id, item.record.asset_key) for item in affected] == [
        ("multi", "features"),
        ("multi", "labels_clean"),
        ("train", "model"),
    ]
    assert affected_run_ids(records, [("raw_weather", "bad")]) == {"multi", "train"}
