"""Bad input to the CLI is one `corrmon: error: …` line with exit code 2 — never a traceback,
never a second line, never a raw control character on the terminal — and loses nothing stored."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from markdown_it import MarkdownIt

import dagster_corrmon as cm
from dagster_corrmon import metadata as md
from dagster_corrmon.cli.main import error_line
from dagster_corrmon.errors import StoreError
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests.cli_run import corrmon

BINARY = bytes(range(256)) * 4


def _one_error_line(code: int, printed: str) -> str:
    assert code == 2, printed
    assert printed.startswith("corrmon: error: ") and printed.count("\n") == 1, printed
    assert "Traceback" not in printed
    return printed


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'corrmon.db'}"
    CorrmonStore(url).close()
    return url


def test_a_binary_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_bytes(BINARY)
    printed = _one_error_line(*corrmon("simulate", str(scenario), "--out", str(tmp_path / "o")))
    assert str(scenario) in printed and "UTF-8" in printed


def test_a_binary_rules_file(tmp_path: Path, store_url: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(BINARY)
    printed = _one_error_line(
        *corrmon("backtest", "--rules", str(rules), "--database-url", store_url)
    )
    assert str(rules) in printed


def test_a_duration_too_long_for_a_timedelta(store_url: str) -> None:
    printed = _one_error_line(
        *corrmon("db", "prune", "--older-than", "9999999999d", "--database-url", store_url)
    )
    assert "9999999999d" in printed


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[1, 2, 3]", "a JSON list"), ('{"anything": 1}', "no version"), ("\x00\xff", "")],
)
def test_score_takes_only_simulation_reports(tmp_path: Path, content: str, expected: str) -> None:
    report = tmp_path / "report.json"
    report.write_bytes(content.encode("latin-1"))
    printed = _one_error_line(*corrmon("score", str(report)))
    assert "is not a corrmon report" in printed and expected in printed


def test_a_usage_error_is_one_line(store_url: str) -> None:
    _one_error_line(*corrmon("db", "prune", "--older-than", "soon", "--database-url", store_url))


def test_control_characters_and_newlines_are_escaped() -> None:
    line = error_line(ValueError("column 'a\nb\x1b[31m' is unknown"))
    assert "\n" not in line and "\x1b" not in line
    assert line == "column 'a b\\x1b[31m' is unknown"


def test_a_missing_store_file_is_refused_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "corrmn.db"
    for command in (["incidents", "list"], ["db", "info"], ["explain", "model"]):
        printed = _one_error_line(*corrmon(*command, "--database-url", f"sqlite:///{typo}"))
        assert "does not exist" in printed
    assert not typo.exists()


@pytest.mark.postgres
def test_a_nul_in_an_argument_on_postgresql(postgres_url: str) -> None:
    with CorrmonStore(postgres_url) as store, pytest.raises(StoreError, match="NUL character"):
        store.get_incident("inc\x00x")
    printed = _one_error_line(
        *corrmon("incidents", "show", "inc\x00x", "--database-url", postgres_url)
    )
    assert "NUL" in printed and "\x00" not in printed


def test_the_quality_summary_escapes_data_derived_names() -> None:
    hostile = "temp|[click](https://evil.example)<b>"

    @dg.asset
    def feed() -> pd.DataFrame:
        return pd.DataFrame({hostile: [None, None, 1.0, None]})

    checks = cm.build_data_quality_checks(
        assets=[feed], completeness={hostile: 0.05}, baseline=False, volume=False
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [feed, *checks],
            instance=instance,
            resources={"corrmon": cm.CorrmonResource(database_url="sqlite://")},
        )
        evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    assert failed
    summary = failed[0].metadata[md.SUMMARY].value
    rendered = MarkdownIt("commonmark").enable("table").render(str(summary))
    assert "<a " not in rendered and "<b>" not in rendered
    assert "temp|[click](https://evil.example)&lt;b&gt;" in rendered
