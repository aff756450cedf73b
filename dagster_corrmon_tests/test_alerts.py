"""Alerting against real local servers: an HTTP endpoint (``http.server``) and SMTP (aiosmtpd).

Incidents are stored in a real store and moved along their lifecycle the way the correlation job
and ``corrmon incidents`` move them; each dispatch pass is what one correlation run does.
"""

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from dagster_corrmon.alerts import (
    Alerting,
    AlertRoute,
    AssetDirectory,
    AssetInfo,
    EmailChannel,
    LogChannel,
    MaintenanceWindow,
    QuietHours,
    RateLimit,
    RetryPolicy,
    Runbooks,
    SlackChannel,
    WebhookChannel,
    dispatch,
    dispatch_for_model,
)
from dagster_corrmon.alerts.spec import AlertsSpec
from dagster_corrmon.core.incident import AffectedRun, Cause, Incident, IncidentClass
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests.alert_servers import free_port, http_sink, smtp_sink

NOW = dt.datetime(2024, 5, 6, 12, 0, tzinfo=dt.UTC)
FAST = RetryPolicy(attempts=3, backoff_s=0.0, timeout_s=5)
DIRECTORY = AssetDirectory(
    assets={
        "raw": AssetInfo(owners=("data@example.com", "team:ingest"), group="feeds"),
        "model": AssetInfo(owners=("ml@example.com",), group="ml"),
    }
)


def at_risk(incident_id: str = "risk-1") -> Incident:
    """A provisional incident: an upstream check failed, labels have not confirmed a loss."""
    return Incident(
        id=incident_id,
        model_asset="model",
        metric="roc_auc",
        classification=IncidentClass.DATA_FAULT,
        consequential=False,
        onset_time=NOW - dt.timedelta(days=2),
        onset_partition="2024-05-04",
        detected_time=NOW - dt.timedelta(days=1),
        summary="**At risk**: `raw.temp` failed `null_fraction`.",
        causes=(
            Cause(
                rank=1,
                kind="data_quality",
                asset_key="raw",
                column="temp",
                score=1.0,
                partition="2024-05-04",
                evidence={"check": "null_fraction"},
            ),
        ),
        affected_runs=tuple(
            AffectedRun(run_id=f"run-{i}", asset_key="predictions", role="upstream", at_risk=True)
            for i in range(3)
        ),
        created_at=NOW - dt.timedelta(days=1),
        metadata={"provisional": True},
    )


def confirmed(incident: Incident) -> Incident:
    """The same incident once labels confirm the loss (the correlation pass re-writes it)."""
    top = dataclasses.replace(incident.causes[0], p_value=0.01, q_value=0.03, repair_recovery=0.9)
    return dataclasses.replace(
        incident,
        consequential=True,
        baseline_value=0.82,
        observed_value=0.66,
        causes=(top,),
        metadata={},
    )


