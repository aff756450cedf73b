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

from dagster_corrmon.core.signal import Severity
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon_tests.feature_batches import (
    judge_drift_in_order,
    load_spec_with,
    pipeline_batches,
)

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
    batches = pipeline_batches(load_spec_with(path, **overrides))
    artifact = batches.train()
    with tempfile.TemporaryDirectory() as folder:
        corrmon = CorrmonResource(database_url=f"sqlite:///{folder}/corrmon.db")
        outcomes = judge_drift_in_order(batches, artifact, corrmon).values()
    failed = [o for o in outcomes if not o.passed]
    return len(outcomes), len(failed), sum(o.severity is Severity.ERROR for o in failed)


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
