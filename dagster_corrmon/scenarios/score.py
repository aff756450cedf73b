"""``corrmon score``: compare simulation reports with their scenarios' expectations.

Pure over ``report.json`` documents. A cause *matches* an injection when it points at the asset
the injection hit (its raw feed, or ``features`` for a code change) and, where the injection hit
one column, at that column (or a feature derived from it). The baselines are computed from the
same history: Evidently's dataset-drift alarm (share of drifted columns ≥ 0.5 in a partition) and
a NannyML-style ranking (Pearson correlation of each column's drift series with |Δ metric|); see
:mod:`dagster_corrmon.scenarios.baselines`. Evidently detects but does not attribute, the ranker
attributes but does not detect: their missing numbers are "n/a", never zero.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dagster_corrmon.errors import InputDataError
from dagster_corrmon.scenarios.baselines import (
    BaselineHistory,
    correlation_ranking,
    drift_false_fail_rate,
    drifted_shares,
    evidently_alarms,
    first_alarm,
    injected_features,
    load_history,
    performance_change,
)

NOT_APPLICABLE = "n/a"

UPSTREAM_CLASSES = frozenset({"data_fault", "upstream_failure", "code_change"})


@dataclass
class EpisodeScore:
    """How one expected injection (an *episode*) was handled.

    ``detected_as`` is ``"incident"`` (a performance incident detected inside the injection's
    window), ``"at_risk"`` (only a provisional at-risk incident there) or ``None`` (missed).
    ``confidence`` is the top cause's ``confidence`` when the report carries one, else its
    ``score``; with ``top1`` it is one point of the calibration table.
    """

    injection: str
    kind: str
    consequential: bool
    detected_as: str | None = None
    delay: int | None = None
    on_time: bool = False  # detected within ``detect_within`` partitions of the start
    top1: bool = False
    top3: bool = False
    classification_ok: bool | None = None  # None: no classification expected
    incidents: int = 0  # distinct incidents raised inside the window (one episode: one)
    false_consequential: bool = False  # a non-consequential defect raised a consequential one
    confidence: float | None = None


@dataclass
class ScenarioScore:
    scenario: str
    expected: int = 0
    top1: int = 0
    top3: int = 0
    detection_delays: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)  # detected after the expectation's detect_within
    classification_expected: int = 0  # expected incidents that name acceptable classifications
    classified: int = 0  # ... whose incident was classified as one of them
    misclassified: list[str] = field(default_factory=list)
    retrain_expected: str | None = None  # "required" | "forbidden" | None
    retrain_met: bool | None = None
    retrain_note: str | None = None
    control: bool = False
    pure_control: bool = False  # a control with nothing injected at all
    false_consequential: int = 0
    annotation_precision: float | None = None
    annotation_recall: float | None = None
    episodes: list[EpisodeScore] = field(default_factory=list[EpisodeScore])
    drift_false_fail_rate: float | None = None  # pure controls only: failed drift checks' share
    labels: dict[str, Any] = field(default_factory=dict[str, Any])  # generator's strata, if any
    evidently: "EvidentlyScore | None" = None
    nannyml: "NannymlScore | None" = None
    baselines_note: str | None = None  # why the baselines are missing, when they are


@dataclass
class EvidentlyScore:
    """Evidently's dataset-drift alarm on one scenario's history (it attributes nothing)."""

    detection_delays: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    false_alarms: int = 0  # alarmed partitions of a control scenario
    alarm_partitions: list[str] = field(default_factory=list)


@dataclass
class NannymlScore:
    """NannyML's CorrelationRanker on one scenario's history (it detects nothing).

    ``rankings`` holds, per expected injection, the features it hit and the top of the ranking,
    so a reader can see *why* the ranker got it right or wrong.
    """

    top1: int = 0
    top3: int = 0
    rankings: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])


def _matches(
    cause: Mapping[str, Any],
    injected: Mapping[str, Any],
    feature_sources: Mapping[str, Sequence[str]] | None = None,
) -> bool:
    """Does the cause point at what was injected?

    Either at the injected asset (and column, when one was hit), or at a feature column computed
    from the injected raw column (``feature_sources``: feature → ``asset:column``s) — the same
    defect as the model sees it, one hop downstream, where the drift check measures it.
    """
    column = injected.get("column")
    if cause.get("asset") == injected.get("asset"):
        return column is None or cause.get("column") in (None, column)
    origin = f"{injected.get('asset')}:{column}" if column else None
    sources = (feature_sources or {}).get(str(cause.get("column")), ())
    return origin is not None and origin in sources


def _detected(incident: Mapping[str, Any]) -> str | None:
    """When an incident was raised: its detection, or for an at-risk one, its fault's onset."""
    when = incident.get("detected_partition") or incident.get("onset_partition")
    return str(when)[:10] if when else None


