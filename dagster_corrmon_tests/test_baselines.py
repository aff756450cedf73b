"""The two baselines of ``corrmon score``: Evidently's dataset-drift alarm and NannyML's
CorrelationRanker, computed on signals written into a real SQLite store."""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from dagster_corrmon.cli.main import cli
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.errors import InputDataError
from dagster_corrmon.scenarios.baselines import (
    correlation_ranking,
    drift_table,
    drifted_shares,
    evidently_alarms,
    first_alarm,
    injected_features,
    load_history,
    performance_change,
)
from dagster_corrmon.scenarios.score import (
    format_summary,
    load_baseline_history,
    score_report,
    summarize,
)
from dagster_corrmon.scenarios.simulate import REPORT_VERSION
from dagster_corrmon.store import CorrmonStore

WEEKS = [datetime(2013, 1, 6, tzinfo=UTC) + timedelta(days=7 * i) for i in range(12)]
PARTITIONS = [week.strftime("%Y-%m-%d") for week in WEEKS]
START = 6  # the injection's first partition
# |metric - 0.90| grows then recovers after the injection; the pre-injection mean is exactly 0.90.
METRIC = [0.90, 0.91, 0.89, 0.905, 0.895, 0.90, 0.85, 0.80, 0.78, 0.80, 0.82, 0.84]
CHANGE = np.abs(np.array(METRIC) - 0.90)
THRESHOLD = 0.1
BYSTANDERS = ["temp", "wind_speed", "humid", "visib"]  # all sort after "dep_delay" by name


def _drift(column: str, partition: int, value: float, *, run: str = "r") -> Signal:
    return Signal(
        kind=SignalKind.DRIFT,
        asset_key="features",
        name="drift",
        column=column,
        partition=PARTITIONS[partition],
        event_time=WEEKS[partition],
        value=value,
        passed=value < THRESHOLD,
        run_id=f"{run}-{partition}",
        metadata={"method": "wasserstein", "threshold": THRESHOLD},
    )


def _history_signals(drift: Mapping[str, Sequence[float]]) -> list[Signal]:
    signals = [_drift(c, i, v) for c, series in drift.items() for i, v in enumerate(series)]
    signals += [
        Signal(
            kind=SignalKind.METRIC,
            asset_key="evaluation",
            name="roc_auc",
            partition=key,
            event_time=week,
            value=value,
        )
        for key, week, value in zip(PARTITIONS, WEEKS, METRIC, strict=True)
    ]
    # The check's own summary signal: no column, must not count as a feature.
    signals.append(
        Signal(
            kind=SignalKind.DRIFT,
            asset_key="features",
            name="corrmon_drift",
            partition=PARTITIONS[0],
            event_time=WEEKS[0],
            value=0.0,
            passed=True,
        )
    )
    signals += [
        Signal(
            kind=SignalKind.DATA_QUALITY,
            asset_key=feed,
            name="null_fraction",
            column=column,
            partition=PARTITIONS[0],
            event_time=WEEKS[0],
            value=0.0,
            passed=True,
        )
        for feed, columns in {
            "raw_departures": ["dep_delay", "dep_time"],
            "raw_weather": ["temp", "wind_speed", "humid", "visib"],
        }.items()
        for column in columns
    ]
    return signals


def _simulation_folder(tmp_path: Path, drift: Mapping[str, Sequence[float]], **report: Any) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    with CorrmonStore(f"sqlite:///{home / 'corrmon.db'}") as store:
        store.write_signals(_history_signals(drift))
    document = {
        "version": REPORT_VERSION,
        "scenario": "synthetic",
        "metric": "roc_auc",
        "partitions": PARTITIONS,
        "injected": [
            {
                "id": "units",
                "kind": "unit_change",
                "source": "departures",
                "asset": "raw_departures",
                "column": "dep_delay",
                "start": PARTITIONS[START],
                "end": None,
            }
        ],
        "expect": {"incidents": [{"injection": "units"}]},
        "incidents": [],
        **report,
    }
    (tmp_path / "report.json").write_text(json.dumps(document))
    return tmp_path


