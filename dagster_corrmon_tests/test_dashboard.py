"""The joined dashboard, rendered from a real store and opened in a real headless Chromium."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from dagster_corrmon.cli.main import main
from dagster_corrmon.core.incident import Cause, Incident, IncidentClass
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.report.dashboard import render_dashboard
from dagster_corrmon.report.dashboard_data import collect_dashboard_data
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests.browser import Chromium

START = datetime(2013, 1, 7, tzinfo=UTC)
WEEKS = 12
FAULT_WEEK = 8
# A category from the data that tries to break out of the page: it must stay text.
HOSTILE = "</script><img src=x onerror=\"document.title='pwned'\">"


def _week(index: int) -> tuple[datetime, str]:
    moment = START + timedelta(weeks=index)
    return moment, moment.strftime("%Y-%m-%d")


def _build_store(url: str) -> str:
    """A store with a model that loses ROC-AUC when one feature drifts, written as the checks do."""
    signals: list[Signal] = []
    for index in range(WEEKS):
        moment, partition = _week(index)
        faulty = index >= FAULT_WEEK
        value = 0.6 if faulty else 0.9
        signals.append(
            Signal(
                kind=SignalKind.METRIC,
                asset_key="evaluation",
                name="roc_auc",
                event_time=moment,
                partition=partition,
                value=value,
                passed=not faulty,
                severity=Severity.ERROR if faulty else Severity.INFO,
                metadata={
                    "ci_low": value - 0.03,
                    "ci_high": value + 0.03,
                    "higher_is_better": True,
                    "baseline_expected": 0.9,
                    "baseline_scale": 0.02,
                    "baseline_threshold": 3.5,
                },
            )
        )
        for column, importance, statistic in (
            ("dep_delay", 0.35, 0.5 if faulty else 0.05),
            (HOSTILE, 0.01, 0.02),
        ):
            signals.append(
                Signal(
                    kind=SignalKind.DRIFT,
                    asset_key="features",
                    name="drift",
                    column=column,
                    event_time=moment,
                    partition=partition,
                    value=statistic,
                    passed=statistic < 0.1,
                    metadata={"threshold": 0.1, "importance": importance},
                )
            )
        signals.append(
            Signal(
                kind=SignalKind.DATA_QUALITY,
                asset_key="raw_departures",
                name="null_fraction",
                column="dep_time",
                event_time=moment,
                partition=partition,
                value=0.4 if index == FAULT_WEEK else 0.02,
                passed=index != FAULT_WEEK,
            )
        )
    fault_time, fault_partition = _week(FAULT_WEEK)
    signals.append(
        Signal(
            kind=SignalKind.SCHEMA_CHANGE,
            asset_key="raw_departures",
            name="schema_contract",
            event_time=fault_time,
            partition=fault_partition,
            passed=False,
            severity=Severity.ERROR,
        )
    )
    incident = Incident(
        id="inc-dashboard1",
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        onset_time=fault_time,
        onset_partition=fault_partition,
        detected_time=fault_time,
        detected_partition=fault_partition,
        window_start=fault_time,
        window_end=_week(WEEKS - 1)[0],
        summary=f"**roc_auc fell from 0.9 to 0.6** after {HOSTILE}",
        causes=(Cause(rank=1, kind="drift", asset_key="features", column="dep_delay", score=0.91),),
    )
    with CorrmonStore(url) as store:
        store.write_signals(signals)
        store.upsert_incident(incident)
    return incident.id


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'corrmon.db'}"
    _build_store(url)
    return url


def test_collect_puts_every_panel_on_the_data_time_axis(store_url: str) -> None:
    with CorrmonStore(store_url) as store:
        data = collect_dashboard_data(store, now=datetime(2026, 1, 1, tzinfo=UTC))
    (panel,) = data.panels
    assert (panel.model_asset, panel.metric, panel.evaluation_asset) == (
        "model",
        "roc_auc",
        "evaluation",
    )
    assert panel.higher_is_better is True
    # Every table is on partition starts, never the wall-clock time the signals were written.
    for frame in (panel.metric_points, panel.drift, panel.missingness, panel.events):
        assert frame["time"].min() >= START and frame["time"].max() <= _week(WEEKS - 1)[0]
    # The band is expected ± threshold × scale, from the stored baseline verdict.
    first = panel.metric_points.iloc[0]
    assert first["band_low"] == pytest.approx(0.9 - 3.5 * 0.02)
    assert first["band_high"] == pytest.approx(0.9 + 3.5 * 0.02)
    assert panel.feature_order == ["features.dep_delay", f"features.{HOSTILE}"]
    assert panel.drift["ratio"].max() == pytest.approx(5.0)
    assert list(panel.events["event"]) == ["schema change"]


def test_a_store_without_incidents_needs_a_model(tmp_path: Path) -> None:
    with CorrmonStore(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        with pytest.raises(ConfigError, match="no incidents"):
            collect_dashboard_data(store, now=datetime.now(UTC))
        with pytest.raises(ConfigError, match="no metric signals"):
            collect_dashboard_data(store, now=datetime.now(UTC), model_asset="model")


def test_hostile_strings_are_escaped_in_the_page(store_url: str) -> None:
    with CorrmonStore(store_url) as store:
        page = render_dashboard(collect_dashboard_data(store, now=datetime.now(UTC)))
    # Only the page's own two script elements: the inlined bundle and the embed calls.
    assert len(re.findall(r"<script\b", page)) == 2
    assert page.count("</script>") == 2
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;img" in page  # the incident headline, as text
    assert "http://" not in page.split("<script", 1)[0]  # nothing loaded from elsewhere


def test_the_dashboard_renders_in_a_real_browser(
    store_url: str, tmp_path: Path, chromium: Chromium, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dashboard.html"
    main(["dashboard", "--database-url", store_url, "--out", str(out)])
    assert f"dashboard: {out}" in capsys.readouterr().out
    # Console errors are collected into the page, where the dumped DOM shows them.
    probe = tmp_path / "probe.html"
    probe.write_text(
        out.read_text(encoding="utf-8").replace(
            "<head>",
            "<head><script>(function(){window.__errors=[];"
            "window.addEventListener('error',e=>window.__errors.push(String(e.message)));"
            "const _e=console.error;console.error=(...a)=>{window.__errors.push(a.join(' '));"
            "_e(...a)};setTimeout(()=>{const p=document.createElement('pre');"
            "p.id='console-errors';p.textContent=JSON.stringify(window.__errors);"
            "document.body.appendChild(p)},3000)})();</script>",
            1,
        ),
        encoding="utf-8",
    )
    dom = chromium.dump_dom(probe.as_uri())
    assert '<pre id="console-errors">[]</pre>' in dom
    assert "<title>pwned</title>" not in dom and "<title>corrmon dashboard</title>" in dom
    assert 'data-incident="inc-dashboard1"' in dom
    assert "features.dep_delay" in dom  # the heatmap's axis, drawn as SVG text
    assert "partition start (data time)" in dom
    assert "2013" in dom  # the time axis is the data's year
    assert "&lt;/script&gt;&lt;img" in dom  # the hostile column is drawn as text
    shot = chromium.screenshot(out.as_uri(), tmp_path / "dashboard.png")
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the screenshot is (nearly) blank"
