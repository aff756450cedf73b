"""How often the drift check fails on clean partitions, per dataset and cadence.

Each spec's batches come from the pipeline's own feature code (no Dagster runs), the model is
trained on the spec's training window, and every later partition is judged by the drift check's
``judge_drift`` in order, recorded in a temporary SQLite store so each sees the ones before it.

Usage (from the repository root)::

    .venv/bin/python benchmarks/drift_false_fail.py            # all (~12 min on 2 cores)
    .venv/bin/python benchmarks/drift_false_fail.py --only seattle
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster_corrmon.checks._common import finish
from dagster_corrmon.checks.drift import judge_drift, recent_history
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.resource import CorrmonResource, MaterializationTags
from dagster_corrmon_tests.feature_batches import load_spec_with, pipeline_batches

FLIGHTS = "dagster_corrmon/examples/flights/flights_at_departure.yaml"
SEATTLE = "dagster_corrmon/examples/seattle/seattle_weather.yaml"
CASES = {
    "flights daily": (FLIGHTS, {}),
    "flights weekly": (
        FLIGHTS,
        {
            "partitioning": {"cadence": "weekly", "start": "2013-01-07"},
            "training": {"start": "2013-01-07", "end": "2013-03-04"},
        },
    ),
    "seattle monthly": (SEATTLE, {}),
    "seattle weekly": (
        SEATTLE,
        {
            "partitioning": {"cadence": "weekly", "start": "2012-01-02", "end": "2015-12-28"},
            "training": {"start": "2012-01-02", "end": "2012-12-31"},
        },
    ),
}


def false_fail(path: str, overrides: dict) -> tuple[int, int, int]:
    """(clean partitions judged, failed, failed ERROR)."""
    spec = load_spec_with(path, **overrides)
    batches = pipeline_batches(spec)
    artifact = batches.train()
    with tempfile.TemporaryDirectory() as folder:
        corrmon = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
        judged = failed = errors = 0
        for key in batches.scored:
            frame = batches.features[key]
            if len(frame) == 0:
                continue
            start, end = batches.windows[key]
            tags = MaterializationTags(
                asset_key="features",
                partition=key,
                run_id="bench",
                data_version=None,
                code_version=None,
                event_time=start,
                observed_at=end,
            )
            outcome = judge_drift(
                frame,
                artifact.reference_profile,
                tags=tags,
                importances=artifact.feature_importances,
                settings={
                    "columns": list(spec.features.columns),
                    "method": None,
                    "per_column_method": None,
                    "threshold": None,
                    "per_column_threshold": None,
                },
                share_threshold=spec.monitoring.consequential_importance,
                consequential=Severity.ERROR,
                benign=Severity.WARN,
                recent=recent_history(corrmon.get_store(), tags),
            )
            finish(
                corrmon, tags, check_name="corrmon_drift", kind=SignalKind.DRIFT, outcome=outcome
            )
            judged += 1
            failed += not outcome.passed
            errors += (not outcome.passed) and outcome.severity is Severity.ERROR
    return judged, failed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    print("| dataset, cadence | clean partitions | failed | failed ERROR | seconds |")
    print("|---|---|---|---|---|")
    for name, (path, overrides) in CASES.items():
        if args.only and args.only not in name:
            continue
        began = time.perf_counter()
        judged, failed, errors = false_fail(path, overrides)
        print(
            f"| {name} | {judged} | {failed} ({failed / judged:.1%}) | "
            f"{errors} ({errors / judged:.1%}) | {time.perf_counter() - began:.0f} |"
        )


if __name__ == "__main__":
    main()
