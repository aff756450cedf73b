"""``corrmon evaluate``: generate suites over several specs, run them on the fast path, and run a
stratified subset through the full ``corrmon simulate`` path too, checking that both agree.

Layout of ``OUT``: ``specs/<dataset>/`` the generated scenarios and their ``manifest.json``;
``runs/<scenario>/report.json`` the fast path's reports (strata in ``labels``), what ``corrmon
score OUT/runs --table`` reads; ``full/<scenario>/`` the full simulations of the subset;
``agreement.json`` the comparison per subset scenario (top cause, detection partition and
classification of each incident, in detection order).
"""

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.scenarios.generate import generate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_SPECS = (
    EXAMPLES / "flights" / "flights_at_departure.yaml",
    EXAMPLES / "seattle" / "seattle_weather.yaml",
)


def registered_specs() -> list[Path]:
    """Every example spec: ``dagster_corrmon.examples.SPECS`` when the package registers
    them (a mapping name → path, or a sequence of paths), else the two reference specs."""
    from dagster_corrmon import examples

    registry: Any = getattr(examples, "SPECS", None)
    if isinstance(registry, Mapping):
        return [Path(str(path)) for path in registry.values()]
    if isinstance(registry, Sequence) and not isinstance(registry, str):
        return [Path(str(path)) for path in registry]
    return list(DEFAULT_SPECS)


def resolve_specs(argument: str) -> list[Path]:
    """``all`` or a comma-separated list of spec paths."""
    if argument == "all":
        return registered_specs()
    paths = [Path(part.strip()) for part in argument.split(",") if part.strip()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise ConfigError(f"evaluate: --specs names no such spec file: {', '.join(missing) or '-'}")
    return paths


def incident_signature(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What both paths must agree on: per incident (in detection order), its detection
    partition, classification, consequential flag and top cause."""
    rows = []
    for incident in report.get("incidents", []):
        causes = sorted(incident.get("causes", []), key=lambda c: c["rank"])
        top = causes[0] if causes else {}
        rows.append(
            {
                "detected": incident.get("detected_partition") or incident.get("onset_partition"),
                "provisional": bool(incident.get("provisional")),
                "classification": incident.get("classification"),
                "consequential": bool(incident.get("consequential")),
                "top_cause": [top.get("asset"), top.get("column"), top.get("kind")],
            }
        )
    return sorted(rows, key=lambda r: (str(r["detected"]), r["provisional"]))


def stratified_subset(manifest: Mapping[str, Any], count: int) -> list[str]:
    """``count`` scenarios covering as many (kind, tier) strata as possible, controls included."""
    chosen: list[str] = []
    seen: set[tuple[str, ...]] = set()
    scenarios = manifest.get("scenarios", {})
    for name, entry in sorted(scenarios.items()):
        stratum = tuple(sorted(f"{s['kind']}:{s['tier']}" for s in entry["strata"].values()))
        if stratum not in seen and len(chosen) < count:
            seen.add(stratum)
            chosen.append(name)
    return chosen


def evaluate(
    specs: Sequence[Path],
    *,
    n: int,
    seed: int,
    out_dir: Path,
    full: int = 2,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate ``n`` scenarios per spec, fast-simulate all, fully simulate ``full`` per spec."""
    from dagster_corrmon.scenarios.fast import simulate_fast
    from dagster_corrmon.scenarios.simulate import simulate
    from dagster_corrmon.scenarios.spec import load_scenario

    agreement: dict[str, Any] = {}
    for spec in specs:
        folder = out_dir / "specs" / spec.stem
        manifest = generate(spec, n=n, seed=seed, out_dir=folder, progress=progress)
        for name, entry in manifest["scenarios"].items():
            scenario = load_scenario(folder / entry["file"])
            run = out_dir / "runs" / name
            report = simulate_fast(scenario, out_dir=run, progress=lambda _: None)
            report["labels"] = {k: entry[k] for k in ("dataset", "cadence", "tiers")}
            (run / "report.json").write_text(json.dumps(report, indent=2, default=str))
            progress(f"  {name}: fast path {report['elapsed_seconds']} s")
        for name in stratified_subset(manifest, full):
            scenario = load_scenario(folder / manifest["scenarios"][name]["file"])
            full_report = simulate(
                scenario, out_dir=out_dir / "full" / name, progress=progress, existing="overwrite"
            )
            fast_report = json.loads((out_dir / "runs" / name / "report.json").read_text())
            fast, slow = incident_signature(fast_report), incident_signature(full_report)
            agreement[name] = {"agree": fast == slow, "fast": fast, "full": slow}
            progress(f"  {name}: the fast and full paths {'agree' if fast == slow else 'DIFFER'}")
    (out_dir / "agreement.json").write_text(json.dumps(agreement, indent=2, default=str))
    return agreement
