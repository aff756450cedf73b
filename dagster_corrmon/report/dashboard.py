"""The joined dashboard: one self-contained HTML file, data and model signals on one time axis.

Charts are Vega-Lite specs built with Altair and drawn by the vega-embed bundle that
``vl-convert-python`` ships, inlined into the page: Vega-Lite is a grammar made for exactly this
(layered, shared scales, tooltips, no server), Altair is its Python API, and the inlined bundle
means the file opens with no network. Both are imported only here, behind the ``[dashboard]``
extra.

Every string that comes from data (asset keys, columns, categories, incident text) reaches the
page either through ``html.escape`` or inside the chart spec's JSON with ``<``, ``>`` and ``&``
escaped, so a category named ``</script><script>…`` stays text.
"""

import html
import itertools
import json
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd

from dagster_corrmon.core.incident import Incident
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.extras import require
from dagster_corrmon.report.dashboard_data import DashboardData, ModelPanel

# One colour per incident class, the same in every band and table row.
CLASS_COLOURS = {
    "data_fault": "#d62728",
    "upstream_failure": "#ff7f0e",
    "code_change": "#9467bd",
    "concept_drift": "#1f77b4",
    "benign_drift": "#2ca02c",
    "unknown": "#7f7f7f",
}
_WIDTH = 900
_MAX_HEATMAP_ROWS = 40  # the most important features; the rest are listed under the chart
_DRIFT_RATIO_CAP = 3.0  # colour saturates at 3x the column's own threshold


def _altair() -> Any:
    for module in ("altair", "vl_convert"):
        require(module, purpose="corrmon dashboard")
    import altair as alt
    import vl_convert

    return alt, vl_convert


def render_dashboard(data: DashboardData, *, dagster_url: str = "http://localhost:3000") -> str:
    """The dashboard page as one HTML string (no external resource)."""
    alt, vl_convert = _altair()
    bundle = vl_convert.javascript_bundle(vl_version=_vl_version(alt))
    sections, embeds = [], []
    for index, panel in enumerate(data.panels):
        div = f"chart-{index}"
        sections.append(_section(panel, div, dagster_url.rstrip("/")))
        spec = _panel_chart(alt, panel).to_dict()
        embeds.append(
            f"vegaEmbed('#{div}', {_script_json(spec)}, {{actions: false, renderer: 'svg'}})"
        )
    body = "\n".join(sections)
    calls = ";\n".join(f"{call}.catch(console.error)" for call in embeds)
    title = "corrmon dashboard"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table.incidents {{ border-collapse: collapse; margin: 0.5em 0 2em; font-size: 0.9em; }}
table.incidents th, table.incidents td {{ border: 1px solid #ccc; padding: 0.3em 0.6em;
  text-align: left; vertical-align: top; }}
