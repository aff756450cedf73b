"""Backtest: replay a recorded signal history under (possibly different) alert rules.

A backtest answers "had these rules been live, which alerts would have fired, and when?" and
checks the answer against what the live system concluded (its incident catalog). The history is
walked in time order and every rule sees only the history *up to and including* the partition
being judged — no look-ahead — so an alert's partition is one the rules could really have
reached:

* a **performance rule** runs :func:`~dagster_corrmon.core.attribution.detect_performance_shift`
  on every prefix of the model's metric series (built exactly as the correlation engine builds
  it, by :func:`~dagster_corrmon.correlation.gather.build_metric_series`) and alerts the first
  time a shift episode appears (or, with ``require: sustained``, first qualifies as sustained);
* a **data rule** judges each recorded data signal on its own partition: a value threshold
  (``min``/``max``), the share of drifted columns of one asset (``drifted_share``), or, with
  neither, the verdict the live check recorded (``passed``).

Pure over signals and incidents; :func:`backtest_store` is the thin adapter that reads a
:class:`~dagster_corrmon.store.CorrmonStore`.
"""

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dagster_corrmon.core.attribution import (
    AttributionConfig,
    MetricSeries,
    ShiftDetection,
    detect_performance_shift,
)
from dagster_corrmon.core.incident import Incident
from dagster_corrmon.core.metrics import METRICS
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.correlation.gather import EVENT_KINDS, build_metric_series
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

if TYPE_CHECKING:
    from dagster_corrmon.store import CorrmonStore

PERFORMANCE = "performance"  # the ``kind`` of performance alerts (signal kinds name the others)
DEFAULT_METRIC = "roc_auc"  # MonitoredModel's default metric
DEFAULT_LOOKBACK = 120  # MonitoredModel.lookback_partitions: the live engine's window

