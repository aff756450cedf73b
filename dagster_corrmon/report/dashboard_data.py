"""What the dashboard shows, read from the store: one panel per monitored model.

A panel puts data and model signals on one time axis, the *data's* time: every signal's
``event_time`` is the start of the partition it judged, so week 20 of 2013 sits at 2013-05-13
however long ago (or how fast) it was simulated. Each table is a plain DataFrame with a ``time``
column in UTC; the renderer draws them and does nothing else.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from dagster_corrmon.core.incident import Incident
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore

# Metric names tried, in order, for a model with no incident naming its metric.
_PREFERRED_METRICS = ("roc_auc", "f1", "log_loss", "rmse", "mae", "r2", "brier_score")

# The null-fraction signal the completeness check writes per column.
_NULL_FRACTION = "null_fraction"

# Upstream events drawn as markers: kind -> label. Drift and quality have panels of their own.
_EVENT_KINDS = {
    SignalKind.SCHEMA_CHANGE: "schema change",
    SignalKind.RUN_FAILURE: "run failure",
    SignalKind.CODE_VERSION_CHANGE: "code version change",
    SignalKind.DATA_VERSION_CHANGE: "data version change",
    SignalKind.FRESHNESS: "late or missing batch",
    SignalKind.EXTERNAL_INCIDENT: "external incident",
}

_METRIC_COLUMNS = ["time", "partition", "value", "ci_low", "ci_high", "band_low", "band_high"]
_METRIC_COLUMNS += ["passed"]
_DRIFT_COLUMNS = ["time", "partition", "feature", "statistic", "threshold", "ratio", "drifted"]
_DRIFT_COLUMNS += ["importance"]
_MISSING_COLUMNS = ["time", "partition", "feature", "null_fraction", "passed"]
_EVENT_COLUMNS = ["time", "partition", "asset", "event", "detail"]


@dataclass(frozen=True, kw_only=True)
class ModelPanel:
    """Everything one model's section of the dashboard draws."""

    model_asset: str
    metric: str
    evaluation_asset: str
    higher_is_better: bool | None
    metric_points: pd.DataFrame  # _METRIC_COLUMNS
    incidents: tuple[Incident, ...]
    drift: pd.DataFrame  # _DRIFT_COLUMNS; feature = "asset.column"
    missingness: pd.DataFrame  # _MISSING_COLUMNS
    events: pd.DataFrame  # _EVENT_COLUMNS

    @property
    def feature_order(self) -> list[str]:
        """Drifted features, most important first (unknown importance last, then by name)."""
        if self.drift.empty:
            return []
        importance = self.drift.groupby("feature")["importance"].max().fillna(-1.0)
        return sorted(importance.index, key=lambda feature: (-importance[feature], feature))


@dataclass(frozen=True, kw_only=True)
class DashboardData:
    panels: tuple[ModelPanel, ...]
    database: str  # the store's URL without its password
    generated_at: datetime


def collect_dashboard_data(
    store: CorrmonStore,
    *,
    now: datetime,
    model_asset: str | None = None,
    metric: str | None = None,
    assets: Sequence[str] | None = None,
) -> DashboardData:
    """Read one panel per model (or only ``model_asset``'s) from ``store``.

    Models are those the incident catalog names; with ``model_asset`` and ``metric`` a model
    without incidents is shown too. The data panels show every monitored asset's signals, or
    only those of ``assets`` — the store keeps no lineage, so on a store shared by unrelated
    models pass the model's upstream assets to keep its panel to its own lineage.
    """
    incidents = store.list_incidents(model_asset=model_asset)
    by_model: dict[str, list[Incident]] = {}
    for incident in incidents:
        by_model.setdefault(incident.model_asset, []).append(incident)
    if model_asset is not None:
        by_model.setdefault(model_asset, [])
    if not by_model:
        raise ConfigError(
            f"no incidents in the store at {store.safe_database_url}: nothing names a model "
            "(pass --model and --metric to draw one anyway)"
        )
    metric_assets = _metric_assets(store)
    panels = []
    for model, model_incidents in sorted(by_model.items()):
        chosen = metric or _model_metric(model_incidents, metric_assets)
        if chosen is None:
            raise ConfigError(
                f"model {model!r}: no metric signals to draw (pass --metric; known metrics: "
                f"{', '.join(sorted(metric_assets)) or 'none'})"
            )
        holders = metric_assets.get(chosen)
        if not holders:
            raise ConfigError(
                f"model {model!r}: no {chosen!r} metric signals in the store "
                f"(known metrics: {', '.join(sorted(metric_assets)) or 'none'})"
            )
        evaluation = holders.most_common(1)[0][0]
        points = store.read_signals(asset_key=evaluation, name=chosen, kind=SignalKind.METRIC)
        # A partitioned model's panel keeps partitioned signals only: an unpartitioned asset's
        # event time is when it was materialized, which is not on the data's time axis.
        partitioned = any(signal.partition is not None for signal in points)
        panels.append(
            ModelPanel(
                model_asset=model,
                metric=chosen,
                evaluation_asset=evaluation,
                higher_is_better=_higher_is_better(points),
                metric_points=_metric_frame(points),
                incidents=tuple(model_incidents),
                **_upstream_frames(store, assets, partitioned=partitioned),
            )
        )
    return DashboardData(panels=tuple(panels), database=store.safe_database_url, generated_at=now)


