"""corrmon backtest: replaying a recorded store under alert rules, with no look-ahead."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dagster_corrmon.cli.main import main
from dagster_corrmon.core.attribution import (
    AttributionConfig,
    MetricSeries,
    detect_performance_shift,
)
from dagster_corrmon.core.incident import Incident, IncidentClass
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.correlation.gather import build_metric_series
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.scenarios.backtest import (
    PERFORMANCE,
    BacktestRules,
    PerformanceRule,
    backtest_store,
    load_rules,
    parse_rules,
    replay_performance,
)
from dagster_corrmon.store import CorrmonStore

N = 70
STEP_AT = 50  # the metric drops from this partition on
NULL_SPIKES = (20, 21, 60, 61, 62)
DRIFT_AT = 33
FAILED_AT = 12
START = datetime(2024, 1, 1, tzinfo=UTC)
PARTITIONS = [(START + timedelta(days=i)).date().isoformat() for i in range(N)]
DRIFT_COLUMNS = ("a", "b", "c", "d")


def _time(index: int) -> datetime:
    return START + timedelta(days=index)


def _signals(seed: int = 7) -> list[Signal]:
    rng = np.random.default_rng(seed)
    metric = 0.80 + rng.normal(0.0, 0.01, N)
    metric[STEP_AT:] -= 0.08
    signals: list[Signal] = []
    for i, partition in enumerate(PARTITIONS):
        common = {"partition": partition, "event_time": _time(i), "observed_at": _time(i + 1)}
        signals.append(
            Signal(
                kind=SignalKind.METRIC,
                asset_key="evaluation",
                name="roc_auc",
                value=float(metric[i]),
                passed=True,
                **common,
            )
        )
        nulls = 0.5 if i in NULL_SPIKES else float(rng.uniform(0.0, 0.05))
        signals.append(
            Signal(
                kind=SignalKind.DATA_QUALITY,
                asset_key="raw_feed",
                name="null_fraction",
                column="x",
                value=nulls,
                passed=nulls < 0.3,
                **common,
            )
        )
        # A column whose nulls stay just under the threshold everywhere.
        signals.append(
            Signal(
                kind=SignalKind.DATA_QUALITY,
                asset_key="raw_feed",
                name="null_fraction",
                column="y",
                value=0.19,
                passed=True,
                **common,
            )
        )
        for position, column in enumerate(DRIFT_COLUMNS):
            drifted = (i == DRIFT_AT and position < 3) or (i == DRIFT_AT + 1 and position == 0)
            signals.append(
                Signal(
                    kind=SignalKind.DRIFT,
                    asset_key="features",
                    name="drift",
                    column=column,
                    value=0.4 if drifted else 0.02,
                    passed=not drifted,
                    severity=Severity.WARN if drifted else Severity.INFO,
                    metadata={"drifted": drifted},
                    **common,
                )
            )
        if i == FAILED_AT:
            signals.append(
                Signal(
                    kind=SignalKind.RUN_FAILURE,
                    asset_key="raw_feed",
                    name="run_failure",
                    passed=False,
                    severity=Severity.ERROR,
                    **common,
                )
            )
    return signals


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dagster_home")
    with CorrmonStore(f"sqlite:///{home}/corrmon.db") as store:
        store.write_signals(_signals())
    return home


def _store(home: Path) -> CorrmonStore:
    return CorrmonStore(f"sqlite:///{home}/corrmon.db")


def _full_series_shift():
    built = build_metric_series(
        _signals(), asset_key="evaluation", metric="roc_auc", higher_is_better=True
    )
    assert built is not None
    return detect_performance_shift(built[0], config=AttributionConfig())


def test_performance_alert_fires_where_full_series_detection_is(dagster_home: Path) -> None:
    shift = _full_series_shift()
    assert shift is not None
    # The oracle: detection on the whole series, which saw the future; replay must agree.
    assert PARTITIONS.index(shift.detection_partition) >= STEP_AT
    rules = parse_rules({"data": []})
    with _store(dagster_home) as store:
        result = backtest_store(store, rules=rules)
    alerts = result.performance_alerts
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.partition == shift.detection_partition
    assert alert.detection_partition == shift.detection_partition
    assert alert.asset_key == "evaluation"
    assert alert.name == "roc_auc"
    assert alert.onset_partition is not None
    assert PARTITIONS.index(alert.onset_partition) <= PARTITIONS.index(alert.partition)
    assert alert.loss is not None and alert.loss > 0.04


def test_stricter_rules_fire_later_or_not_at_all(dagster_home: Path) -> None:
    default = parse_rules({"data": []})
    sustained = parse_rules(
        {
            "data": [],
            "performance": [{"metric": "roc_auc", "require": "sustained", "min_alarms": 5}],
        }
    )
    deaf = parse_rules({"data": [], "performance": [{"alarm_threshold": 1000.0}]})
    with _store(dagster_home) as store:
        first = backtest_store(store, rules=default).performance_alerts[0]
        later = backtest_store(store, rules=sustained).performance_alerts
        never = backtest_store(store, rules=deaf).performance_alerts
    assert len(later) == 1
    # Five alarms need at least four partitions after the first one.
    assert PARTITIONS.index(later[0].partition) >= PARTITIONS.index(first.partition) + 4
    assert later[0].detection_partition == first.detection_partition
    assert later[0].sustained is True
    assert never == ()


def test_data_rules_fire_exactly_on_breaking_partitions(tmp_path: Path, dagster_home: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "performance: []\n"
        "data:\n"
        "  - {kind: data_quality, name: null_fraction, max: 0.2}\n"
        "  - {kind: drift, drifted_share: 0.5}\n"
        "  - {kind: run_failure}\n"
    )
    with _store(dagster_home) as store:
        result = backtest_store(store, rules=load_rules(rules_file))
    by_rule: dict[str, list[tuple[str, str | None]]] = {}
    for alert in result.alerts:
        by_rule.setdefault(alert.rule, []).append((alert.partition, alert.column))
    assert by_rule["data_quality:null_fraction>0.2"] == [(PARTITIONS[i], "x") for i in NULL_SPIKES]
    # 3 of 4 columns drifted at DRIFT_AT; 1 of 4 the next day stays under the share.
    assert by_rule["drift:drifted_share>=0.5"] == [(PARTITIONS[DRIFT_AT], None)]
    drift_alert = next(a for a in result.alerts if a.kind == "drift")
    assert drift_alert.value == pytest.approx(0.75)
    assert by_rule["run_failure:failed"] == [(PARTITIONS[FAILED_AT], None)]
    assert result.performance_alerts == ()
    # Alerts come out in time order.
    times = [alert.event_time for alert in result.alerts]
    assert times == sorted(times)


def test_default_data_rules_replay_the_recorded_verdicts(dagster_home: Path) -> None:
    with _store(dagster_home) as store:
        result = backtest_store(store, rules=parse_rules({"performance": []}))
    null_alerts = [(a.partition, a.column) for a in result.alerts if a.kind == "data_quality"]
    assert null_alerts == [(PARTITIONS[i], "x") for i in NULL_SPIKES]
    drift_alerts = sorted((a.partition, a.column) for a in result.alerts if a.kind == "drift")
    assert drift_alerts == sorted(
        [(PARTITIONS[DRIFT_AT], c) for c in "abc"] + [(PARTITIONS[DRIFT_AT + 1], "a")]
    )


def test_comparison_with_live_incidents(tmp_path: Path) -> None:
    shift = _full_series_shift()
    assert shift is not None
    detected = PARTITIONS.index(shift.detection_partition)
    live_late = PARTITIONS[detected + 2]
    with CorrmonStore(f"sqlite:///{tmp_path}/corrmon.db") as store:
        store.write_signals(_signals())
        for incident_id, partition in (("inc-late", live_late), ("inc-spurious", PARTITIONS[5])):
            index = PARTITIONS.index(partition)
            store.upsert_incident(
                Incident(
                    id=incident_id,
                    model_asset="model",
                    metric="roc_auc",
                    classification=IncidentClass.DATA_FAULT,
                    detected_partition=partition,
                    detected_time=_time(index),
                    onset_partition=partition,
                    onset_time=_time(index),
                    created_at=_time(index + 1),
                )
            )
        matched = backtest_store(store, rules=parse_rules({"data": []}))
        unmatched = backtest_store(
            store, rules=parse_rules({"data": [], "performance": [{"alarm_threshold": 1000}]})
        )
    assert [(m.incident_id, m.delay) for m in matched.matches] == [("inc-late", -2)]
    assert [i.incident_id for i in matched.incidents_without_alert] == ["inc-spurious"]
    assert matched.alerts_without_incident == ()
    assert unmatched.matches == ()
    assert {i.incident_id for i in unmatched.incidents_without_alert} == {
        "inc-late",
        "inc-spurious",
    }


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ({"performance": [{"alarm_thresold": 5}]}, "performance[0].alarm_thresold: unknown key"),
        ({"data": [{"kind": "nulls"}]}, "data[0].kind"),
        ({"data": [{"kind": "run_failure", "drifted_share": 0.5}]}, "data[0]: drifted_share"),
        ({"performance": [{"metric": "my_score"}]}, "set higher_is_better"),
        ({"match_within": -1}, "match_within"),
        ({"thresholds": {}}, "thresholds: unknown key"),
    ],
)
def test_bad_rules_name_the_key(rules: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=r"rules\.yaml: ") as caught:
        parse_rules(rules, origin="rules.yaml")
    assert named in str(caught.value)


def test_rules_config_keeps_attribution_defaults() -> None:
    rule = BacktestRules.model_validate({"performance": [{"min_reference": 10}]}).performance[0]
    config = rule.attribution_config()
    assert config.min_reference == 10
    assert config.min_alarms == AttributionConfig().min_alarms
    assert config.alarm_threshold == AttributionConfig().alarm_threshold


def test_cli_bad_rules_file_is_one_line_exit_2(
    tmp_path: Path, dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"kind": "data_quality", "maxx": 0.2}]}))
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--dagster-home", str(dagster_home), "--rules", str(bad)])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("corrmon: error: ")
    assert "data[0].maxx: unknown key" in err


def test_cli_missing_store_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--dagster-home", str(tmp_path)])
    assert caught.value.code == 2
    assert "no corrmon store" in capsys.readouterr().err
    assert not (tmp_path / "corrmon.db").exists()


def test_cli_json_and_table(dagster_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shift = _full_series_shift()
    assert shift is not None
    main(["backtest", "--dagster-home", str(dagster_home), "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    performance = [a for a in payload["alerts"] if a["kind"] == PERFORMANCE]
    assert [a["partition"] for a in performance] == [shift.detection_partition]
    assert payload["comparison"]["alerts_without_incident"][0]["rule"] == "performance:roc_auc"
    main(["backtest", "--dagster-home", str(dagster_home)])
    table = capsys.readouterr().out
    assert f"{shift.detection_partition}  performance:roc_auc" in table
    assert "1 performance alert(s) without an incident" in table


def test_replay_never_looks_ahead() -> None:
    """A history cut right after an alert yields that same alert: nothing later was needed."""
    built = build_metric_series(
        _signals(), asset_key="evaluation", metric="roc_auc", higher_is_better=True
    )
    assert built is not None
    series = built[0]
    rule = PerformanceRule(require="sustained")
    alerts = replay_performance(series, rule)
    assert len(alerts) == 1
    stop = series.partitions.index(alerts[0].partition) + 1
    cut = MetricSeries(
        name=series.name,
        partitions=series.partitions[:stop],
        values=series.values[:stop],
        higher_is_better=True,
        times=series.times[:stop] if series.times is not None else None,
        model_asset=series.model_asset,
    )
    assert replay_performance(cut, rule) == alerts
    shorter = replace(
        cut,
        partitions=cut.partitions[:-1],
        values=cut.values[:-1],
        times=cut.times[:-1] if cut.times is not None else None,
    )
    assert replay_performance(shorter, rule) == []