@pytest.fixture
def store(tmp_path):
    with CorrmonStore(f"sqlite:///{tmp_path / 'corrmon.db'}") as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path):
    """The store on SQLite and on the real PostgreSQL (for the exactly-once guarantees)."""
    url = (
        f"sqlite:///{tmp_path / 'corrmon.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with CorrmonStore(url) as opened:
        yield opened


def webhook_route(url: str, **options) -> AlertRoute:
    return AlertRoute(
        name=options.pop("name", "hook"),
        channel=WebhookChannel(url=url),
        retry=options.pop("retry", FAST),
        **options,
    )


def run_pass(store, routes, *, now=NOW, ui_base_url="http://dagster.local:3000"):
    return dispatch_for_model(
        store,
        "model",
        Alerting(routes=routes, ui_base_url=ui_base_url),
        now=now,
        directory=DIRECTORY,
    )


def test_one_alert_per_lifecycle_step_escalating_at_risk_to_consequential(any_store) -> None:
    store = any_store
    with http_sink() as sink:
        route = webhook_route(sink.url)
        store.upsert_incident(at_risk())
        for _ in range(3):  # re-ticks and retries of the same pass send nothing new
            run_pass(store, [route])
        assert [(r["step"], r["severity"]) for r in sink.delivered] == [("opened", "warn")]
        opened = sink.delivered[0]
        assert opened["incident_id"] == "risk-1"
        assert opened["cause"] == "raw.temp (data_quality)"
        assert opened["affected_runs"] == 3
        assert opened["owners"] == ["data@example.com", "team:ingest", "ml@example.com"]
        assert opened["headline"].startswith("[WARN] model data fault opened: at risk")
        assert opened["runbook"]["kind"] == "null_spike"
        assert opened["runbook"]["link"].endswith("null_spike.md")
        assert opened["links"]["cause"] == "http://dagster.local:3000/assets/raw"
        assert opened["links"]["affected_runs"] == (
            "http://dagster.local:3000/runs?q%5B%5D=tag%3Acorrmon%2Fincident%3Drisk-1"
        )

        store.upsert_incident(confirmed(at_risk()))
        for _ in range(2):
            run_pass(store, [route])
        escalated = sink.delivered[-1]
        assert (escalated["step"], escalated["severity"]) == ("escalated", "critical")
        assert escalated["evidence"] == {
            "score": 1.0,
            "p_value": 0.01,
            "q_value": 0.03,
            "repair_recovery": 0.9,
            "first_partition": "2024-05-04",
        }
        assert escalated["headline"] == "[CRITICAL] model data fault escalated: roc_auc 0.82 → 0.66"

        store.set_incident_status("risk-1", "resolved", note="backfilled", actor="sam")
        for _ in range(2):
            run_pass(store, [route])
        assert [r["step"] for r in sink.delivered] == ["opened", "escalated", "resolved"]
        assert sink.delivered[-1]["status"] == "resolved"
        assert len(sink.requests) == 3  # no duplicate ever reached the server
    rows = store.deliveries(incident_ids=["risk-1"])
    assert {(row.step, row.status) for row in rows} == {
        ("opened", "sent"),
        ("escalated", "sent"),
        ("resolved", "sent"),
    }
    assert {row.step: row.payload["step"] for row in rows}["opened"] == "opened"  # what was sent
    assert store.incidents_awaiting_resolution_alerts("model") == []


def test_an_incident_significant_from_the_start_opens_critical_and_never_escalates(store) -> None:
    with http_sink() as sink:
        store.upsert_incident(confirmed(at_risk("inc-1")))
        for _ in range(2):
            run_pass(store, [webhook_route(sink.url)])
    assert [(r["step"], r["severity"]) for r in sink.delivered] == [("opened", "critical")]


def test_acknowledgement_stops_escalation(store) -> None:
    with http_sink() as sink:
        route = webhook_route(sink.url)
        store.upsert_incident(at_risk())
        run_pass(store, [route])
        store.set_incident_status("risk-1", "acknowledged", actor="sam")
        store.upsert_incident(confirmed(at_risk()))  # upsert keeps the acknowledged status
        run_pass(store, [route])
        assert [r["step"] for r in sink.delivered] == ["opened"]
        store.set_incident_status("risk-1", "false_positive", actor="sam")
        run_pass(store, [route])
    assert [r["step"] for r in sink.delivered] == ["opened", "resolved"]
    assert "false positive" in sink.delivered[-1]["headline"]


def test_an_outage_is_retried_with_backoff_and_delivered_once(any_store) -> None:
    store = any_store
    # Three 503s exhaust one pass's attempts; the next pass waits for its backoff, then delivers.
    with http_sink(statuses=[503, 503, 503]) as sink:
        route = webhook_route(sink.url)
        store.upsert_incident(at_risk())
        report = run_pass(store, [route])
        assert report.count("failed") == 1 and len(sink.requests) == 3 and not sink.delivered
        (row,) = store.deliveries(incident_ids=["risk-1"])
        assert (row.status, row.last_error) == ("failed", "webhook: HTTP 503")
        assert row.next_attempt_at == NOW + route.retry.next_pass_backoff
        run_pass(store, [route], now=NOW + dt.timedelta(seconds=30))  # still backing off
        assert len(sink.requests) == 3
        for minutes in (2, 3, 4):
            run_pass(store, [route], now=NOW + dt.timedelta(minutes=minutes))
        assert len(sink.delivered) == 1 and len(sink.requests) == 4
    (row,) = store.deliveries(incident_ids=["risk-1"])
    assert row.status == "sent" and row.attempts == 2


def test_a_server_that_is_down_gets_the_alert_when_it_comes_back(store) -> None:
    port = free_port()
    route = webhook_route(f"http://127.0.0.1:{port}/hook")
    store.upsert_incident(at_risk())
    report = run_pass(store, [route])  # nothing listens: refused, never raised
    assert report.count("failed") == 1
    assert "cannot reach the endpoint" in store.deliveries()[0].last_error
    with http_sink(port=port) as sink:
        run_pass(store, [route], now=NOW + dt.timedelta(minutes=5))
        run_pass(store, [route], now=NOW + dt.timedelta(minutes=10))
    assert [r["step"] for r in sink.delivered] == ["opened"]


def test_a_client_error_is_not_retried_within_the_pass(store) -> None:
    with http_sink(statuses=[404]) as sink:
        store.upsert_incident(at_risk())
        run_pass(store, [webhook_route(sink.url)])
        assert len(sink.requests) == 1
        assert store.deliveries()[0].last_error == "webhook: HTTP 404"


def test_concurrent_processes_deliver_each_step_once(any_store) -> None:
    store = any_store
    store.upsert_incident(at_risk())
    with http_sink() as sink:
        route = webhook_route(sink.url)

        def one_process(_: int) -> None:
            with CorrmonStore(store.database_url) as own:  # its own engine, like another process
                run_pass(own, [route])

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(one_process, range(12)))
    assert len(sink.requests) == 1