def _metric_assets(store: CorrmonStore) -> dict[str, Counter[str]]:
    """metric name -> how many points each asset holds (the evaluation asset holds the most)."""
    found: dict[str, Counter[str]] = {}
    for signal in store.read_signals(kind=SignalKind.METRIC, with_metadata=False):
        if signal.value is not None and not signal.name.startswith("corrmon_"):
            found.setdefault(signal.name, Counter())[signal.asset_key] += 1
    return found


def _model_metric(incidents: Sequence[Incident], metric_assets: dict[str, Any]) -> str | None:
    named = Counter(incident.metric for incident in incidents if incident.metric in metric_assets)
    if named:
        return named.most_common(1)[0][0]
    return next((name for name in _PREFERRED_METRICS if name in metric_assets), None)


def _higher_is_better(points: Sequence[Signal]) -> bool | None:
    for signal in points:
        value = signal.metadata.get("higher_is_better")
        if isinstance(value, bool):
            return value
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=pd.Index(columns))
    if not frame.empty:
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame = frame.sort_values(["time", *columns[2:3]], kind="stable").reset_index(drop=True)
    return frame


def _metric_frame(points: Sequence[Signal]) -> pd.DataFrame:
    rows = []
    for signal in points:
        if signal.value is None:
            continue
        meta = signal.metadata
        expected = _number(meta.get("baseline_expected"))
        scale = _number(meta.get("baseline_scale"))
        threshold = _number(meta.get("baseline_threshold"))
        band = None
        if expected is not None and scale is not None and threshold is not None:
            band = (expected - threshold * scale, expected + threshold * scale)
        rows.append(
            {
                "time": signal.event_time,
                "partition": signal.partition,
                "value": signal.value,
                "ci_low": _number(meta.get("ci_low")),
                "ci_high": _number(meta.get("ci_high")),
                "band_low": band[0] if band else None,
                "band_high": band[1] if band else None,
                "passed": signal.passed,
            }
        )
    return _frame(rows, _METRIC_COLUMNS)


def _upstream_frames(
    store: CorrmonStore, assets: Sequence[str] | None, *, partitioned: bool
) -> dict[str, pd.DataFrame]:
    keep = None if assets is None else set(assets)

    def kept(signal: Signal) -> bool:
        if partitioned and signal.partition is None:
            return False
        return keep is None or signal.asset_key in keep

    drift_rows = [
        {
            "time": signal.event_time,
            "partition": signal.partition,
            "feature": f"{signal.asset_key}.{signal.column}",
            "statistic": signal.value,
            "threshold": _number(signal.metadata.get("threshold")),
            "ratio": _ratio(signal.value, _number(signal.metadata.get("threshold"))),
            "drifted": signal.passed is False,
            "importance": _number(signal.metadata.get("importance")),
        }
        for signal in store.read_signals(kind=SignalKind.DRIFT, name="drift")
        if kept(signal) and signal.column is not None and signal.value is not None
    ]
    missing_rows = [
        {
            "time": signal.event_time,
            "partition": signal.partition,
            "feature": f"{signal.asset_key}.{signal.column}",
            "null_fraction": signal.value,
            "passed": signal.passed,
        }
        for signal in store.read_signals(
            kind=SignalKind.DATA_QUALITY, name=_NULL_FRACTION, with_metadata=False
        )
        if kept(signal) and signal.column is not None and signal.value is not None
    ]
    event_rows = [
        {
            "time": signal.event_time,
            "partition": signal.partition,
            "asset": signal.asset_key,
            "event": _EVENT_KINDS[signal.kind],
            "detail": _event_detail(signal),
        }
        for signal in store.read_signals(kinds=list(_EVENT_KINDS), exclude_passed=True)
        if kept(signal) and not signal.name.startswith("corrmon_")
    ]
    return {
        "drift": _frame(drift_rows, _DRIFT_COLUMNS),
        "missingness": _frame(missing_rows, _MISSING_COLUMNS),
        "events": _frame(event_rows, _EVENT_COLUMNS),
    }


def _ratio(statistic: float | None, threshold: float | None) -> float | None:
    """How far past its own threshold a drift statistic is (1 = at the threshold)."""
    if statistic is None or threshold is None or threshold <= 0:
        return None
    return statistic / threshold


def _event_detail(signal: Signal) -> str:
    parts = [signal.name]
    if signal.column:
        parts.append(f"column {signal.column}")
    if signal.code_version:
        parts.append(f"code {signal.code_version}")
    message = signal.metadata.get("message") or signal.metadata.get("error")
    if isinstance(message, str):
        parts.append(message[:200])
    return "; ".join(parts)