def _index(partitions: Sequence[str], day: str) -> int:
    """Index of the first partition at or after ``day`` (ISO date)."""
    for index, key in enumerate(partitions):
        if key[:10] >= day:
            return index
    return len(partitions)


def load_baseline_history(
    folder: Path, report: Mapping[str, Any]
) -> tuple[BaselineHistory | None, str | None]:
    """The baselines' inputs from the store beside a report, or ``None`` and the reason why not.

    A report copied without its ``dagster_home`` still scores for corrmon; the reason travels into
    the output instead of the baseline numbers silently reading as zero.
    """
    try:
        history = load_history(
            folder,
            partitions=list(report.get("partitions") or []),
            metric=str(report.get("metric") or "roc_auc"),
            features_asset=report.get("features_asset"),
            evaluation_asset=report.get("evaluation_asset"),
        )
    except InputDataError as error:
        return None, str(error)
    return history, None


def _last_index(partitions: Sequence[str], day: str | None) -> int:
    """Index of the last partition at or before ``day`` (``None``: the last partition)."""
    if day is None:
        return len(partitions) - 1
    last = -1
    for index, key in enumerate(partitions):
        if key[:10] <= day:
            last = index
    return last


def _confidence(cause: Mapping[str, Any]) -> float | None:
    value = cause.get("confidence", cause.get("score"))
    return float(value) if isinstance(value, int | float) else None


def score_report(
    report: Mapping[str, Any], *, history: BaselineHistory | None = None
) -> ScenarioScore:
    """Detection, attribution, classification, episode identity and annotation, per injection.

    An incident counts for an injection only when it is raised *inside* the injection's window:
    from its first partition to its last plus ``detect_within`` (a persistent injection's window
    runs to the end). A consequential injection is detected by a performance incident there, or
    — when the defect left no metric (scoring broke) — by an at-risk incident. A
    non-consequential one (``consequential: false``) must raise an at-risk incident and no
    consequential one; a consequential incident in its window is a false alarm.

    With ``history`` (the same run's recorded signals, :func:`load_baseline_history`) the two
    baselines are scored on it too, and a pure control's drift false-fail rate is read from it.
    """
    score = ScenarioScore(scenario=str(report.get("scenario")))
    score.labels = dict(report.get("labels") or {})
    if history is not None:
        score.evidently, score.nannyml = _score_baselines(report, history)
    expect = report.get("expect") or {}
    partitions: list[str] = list(report.get("partitions") or [])
    every = list(report.get("incidents", []))
    incidents = [i for i in every if not i.get("provisional")]
    at_risk = [i for i in every if i.get("provisional")]
    injected = {item["id"]: item for item in report.get("injected", [])}
    sources = report.get("feature_sources") or {}
    score.control = bool(expect.get("control"))
    score.pure_control = score.control and not injected
    if score.control:
        score.false_consequential = sum(
            1
            for i in incidents
            if i.get("consequential") and i.get("classification") in UPSTREAM_CLASSES
        )
    if score.pure_control and history is not None:
        score.drift_false_fail_rate = drift_false_fail_rate(history.drift)
    precision_hits = precision_total = recall_hits = recall_total = 0
    for expected in expect.get("incidents", []):
        score.expected += 1
        target = injected[expected["injection"]]
        consequential = bool(expected.get("consequential", True))
        within = int(expected.get("detect_within", 1))
        episode = EpisodeScore(
            injection=expected["injection"],
            kind=str(target.get("kind")),
            consequential=consequential,
        )
        score.episodes.append(episode)
        start = _index(partitions, target["start"])
        stop = _last_index(partitions, target.get("end")) + within

        def inside(incident: Mapping[str, Any], *, start: int = start, stop: int = stop) -> bool:
            when = _detected(incident)
            return when is not None and start <= _index(partitions, when) <= stop

        raised = [i for i in incidents if i.get("detected_partition") and inside(i)]
        flagged = [i for i in at_risk if inside(i)]
        if consequential:
            candidates, episode.detected_as = (
                (raised, "incident") if raised else (flagged, "at_risk")
            )
        else:
            episode.false_consequential = any(i.get("consequential") for i in raised)
            candidates, episode.detected_as = flagged, "at_risk"
        if not candidates:
            episode.detected_as = None
            score.missed.append(expected["injection"])
            continue
        episode.incidents = len(candidates)
        incident = min(candidates, key=lambda i: _index(partitions, _detected(i) or ""))
        causes = sorted(incident.get("causes", []), key=lambda c: c["rank"])
        episode.top1 = bool(causes) and _matches(causes[0], target, sources)
        episode.top3 = any(_matches(c, target, sources) for c in causes[:3])
        episode.confidence = _confidence(causes[0]) if causes else None
        score.top1 += episode.top1
        score.top3 += episode.top3
        delay = _index(partitions, _detected(incident) or "") - start
        episode.delay = delay
        episode.on_time = delay <= within
        score.detection_delays.append(delay)
        if not episode.on_time:
            score.late.append(f"{expected['injection']}: {delay} partition(s)")
        accepted = expected.get("classification")
        if accepted:
            score.classification_expected += 1
            got = incident.get("classification")
            episode.classification_ok = got in accepted
            if episode.classification_ok:
                score.classified += 1
            else:
                score.misclassified.append(
                    f"{expected['injection']}: {got}, expected {' or '.join(accepted)}"
                )
        end = target.get("end") or "9999-12-31"
        truth = {
            run
            for key, run in (report.get("scoring_runs") or {}).items()
            if target["start"] <= key[:10] <= end
        }
        flagged_runs = {
            r["run_id"] for r in incident.get("affected_runs", []) if r.get("role") == "scoring"
        }
        precision_hits += len(flagged_runs & truth)
        precision_total += len(flagged_runs)
        recall_hits += len(flagged_runs & truth)
        recall_total += len(truth)
    _score_retrain(score, expect.get("retrain"), report)
    if precision_total:
        score.annotation_precision = precision_hits / precision_total
    if recall_total:
        score.annotation_recall = recall_hits / recall_total
    return score