def test_route_filters_severity_classification_group_and_owner(store) -> None:
    with http_sink() as sink:
        routes = [
            webhook_route(sink.url + "?critical", name="pager", min_severity="critical"),
            webhook_route(sink.url + "?drift", name="drift", classifications=["concept_drift"]),
            webhook_route(sink.url + "?feeds", name="feeds", asset_groups=["feeds"]),
            webhook_route(sink.url + "?other", name="other-team", owners=["team:other"]),
            webhook_route(sink.url + "?ingest", name="ingest", owners=["team:ingest"]),
        ]
        store.upsert_incident(at_risk())
        run_pass(store, routes)
        assert sorted(r["_path"] for r in sink.delivered) == ["/hook?feeds", "/hook?ingest"]
        store.upsert_incident(confirmed(at_risk()))
        run_pass(store, routes)
    # The pager route hears of the incident once it is significant: its first step is `opened`.
    paths = [(r["_path"], r["step"]) for r in sink.delivered]
    assert ("/hook?critical", "opened") in paths
    assert sorted(paths[2:]) == [
        ("/hook?critical", "opened"),
        ("/hook?feeds", "escalated"),
        ("/hook?ingest", "escalated"),
    ]


def test_maintenance_quiet_hours_and_rate_limit_defer_alerts(store) -> None:
    with http_sink() as sink:
        window = MaintenanceWindow(
            start=NOW - dt.timedelta(hours=1), end=NOW + dt.timedelta(hours=1)
        )
        held = webhook_route(sink.url, name="maint", maintenance=[window])
        quiet = webhook_route(
            sink.url,
            name="quiet",
            quiet_hours=QuietHours(start=dt.time(11), end=dt.time(13), timezone="UTC"),
        )
        store.upsert_incident(at_risk())
        report = run_pass(store, [held, quiet])
        assert report.count("deferred") == 2 and not sink.requests
        rows = {row.route: row for row in store.deliveries()}
        assert rows["maint"].next_attempt_at == window.end
        run_pass(store, [held, quiet], now=NOW + dt.timedelta(minutes=30))
        assert not sink.requests
        run_pass(store, [held, quiet], now=NOW + dt.timedelta(hours=1, minutes=1))
        assert sorted(r["step"] for r in sink.delivered) == ["opened", "opened"]
        # Critical alerts page through quiet hours.
        store.upsert_incident(confirmed(at_risk("inc-2")))
        run_pass(store, [quiet], now=NOW + dt.timedelta(days=1))
        assert sink.delivered[-1]["incident_id"] == "inc-2"

    with http_sink() as limited_sink:
        limited = webhook_route(
            limited_sink.url,
            name="limited",
            rate_limit=RateLimit(max_alerts=1, per=dt.timedelta(hours=1)),
        )
        store.upsert_incident(at_risk("risk-3"))
        run_pass(store, [limited], now=NOW + dt.timedelta(days=2))
        assert len(limited_sink.delivered) == 1
        run_pass(store, [limited], now=NOW + dt.timedelta(days=2, minutes=10))
        assert len(limited_sink.delivered) == 1  # the second incident waits for the window
        run_pass(store, [limited], now=NOW + dt.timedelta(days=2, hours=2))
        assert len(limited_sink.delivered) == 2