DataKind = Literal[
    "data_quality",
    "drift",
    "schema_change",
    "freshness",
    "run_failure",
    "code_version_change",
    "data_version_change",
    "external_incident",
]


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerformanceRule(_Rule):
    """Alert on a shift of one metric of one evaluation asset.

    The detection knobs are :class:`~dagster_corrmon.core.attribution.AttributionConfig`'s; a
    knob left out keeps its default, i.e. the live behaviour.
    """

    id: str | None = Field(default=None, description="Label of the rule in the output.")
    asset: str | None = Field(
        default=None,
        description="Evaluation asset holding the metric; default: every asset that records it.",
    )
    metric: str = DEFAULT_METRIC
    higher_is_better: bool | None = Field(
        default=None, description="Needed only for a metric outside corrmon's registry."
    )
    require: Literal["shift", "sustained"] = Field(
        default="shift",
        description=(
            "'shift': alert when a shift is first detected (as the live engine opens an "
            "incident); 'sustained': only once it has min_alarms alarms and a significant "
            "change point, with a loss of at least min_effect."
        ),
    )
    lookback_partitions: int | None = Field(
        default=DEFAULT_LOOKBACK, ge=2, description="Recent partitions judged; null = all."
    )
    # AttributionConfig's shift-detection knobs (None = its default).
    baseline_method: Literal["median_mad", "mean_std"] | None = None
    seasonality: Literal["day_of_week", "weekly", "hour_of_day", "hour_of_week"] | int | None = None
    min_reference: int | None = Field(default=None, ge=1)
    alarm_threshold: float | None = Field(default=None, gt=0)
    recovery_threshold: float | None = None
    episode_gap: int | None = Field(default=None, ge=0)
    onset_lookback: int | None = Field(default=None, ge=0)
    onset_tolerance: int | None = Field(default=None, ge=0)
    changepoint_method: Literal["pelt", "binseg"] | None = None
    changepoint_penalty: float | None = None
    min_segment: int | None = Field(default=None, ge=1)
    changepoint_block_size: int | None = Field(default=None, ge=1)
    min_alarms: int | None = Field(default=None, ge=1)
    min_effect: float | None = Field(default=None, ge=0)
    significance_level: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _known_direction(self) -> "PerformanceRule":
        if self.higher_is_better is None and self.metric not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise ValueError(
                f"metric {self.metric!r} is not in corrmon's registry ({known}): "
                "set higher_is_better"
            )
        return self

    @property
    def label(self) -> str:
        return self.id or f"performance:{self.metric}"

    @property
    def direction_higher_is_better(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        return METRICS[self.metric].higher_is_better

    def attribution_config(self) -> AttributionConfig:
        """The AttributionConfig this rule stands for (unset knobs keep their defaults)."""
        known = {item.name for item in fields(AttributionConfig)}
        given = {
            name: value
            for name, value in self.model_dump().items()
            if name in known and value is not None
        }
        return AttributionConfig(**given)


class DataRule(_Rule):
    """Alert on recorded data signals of one kind (optionally one asset / check name / column)."""

    id: str | None = Field(default=None, description="Label of the rule in the output.")
    kind: DataKind
    name: str | None = Field(default=None, description="Check or statistic name, e.g. row_count.")
    asset: str | None = None
    column: str | None = None
    min: float | None = Field(default=None, description="Alert when the value is below this.")
    max: float | None = Field(default=None, description="Alert when the value is above this.")
    drifted_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "drift only: alert when at least this share of an asset's columns drifted in one "
            "partition (a column drifted when its statistic exceeds max, if given, else when "
            "its check said so)."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> "DataRule":
        if self.drifted_share is not None and self.kind != "drift":
            raise ValueError("drifted_share applies to kind: drift only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.drifted_share is not None and self.min is not None:
            raise ValueError("drifted_share takes max (a column's drift threshold), not min")
        return self

    @property
    def label(self) -> str:
        if self.id:
            return self.id
        parts = [self.kind]
        if self.name:
            parts.append(self.name)
        label = ":".join(parts) + (f"@{self.column}" if self.column else "")
        if self.drifted_share is not None:
            return f"{label}:drifted_share>={self.drifted_share:g}"
        bounds = []
        if self.min is not None:
            bounds.append(f"<{self.min:g}")
        if self.max is not None:
            bounds.append(f">{self.max:g}")
        return f"{label}{'|'.join(bounds)}" if bounds else f"{label}:failed"


def _default_data_rules() -> list[DataRule]:
    """The live checks' own verdicts, kind by kind."""
    kinds: tuple[DataKind, ...] = (
        "data_quality",
        "drift",
        "schema_change",
        "freshness",
        "run_failure",
    )
    return [DataRule(kind=kind) for kind in kinds]


class BacktestRules(_Rule):
    """A rules file: performance rules, data rules, and how alerts are matched to incidents.

    Leaving ``performance`` or ``data`` out keeps the defaults (the live behaviour); an empty
    list disables that family.
    """

    performance: list[PerformanceRule] = Field(default_factory=lambda: [PerformanceRule()])
    data: list[DataRule] = Field(default_factory=_default_data_rules)
    match_within: int = Field(
        default=7,
        ge=0,
        description="A performance alert and an incident of the same metric match when their "
        "detection partitions are at most this many metric partitions apart.",
    )


def parse_rules(data: Any, *, origin: str = "rules") -> BacktestRules:
    """Validate a rules mapping; a bad key becomes a ConfigError naming it."""
    if data is None:
        return BacktestRules()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: the rules must be a mapping (performance:, data:, ...)")
    try:
        return BacktestRules.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = _location(first["loc"])
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = first["msg"].removeprefix("Value error, ")
        more = (
            f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
        )
        raise ConfigError(f"{origin}: {where or 'rules'}: {message}{more}") from None


def load_rules(path: Path | str) -> BacktestRules:
    """Read a YAML or JSON rules file (JSON is YAML) and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read rules file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"rules file {path} is not UTF-8 text (byte {error.start}): a YAML or JSON file?"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML/JSON"
        raise ConfigError(f"{path}:{line}: {problem}") from None
    return parse_rules(data, origin=str(path))


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not text:
            text = str(part)
        elif part.startswith(("function-", "literal[", "int", "str", "float", "bool")):
            continue  # pydantic's union-member labels say nothing to a user
        else:
            text += f".{part}"
    return text


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BacktestAlert:
    """One alert the rules would have raised.

    ``partition`` is where it would have fired (the last partition the rule had seen). For
    performance alerts ``detection_partition`` is the shift's first alarm as known then (equal
    to ``partition`` unless ``require: sustained`` waited for more evidence) and
    ``onset_partition`` where the decline began.
    """

    rule: str
    kind: str  # "performance" or the data signal's kind
    partition: str
    event_time: datetime
    asset_key: str
    name: str  # the metric, or the check / statistic name
    column: str | None = None
    value: float | None = None
    onset_partition: str | None = None
    detection_partition: str | None = None
    sustained: bool | None = None
    loss: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["event_time"] = self.event_time.isoformat()
        return row


@dataclass(frozen=True, kw_only=True)
class IncidentMatch:
    """A performance alert and the live incident it corresponds to.

    ``delay`` = the alert's detection minus the incident's, in metric partitions: positive
    when the replayed rules would have detected later than the live system, negative earlier.
    """

    rule: str
    incident_id: str
    metric: str
    alert_detection_partition: str
    incident_detected_partition: str | None
    delay: int


@dataclass(frozen=True, kw_only=True)
class UnmatchedIncident:
    """A live incident no replayed performance alert corresponds to."""

    incident_id: str
    metric: str
    detected_partition: str | None
    onset_partition: str | None
    consequential: bool
    status: str


@dataclass(frozen=True, kw_only=True)
class BacktestResult:
    """Alerts in firing order, and the comparison with the live incident catalog.

    Only performance alerts are compared: data alerts are signals, not incidents. Provisional
    (*at-risk*) incidents have no detection partition and are left out of the comparison.
    """

    alerts: tuple[BacktestAlert, ...]
    matches: tuple[IncidentMatch, ...]
    alerts_without_incident: tuple[BacktestAlert, ...]
    incidents_without_alert: tuple[UnmatchedIncident, ...]
    notes: tuple[str, ...] = ()

    @property
    def performance_alerts(self) -> tuple[BacktestAlert, ...]:
        return tuple(alert for alert in self.alerts if alert.kind == PERFORMANCE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": [alert.to_dict() for alert in self.alerts],
            "comparison": {
                "matched": [asdict(match) for match in self.matches],
                "alerts_without_incident": [a.to_dict() for a in self.alerts_without_incident],
                "incidents_without_alert": [asdict(i) for i in self.incidents_without_alert],
            },
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


def replay_performance(
    series: MetricSeries, rule: PerformanceRule, *, seed: int = 0
) -> list[BacktestAlert]:
    """Alerts of one performance rule on one metric series, walking its prefixes in order.

    Each prefix ends at the partition being judged, so nothing later is seen. The baseline
    walk is causal, so a new episode appears only when its first alarm is scored; one alert per
    episode (a later prefix of the same episode only refines its onset).
    """
    config = rule.attribution_config()
    alerts: list[BacktestAlert] = []
    position = {partition: index for index, partition in enumerate(series.partitions)}
    # The episode last alerted on: its latest known end (index in the full series).
    alerted_end: int | None = None
    for stop in range(1, len(series.partitions) + 1):
        start = 0 if rule.lookback_partitions is None else max(0, stop - rule.lookback_partitions)
        prefix = _slice(series, start, stop)
        try:
            shift = detect_performance_shift(prefix, config=config, seed=seed)
        except InsufficientDataError:
            continue  # too little history yet: the live engine does not judge either
        if shift is None:
            continue
        detection = position[shift.detection_partition]
        end = position[shift.end_partition]
        if alerted_end is not None and detection <= alerted_end + config.episode_gap + 1:
            alerted_end = max(alerted_end, end)  # the episode already alerted on goes on
            continue
        if not _qualifies(shift, rule, config):
            continue
        alerted_end = end
        at = stop - 1
        alerts.append(
            BacktestAlert(
                rule=rule.label,
                kind=PERFORMANCE,
                partition=series.partitions[at],
                event_time=_time_at(series, at),
                asset_key=series.model_asset or "",
                name=series.name,
                value=_plain(series.values[at]),
                onset_partition=shift.onset_partition,
                detection_partition=shift.detection_partition,
                sustained=shift.sustained,
                loss=_plain(shift.loss),
                detail=(
                    f"{series.name} {shift.baseline_value:.4g} -> {shift.degraded_value:.4g} "
                    f"({shift.alarm_count} alarm(s) so far)"
                ),
            )
        )
    return alerts


def _qualifies(shift: ShiftDetection, rule: PerformanceRule, config: AttributionConfig) -> bool:
    if config.min_effect > 0 and shift.loss < config.min_effect:
        return False
    return rule.require == "shift" or shift.sustained


def _slice(series: MetricSeries, start: int, stop: int) -> MetricSeries:
    return MetricSeries(
        name=series.name,
        partitions=series.partitions[start:stop],
        values=series.values[start:stop],
        higher_is_better=series.higher_is_better,
        times=series.times[start:stop] if series.times is not None else None,
        model_asset=series.model_asset,
    )


def _time_at(series: MetricSeries, index: int) -> datetime:
    if series.times is None:  # build_metric_series always sets them
        raise InputDataError(f"metric {series.name!r} has no event times")
    return series.times[index]


def _plain(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _latest(signals: Iterable[Signal]) -> list[Signal]:
    """The latest observation per (kind, asset, name, column, partition): re-checks supersede."""
    chosen: dict[tuple[str, str, str, str | None, str], Signal] = {}
    for signal in signals:
        key = (
            signal.kind.value,
            signal.asset_key,
            signal.name,
            signal.column,
            signal.partition or signal.event_time.isoformat(),
        )
        current = chosen.get(key)
        if current is None or _observed(signal) >= _observed(current):
            chosen[key] = signal
    return sorted(chosen.values(), key=lambda s: (s.event_time, s.partition or ""))


def _observed(signal: Signal) -> datetime:
    return signal.observed_at or signal.event_time


def _selected(rule: DataRule, signal: Signal) -> bool:
    return (
        signal.kind.value == rule.kind
        and (rule.asset is None or signal.asset_key == rule.asset)
        and (rule.name is None or signal.name == rule.name)
        and (rule.column is None or signal.column == rule.column)
    )


def replay_data_rule(rule: DataRule, signals: Sequence[Signal]) -> list[BacktestAlert]:
    """Alerts of one data rule: each judged on its own partition's signals only."""
    chosen = [s for s in signals if _selected(rule, s)]
    if rule.drifted_share is not None:
        return _drift_share_alerts(rule, chosen)
    alerts: list[BacktestAlert] = []
    for signal in chosen:
        reason = _breach(rule, signal)
        if reason is not None:
            alerts.append(_signal_alert(rule, signal, reason))
    return alerts


def _breach(rule: DataRule, signal: Signal) -> str | None:
    if rule.min is None and rule.max is None:
        failed = (
            signal.passed is not True
            if SignalKind(rule.kind) in EVENT_KINDS
            else signal.passed is False
        )
        return f"the recorded check failed ({signal.severity.value})" if failed else None
    if signal.value is None or not math.isfinite(signal.value):
        return None
    if rule.max is not None and signal.value > rule.max:
        return f"{signal.value:.4g} > max {rule.max:g}"
    if rule.min is not None and signal.value < rule.min:
        return f"{signal.value:.4g} < min {rule.min:g}"
    return None


def _signal_alert(rule: DataRule, signal: Signal, detail: str) -> BacktestAlert:
    return BacktestAlert(
        rule=rule.label,
        kind=rule.kind,
        partition=signal.partition or signal.event_time.isoformat(),
        event_time=signal.event_time,
        asset_key=signal.asset_key,
        name=signal.name,
        column=signal.column,
        value=_plain(signal.value),
        detail=detail,
    )


def _drift_share_alerts(rule: DataRule, signals: Sequence[Signal]) -> list[BacktestAlert]:
    threshold = rule.drifted_share
    assert threshold is not None
    groups: dict[tuple[str, str], list[Signal]] = defaultdict(list)
    for signal in signals:
        if signal.column is not None:  # per-column statistics, not the check's summary
            groups[(signal.asset_key, signal.partition or signal.event_time.isoformat())].append(
                signal
            )
    alerts: list[BacktestAlert] = []
    for (asset, partition), group in groups.items():
        drifted = sorted({s.column or "" for s in group if _drifted(rule, s)})
        share = len(drifted) / len({s.column for s in group})
        if share >= threshold:
            alerts.append(
                BacktestAlert(
                    rule=rule.label,
                    kind=rule.kind,
                    partition=partition,
                    event_time=max(s.event_time for s in group),
                    asset_key=asset,
                    name=rule.name or "drifted_share",
                    value=share,
                    detail=f"{len(drifted)} of {len({s.column for s in group})} columns "
                    f"drifted: {', '.join(drifted)}",
                )
            )
    return sorted(alerts, key=lambda a: (a.event_time, a.partition, a.asset_key))


def _drifted(rule: DataRule, signal: Signal) -> bool:
    if rule.max is not None:
        return signal.value is not None and math.isfinite(signal.value) and signal.value > rule.max
    recorded = signal.metadata.get("drifted")
    if isinstance(recorded, bool):
        return recorded
    return signal.passed is False


def metric_series_for(
    signals: Sequence[Signal], rule: PerformanceRule
) -> tuple[list[MetricSeries], list[str]]:
    """The metric series a performance rule watches, one per evaluation asset."""
    assets = (
        [rule.asset]
        if rule.asset is not None
        else sorted(
            {
                s.asset_key
                for s in signals
                if s.kind is SignalKind.METRIC and s.name == rule.metric and s.column is None
            }
        )
    )
    found: list[MetricSeries] = []
    notes: list[str] = []
    for asset in assets:
        built = build_metric_series(
            signals,
            asset_key=asset,
            metric=rule.metric,
            higher_is_better=rule.direction_higher_is_better,
        )
        if built is None:
            recorded = sorted(
                {f"{s.asset_key}:{s.name}" for s in signals if s.kind is SignalKind.METRIC}
            )
            raise InputDataError(
                f"rule {rule.label}: no {rule.metric!r} metric signals on asset {asset!r} "
                f"(recorded: {', '.join(recorded) or 'no metric signals at all'})"
            )
        found.append(built[0])
    if not assets:
        notes.append(f"rule {rule.label}: no asset records the metric {rule.metric!r}")
    return found, notes


def backtest(
    signals: Sequence[Signal],
    incidents: Sequence[Incident] = (),
    *,
    rules: BacktestRules | None = None,
    seed: int = 0,
) -> BacktestResult:
    """Replay ``signals`` under ``rules`` and compare with the live ``incidents``."""
    rules = BacktestRules() if rules is None else rules
    latest = _latest(signals)
    alerts: list[BacktestAlert] = []
    notes: list[str] = []
    series_by_metric: dict[str, list[MetricSeries]] = defaultdict(list)
    for rule in rules.performance:
        found, rule_notes = metric_series_for(signals, rule)
        notes.extend(rule_notes)
        for series in found:
            series_by_metric[series.name].append(series)
            alerts.extend(replay_performance(series, rule, seed=seed))
            config = rule.attribution_config()
            if len(series.partitions) <= config.min_reference:
                notes.append(
                    f"rule {rule.label} on {series.model_asset}: {len(series.partitions)} "
                    f"partition(s) of {series.name}; judging a shift needs more than "
                    f"min_reference = {config.min_reference}"
                )
    for rule in rules.data:
        alerts.extend(replay_data_rule(rule, latest))
    order = {rule.label: index for index, rule in enumerate([*rules.performance, *rules.data])}
    alerts.sort(
        key=lambda a: (a.event_time, a.partition, order[a.rule], a.asset_key, a.column or "")
    )
    matches, lonely_alerts, lonely_incidents, compare_notes = _compare(
        [a for a in alerts if a.kind == PERFORMANCE],
        incidents,
        series_by_metric,
        within=rules.match_within,
    )
    return BacktestResult(
        alerts=tuple(alerts),
        matches=tuple(matches),
        alerts_without_incident=tuple(lonely_alerts),
        incidents_without_alert=tuple(lonely_incidents),
        notes=tuple(notes + compare_notes),
    )


def _compare(
    alerts: Sequence[BacktestAlert],
    incidents: Sequence[Incident],
    series_by_metric: Mapping[str, Sequence[MetricSeries]],
    *,
    within: int,
) -> tuple[list[IncidentMatch], list[BacktestAlert], list[UnmatchedIncident], list[str]]:
    """Pair alerts with live incidents of the same metric, nearest detections first."""
    notes: list[str] = []
    judged = [i for i in incidents if i.detected_partition is not None]
    provisional = len(incidents) - len(judged)
    if provisional:
        notes.append(
            f"{provisional} provisional (at-risk) incident(s) without a detection partition "
            "left out of the comparison"
        )
    candidates: list[tuple[int, int, int]] = []  # (|delay|, alert index, incident index)
    delays: dict[tuple[int, int], int] = {}
    for a_index, alert in enumerate(alerts):
        series = next(
            (s for s in series_by_metric.get(alert.name, ()) if s.model_asset == alert.asset_key),
            None,
        )
        if series is None or alert.detection_partition is None:
            continue
        for i_index, incident in enumerate(judged):
            if incident.metric != alert.name:
                continue
            where = _index_of(series, incident)
            if where is None:
                continue
            delay = series.partitions.index(alert.detection_partition) - where
            if abs(delay) <= within:
                candidates.append((abs(delay), a_index, i_index))
                delays[(a_index, i_index)] = delay
    matches: list[IncidentMatch] = []
    used_alerts: set[int] = set()
    used_incidents: set[int] = set()
    for _, a_index, i_index in sorted(candidates):
        if a_index in used_alerts or i_index in used_incidents:
            continue
        used_alerts.add(a_index)
        used_incidents.add(i_index)
        alert, incident = alerts[a_index], judged[i_index]
        assert alert.detection_partition is not None
        matches.append(
            IncidentMatch(
                rule=alert.rule,
                incident_id=incident.id,
                metric=incident.metric,
                alert_detection_partition=alert.detection_partition,
                incident_detected_partition=incident.detected_partition,
                delay=delays[(a_index, i_index)],
            )
        )
    matches.sort(key=lambda m: m.alert_detection_partition)
    lonely_alerts = [a for index, a in enumerate(alerts) if index not in used_alerts]
    lonely_incidents = [
        UnmatchedIncident(
            incident_id=incident.id,
            metric=incident.metric,
            detected_partition=incident.detected_partition,
            onset_partition=incident.onset_partition,
            consequential=incident.consequential,
            status=incident.status.value,
        )
        for index, incident in enumerate(judged)
        if index not in used_incidents
    ]
    return matches, lonely_alerts, lonely_incidents, notes


def _index_of(series: MetricSeries, incident: Incident) -> int | None:
    """The incident's detection as an index into the metric's partitions."""
    if incident.detected_partition in series.partitions:
        return series.partitions.index(incident.detected_partition)
    if incident.detected_time is None or series.times is None:
        return None
    at = bisect.bisect_right(list(series.times), incident.detected_time) - 1
    return at if at >= 0 else None


def backtest_store(
    store: "CorrmonStore", *, rules: BacktestRules | None = None, seed: int = 0
) -> BacktestResult:
    """Replay the history a corrmon store recorded (only the signal kinds the rules read)."""
    rules = BacktestRules() if rules is None else rules
    kinds = {SignalKind.METRIC} if rules.performance else set[SignalKind]()
    kinds |= {SignalKind(rule.kind) for rule in rules.data}
    signals = [s for kind in sorted(kinds) for s in store.read_signals(kind=kind)]
    return backtest(signals, store.list_incidents(), rules=rules, seed=seed)


def format_table(result: BacktestResult) -> str:
    """Alerts as an aligned text table, then the comparison with the live incidents."""
    header = ("partition", "rule", "asset", "column", "value", "onset", "detail")
    rows = [
        (
            alert.partition,
            alert.rule,
            alert.asset_key,
            alert.column or "",
            "" if alert.value is None else f"{alert.value:.4g}",
            alert.onset_partition or "",
            alert.detail,
        )
        for alert in result.alerts
    ]
    lines = [f"{len(result.alerts)} alert(s) would have fired"]
    if rows:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    lines.append(
        f"compared with the live incidents: {len(result.matches)} matched, "
        f"{len(result.alerts_without_incident)} performance alert(s) without an incident, "
        f"{len(result.incidents_without_alert)} incident(s) without an alert"
    )
    for match in result.matches:
        when = (
            "same partition"
            if match.delay == 0
            else f"{abs(match.delay)} partition(s) {'later' if match.delay > 0 else 'earlier'}"
        )
        lines.append(
            f"  matched   {match.incident_id}: backtest {match.alert_detection_partition}, "
            f"live {match.incident_detected_partition} ({when})"
        )
    for alert in result.alerts_without_incident:
        lines.append(
            f"  no incident for {alert.rule} on {alert.asset_key} detected at "
            f"{alert.detection_partition} (onset {alert.onset_partition})"
        )
    for incident in result.incidents_without_alert:
        lines.append(
            f"  no alert for incident {incident.incident_id} ({incident.metric}, detected "
            f"{incident.detected_partition}, {incident.status})"
        )
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)
