"""``corrmon profile`` / ``corrmon drift`` through the real entry point, including bad input."""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.cli.main import main
from dagster_corrmon.core.drift import detect_drift
from dagster_corrmon.tables import read_table
from dagster_corrmon_tests.test_drift_calibration import clustered_batch


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``corrmon argv…``; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(arg) for arg in argv])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(21)

    def frame(rows: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "amount": rng.normal(100 + 40 * shift, 15, rows),
                "items": rng.integers(1, 40, rows),
                "shop": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]),
                "seen_at": pd.date_range("2024-01-01", periods=rows, freq="min", tz="UTC"),
            }
        )

    reference, current = frame(3000, 0.0), frame(2000, 1.0)
    paths = {
        "reference": tmp_path / "reference.csv",
        "reference_gz": tmp_path / "reference.csv.gz",
        "current": tmp_path / "current.parquet",
    }
    reference.to_csv(paths["reference"], index=False)
    reference.to_csv(paths["reference_gz"], index=False, compression="gzip")
    current.to_parquet(paths["current"])
    return paths


def test_drift_json_from_raw_reference(capsys, tables) -> None:
    code, out, err = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", tables["current"],
        "--format", "json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [row["column"] for row in rows] == ["amount", "items", "shop", "seen_at"]
    assert list(rows[0])[:6] == ["column", "method", "statistic", "p_value", "threshold", "drifted"]
    by_column = {row["column"]: row for row in rows}
    assert by_column["amount"]["method"] == "wasserstein" and by_column["amount"]["drifted"]
    assert by_column["shop"]["method"] == "jensenshannon" and not by_column["shop"]["drifted"]
    # The CLI reports exactly what the library computes on the same files.
    expected = detect_drift(read_table(tables["reference"]), read_table(tables["current"]))
    assert [row["statistic"] for row in rows] == [result.statistic for result in expected]


def test_profile_then_drift_from_the_profile(capsys, tables, tmp_path) -> None:
    profile_path = tmp_path / "ref.json"
    code, out, err = _run(
        capsys, "profile", tables["reference_gz"], "--out", profile_path,
        "--columns", "amount,shop",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "profiled 2 columns of 3000 rows" in out
    assert json.loads(profile_path.read_text())["schema"] == "corrmon.profile"
    code, out, err = _run(
        capsys, "drift", "--reference-profile", profile_path, "--current", tables["current"],
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "column", "type", "method", "statistic", "p_value", "threshold", "drift",
    ]  # fmt: skip
    amount = next(line for line in lines if line.startswith("amount"))
    assert amount.split()[:3] == ["amount", "numerical", "wasserstein"] and "DRIFT" in amount
    # the columns of the table line up
    assert len({line.index("wasserstein") for line in lines if "wasserstein" in line}) == 1
    assert lines[-2] == "1 of 2 columns drifted" or lines[-1] == "1 of 2 columns drifted"


def test_fail_on_drift_sets_the_exit_status(capsys, tables) -> None:
    code, _, _ = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", tables["current"],
        "--columns", "amount", "--fail-on-drift",
    )  # fmt: skip
    assert code == 1
    code, _, _ = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", tables["reference"],
        "--fail-on-drift", "--method", "psi", "--threshold", "0.2",
    )  # fmt: skip
    assert code == 0


def _assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("corrmon: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_missing_file(capsys, tables, tmp_path) -> None:
    missing = tmp_path / "nope.csv"
    code, out, err = _run(capsys, "drift", "--reference", missing, "--current", tables["current"])
    _assert_one_line_error(code, out, err, "nope.csv: no such file")


def test_unknown_column(capsys, tables) -> None:
    code, out, err = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", tables["current"],
        "--columns", "amount,colour",
    )  # fmt: skip
    _assert_one_line_error(code, out, err, "no column 'colour'", "columns: amount, items")


def test_empty_table(capsys, tables, tmp_path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("amount,items,shop,seen_at\n", encoding="utf-8")
    code, out, err = _run(capsys, "drift", "--reference", tables["reference"], "--current", empty)
    _assert_one_line_error(code, out, err, "empty.csv: the table has no rows")
    blank = tmp_path / "blank.csv"
    blank.write_text("", encoding="utf-8")
    code, out, err = _run(capsys, "profile", blank, "--out", tmp_path / "x.json")
    _assert_one_line_error(code, out, err, "blank.csv: the table is empty")


def test_incompatible_dtypes(capsys, tables, tmp_path) -> None:
    changed = read_table(tables["current"])
    changed["amount"] = changed["amount"].map(lambda value: f"{value:.2f} EUR")
    changed_path = tmp_path / "changed.parquet"
    changed.to_parquet(changed_path)
    code, out, err = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", changed_path
    )
    _assert_one_line_error(
        code, out, err, "column 'amount' is numeric in the reference but categorical"
    )


