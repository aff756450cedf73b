"""Feeds from tables stored in several files, cut by rows, or with their own missing-value marks.

Oracle: pandas reading the same small files directly. Every file here is written by the test.
"""

import datetime as dt
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dagster_corrmon.errors import InputDataError
from dagster_corrmon.pipeline import SpecError, load_spec
from dagster_corrmon.pipeline.sources import clear_source_cache, feed_batch

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_source_cache()  # the files of each test are new: never serve another test's table
    yield
    clear_source_cache()


def _spec(tmp_path: Path, sources: str, *, features: str = "numeric: [x]") -> Path:
    text = textwrap.dedent(
        """\
        name: layouts
        partitioning: {{cadence: daily, start: 2024-01-01, end: 2024-01-05}}
        sources:
        {sources}
        row_key: [id]
        target: {{column: y, task: regression}}
        features: {{{features}}}
        training: {{start: 2024-01-01, end: 2024-01-03}}
        """
    ).format(sources=textwrap.indent(textwrap.dedent(sources), "  "), features=features)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _day(day: int) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(2024, 1, day, tzinfo=UTC), dt.datetime(2024, 1, day + 1, tzinfo=UTC)


def test_parts_are_stacked_and_a_side_file_merges_on_its_key(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "id": [1, 2],
            "t": ["2024-01-01 01:00", "2024-01-02 01:00"],
            "x": [1.0, 2.0],
            "y": [10, 20],
        }
    ).to_csv(tmp_path / "reference.csv", index=False)
    pd.DataFrame(
        {"id": [3, 4], "t": ["2024-01-02 05:00", "2024-01-03 01:00"], "x": [3.0, 4.0]}
    ).to_parquet(tmp_path / "analysis.pq")
    pd.DataFrame({"id": [4, 3], "y": [40, 30]}).to_csv(
        tmp_path / "analysis_labels.csv", index=False
    )
    spec = load_spec(
        _spec(
            tmp_path,
            """\
            - name: events
              parts:
                - {path: reference.csv}
                - {path: analysis.pq, merge: {path: analysis_labels.csv}, on: [id]}
              time_column: t
            """,
        )
    )
    source = spec.sources[0]
    assert "reference.csv + " in source.location and "merged with" in source.location
    day2 = feed_batch(source, *_day(2))
    assert day2["id"].tolist() == [2, 3]
    assert day2["x"].tolist() == [2.0, 3.0]
    assert day2["y"].tolist() == [20, 30]  # 30 from the side file, joined by id
    assert feed_batch(source, *_day(3))["y"].tolist() == [40]


def test_a_side_file_with_several_rows_per_key_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1], "t": ["2024-01-01"], "x": [1.0]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"id": [1, 1], "y": [1, 2]}).to_csv(tmp_path / "labels.csv", index=False)
    spec = load_spec(
        _spec(
            tmp_path,
            """\
            - name: events
              parts: [{path: a.csv, merge: {path: labels.csv}, on: [id]}]
              time_column: t
            """,
        )
    )
    with pytest.raises(InputDataError, match=r"several rows per id"):
        feed_batch(spec.sources[0], *_day(1))


def test_a_merge_needs_its_keys(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="merge and on go together"):
        load_spec(
            _spec(
                tmp_path,
                """\
                - name: events
                  parts: [{path: a.csv, merge: {path: labels.csv}}]
                  time_column: t
                """,
            )
        )
    with pytest.raises(SpecError, match="exactly one of path, package_data, nycflights13, parts"):
        load_spec(
            _spec(
                tmp_path,
                """\
                - name: events
                  path: a.csv
                  parts: [{path: a.csv}]
                  time_column: t
                """,
            )
        )


def test_where_cuts_one_feed_per_station_and_na_values_mark_missing(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "t": ["2024-01-01 01:00"] * 4,
            "station": ["A", "B", "A", "C"],
            "x": ["1.5", "nil", "nil", "4"],
            "y": [1, 2, 3, 4],
        }
    ).to_csv(tmp_path / "readings.csv", index=False)
    spec = load_spec(
        _spec(
            tmp_path,
            """\
            - name: events
              path: readings.csv
              na_values: [nil]
              where: {station: [A, C]}
              time_column: t
              columns: [id, t, x, y]
              row_id: row
            """,
        )
    )
    batch = feed_batch(spec.sources[0], *_day(1))
    assert batch["id"].tolist() == [1, 3, 4]
    assert batch["row"].tolist() == [0, 2, 3]  # the file's row numbers, not the kept rows'
    assert batch["x"].dtype == float
    assert batch["x"].isna().tolist() == [False, True, False]
    assert batch["x"].dropna().tolist() == [1.5, 4.0]
    # without na_values the same file is read as pandas reads it: 'nil' is a string
    plain = load_spec(
        _spec(tmp_path, "- {name: events, path: readings.csv, where: {station: B}, time_column: t}")
    )
    assert feed_batch(plain.sources[0], *_day(1))["x"].tolist() == ["nil"]


def test_where_on_an_unknown_column_names_it(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1], "t": ["2024-01-01"], "x": [1.0], "y": [1]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    spec = load_spec(
        _spec(tmp_path, "- {name: events, path: a.csv, where: {station: A}, time_column: t}")
    )
    with pytest.raises(InputDataError, match=r"'where' column 'station'"):
        feed_batch(spec.sources[0], *_day(1))
