"""``corrmon score``: compare simulation reports with their scenarios' expectations.

Pure over ``report.json`` documents. A cause *matches* an injection when it points at the asset
the injection hit (its raw feed, or ``features`` for a code change) and, where the injection hit
one column, at that column (or a feature derived from it). The baselines are computed from the
same history: Evidently's dataset-drift alarm (share of drifted columns ≥ 0.5 in a partition) and
a NannyML-style ranking (Pearson correlation of each column's drift series with |Δ metric|).
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

UPSTREAM_CLASSES = frozenset({"data_fault", "upstream_failure", "code_change"})


@dataclass
class ScenarioScore:
    scenario: str
    expected: int = 0
    top1: int = 0
    top3: int = 0
    detection_delays: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    control: bool = False
    false_consequential: int = 0
    annotation_precision: float | None = None
    annotation_recall: float | None = None


def _matches(cause: Mapping[str, Any], injected: Mapping[str, Any]) -> bool:
    if cause.get("asset") != injected.get("asset"):
        return False
    column = injected.get("column")
    return column is None or cause.get("column") in (None, column)


def _index(partitions: Sequence[str], day: str) -> int:
    """Index of the first partition at or after ``day`` (ISO date)."""
    for index, key in enumerate(partitions):
        if key[:10] >= day:
            return index
    return len(partitions)


def score_report(report: Mapping[str, Any]) -> ScenarioScore:
    """Top-1/top-3 attribution, detection delay, control false alarms, annotation quality."""
    score = ScenarioScore(scenario=str(report.get("scenario")))
    expect = report.get("expect") or {}
    partitions: list[str] = list(report.get("partitions") or [])
    incidents = [i for i in report.get("incidents", []) if not i.get("provisional")]
    injected = {item["id"]: item for item in report.get("injected", [])}
    score.control = bool(expect.get("control"))
    if score.control:
        score.false_consequential = sum(
            1
            for i in incidents
            if i.get("consequential") and i.get("classification") in UPSTREAM_CLASSES
        )
    precision_hits = precision_total = recall_hits = recall_total = 0
    for expected in expect.get("incidents", []):
        score.expected += 1
        target = injected[expected["injection"]]
        start = _index(partitions, target["start"])
        candidates = [
            i
            for i in incidents
            if i.get("detected_partition") is not None
            and _index(partitions, i["detected_partition"][:10]) >= start
        ]
        if not candidates:
            score.missed.append(expected["injection"])
            continue
        incident = min(candidates, key=lambda i: _index(partitions, i["detected_partition"][:10]))
        causes = sorted(incident.get("causes", []), key=lambda c: c["rank"])
        if causes and _matches(causes[0], target):
            score.top1 += 1
        if any(_matches(c, target) for c in causes[:3]):
            score.top3 += 1
        score.detection_delays.append(
            _index(partitions, incident["detected_partition"][:10]) - start
        )
        end = target.get("end") or "9999-12-31"
        truth = {
            run
            for key, run in (report.get("scoring_runs") or {}).items()
            if target["start"] <= key[:10] <= end
        }
        flagged = {
            r["run_id"] for r in incident.get("affected_runs", []) if r.get("role") == "scoring"
        }
        precision_hits += len(flagged & truth)
        precision_total += len(flagged)
        recall_hits += len(flagged & truth)
        recall_total += len(truth)
    if precision_total:
        score.annotation_precision = precision_hits / precision_total
    if recall_total:
        score.annotation_recall = recall_hits / recall_total
    return score


def summarize(scores: Sequence[ScenarioScore]) -> dict[str, Any]:
    expected = sum(s.expected for s in scores)
    delays = [d for s in scores for d in s.detection_delays]
    controls = [s for s in scores if s.control]
    return {
        "scenarios": [asdict(s) for s in scores],
        "expected_incidents": expected,
        "top1_accuracy": (sum(s.top1 for s in scores) / expected) if expected else None,
        "top3_accuracy": (sum(s.top3 for s in scores) / expected) if expected else None,
        "max_detection_delay": max(delays) if delays else None,
        "mean_detection_delay": (sum(delays) / len(delays)) if delays else None,
        "false_consequential_on_controls": sum(s.false_consequential for s in controls),
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    def number(value: Any) -> str:
        return (
            "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        )

    lines = ["scenario                       expected  top1  top3  delays  missed  false+"]
    for s in summary["scenarios"]:
        lines.append(
            f"{s['scenario'][:30]:<30} {s['expected']:>8} {s['top1']:>5} {s['top3']:>5}  "
            f"{','.join(map(str, s['detection_delays'])) or '-':<6}  "
            f"{','.join(s['missed']) or '-':<6}  {s['false_consequential']:>6}"
        )
    lines.append("")
    lines.append(
        f"top-1 {number(summary['top1_accuracy'])}  top-3 {number(summary['top3_accuracy'])}  "
        f"max delay {number(summary['max_detection_delay'])} partition(s)  "
        f"false consequential on controls {summary['false_consequential_on_controls']}"
    )
    return "\n".join(lines)