def _noise(seed: int, size: int = len(PARTITIONS)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.08, size)


def test_ranker_puts_the_co_moving_injected_column_first(tmp_path: Path) -> None:
    drift = {
        "dep_delay": list(0.02 + 3.0 * CHANGE),  # moves exactly with the performance change
        "temp": list(_noise(1)),
        "wind_speed": list(_noise(2)),
        "humid": list(_noise(3)),
    }
    folder = _simulation_folder(tmp_path, drift)
    # A re-materialized partition: the later check of the same partition is the one that counts.
    with CorrmonStore(f"sqlite:///{folder / 'dagster_home' / 'corrmon.db'}") as store:
        store.write_signals(
            [_drift("temp", 3, 0.9, run="early"), _drift("temp", 3, 0.01, run="late")]
        )
    report = json.loads((folder / "report.json").read_text())
    history, note = load_baseline_history(folder, report)
    assert note is None and history is not None
    assert history.features_asset == "features" and history.evaluation_asset == "evaluation"
    assert sorted(history.drift.statistics) == ["dep_delay", "humid", "temp", "wind_speed"]
    assert history.drift.statistics["temp"][3] == pytest.approx(0.01)
    assert history.metric == pytest.approx(METRIC)
    assert history.feed_columns["raw_departures"] == {"dep_delay", "dep_time"}

    score = score_report(report, history=history)
    assert score.nannyml is not None
    assert (score.nannyml.top1, score.nannyml.top3) == (1, 1)
    entry = score.nannyml.rankings["units"]
    assert entry["injected_features"] == ["dep_delay"] and entry["rank"] == 1
    assert entry["top"][0]["column"] == "dep_delay"
    assert entry["top"][0]["correlation"] == pytest.approx(1.0)


def test_ranker_cannot_separate_five_co_moving_columns() -> None:
    # Like NannyML's own car-loan example: five features drift at the same step as performance.
    tied = {name: list(0.01 * k + 2.0 * CHANGE) for k, name in enumerate(BYSTANDERS, 1)}
    ranking = correlation_ranking({**tied, "dep_delay": list(0.05 + 2.0 * CHANGE)}, list(CHANGE))
    assert [r.column for r in ranking] == ["dep_delay", "humid", "temp", "visib", "wind_speed"]
    assert all(r.correlation == pytest.approx(1.0) for r in ranking)
    # First by name within the tie, yet every column must be scored at the tie's last place.
    assert all(r.worst_rank == 5 for r in ranking)

    noisy = np.array(0.05 + 2.0 * CHANGE) + _noise(7) * 0.2
    ranking = correlation_ranking({**tied, "dep_delay": list(noisy)}, list(CHANGE))
    last, first = ranking[-1].correlation, ranking[0].correlation
    assert ranking[-1].column == "dep_delay" and last is not None and first is not None
    assert last < first  # wrong top-1: a bystander wins


def test_five_co_moving_columns_score_no_top1_or_top3(tmp_path: Path) -> None:
    drift = {n: list(0.01 * k + 2.0 * CHANGE) for k, n in enumerate(["dep_delay", *BYSTANDERS])}
    folder = _simulation_folder(tmp_path, drift)
    report = json.loads((folder / "report.json").read_text())
    history, _ = load_baseline_history(folder, report)
    score = score_report(report, history=history)
    assert score.nannyml is not None
    assert (score.nannyml.top1, score.nannyml.top3) == (0, 0)
    assert score.nannyml.rankings["units"]["rank"] == 5