def test_slack_payload_has_blocks_and_the_url_is_a_secret_read_at_send_time(
    store, monkeypatch
) -> None:
    with http_sink() as sink:
        route = AlertRoute(
            name="slack", channel=SlackChannel(url=dg.EnvVar("TEST_SLACK_URL")), retry=FAST
        )
        assert "TEST_SLACK_URL" not in repr(route) and sink.url not in repr(route)
        store.upsert_incident(confirmed(at_risk()))
        monkeypatch.delenv("TEST_SLACK_URL", raising=False)
        run_pass(store, [route])
        assert store.deliveries()[0].last_error == (
            "slack webhook url: environment variable TEST_SLACK_URL is not set"
        )
        monkeypatch.setenv("TEST_SLACK_URL", sink.url)
        run_pass(store, [route], now=NOW + dt.timedelta(minutes=5))
    (body,) = sink.delivered
    assert body["text"].startswith("[CRITICAL] model data fault opened")
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "section", "context", "actions"]
    fields = [field["text"] for field in body["blocks"][1]["fields"]]
    assert "*Cause*\nraw.temp (data_quality)" in fields and "*Affected runs*\n3" in fields
    assert "q value 0.03" in body["blocks"][2]["text"]["text"]
    buttons = {b["text"]["text"]: b["url"] for b in body["blocks"][4]["elements"]}
    assert buttons["model"] == "http://dagster.local:3000/assets/model"
    assert sink.url not in str(store.deliveries()[0].payload)