def _score_retrain(score: ScenarioScore, expected: str | None, report: Mapping[str, Any]) -> None:
    """``expect.retrain``: *required* means a retrain was decided and carried out successfully;
    *forbidden* means none was decided (a blocked or skipped decision is the point)."""
    if expected is None:
        return
    score.retrain_expected = expected
    decided = [d for d in report.get("retrain_decisions", []) if d.get("decision") == "retrain"]
    done = [r for r in report.get("retrains", []) if r.get("success")]
    if expected == "required":
        score.retrain_met = bool(decided) and bool(done)
        score.retrain_note = (
            f"{len(decided)} retrain decision(s), {len(done)} successful retrain(s)"
        )
    elif expected == "forbidden":
        score.retrain_met = not decided
        blocked = [d for d in report.get("retrain_decisions", []) if d.get("decision") == "blocked"]
        score.retrain_note = (
            f"{len(decided)} retrain decision(s), {len(blocked)} blocked"
            if decided or blocked
            else "no retrain decision"
        )
    else:
        raise InputDataError(
            f"scenario {report.get('scenario')}: expect.retrain must be 'required' or "
            f"'forbidden', got {expected!r}"
        )


def _score_baselines(
    report: Mapping[str, Any], history: BaselineHistory
) -> tuple[EvidentlyScore, NannymlScore]:
    partitions: list[str] = list(report.get("partitions") or history.partitions)
    if tuple(partitions) != history.partitions:
        raise InputDataError(
            f"scenario {report.get('scenario')}: the history's partitions are not the report's"
        )
    expect = report.get("expect") or {}
    injected = {item["id"]: item for item in report.get("injected", [])}
    alarms = evidently_alarms(drifted_shares(history.drift))
    evidently = EvidentlyScore(
        alarm_partitions=[key for key, alarm in zip(partitions, alarms, strict=True) if alarm]
    )
    if expect.get("control"):
        evidently.false_alarms = sum(alarms)
    nannyml = NannymlScore()
    for expected in expect.get("incidents", []):
        target = injected[expected["injection"]]
        start = _index(partitions, target["start"])
        alarm = first_alarm(alarms, start=start)
        if alarm is None:
            evidently.missed.append(expected["injection"])
        else:
            evidently.detection_delays.append(alarm - start)
        hit = injected_features(
            column=target.get("column"),
            asset=str(target.get("asset")),
            features=history.drift.statistics,
            feed_columns=history.feed_columns,
            feature_sources=report.get("feature_sources"),
        )
        entry: dict[str, Any] = {"injected_features": sorted(hit)}
        nannyml.rankings[expected["injection"]] = entry
        try:
            change = performance_change(history.metric, reference_end=start)
        except InputDataError as error:
            entry["note"] = str(error)  # no reference period: the ranker has nothing to rank
            continue
        ranking = correlation_ranking(
            history.drift.statistics, change, drifted=history.drift.drifted
        )
        ranked_hits = [r for r in ranking if r.column in hit and r.correlation is not None]
        best = min((r.worst_rank for r in ranked_hits), default=None)
        nannyml.top1 += best is not None and best <= 1
        nannyml.top3 += best is not None and best <= 3
        entry["rank"] = best
        entry["top"] = [
            {
                "column": r.column,
                "correlation": r.correlation,
                "p_value": r.p_value,
                "rank": r.rank,
                "worst_rank": r.worst_rank,
            }
            for r in ranking[:5]
        ]
    return evidently, nannyml