def test_evidently_share_matches_a_hand_count() -> None:
    # decisions per partition for columns a, b, c, d (True = drifted, None = not checked)
    decisions = {
        "a": [True, True, False, True, True, None],
        "b": [False, True, False, True, None, None],
        "c": [False, False, False, True, None, None],
        "d": [False, False, False, False, False, None],
    }
    signals = [
        Signal(
            kind=SignalKind.DRIFT,
            asset_key="features",
            name="drift",
            column=column,
            partition=PARTITIONS[i],
            event_time=WEEKS[i],
            value=0.5 if flag else 0.0,
            passed=not flag,
        )
        for column, flags in decisions.items()
        for i, flag in enumerate(flags)
        if flag is not None
    ]
    table = drift_table(signals, PARTITIONS[:6])
    shares = drifted_shares(table)
    # by hand: 1/4, 2/4, 0/4, 3/4, 1/2 (c and d unchecked there: 1 of 2), nothing checked
    assert shares == (0.25, 0.5, 0.0, 0.75, 0.5, None)
    alarms = evidently_alarms(shares)
    assert alarms == (False, True, False, True, True, False)  # share >= 0.5, as Evidently
    assert first_alarm(alarms, start=2) == 3
    assert first_alarm(alarms, start=5) is None
    assert evidently_alarms(shares, drift_share=0.8) == (False,) * 6
    with pytest.raises(InputDataError, match="drift_share"):
        evidently_alarms(shares, drift_share=0.0)


def test_evidently_baseline_uses_evidentlys_threshold_not_the_calibrated_one() -> None:
    # A distance 0.3 that corrmon's check passed against a reference-batch floor of 0.4 is drift
    # by Evidently's rule (0.1); a KS p-value is re-read at its own 0.05.
    def signal(column: str, passed: bool, **meta: Any) -> Signal:
        return Signal(
            kind=SignalKind.DRIFT,
            asset_key="features",
            name="drift",
            column=column,
            partition=PARTITIONS[0],
            event_time=WEEKS[0],
            value=meta.get("statistic"),
            passed=passed,
            metadata=meta,
        )

    signals = [
        signal("w", True, method="wasserstein", statistic=0.3, p_value=None,
               threshold=0.4, configured_threshold=0.1, batch_floor=0.4),
        signal("j", True, method="jensenshannon", statistic=0.05, p_value=None,
               threshold=0.1, configured_threshold=0.1),
        signal("k", False, method="ks", statistic=0.2, p_value=0.01,
               threshold=0.05, configured_threshold=0.05),
        signal("old", False),  # recorded before the threshold fields: its own verdict
    ]  # fmt: skip
    table = drift_table(signals, PARTITIONS[:1])
    assert {c: v[0] for c, v in table.drifted.items()} == {
        "j": False, "k": True, "old": True, "w": True,
    }  # fmt: skip


def test_evidently_detection_and_control_false_alarms(tmp_path: Path) -> None:
    # Two of three columns drift from partition 8 on: Evidently alarms 2 partitions late.
    late = [0.0] * 8 + [0.5] * 4
    drift = {"dep_delay": late, "temp": late, "humid": [0.0] * 12}
    folder = _simulation_folder(tmp_path / "incident", drift)
    report = json.loads((folder / "report.json").read_text())
    history, _ = load_baseline_history(folder, report)
    score = score_report(report, history=history)
    assert score.evidently is not None
    assert score.evidently.detection_delays == [2] and score.evidently.missed == []
    assert score.evidently.alarm_partitions == PARTITIONS[8:]
    assert score.evidently.false_alarms == 0  # not a control

    control = {**report, "expect": {"control": True, "incidents": []}}
    control_score = score_report(control, history=history)
    assert control_score.evidently is not None and control_score.evidently.false_alarms == 4

    summary = summarize([score, control_score])
    assert summary["baselines"]["evidently"]["max_detection_delay"] == 2
    assert summary["baselines"]["evidently"]["false_alarms_on_controls"] == 4
    assert summary["baselines"]["evidently"]["top1_accuracy"] == "n/a"
    assert summary["baselines"]["nannyml"]["max_detection_delay"] == "n/a"
    table = format_summary(summary)
    assert "evidently" in table and "false alarms on controls" in table


