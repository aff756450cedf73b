"""``corrmon profile`` and ``corrmon drift``: profile a reference table, test a batch for drift.

::

    corrmon profile reference.parquet --out reference.json [--batch-column day]
    corrmon drift --reference-profile reference.json --current today.csv --format json
    corrmon drift --reference reference.parquet --current today.csv --columns dep_delay,carrier

The JSON output is a list with one object per column whose first keys are
``column, method, statistic, p_value, threshold, drifted`` (then ``decision``, ``column_type``,
row counts, ``approximate``, ``error_bound``, ``current_null_fraction``, ``current_mean``).
"""

import json
import sys
from pathlib import Path

import click

from dagster_corrmon.core.drift import (
    METHODS,
    DriftResult,
    calibrate_profile,
    detect_drift,
    detect_drift_from_profile,
)
from dagster_corrmon.core.profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    DatasetProfile,
    build_reference_profile,
)
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.tables import read_table


def parse_columns(text: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]``; None stays None (all columns)."""
    if text is None:
        return None
    columns = [name.strip() for name in text.split(",") if name.strip()]
    if not columns:
        raise ConfigError(f"--columns {text!r} names no column")
    return columns


_COLUMNS_OPTION = click.option(
    "--columns",
    metavar="A,B,...",
    default=None,
    help="Comma-separated columns to use (default: all columns of the reference).",
)


@click.command("profile")
@click.argument("data", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the JSON profile.",
)
@_COLUMNS_OPTION
@click.option(
    "--bins",
    default=DEFAULT_BINS,
    show_default=True,
    help="Quantile bins per numeric column.",
)
@click.option(
    "--max-categories",
    default=DEFAULT_MAX_CATEGORIES,
    show_default=True,
    help="Categories kept per categorical column; rarer ones share an 'other' bucket.",
)
@click.option(
    "--batch-column",
    metavar="COLUMN",
    default=None,
    help="Cut the reference into batches by this column's values (e.g. a date) and store how "
    "far each batch drifts from the whole: distances are then judged above that noise floor.",
)
def profile_command(
    *,
    data: Path,
    out: Path,
    columns: str | None,
    bins: int,
    max_categories: int,
    batch_column: str | None,
) -> None:
    """Profile DATA (CSV or Parquet) as a drift reference and write it to --out as JSON."""
    selected = parse_columns(columns)
    wanted = selected
    if selected is not None and batch_column is not None and batch_column not in selected:
        wanted = [*selected, batch_column]
    frame = read_table(data, columns=wanted)
    if batch_column is not None and batch_column not in frame.columns:
        raise ConfigError(
            f"--batch-column {batch_column!r} is not a column of {data} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    profiled = selected
    if profiled is None and batch_column is not None:
        profiled = [str(c) for c in frame.columns if c != batch_column]
    profile = build_reference_profile(
        frame, columns=profiled, bins=bins, max_categories=max_categories
    )
    summary = f"profiled {len(profile.columns)} columns of {profile.rows} rows from {data}"
    if batch_column is not None:
        groups = frame.groupby(batch_column, sort=True, dropna=True)
        profile = calibrate_profile(profile, (batch for _, batch in groups))
        summary += (
            f"; noise floors for {len(profile.batch_statistics)} column(s) from "
            f"{groups.ngroups} batches of {batch_column!r}"
        )
    profile.save(out)
    click.echo(f"{summary} → {out}")


def _format_number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def format_table(results: list[DriftResult]) -> str:
    """Aligned plain-text table, one line per column, then a one-line summary."""
    header = ("column", "type", "method", "statistic", "p_value", "threshold", "drift")
    rows = [
        (
            result.column,
            result.column_type,
            result.method,
            ("~" if result.approximate else "") + _format_number(result.statistic),
            _format_number(result.p_value, 3),
            _format_number(result.threshold, 3),
            "DRIFT" if result.drifted else "ok",
        )
        for result in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {3, 4, 5}  # right-align numbers

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    drifted = sum(result.drifted for result in results)
    lines = [line(header), line(tuple("-" * width for width in widths))]
    lines += [line(row) for row in rows]
    lines.append(f"{drifted} of {len(results)} columns drifted")
    if any(result.approximate for result in results):
        lines.append(
            "~ estimated from the stored reference profile (see error_bound in --format json)"
        )
    return "\n".join(lines)


@click.command("drift")
@click.option(
    "--reference",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Reference table (CSV or Parquet).",
)
@click.option(
    "--reference-profile",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Reference profile written by `corrmon profile` (instead of --reference).",
)
@click.option(
    "--current",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Current batch (CSV or Parquet).",
)
@_COLUMNS_OPTION
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=None,
    help="Use this test for every column (default: Evidently's automatic choice).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Threshold for every column (default: the method's own).",
)
@click.option(
    "--fail-on-drift",
    is_flag=True,
    default=False,
    help="Exit with status 1 when any column drifted.",
)
def drift_command(
    *,
    reference: Path | None,
    reference_profile: Path | None,
    current: Path,
    columns: str | None,
    output_format: str,
    method: str | None,
    threshold: float | None,
    fail_on_drift: bool,
) -> None:
    """Test each column of --current for drift against a reference table or profile."""
    if (reference is None) == (reference_profile is None):
        raise ConfigError("give exactly one of --reference and --reference-profile")
    selected = parse_columns(columns)
    if reference_profile is not None:
        profile = DatasetProfile.load(reference_profile)
        for name in selected or []:
            profile.column(name)  # a clear error naming the profile's columns
        current_frame = read_table(current, columns=selected or list(profile.columns))
        results = detect_drift_from_profile(
            profile, current_frame, columns=selected, method=method, threshold=threshold
        )
    else:
        assert reference is not None
        reference_frame = read_table(reference, columns=selected)
        wanted = selected or [str(name) for name in reference_frame.columns]
        current_frame = read_table(current, columns=wanted)
        results = detect_drift(
            reference_frame, current_frame, columns=selected, method=method, threshold=threshold
        )
    if output_format == "json":
        click.echo(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        click.echo(format_table(results))
    if fail_on_drift and any(result.drifted for result in results):
        # Not click's Exit: cli.main runs click with standalone_mode=False, which turns an
        # Exit into a return value that main() then drops.
        sys.exit(1)
