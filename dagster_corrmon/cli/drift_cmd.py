"""``corrmon profile`` and ``corrmon drift``: profile a reference table, test a batch for drift.

::

    corrmon profile reference.parquet --out reference.json [--batch-column day]
    corrmon drift --reference-profile reference.json --current today.csv --format json
    corrmon drift --reference reference.parquet --current today.csv --columns dep_delay,carrier

The JSON output is a list with one object per column whose first keys are
``column, method, statistic, p_value, threshold, drifted`` (then ``decision``, ``column_type``,
row counts, ``approximate``, ``error_bound``, ``current_null_fraction``, ``current_mean``).
A column that cannot be tested (no value in the current batch) has ``drifted: null`` and an
``error``. The JSON is strict: a non-finite number is ``null``, never ``NaN``.

Against ``--reference-profile`` the current file is streamed in record batches
(:mod:`dagster_corrmon.streaming`): memory stays bounded whatever its size.
"""

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from dagster_corrmon.core.drift import (
    METHODS,
    DriftResult,
    calibrate_profile,
    detect_drift,
)
from dagster_corrmon.core.profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    DatasetProfile,
    build_reference_profile,
)
from dagster_corrmon.errors import ConfigError, InputDataError
from dagster_corrmon.streaming import (
    ColumnFailure,
    ColumnOutcome,
    drift_from_profile_file,
    per_column,
)
from dagster_corrmon.tables import read_table


def parse_columns(text: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]``; None stays None (all columns). A repeated name is an error."""
    if text is None:
        return None
    columns = [name.strip() for name in text.split(",") if name.strip()]
    if not columns:
        raise ConfigError(f"--columns {text!r} names no column")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise ConfigError(f"--columns names {', '.join(map(repr, repeated))} more than once")
    return columns


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): data-derived names must
    not move the cursor, recolour or clear the terminal, or break a table's lines."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


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
    if not out.parent.is_dir():  # before the work, not after it
        raise InputDataError(f"--out {out}: directory {out.parent} does not exist")
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
    try:
        profile.save(out)
    except OSError as error:
        raise InputDataError(f"--out {out}: cannot write the profile: {error}") from error
    click.echo(f"{summary} → {out}")


def _format_number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _table_row(outcome: ColumnOutcome) -> tuple[str, ...]:
    if isinstance(outcome, ColumnFailure):
        return (printable(outcome.column), "-", "-", "-", "-", "-", "ERROR")
    return (
        printable(outcome.column),
        outcome.column_type,
        outcome.method,
        ("~" if outcome.approximate else "") + _format_number(outcome.statistic),
        _format_number(outcome.p_value, 3),
        _format_number(outcome.threshold, 3),
        "DRIFT" if outcome.drifted else "ok",
    )


def format_table(outcomes: Sequence[ColumnOutcome]) -> str:
    """Aligned plain-text table, one line per column, then a one-line summary.

    Column names come from data: control characters in them are escaped (:func:`printable`).
    """
    header = ("column", "type", "method", "statistic", "p_value", "threshold", "drift")
    rows = [_table_row(outcome) for outcome in outcomes]
    results = [outcome for outcome in outcomes if isinstance(outcome, DriftResult)]
    failures = [outcome for outcome in outcomes if isinstance(outcome, ColumnFailure)]
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
    summary = f"{drifted} of {len(outcomes)} columns drifted"
    if failures:
        summary += f", {len(failures)} could not be tested"
    lines.append(summary)
    lines += [f"ERROR {printable(failure.error)}" for failure in failures]
    if any(result.approximate for result in results):
        lines.append(
            "~ estimated from the stored reference profile (see error_bound in --format json)"
        )
    return "\n".join(lines)


def _strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


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
    outcomes: list[ColumnOutcome]
    if reference_profile is not None:
        profile = DatasetProfile.load(reference_profile)
        outcomes = drift_from_profile_file(
            profile, current, columns=selected, method=method, threshold=threshold
        )
    else:
        assert reference is not None
        reference_frame = read_table(reference, columns=selected)
        wanted = selected or [str(name) for name in reference_frame.columns]
        current_frame = read_table(current, columns=wanted)

        def score(name: str) -> DriftResult:
            (result,) = detect_drift(
                reference_frame, current_frame, columns=[name], method=method, threshold=threshold
            )
            return result

        outcomes = per_column(wanted, score)
    if output_format == "json":
        rows = [_strict_json(outcome.to_dict()) for outcome in outcomes]
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
    else:
        click.echo(format_table(outcomes))
    if fail_on_drift and any(
        isinstance(outcome, ColumnFailure) or outcome.drifted for outcome in outcomes
    ):
        # Not click's Exit: cli.main runs click with standalone_mode=False, which turns an
        # Exit into a return value that main() then drops.
        sys.exit(1)