def test_email_reaches_the_owners_through_a_real_smtp_server(store, monkeypatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with smtp_sink(credentials=("corrmon", "s3cret")) as smtp:
        channel = EmailChannel(
            host=smtp.host,
            port=smtp.port,
            sender="corrmon@example.com",
            to=["oncall@example.com"],
            team_emails={"team:ingest": "ingest@example.com"},
            username="corrmon",
            password=dg.EnvVar("TEST_SMTP_PASSWORD"),
        )
        assert "s3cret" not in repr(channel)
        route = AlertRoute(name="mail", channel=channel, retry=FAST)
        store.upsert_incident(at_risk())
        for _ in range(2):
            run_pass(store, [route])
        store.set_incident_status("risk-1", "resolved")
        run_pass(store, [route])
    assert len(smtp.messages) == 2
    assert smtp.logins == [("corrmon", "s3cret"), ("corrmon", "s3cret")]
    sender, to = smtp.envelopes[0]
    assert sender == "corrmon@example.com"
    assert to == ["oncall@example.com", "data@example.com", "ingest@example.com", "ml@example.com"]
    first = smtp.messages[0]
    assert str(first["Subject"]).strip().startswith("[WARN] model data fault opened")
    body = first.get_payload()
    assert isinstance(body, str)
    assert "Cause:           raw.temp (data_quality)" in body
    assert "Affected runs:   3" in body
    assert str(smtp.messages[1]["Subject"]).strip().startswith("[INFO] model data fault resolved")
    assert "s3cret" not in str([row.payload for row in store.deliveries()])


def test_an_smtp_server_that_is_down_gets_the_email_when_it_comes_back(store) -> None:
    port = free_port()
    channel = EmailChannel(host="127.0.0.1", port=port, sender="corrmon@example.com")
    route = AlertRoute(name="mail", channel=channel, retry=FAST)
    store.upsert_incident(at_risk())
    assert run_pass(store, [route]).count("failed") == 1
    assert store.deliveries()[0].last_error == (
        f"email: cannot deliver through 127.0.0.1:{port} (ConnectionRefusedError)"
    )
    with smtp_sink(port=port) as smtp:
        run_pass(store, [route], now=NOW + dt.timedelta(minutes=5))
        run_pass(store, [route], now=NOW + dt.timedelta(minutes=10))
    assert len(smtp.messages) == 1


def test_log_channel_and_runbook_overrides(store, tmp_path, caplog) -> None:
    page = tmp_path / "raw-nulls.md"
    page.write_text("# Our runbook\n\n## Follow-up\n- call the vendor\n")
    alerting = Alerting(
        routes=[AlertRoute(name="log", channel=LogChannel())],
        runbooks=Runbooks(overrides={"raw:null_spike": str(page)}),
    )
    store.upsert_incident(at_risk())
    with caplog.at_level("WARNING", logger="dagster_corrmon.alerts"):
        dispatch(store, [at_risk()], alerting, now=NOW, directory=DIRECTORY)
    assert "[WARN] model data fault opened" in caplog.text
    assert f"Runbook:         {page.resolve().as_uri()}" in caplog.text
    with pytest.raises(ConfigError, match="is not a file"):
        Runbooks(overrides={"raw": str(tmp_path / "missing.md")}).for_incident(at_risk())


def test_configuration_errors_are_named() -> None:
    with pytest.raises(ConfigError, match="never a literal"):
        EmailChannel(host="h", sender="a@b.c", password="plain")
    with pytest.raises(ConfigError, match="unknown timezone"):
        QuietHours(start=dt.time(22), end=dt.time(7), timezone="Mars/Base")
    with pytest.raises(ConfigError, match="route names must be unique"):
        Alerting(routes=[AlertRoute(name="a", channel=LogChannel())] * 2)
    with pytest.raises(ConfigError, match="bogus"):
        AlertRoute(name="a", channel=LogChannel(), classifications=["bogus"])
    with pytest.raises(ValueError, match="exactly one channel"):
        AlertsSpec.model_validate({"routes": [{"name": "x"}]})


def test_spec_routes_build_the_same_alerting(monkeypatch, store) -> None:
    with http_sink() as sink:
        monkeypatch.setenv("TEST_HOOK_URL", sink.url)
        spec = AlertsSpec.model_validate(
            {
                "ui_base_url": "http://dagster.local:3000/",
                "routes": [
                    {
                        "name": "hook",
                        "webhook": {"url_env": "TEST_HOOK_URL"},
                        "min_severity": "warn",
                        "quiet_hours": {"start": "22:00", "end": "07:00"},
                        "rate_limit": {"max_alerts": 5, "per_minutes": 60},
                        "retry": {"attempts": 2, "backoff_s": 0},
                    }
                ],
            }
        )
        alerting = spec.to_alerting()
        store.upsert_incident(at_risk())
        dispatch(store, [at_risk()], alerting, now=NOW, directory=DIRECTORY)
    assert [r["links"]["model"] for r in sink.delivered] == [
        "http://dagster.local:3000/assets/model"
    ]


def test_a_pipeline_spec_carries_its_alert_routes(tmp_path) -> None:
    import yaml

    from dagster_corrmon.examples.flights import SPEC_PATH
    from dagster_corrmon.pipeline import load_spec

    document = yaml.safe_load(SPEC_PATH.read_text())
    document["alerts"] = {
        "ui_base_url": "http://localhost:3000",
        "routes": [{"name": "hook", "webhook": {"url_env": "HOOK_URL"}, "owners": ["team:ml"]}],
    }
    path = tmp_path / "flights.yaml"
    path.write_text(yaml.safe_dump(document))
    spec = load_spec(path)
    assert spec.alerts is not None
    (route,) = spec.alerts.to_alerting().routes
    assert (route.name, route.owners, route.channel.kind) == ("hook", ("team:ml",), "webhook")
    document["alerts"]["routes"][0]["pager"] = {}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="pager"):
        load_spec(path)