def test_unreadable_and_unknown_formats(capsys, tables, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(b"this is not gzip")
    code, out, err = _run(capsys, "drift", "--reference", corrupt, "--current", tables["current"])
    _assert_one_line_error(code, out, err, "corrupt.csv.gz: cannot read as csv")
    fake_parquet = tmp_path / "fake.parquet"
    fake_parquet.write_text("a,b\n1,2\n", encoding="utf-8")
    code, out, err = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", fake_parquet
    )
    _assert_one_line_error(code, out, err, "fake.parquet: cannot read as parquet")
    odd = tmp_path / "table.xlsx"
    odd.write_text("x", encoding="utf-8")
    code, out, err = _run(capsys, "profile", odd, "--out", tmp_path / "x.json")
    _assert_one_line_error(code, out, err, "table.xlsx: unknown table format")


def test_bad_profile_file_and_option_combinations(capsys, tables, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}', encoding="utf-8")
    code, out, err = _run(
        capsys, "drift", "--reference-profile", bad, "--current", tables["current"]
    )
    _assert_one_line_error(code, out, err, "bad.json: not a corrmon profile")
    code, out, err = _run(capsys, "drift", "--current", tables["current"])
    _assert_one_line_error(code, out, err, "exactly one of --reference and --reference-profile")
    code, out, err = _run(
        capsys, "drift", "--reference", tables["reference"], "--current", tables["current"],
        "--method", "ks", "--threshold", "5",
    )  # fmt: skip
    _assert_one_line_error(code, out, err, "must be in (0, 1]")


def test_csv_datetimes_read_like_parquet(tables) -> None:
    from_csv = read_table(tables["reference"])
    assert isinstance(from_csv["seen_at"].dtype, pd.DatetimeTZDtype)
    with gzip.open(tables["reference_gz"], "rt") as handle:
        assert handle.readline().startswith("amount,items,shop,seen_at")
    assert read_table(tables["reference_gz"]).equals(from_csv)


def test_profile_batch_column_calibrates_the_thresholds(capsys, tmp_path) -> None:
    rng = np.random.default_rng(11)
    days = [clustered_batch(rng).assign(day=f"2024-01-{d:02d}") for d in range(1, 21)]
    reference = tmp_path / "reference.csv"
    pd.concat(days, ignore_index=True).to_csv(reference, index=False)
    current = tmp_path / "today.csv"
    clustered_batch(rng).to_csv(current, index=False)  # a new day of the same process
    plain, calibrated = tmp_path / "plain.json", tmp_path / "calibrated.json"
    code, out, err = _run(
        capsys, "profile", reference, "--out", calibrated, "--batch-column", "day"
    )
    assert (code, err) == (0, "")
    assert "noise floors for 2 column(s) from 20 batches of 'day'" in out
    stored = json.loads(calibrated.read_text())
    assert [c["name"] for c in stored["columns"]] == ["humidity", "city"]  # not the batch column
    assert sorted(stored["batch_statistics"]) == ["city", "humidity"]
    assert _run(capsys, "profile", reference, "--out", plain, "--columns", "humidity,city")[0] == 0

    def verdicts(profile: Path) -> dict[str, tuple[bool, float]]:
        code, out, _ = _run(
            capsys, "drift", "--reference-profile", str(profile), "--current", str(current),
            "--format", "json",
        )  # fmt: skip
        assert code == 0
        return {row["column"]: (row["drifted"], row["threshold"]) for row in json.loads(out)}

    assert verdicts(plain) == {"humidity": (True, 0.1), "city": (True, 0.1)}
    after = verdicts(calibrated)
    assert not after["humidity"][0] and not after["city"][0]
    assert after["humidity"][1] > 0.1 and after["city"][1] > 0.1
    code, out, err = _run(capsys, "profile", reference, "--out", plain, "--batch-column", "date")
    _assert_one_line_error(code, out, err, "--batch-column 'date' is not a column", "day")
