"""Scenario specs (extending a pipeline spec) and report scoring."""

import json
from pathlib import Path

import pandas as pd
import pytest

from dagster_corrmon.cli.scenario_cmd import scenario_json_schema
from dagster_corrmon.errors import ConfigError, InputDataError
from dagster_corrmon.scenarios.score import format_summary, score_report, summarize
from dagster_corrmon.scenarios.simulate import REPORT_VERSION
from dagster_corrmon.scenarios.spec import load_scenario, scenario_document

BUILTIN = Path(__file__).resolve().parent.parent / "dagster_corrmon" / "scenarios" / "builtin"


def test_builtin_scenarios_load_and_extend_the_flights_spec() -> None:
    paths = sorted(BUILTIN.glob("*.yaml"))
    assert paths
    for path in paths:
        spec = load_scenario(path)
        assert spec.sources[0].name == "schedule"  # inherited from flights.yaml
        assert spec.partitioning.cadence == "weekly"  # overridden by the scenario
        ids = [i.id for i in spec.incidents]
        assert all(ids) and len(set(ids)) == len(ids)
        assert {e.injection for e in spec.expect.incidents} <= set(ids)


SCHEMA = BUILTIN.parent.parent.parent / "docs" / "scenario.schema.json"


def _as_json(document: object) -> object:
    return json.loads(json.dumps(document, default=str))  # YAML dates as ISO strings


def test_the_documented_json_schema_is_current_and_describes_every_builtin_scenario(
    tmp_path: Path,
) -> None:
    import jsonschema

    documented = json.loads(SCHEMA.read_text())
    assert documented == _as_json(scenario_json_schema()), "regenerate: corrmon scenario-schema"
    jsonschema.Draft202012Validator.check_schema(documented)
    validator = jsonschema.Draft202012Validator(documented)
    for path in sorted(BUILTIN.glob("*.yaml")):
        document, _ = scenario_document(path)
        assert not list(validator.iter_errors(_as_json(document))), path.name
    typo = _write(tmp_path, "incidents:\n  - kind: null_spik\n    source: weather\n")
    document, _ = scenario_document(typo)
    assert list(validator.iter_errors(_as_json(document)))  # an unknown kind is refused
    extra = _write(tmp_path, "simulaton: {end: 2013-06-01}\n")
    document, _ = scenario_document(extra)
    assert list(validator.iter_errors(_as_json(document)))  # so is an unknown key


def _write(tmp_path: Path, body: str) -> Path:
    base = BUILTIN.parent.parent / "examples" / "flights" / "flights.yaml"
    path = tmp_path / "scenario.yaml"
    path.write_text(f"base: {base}\nname: probe\n{body}")
    return path