def summarize(scores: Sequence[ScenarioScore]) -> dict[str, Any]:
    expected = sum(s.expected for s in scores)
    delays = [d for s in scores for d in s.detection_delays]
    controls = [s for s in scores if s.control]
    classification_expected = sum(s.classification_expected for s in scores)
    retrain = [s for s in scores if s.retrain_expected is not None]
    return {
        "scenarios": [asdict(s) for s in scores],
        "expected_incidents": expected,
        "top1_accuracy": (sum(s.top1 for s in scores) / expected) if expected else None,
        "top3_accuracy": (sum(s.top3 for s in scores) / expected) if expected else None,
        "max_detection_delay": max(delays) if delays else None,
        "mean_detection_delay": (sum(delays) / len(delays)) if delays else None,
        "missed": sum(len(s.missed) for s in scores),
        "late": sum(len(s.late) for s in scores),
        "false_consequential_on_controls": sum(s.false_consequential for s in controls),
        "classification_accuracy": (
            sum(s.classified for s in scores) / classification_expected
            if classification_expected
            else None
        ),
        "retrain_expectations": len(retrain),
        "retrain_expectations_met": sum(1 for s in retrain if s.retrain_met),
        **episode_summary([e for s in scores for e in s.episodes]),
        "pure_controls": sum(1 for s in scores if s.pure_control),
        "false_consequential_on_pure_controls": sum(
            s.false_consequential for s in scores if s.pure_control
        ),
        "drift_false_fail_rate": _mean(
            [s.drift_false_fail_rate for s in scores if s.drift_false_fail_rate is not None]
        ),
        "baselines": _summarize_baselines(scores),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def episode_summary(episodes: Sequence[EpisodeScore]) -> dict[str, Any]:
    """The strict per-episode numbers over a set of episodes (of any grouping).

    Detection and on-time rates are over *consequential* episodes; the at-risk rate and the
    false consequential count over non-consequential ones; incidents per episode over detected
    ones. Top-1/top-3 and classification are over every detected episode.
    """
    consequential = [e for e in episodes if e.consequential]
    benign = [e for e in episodes if not e.consequential]
    detected = [e for e in episodes if e.detected_as is not None]
    classified = [e.classification_ok for e in detected if e.classification_ok is not None]
    delays = [e.delay for e in detected if e.delay is not None]
    return {
        "episodes": len(episodes),
        "consequential_episodes": len(consequential),
        "detection_rate": _share([e.detected_as is not None for e in consequential]),
        "detected_by_incident_rate": _share([e.detected_as == "incident" for e in consequential]),
        "on_time_rate": _share([e.on_time for e in consequential]),
        "mean_delay": _mean([float(d) for d in delays]),
        "episode_top1": _share([e.top1 for e in detected]),
        "episode_top3": _share([e.top3 for e in detected]),
        "episode_classification": _share(classified),
        "incidents_per_episode": _mean([float(e.incidents) for e in detected]),
        "non_consequential_episodes": len(benign),
        "at_risk_rate": _share([e.detected_as == "at_risk" and e.on_time for e in benign]),
        "false_consequential_on_defects": sum(e.false_consequential for e in benign),
        "calibration": calibration(
            [(e.confidence, e.top1) for e in detected if e.confidence is not None]
        ),
    }


def calibration(points: Sequence[tuple[float, bool]], *, bins: int = 10) -> dict[str, Any]:
    """Reliability of the top cause's confidence: per decile of confidence, how often the top
    cause was right, and the Brier score ``mean((confidence - right)²)`` over all points.

    Deciles are scikit-learn's ``calibration_curve(strategy="uniform")`` bins: ``[0, 0.1]``, then
    ``(0.1, 0.2]`` … ``(0.9, 1]``; confidences outside [0, 1] are clipped. ``max_gap`` is the
    largest |accuracy - mean confidence| over the non-empty deciles — within 0.1 reads as
    calibrated.
    """
    confidence = np.clip(np.array([c for c, _ in points], dtype=float), 0.0, 1.0)
    right = np.array([bool(r) for _, r in points], dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    where = np.searchsorted(edges[1:-1], confidence)
    table: list[dict[str, Any]] = []
    for index in range(bins):
        inside = where == index
        if not inside.any():
            continue
        opening = "[" if index == 0 else "("
        table.append(
            {
                "bin": f"{opening}{edges[index]:.1f}, {edges[index + 1]:.1f}]",
                "n": int(inside.sum()),
                "mean_confidence": float(confidence[inside].mean()),
                "accuracy": float(right[inside].mean()),
            }
        )
    gaps = [abs(row["accuracy"] - row["mean_confidence"]) for row in table]
    return {
        "points": len(points),
        "brier": float(np.mean((confidence - right) ** 2)) if len(points) else None,
        "max_gap": max(gaps) if gaps else None,
        "deciles": table,
    }


def _summarize_baselines(scores: Sequence[ScenarioScore]) -> dict[str, Any]:
    """Both baselines over the scenarios whose history could be read, with the same keys as
    corrmon's own summary; a number a baseline cannot produce is "n/a"."""
    scored = [s for s in scores if s.evidently is not None and s.nannyml is not None]
    expected = sum(s.expected for s in scored)
    evidently = [s.evidently for s in scored if s.evidently is not None]
    nannyml = [s.nannyml for s in scored if s.nannyml is not None]
    delays = [d for e in evidently for d in e.detection_delays]
    controls = [s.evidently for s in scored if s.control and s.evidently is not None]
    return {
        "scenarios_scored": len(scored),
        "expected_incidents": expected,
        "without_history": {
            s.scenario: s.baselines_note for s in scores if s.evidently is None or s.nannyml is None
        },
        "evidently": {
            "top1_accuracy": NOT_APPLICABLE,
            "top3_accuracy": NOT_APPLICABLE,
            "max_detection_delay": max(delays) if delays else None,
            "mean_detection_delay": (sum(delays) / len(delays)) if delays else None,
            "missed": sum(len(e.missed) for e in evidently),
            "false_alarms_on_controls": sum(e.false_alarms for e in controls),
        },
        "nannyml": {
            "top1_accuracy": (sum(n.top1 for n in nannyml) / expected) if expected else None,
            "top3_accuracy": (sum(n.top3 for n in nannyml) / expected) if expected else None,
            "max_detection_delay": NOT_APPLICABLE,
            "mean_detection_delay": NOT_APPLICABLE,
            "missed": NOT_APPLICABLE,
            "false_alarms_on_controls": NOT_APPLICABLE,
        },
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The per-scenario table, then corrmon and the two baselines side by side."""

    def number(value: Any) -> str:
        return (
            "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        )

    def listed(values: Sequence[Any]) -> str:
        return ",".join(map(str, values)) or "-"

    lines = [
        f"{'':<30} {'corrmon':-^61}  {'evidently':-^22}  {'nannyml':-^9}",
        f"{'scenario':<30} {'expected':>8} {'top1':>5} {'top3':>5}  {'delays':<6}  "
        f"{'missed':<6}  {'false+':>6}  {'class':>5}  {'retrain':<7}  "
        f"{'delays':<6}  {'missed':>6} {'false+':>6}  {'top1':>4} {'top3':>4}",
    ]
    for s in summary["scenarios"]:
        evidently, nannyml = s.get("evidently"), s.get("nannyml")
        if evidently is None or nannyml is None:
            baselines = f"{'-':<6}  {'-':>6} {'-':>6}  {'-':>4} {'-':>4}"
        else:
            false_alarms = evidently["false_alarms"] if s["control"] else "-"
            baselines = (
                f"{listed(evidently['detection_delays']):<6}  {len(evidently['missed']):>6} "
                f"{false_alarms:>6}  {nannyml['top1']:>4} {nannyml['top3']:>4}"
            )
        classes = (
            f"{s['classified']}/{s['classification_expected']}"
            if s["classification_expected"]
            else "-"
        )
        retrain = (
            "-"
            if s["retrain_expected"] is None
            else f"{'ok' if s['retrain_met'] else 'NOT'} {s['retrain_expected'][:4]}"
        )
        lines.append(
            f"{s['scenario'][:30]:<30} {s['expected']:>8} {s['top1']:>5} {s['top3']:>5}  "
            f"{listed(s['detection_delays']):<6}  "
            f"{listed(s['missed']):<6}  {s['false_consequential']:>6}  {classes:>5}  "
            f"{retrain:<7}  {baselines}"
        )
    lines.append("")
    lines.append(
        f"top-1 {number(summary['top1_accuracy'])}  top-3 {number(summary['top3_accuracy'])}  "
        f"max delay {number(summary['max_detection_delay'])} partition(s)  "
        f"false consequential on controls {summary['false_consequential_on_controls']}  "
        f"classification {number(summary['classification_accuracy'])}  "
        f"retrain expectations met {summary['retrain_expectations_met']}/"
        f"{summary['retrain_expectations']}"
    )
    calibration_summary = summary["calibration"]
    lines.append(
        f"episodes {summary['episodes']}: detected {number(summary['detection_rate'])} of the "
        f"consequential ones (on time {number(summary['on_time_rate'])}, by an incident "
        f"{number(summary['detected_by_incident_rate'])}), incidents per episode "
        f"{number(summary['incidents_per_episode'])}, at-risk on time on the non-consequential "
        f"{number(summary['at_risk_rate'])}, false consequential on them "
        f"{summary['false_consequential_on_defects']}; top-cause confidence Brier "
        f"{number(calibration_summary['brier'])} over {calibration_summary['points']}"
    )
    for s in summary["scenarios"]:
        lines += [f"  {s['scenario']}: classified {m}" for m in s["misclassified"]]
        lines += [f"  {s['scenario']}: detected late, {m}" for m in s["late"]]
        if s["retrain_expected"] is not None and not s["retrain_met"]:
            lines.append(
                f"  {s['scenario']}: retrain {s['retrain_expected']} not met ({s['retrain_note']})"
            )
    baselines = summary.get("baselines")
    if baselines is None:
        return "\n".join(lines)
    corrmon = {
        key: summary.get(key)
        for key in (
            "top1_accuracy",
            "top3_accuracy",
            "max_detection_delay",
            "mean_detection_delay",
            "missed",
        )
    }
    corrmon["false_alarms_on_controls"] = summary["false_consequential_on_controls"]
    rows = [
        ("top-1 accuracy", "top1_accuracy"),
        ("top-3 accuracy", "top3_accuracy"),
        ("max detection delay", "max_detection_delay"),
        ("mean detection delay", "mean_detection_delay"),
        ("missed incidents", "missed"),
        ("false alarms on controls", "false_alarms_on_controls"),
    ]
    lines.append("")
    lines.append(f"{'':<26} {'corrmon':>9} {'evidently':>10} {'nannyml':>9}")
    for label, key in rows:
        lines.append(
            f"{label:<26} {number(corrmon[key]):>9} {number(baselines['evidently'][key]):>10} "
            f"{number(baselines['nannyml'][key]):>9}"
        )
    lines += [
        "evidently: dataset-drift alarm (share of drifted features >= 0.5); it does not attribute",
        "nannyml: CorrelationRanker (Pearson r of each feature's drift with |metric - reference "
        "mean|); it does not detect",
        "false alarms on controls: consequential upstream-fault incidents (corrmon), alarmed "
        "partitions (evidently)",
    ]
    for scenario, note in baselines["without_history"].items():
        lines.append(f"baselines not scored for {scenario}: {note or 'no recorded history given'}")
    if baselines["without_history"]:
        lines.append(
            f"(baseline numbers cover {baselines['scenarios_scored']} scenario(s), "
            f"{baselines['expected_incidents']} expected incident(s))"
        )
    return "\n".join(lines)


def generalization_rows(scores: Sequence[ScenarioScore]) -> list[dict[str, Any]]:
    """One row per dataset × cadence × kind × importance tier (controls as kind ``control``).

    The strata come from each report's ``labels`` (written by ``corrmon generate`` / ``corrmon
    evaluate``: ``dataset``, ``cadence``, ``tiers`` per injection id); unlabelled reports fall in
    ``-`` rows.
    """
    groups: dict[tuple[str, str, str, str], list[EpisodeScore]] = {}
    controls: dict[tuple[str, str, str, str], list[ScenarioScore]] = {}
    for score in scores:
        dataset = str(score.labels.get("dataset") or "-")
        cadence = str(score.labels.get("cadence") or "-")
        tiers = score.labels.get("tiers") or {}
        if score.pure_control:
            controls.setdefault((dataset, cadence, "control", "-"), []).append(score)
        for episode in score.episodes:
            key = (dataset, cadence, episode.kind, str(tiers.get(episode.injection) or "-"))
            groups.setdefault(key, []).append(episode)
    rows: list[dict[str, Any]] = []
    for key in sorted(set(groups) | set(controls)):
        dataset, cadence, kind, tier = key
        row: dict[str, Any] = {"dataset": dataset, "cadence": cadence, "kind": kind, "tier": tier}
        row.update(episode_summary(groups.get(key, [])))
        members = controls.get(key, [])
        row["controls"] = len(members)
        row["false_consequential_on_controls"] = (
            sum(s.false_consequential for s in members) if members else None
        )
        row["drift_false_fail_rate"] = _mean(
            [s.drift_false_fail_rate for s in members if s.drift_false_fail_rate is not None]
        )
        rows.append(row)
    return rows


def format_generalization_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The generalization table as markdown (what ``docs/scenarios.md`` shows)."""

    def cell(value: Any, digits: int = 2) -> str:
        if value is None:
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    header = (
        "| dataset | cadence | kind | tier | episodes | detected | on time | delay | top-1 | "
        "top-3 | class | incidents/episode | at-risk (benign) | false cons. | drift false-fail "
        "| Brier | max gap |"
    )
    lines = [header, "|" + "---|" * 17]
    for row in rows:
        false_cons = row["false_consequential_on_defects"] if row["episodes"] else None
        if row["controls"]:
            false_cons = row["false_consequential_on_controls"]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["dataset"],
                    row["cadence"],
                    row["kind"],
                    row["tier"],
                    str(row["episodes"] or row["controls"]),
                    cell(row["detection_rate"]),
                    cell(row["on_time_rate"]),
                    cell(row["mean_delay"], 1),
                    cell(row["episode_top1"]),
                    cell(row["episode_top3"]),
                    cell(row["episode_classification"]),
                    cell(row["incidents_per_episode"], 1),
                    cell(row["at_risk_rate"]),
                    cell(false_cons),
                    cell(row["drift_false_fail_rate"]),
                    cell(row["calibration"]["brier"]),
                    cell(row["calibration"]["max_gap"]),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def format_calibration(calibration_summary: Mapping[str, Any]) -> str:
    """The reliability table of the top cause's confidence (markdown)."""
    brier = calibration_summary["brier"]
    lines = [
        f"top-cause confidence over {calibration_summary['points']} detected episode(s); "
        f"Brier {'-' if brier is None else f'{brier:.3f}'}",
        "",
        "| confidence | n | mean confidence | top-1 right |",
        "|---|---|---|---|",
    ]
    for row in calibration_summary["deciles"]:
        lines.append(
            f"| {row['bin']} | {row['n']} | {row['mean_confidence']:.2f} | {row['accuracy']:.2f} |"
        )
    return "\n".join(lines)