span.swatch {{ display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }}
p.meta {{ color: #666; font-size: 0.85em; }}
</style>
<script type="text/javascript">
{bundle}
</script>
</head>
<body>
<h1>{title}</h1>
<p class="meta">Store {html.escape(data.database)};
generated {data.generated_at:%Y-%m-%d %H:%M} UTC.
Every chart's horizontal axis is the data's time (the start of each partition).</p>
{body}
<script type="text/javascript">
{calls};
</script>
</body>
</html>
"""


def write_dashboard(
    data: DashboardData, path: Path, *, dagster_url: str = "http://localhost:3000"
) -> Path:
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write the dashboard to {path}: {path.parent} is not a directory")
    path.write_text(render_dashboard(data, dagster_url=dagster_url), encoding="utf-8")
    return path


def _vl_version(alt: Any) -> str:
    major_minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return ".".join(major_minor)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</script>', no HTML comment, no line separators."""
    text = json.dumps(value, allow_nan=False, default=str)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values: times as ISO strings, NaN as null."""
    if frame.empty:
        return []
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict(orient="records")


def _partition_ends(panel: ModelPanel) -> dict[pd.Timestamp, pd.Timestamp]:
    """Each partition start -> the next one's, so heatmap cells tile the shared time axis."""
    times: set[pd.Timestamp] = set()
    for frame in (panel.metric_points, panel.drift, panel.missingness):
        if not frame.empty:
            times.update(frame["time"])
    ordered = sorted(times)
    if not ordered:
        return {}
    steps = sorted(later - earlier for earlier, later in itertools.pairwise(ordered))
    last_step = steps[len(steps) // 2] if steps else pd.Timedelta(days=1)
    last = cast(pd.Timestamp, ordered[-1] + last_step)
    return dict(zip(ordered, [*ordered[1:], last], strict=True))


def _with_end(frame: pd.DataFrame, ends: dict[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    out = frame.copy()
    out["time_end"] = [ends[moment] for moment in out["time"]]
    return out


def _incident_frame(incidents: Sequence[Incident], fallback_end: pd.Timestamp | None):
    rows = []
    for incident in incidents:
        start = incident.window_start or incident.onset_time or incident.detected_time
        if start is None:
            continue
        end = incident.window_end or incident.detected_time or fallback_end or start
        rows.append(
            {
                "start": pd.Timestamp(start),
                "end": pd.Timestamp(max(end, start)),
                "incident": incident.id,
                "classification": incident.classification.value,
                "status": incident.status.value,
                "consequential": "yes" if incident.consequential else "no (at risk)",
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=pd.Index(["start", "end", "incident", "classification", "status", "consequential"]),
    )
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _rows_of(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(frame.loc[frame["feature"].isin(list(features))])


def _panel_chart(alt: Any, panel: ModelPanel) -> Any:
    ends = _partition_ends(panel)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    domain = [min(ends).strftime(iso), max(ends.values()).strftime(iso)] if ends else None
    x_scale = alt.Scale(domain=domain) if domain else alt.Undefined
    x = alt.X("time:T", title="partition start (data time)", scale=x_scale)
    classes = alt.Scale(domain=list(CLASS_COLOURS), range=list(CLASS_COLOURS.values()))
    fallback_end = max(ends.values()) if ends else None

    incidents = _incident_frame(panel.incidents, fallback_end)
    band_layer = (
        alt.Chart(alt.Data(values=_records(incidents)))
        .mark_rect(opacity=0.18)
        .encode(
            x=alt.X("start:T", scale=x_scale, title="partition start (data time)"),
            x2="end:T",
            color=alt.Color("classification:N", scale=classes, title="incident"),
            tooltip=["incident:N", "classification:N", "status:N", "consequential:N"],
        )
    )
    metric_data = alt.Data(values=_records(panel.metric_points))
    base = alt.Chart(metric_data).encode(x=x)
    direction = {True: "higher is better", False: "lower is better", None: ""}[
        panel.higher_is_better
    ]
    y_title = f"{panel.metric}" + (f" ({direction})" if direction else "")
    layers = [
        band_layer,
        base.mark_area(opacity=0.15, color="#888")
        .encode(y=alt.Y("band_low:Q", title=y_title), y2="band_high:Q")
        .transform_filter("isValid(datum.band_low)"),
        base.mark_area(opacity=0.3, color="#4c78a8")
        .encode(y="ci_low:Q", y2="ci_high:Q")
        .transform_filter("isValid(datum.ci_low)"),
        base.mark_line(color="#4c78a8").encode(y=alt.Y("value:Q", title=y_title)),
        base.mark_point(filled=True, size=40).encode(
            y="value:Q",
            color=alt.condition(
                "datum.passed === false", alt.value("#d62728"), alt.value("#4c78a8")
            ),
            tooltip=["partition:N", "value:Q", "ci_low:Q", "ci_high:Q", "band_low:Q"],
        ),
    ]
    metric_chart = alt.layer(*layers).properties(
        width=_WIDTH, height=220, title=f"{panel.metric} on {panel.evaluation_asset}"
    )
    charts = [metric_chart]

    order = panel.feature_order[:_MAX_HEATMAP_ROWS]
    if order:
        drift = _with_end(_rows_of(panel.drift, order), ends)
        drift["shown_ratio"] = drift["ratio"].clip(upper=_DRIFT_RATIO_CAP)
        charts.append(
            alt.Chart(alt.Data(values=_records(drift)))
            .mark_rect()
            .encode(
                x=x,
                x2="time_end:T",
                y=alt.Y("feature:N", sort=order, title="drift (most important first)"),
                color=alt.Color(
                    "shown_ratio:Q",
                    scale=alt.Scale(scheme="orangered", domain=[0, _DRIFT_RATIO_CAP]),
                    title="statistic / threshold",
                ),
                stroke=alt.condition("datum.drifted", alt.value("black"), alt.value(None)),
                tooltip=["feature:N", "partition:N", "statistic:Q", "threshold:Q", "importance:Q"],
            )
            .properties(width=_WIDTH, height=max(60, 14 * len(order)), title="Feature drift")
        )
    missing = panel.missingness
    if not missing.empty:
        shown = sorted(set(missing.loc[missing["null_fraction"] > 0, "feature"]))
        shown = shown[:_MAX_HEATMAP_ROWS]
        if shown:
            frame = _with_end(_rows_of(missing, shown), ends)
            charts.append(
                alt.Chart(alt.Data(values=_records(frame)))
                .mark_rect()
                .encode(
                    x=x,
                    x2="time_end:T",
                    y=alt.Y("feature:N", sort=shown, title="missingness"),
                    color=alt.Color(
                        "null_fraction:Q",
                        scale=alt.Scale(scheme="blues", domain=[0, 1]),
                        title="null fraction",
                    ),
                    stroke=alt.condition(
                        "datum.passed === false", alt.value("black"), alt.value(None)
                    ),
                    tooltip=["feature:N", "partition:N", "null_fraction:Q"],
                )
                .properties(width=_WIDTH, height=max(60, 14 * len(shown)), title="Missing values")
            )
    if not panel.events.empty:
        charts.append(
            alt.Chart(alt.Data(values=_records(panel.events)))
            .mark_point(size=90, filled=True)
            .encode(
                x=x,
                y=alt.Y("asset:N", title="upstream events"),
                shape=alt.Shape("event:N", title="event"),
                color=alt.Color("event:N", title="event"),
                tooltip=["asset:N", "partition:N", "event:N", "detail:N"],
            )
            .properties(
                width=_WIDTH,
                height=max(60, 22 * panel.events["asset"].nunique()),
                title="Upstream events",
            )
        )
    return (
        alt.vconcat(*charts)
        .resolve_scale(x="shared", color="independent", shape="independent")
        .configure_view(stroke=None)
    )


def _runs_link(dagster_url: str, incident_id: str) -> str:
    token = f"tag:corrmon/incident={incident_id}"
    return f"{dagster_url}/runs?{urllib.parse.urlencode({'q[]': token})}"


def _asset_link(dagster_url: str, asset_key: str) -> str:
    path = "/".join(urllib.parse.quote(part, safe="") for part in asset_key.split("/"))
    return f"{dagster_url}/assets/{path}?view=checks"


def _section(panel: ModelPanel, div: str, dagster_url: str) -> str:
    esc = html.escape
    rows = []
    for incident in sorted(panel.incidents, key=lambda item: (item.onset_time is None, item.id)):
        top = incident.top_cause
        cause = "—"
        if top is not None and incident.classification.value != "concept_drift":
            target = f"{top.asset_key}.{top.column}" if top.column else top.asset_key
            cause = f"{esc(target)} ({esc(top.kind)}, score {top.score:.2f})"
        colour = CLASS_COLOURS.get(incident.classification.value, "#7f7f7f")
        headline = incident.summary.strip().splitlines()[0] if incident.summary.strip() else ""
        rows.append(
            "<tr class='incident-row' data-incident='{id}'>"
            "<td><span class='swatch' style='background:{colour}'></span>{cls}</td>"
            "<td><code>{id}</code></td><td>{status}</td><td>{consequential}</td>"
            "<td>{onset}</td><td>{detected}</td><td>{cause}</td><td>{runs}</td>"
            "<td>{headline}</td>"
            "<td><a href='{runs_link}'>runs</a> · <a href='{asset_link}'>checks</a> · "
            "<code>corrmon postmortem {id}</code></td></tr>".format(
                id=esc(incident.id),
                colour=colour,
                cls=esc(incident.classification.value.replace("_", " ")),
                status=esc(incident.status.value),
                consequential="yes" if incident.consequential else "at risk",
                onset=esc(incident.onset_partition or "—"),
                detected=esc(incident.detected_partition or "—"),
                cause=cause,
                runs=len(incident.affected_runs),
                headline=esc(headline.replace("**", "")),
                runs_link=esc(_runs_link(dagster_url, incident.id)),
                asset_link=esc(_asset_link(dagster_url, incident.model_asset)),
            )
        )
    table = (
        "<table class='incidents'><thead><tr><th>class</th><th>incident</th><th>status</th>"
        "<th>consequential</th><th>onset</th><th>detected</th><th>top cause</th>"
        "<th>affected runs</th><th>headline</th><th>links</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else "<p>No incidents recorded for this model.</p>"
    )
    hidden = panel.feature_order[_MAX_HEATMAP_ROWS:]
    more = (
        f"<p class='meta'>{len(hidden)} less important drift features not drawn: "
        f"{esc(', '.join(hidden))}</p>"
        if hidden
        else ""
    )
    return (
        f"<section class='model' data-model='{esc(panel.model_asset)}'>"
        f"<h2>Model <code>{esc(panel.model_asset)}</code> — {esc(panel.metric)}</h2>"
        f"<div id='{div}' class='chart'></div>{more}"
        f"<h3>Incidents ({len(panel.incidents)})</h3>{table}</section>"
    )