def test_pearson_and_performance_change_match_scipy_and_numpy() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(0.85, 0.03, 12)
    metric: list[float | None] = list(map(float, values))
    metric[9] = None  # labels not in yet
    change = performance_change(metric, reference_end=5)
    assert change[9] is None
    assert change[:9] == pytest.approx(np.abs(values[:9] - values[:5].mean()))

    series: list[float | None] = list(rng.uniform(0, 1, 12))
    series[2] = None  # no drift signal in that partition
    (ranked,) = correlation_ranking({"x": series}, change)
    keep = [i for i in range(12) if series[i] is not None and change[i] is not None]
    oracle: Any = stats.pearsonr([series[i] for i in keep], [change[i] for i in keep])
    assert ranked.points == len(keep) == 10
    assert ranked.correlation == pytest.approx(oracle.statistic, abs=1e-12)
    assert ranked.p_value == pytest.approx(oracle.pvalue, rel=1e-9)

    with pytest.raises(InputDataError, match="before partition 0"):
        performance_change(metric, reference_end=0)


def test_undefined_correlation_sorts_last_without_a_warning() -> None:
    ranking = correlation_ranking(
        {"constant": [0.1] * 12, "short": [None] * 10 + [0.1, 0.2], "real": list(CHANGE)},
        list(CHANGE),
    )
    assert [r.column for r in ranking] == ["real", "constant", "short"]
    assert ranking[1].correlation is None and ranking[2].correlation is None
    assert ranking[1].worst_rank == 3  # undefined ties with undefined
    with pytest.raises(InputDataError, match="'real' has 2 points"):
        correlation_ranking({"real": [0.1, 0.2]}, list(CHANGE))


def test_injected_features_by_name_and_by_feed() -> None:
    feeds = {"raw_departures": ["dep_delay", "dep_time"], "raw_weather": ["temp"]}
    features = ["dep_delay", "dep_hour", "temp"]
    one = injected_features(
        column="dep_delay", asset="raw_departures", features=features, feed_columns=feeds
    )
    assert one == {"dep_delay"}
    whole_feed = injected_features(
        column=None, asset="raw_departures", features=features, feed_columns=feeds
    )
    assert whole_feed == {"dep_delay"}
    derived = injected_features(
        column=None,
        asset="raw_departures",
        features=features,
        feed_columns=feeds,
        feature_sources={"dep_hour": ["dep_time"]},
    )
    assert derived == {"dep_delay", "dep_hour"}


def test_score_cli_json_carries_both_baselines(tmp_path: Path) -> None:
    drift = {"dep_delay": list(0.02 + 3.0 * CHANGE), "temp": list(_noise(1))}
    scored = _simulation_folder(tmp_path / "scored", drift)
    bare = tmp_path / "bare"  # a report copied without its dagster_home
    bare.mkdir()
    (bare / "report.json").write_text((scored / "report.json").read_text())

    result = CliRunner().invoke(cli, ["score", str(scored), str(bare), "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    baselines = summary["baselines"]
    assert baselines["scenarios_scored"] == 1 and baselines["expected_incidents"] == 1
    assert baselines["nannyml"]["top1_accuracy"] == 1.0
    assert baselines["evidently"]["missed"] == 0  # dep_delay drifts from partition 6 on
    assert "no corrmon signal store" in baselines["without_history"]["synthetic"]
    assert not (bare / "dagster_home").exists()  # scoring never creates an empty store
    assert summary["scenarios"][0]["nannyml"]["rankings"]["units"]["rank"] == 1

    table = CliRunner().invoke(cli, ["score", str(scored)])
    assert table.exit_code == 0, table.output
    assert "top-1 accuracy" in table.output and "nannyml" in table.output


def test_load_history_names_what_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with CorrmonStore(f"sqlite:///{home / 'corrmon.db'}"):
        pass
    with pytest.raises(InputDataError, match="no per-column drift signals"):
        load_history(tmp_path, partitions=PARTITIONS, metric="roc_auc")
    with pytest.raises(InputDataError, match="no corrmon signal store"):
        load_history(tmp_path / "elsewhere", partitions=PARTITIONS, metric="roc_auc")