def test_scenario_errors_name_the_key_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "incidents:\n  - kind: null_spike\n    source: nowhere\n    column: temp\n"
        "    start: 2013-03-01\n",
    )
    with pytest.raises(ConfigError, match="nowhere"):
        load_scenario(path)
    path = _write(tmp_path, "incidents:\n  - kind: null_spike\n    source: weather\n")
    with pytest.raises(ConfigError, match=r"scenario.yaml:4: incidents\[0\]\.null_spike\.start"):
        load_scenario(path)
    path = _write(tmp_path, "expect:\n  incidents:\n    - injection: ghost\n")
    with pytest.raises(ConfigError, match="ghost"):
        load_scenario(path)
    path = _write(tmp_path, "target: {column: arr_delay, task: regression, threshold: null}\n")
    with pytest.raises(ConfigError, match=r"training\.model\.estimator: .*Classifier does not fit"):
        load_scenario(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def _report(causes: list[dict], *, detected: str = "2013-05-12", control: bool = False) -> dict:
    weeks = pd.date_range("2013-04-07", "2013-06-30", freq="7D")
    partitions = [day.strftime("%Y-%m-%d") for day in weeks]  # weekly, keyed by their Sunday
    return {
        "version": REPORT_VERSION,
        "scenario": "probe",
        "partitions": partitions,
        "injected": [
            {
                "id": "x",
                "kind": "null_spike",
                "asset": "raw_schedule",
                "column": "dest",
                "start": "2013-05-06",
                "end": None,
            }
        ],
        "expect": {"control": control, "incidents": [] if control else [{"injection": "x"}]},
        "incidents": [
            {
                "id": "inc-1",
                "classification": "data_fault",
                "consequential": True,
                "detected_partition": detected,
                "causes": causes,
                "affected_runs": [
                    {"run_id": "r1", "role": "scoring"},
                    {"run_id": "r0", "role": "scoring"},
                ],
            }
        ],
        "scoring_runs": {"2013-05-12": "r1", "2013-05-19": "r2", "2013-04-28": "r0"},
    }


def test_score_counts_top1_top3_delay_and_annotation() -> None:
    right = {"rank": 1, "asset": "raw_schedule", "column": "dest"}
    wrong = {"rank": 1, "asset": "raw_weather", "column": "temp"}
    hit = score_report(_report([right]))
    assert (hit.expected, hit.top1, hit.top3, hit.detection_delays) == (1, 1, 1, [0])
    assert hit.annotation_precision == 0.5  # r0 scored a healthy partition
    assert hit.annotation_recall == 0.5  # r2 was affected but not flagged
    second = score_report(_report([wrong, {**right, "rank": 2}], detected="2013-05-26"))
    assert (second.top1, second.top3, second.detection_delays) == (0, 1, [2])
    early = score_report(_report([right], detected="2013-04-21"))
    assert early.missed == ["x"]  # an incident before the injection does not count
    # A cause on the feature computed from the injected raw column is the same defect.
    symptom = {"rank": 1, "asset": "features", "column": "dest_code"}
    via_feature = _report([symptom])
    via_feature["feature_sources"] = {"dest_code": ["raw_schedule:dest"]}
    assert score_report(via_feature).top1 == 1
    assert score_report(_report([symptom])).top1 == 0  # without the lineage it is another column
    # A defect that breaks scoring leaves no metric: the at-risk incident is the detection.
    at_risk = _report([right])
    at_risk["incidents"][0].update(
        provisional=True, consequential=False, detected_partition=None, onset_partition="2013-05-12"
    )
    assert (score_report(at_risk).top1, score_report(at_risk).detection_delays) == (1, [0])
    control = score_report(_report([wrong], control=True))
    assert control.false_consequential == 1
    summary = summarize([hit, second])
    assert summary["top1_accuracy"] == 0.5 and summary["top3_accuracy"] == 1.0
    assert summary["max_detection_delay"] == 2


def test_score_checks_classification_detection_window_and_retrain() -> None:
    right = {"rank": 1, "asset": "raw_schedule", "column": "dest"}
    report = _report([right], detected="2013-05-26")  # two weeks after the 2013-05-12 onset
    report["expect"]["incidents"][0].update(
        classification=["code_change", "upstream_failure"], detect_within=1
    )
    score = score_report(report)
    assert (score.classification_expected, score.classified) == (1, 0)
    assert score.misclassified == ["x: data_fault, expected code_change or upstream_failure"]
    assert score.late == ["x: 2 partition(s)"]
    report["expect"]["incidents"][0].update(classification=["data_fault"], detect_within=2)
    score = score_report(report)
    assert (score.classified, score.misclassified, score.late) == (1, [], [])

    # retrain: required = decided *and* carried out; forbidden = never decided
    report["expect"]["retrain"] = "required"
    assert score_report(report).retrain_met is False  # no decision at all
    report["retrain_decisions"] = [
        {"partition": "2013-05-26", "decision": "retrain", "reason": "concept drift"}
    ]
    report["retrains"] = [{"partition": "2013-05-26", "success": False}]
    assert score_report(report).retrain_met is False  # decided, but the retrain run failed
    report["retrains"] = [{"partition": "2013-05-26", "success": True}]
    required = score_report(report)
    assert required.retrain_met is True
    report["expect"]["retrain"] = "forbidden"
    forbidden = score_report(report)
    assert forbidden.retrain_met is False
    report["retrain_decisions"] = [{"partition": "2013-05-26", "decision": "blocked"}]
    report["retrains"] = []
    blocked = score_report(report)
    assert (blocked.retrain_met, blocked.retrain_note) == (True, "0 retrain decision(s), 1 blocked")

    summary = summarize([required, forbidden, blocked])
    assert summary["classification_accuracy"] == 1.0
    assert (summary["retrain_expectations"], summary["retrain_expectations_met"]) == (3, 2)
    text = format_summary(summary)
    assert "retrain expectations met 2/3" in text
    assert "probe: retrain forbidden not met (1 retrain decision(s), 0 blocked)" in text
    report["expect"]["retrain"] = "sometimes"
    with pytest.raises(InputDataError, match=r"expect\.retrain"):
        score_report(report)


def test_score_counts_a_detection_only_inside_the_injections_window() -> None:
    right = {"rank": 1, "asset": "raw_schedule", "column": "dest", "score": 0.8}
    report = _report([right], detected="2013-06-23")  # 6 weeks after a 2-week injection
    report["injected"][0]["end"] = "2013-05-19"
    score = score_report(report)
    assert score.missed == ["x"] and score.top1 == 0  # long after the window: not a detection
    report["incidents"][0]["detected_partition"] = "2013-05-26"  # end + detect_within (1)
    score = score_report(report)
    assert (score.missed, score.detection_delays, score.late) == ([], [2], ["x: 2 partition(s)"])
    assert score.episodes[0].on_time is False and score.episodes[0].detected_as == "incident"
    report["expect"]["incidents"][0]["detect_within"] = 0
    assert score_report(report).missed == ["x"]  # the window ends at the injection's end


def test_score_reads_at_risk_incidents_as_such_for_non_consequential_defects() -> None:
    right = {"rank": 1, "asset": "raw_schedule", "column": "dest", "score": 1.0}
    report = _report([right])
    report["expect"]["incidents"][0].update(consequential=False, detect_within=0)
    # only a consequential performance incident: missed (no at-risk) and a false alarm
    score = score_report(report)
    assert score.missed == ["x"] and score.episodes[0].false_consequential is True
    risk = {
        "id": "risk-1",
        "provisional": True,
        "consequential": False,
        "classification": "data_fault",
        "onset_partition": "2013-05-12",
        "detected_partition": None,
        "causes": [right],
        "affected_runs": [],
    }
    report["incidents"].append(risk)
    episode = score_report(report).episodes[0]
    assert (episode.detected_as, episode.delay, episode.on_time, episode.top1) == (
        "at_risk",
        0,
        True,
        True,
    )
    assert episode.false_consequential is True  # the consequential one is still a false alarm
    report["incidents"][0]["consequential"] = False
    summary = summarize([score_report(report)])
    assert summary["at_risk_rate"] == 1.0 and summary["false_consequential_on_defects"] == 0
    assert summary["detection_rate"] is None  # no consequential episode to detect


def test_score_counts_incidents_per_episode() -> None:
    right = {"rank": 1, "asset": "raw_schedule", "column": "dest"}
    report = _report([right])
    second = {**report["incidents"][0], "id": "inc-2", "detected_partition": "2013-06-02"}
    report["incidents"].append(second)
    score = score_report(report)
    assert score.episodes[0].incidents == 2 and score.detection_delays == [0]
    assert summarize([score])["incidents_per_episode"] == 2.0


def test_calibration_matches_scikit_learn() -> None:
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from dagster_corrmon.scenarios.score import calibration

    rng = np.random.default_rng(3)
    confidence = rng.random(300)
    confidence[:5] = [0.0, 0.1, 0.5, 0.9, 1.0]  # bin edges
    right = rng.random(300) < confidence**2
    table = calibration(list(zip(confidence.tolist(), right.tolist(), strict=True)))
    accuracy, mean_confidence = calibration_curve(right, confidence, n_bins=10)
    assert [row["accuracy"] for row in table["deciles"]] == pytest.approx(accuracy)
    assert [row["mean_confidence"] for row in table["deciles"]] == pytest.approx(mean_confidence)
    assert table["brier"] == pytest.approx(brier_score_loss(right, confidence))
    assert table["max_gap"] == pytest.approx(np.max(np.abs(accuracy - mean_confidence)))


def test_score_prefers_the_top_causes_confidence_and_groups_by_strata() -> None:
    from dagster_corrmon.scenarios.score import format_generalization_table, generalization_rows

    right = {"rank": 1, "asset": "raw_schedule", "column": "dest", "score": 0.9, "confidence": 0.6}
    report = _report([right])
    report["labels"] = {"dataset": "flights", "cadence": "weekly", "tiers": {"x": "top"}}
    control = _report([], control=True)
    control["injected"] = []
    control["incidents"] = []
    control["labels"] = {"dataset": "flights", "cadence": "weekly"}
    scores = [score_report(report), score_report(control)]
    assert scores[0].episodes[0].confidence == 0.6
    rows = generalization_rows(scores)
    assert [(r["kind"], r["tier"]) for r in rows] == [("control", "-"), ("null_spike", "top")]
    assert rows[0]["false_consequential_on_controls"] == 0 and rows[1]["detection_rate"] == 1.0
    assert rows[1]["calibration"]["brier"] == pytest.approx(0.16)  # (0.6 - 1)²
    assert "| flights | weekly | null_spike | top | 1 | 1.00 |" in format_generalization_table(rows)


def test_score_command_prints_the_generalization_table_from_a_runs_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster_corrmon.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    right = {"rank": 1, "asset": "raw_schedule", "column": "dest", "score": 0.7}
    (tmp_path / "runs" / "probe").mkdir(parents=True)
    (tmp_path / "runs" / "probe" / "report.json").write_text(json.dumps(_report([right])))
    labels = {
        "scenarios": {
            "probe": {"dataset": "flights", "cadence": "weekly", "tiers": {"x": "middle"}}
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(labels))
    code, out, _ = run(
        "score", str(tmp_path / "runs"), "--labels", str(tmp_path / "manifest.json"), "--table"
    )
    assert code == 0
    assert "| flights | weekly | null_spike | middle | 1 | 1.00 | 1.00 | 0.0 | 1.00 |" in out
    assert "| (0.6, 0.7] | 1 | 0.70 | 1.00 |" in out
    code, _, err = run("score", str(tmp_path / "manifest.json").replace("manifest", "nothing"))
    assert code == 2 and err.startswith("corrmon: error: cannot read")
    (tmp_path / "empty").mkdir()
    code, _, err = run("score", str(tmp_path / "empty"))
    assert code == 2 and "no report.json in" in err
