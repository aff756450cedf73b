"""``corrmon db …`` and ``corrmon incidents …`` end to end, on a real SQLite store in tmp_path."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dagster_corrmon.cli.db_cmd import parse_duration
from dagster_corrmon.cli.main import cli, main
from dagster_corrmon.core.incident import AffectedRun, Cause, Incident, IncidentStatus
from dagster_corrmon.core.signal import Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import SCHEMA_VERSION, CorrmonStore
from dagster_corrmon.store import schema as store_schema


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'corrmon.db'}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real entry point; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def signal(days_ago: int, *, now: datetime, name: str = "roc_auc") -> Signal:
    moment = now - timedelta(days=days_ago)
    return Signal(
        kind=SignalKind.METRIC,
        asset_key="model",
        name=name,
        event_time=moment,
        partition=moment.date().isoformat(),
        value=0.8,
    )


def incident(incident_id: str, *, cited: tuple[str, ...] = (), model: str = "model") -> Incident:
    return Incident(
        id=incident_id,
        model_asset=model,
        metric="roc_auc",
        classification="data_fault",
        baseline_value=0.91,
        observed_value=0.74,
        detected_time=datetime(2024, 3, 4, 2, tzinfo=UTC),
        summary="nulls in dep_delay",
        causes=(
            Cause(
                rank=1,
                kind="data_quality",
                asset_key="raw/flights",
                column="dep_delay",
                score=0.93,
                p_value=0.0012,
                repair_recovery=0.87,
                data_versions=("dv-bad",),
                evidence={"null_fraction_after": 0.4},
            ),
        ),
        affected_runs=(
            AffectedRun(run_id="run-9", asset_key="predictions", role="scoring", at_risk=True),
        ),
        cited_signal_keys=cited,
    )


def test_help_lists_the_store_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "db " in result.output
    assert "incidents " in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12h", timedelta(hours=12)), ("180d", timedelta(days=180)), ("2W", timedelta(weeks=2))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "5", "d", "5m", "-3d", "1.5d", ""])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


def test_upgrade_then_info(capsys: pytest.CaptureFixture[str], url: str) -> None:
    # a reader never creates a store: a mistyped path is an error, not an empty store
    code, _, err = run(capsys, "db", "info", "--database-url", url)
    assert code == 2
    assert err.startswith("corrmon: error: no corrmon store at ") and "does not exist" in err
    code, _, err = run(capsys, "incidents", "list", "--database-url", url)
    assert code == 2 and "does not exist" in err
    assert not Path(url.removeprefix("sqlite:///")).exists()

    code, out, _ = run(capsys, "db", "upgrade", "--database-url", url)
    assert code == 0
    assert f"created the corrmon store (schema version {SCHEMA_VERSION})" in out
    code, out, _ = run(capsys, "db", "upgrade", "--database-url", url)
    assert "already at schema version" in out

    now = datetime(2024, 6, 1, tzinfo=UTC)
    with CorrmonStore(url) as store:
        store.write_signals([signal(day, now=now) for day in range(3)])
        store.upsert_incident(incident("INC-1"))
    code, out, _ = run(capsys, "db", "info", "--database-url", url)
    assert code == 0
    assert f"database:       {url}" in out
    assert f"schema version: {SCHEMA_VERSION}\n" in out
    assert "signals:        3" in out
    assert "incidents:      1 (open 1)" in out


def test_default_url_comes_from_dagster_home(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("CORRMON_DATABASE_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0
    assert str(tmp_path / "corrmon.db") in out
    monkeypatch.delenv("DAGSTER_HOME")
    code, _, err = run(capsys, "db", "info")
    assert code == 2
    assert "corrmon: error: no corrmon database configured" in err


def test_prune(capsys: pytest.CaptureFixture[str], url: str) -> None:
    now = datetime.now(UTC)
    old = [signal(day, now=now) for day in (200, 250, 300)]
    recent = [signal(day, now=now) for day in (1, 2)]
    with CorrmonStore(url) as store:
        store.write_signals([*old, *recent])
        store.upsert_incident(incident("INC-1", cited=(old[0].idempotency_key,)))

    code, out, _ = run(capsys, "db", "prune", "--older-than", "180d", "--database-url", url)
    assert code == 0, out
    assert "deleted 2 signal(s)" in out
    assert "kept 1 older signal(s) that incidents cite" in out
    with CorrmonStore(url) as store:
        left = {s.idempotency_key for s in store.read_signals()}
        assert left == {old[0].idempotency_key, *(s.idempotency_key for s in recent)}
        assert store.get_incident("INC-1") is not None


def test_prune_rejects_a_bad_duration(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "db", "prune", "--older-than", "6 months", "--database-url", url)
    assert code == 2
    assert "Invalid value for '--older-than'" in err
    assert "invalid duration '6 months'" in err


def test_a_schema_mismatch_says_to_upgrade(capsys: pytest.CaptureFixture[str], url: str) -> None:
    CorrmonStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.update(store_schema.store_meta).values(value="0"))
    engine.dispose()

    code, _, err = run(capsys, "incidents", "list", "--database-url", url)
    assert code == 2
    assert "schema version 0" in err
    assert "run `corrmon db upgrade`" in err
    assert "Traceback" not in err
    code, out, _ = run(capsys, "db", "info", "--database-url", url)
    assert code == 0
    assert "run `corrmon db upgrade`" in out
    code, out, _ = run(capsys, "db", "upgrade", "--database-url", url)
    assert f"from schema version 0 to {SCHEMA_VERSION}" in out
    code, out, _ = run(capsys, "incidents", "list", "--database-url", url)
    assert (code, out.strip()) == (0, "no incidents")


def test_incidents_list_show_and_lifecycle(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.delenv("USER", raising=False)  # --actor defaults to $USER
    with CorrmonStore(url) as store:
        store.upsert_incident(incident("INC-1"))
        store.upsert_incident(incident("INC-2", model="other_model"))

    code, out, _ = run(capsys, "incidents", "list", "--database-url", url)
    assert code == 0
    header, _rule, *rows = out.strip().splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "CLASS",
        "MODEL",
        "METRIC",
        "TOP",
        "CAUSE",
        "DETECTED",
    ]
    assert rows[0].split()[:5] == ["INC-2", "open", "data_fault", "other_model", "roc_auc"]
    assert "raw/flights.dep_delay (data_quality)" in rows[0]

    code, out, _ = run(
        capsys, "incidents", "list", "--model", "model", "--format", "json", "--database-url", url
    )
    listed = json.loads(out)
    assert [item["id"] for item in listed] == ["INC-1"]
    assert listed[0]["causes"][0]["data_versions"] == ["dv-bad"]
    assert listed[0]["detected_time"] == "2024-03-04T02:00:00+00:00"

    code, out, _ = run(capsys, "incidents", "show", "INC-1", "--database-url", url)
    assert code == 0
    assert "incident INC-1: data_fault on model (roc_auc), open" in out
    assert "#1 raw/flights column dep_delay (data_quality) score 0.93" in out
    assert "repair recovers: 87% of the loss" in out
    assert "null_fraction_after: 0.4" in out
    assert "run-9 scoring of predictions AT RISK" in out

    code, out, _ = run(
        capsys, "incidents", "ack", "INC-1", "--note", "on it", "--actor", "ana",
        "--database-url", url,
    )  # fmt: skip
    assert (code, out.strip()) == (0, "incident INC-1: open → acknowledged")
    code, out, _ = run(capsys, "incidents", "resolve", "INC-1", "--database-url", url)
    assert (code, out.strip()) == (0, "incident INC-1: acknowledged → resolved")
    code, out, _ = run(capsys, "incidents", "false-positive", "INC-2", "--database-url", url)
    assert (code, out.strip()) == (0, "incident INC-2: open → false_positive")

    code, _, err = run(capsys, "incidents", "ack", "INC-1", "--database-url", url)
    assert code == 2
    assert "cannot go from 'resolved' to 'acknowledged'" in err

    code, out, _ = run(capsys, "incidents", "list", "--status", "resolved", "--database-url", url)
    assert [line.split()[0] for line in out.strip().splitlines()[2:]] == ["INC-1"]

    code, out, _ = run(
        capsys, "incidents", "show", "INC-1", "--format", "json", "--database-url", url
    )
    shown = json.loads(out)
    assert shown["status"] == IncidentStatus.RESOLVED
    assert [
        (h["from_status"], h["to_status"], h["actor"], h["note"]) for h in shown["history"]
    ] == [
        (None, "open", "corrmon", "created"),
        ("open", "acknowledged", "ana", "on it"),
        ("acknowledged", "resolved", "", ""),
    ]


def test_unknown_incident(capsys: pytest.CaptureFixture[str], url: str) -> None:
    CorrmonStore(url).close()
    for command in ("show", "ack", "resolve", "false-positive"):
        code, _, err = run(capsys, "incidents", command, "INC-404", "--database-url", url)
        assert code == 2
        assert err.startswith("corrmon: error: no incident 'INC-404'")


def test_an_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "db", "info", "--database-url", "postgresql://u:s3cret@127.0.0.1:1/db"
    )
    assert code == 2
    assert err.startswith("corrmon: error: could not read the schema version")
    assert "u:***@127.0.0.1:1/db" in err
    assert "s3cret" not in err
    assert "Traceback" not in err
