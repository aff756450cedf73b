"""The Dagster UI as a user sees it: a real ``dagster-webserver`` on the simulated history of
``test_ui_simulated``, opened in headless Chromium.

What must be visible, derived from ``report.json`` and the store, never written here: the model's
Checks tab shows the incident's id and headline as text (not only behind "Show Markdown"), and the
Runs page filtered by the ``corrmon/incident`` tag lists exactly the incident's recorded runs (plus
any retrain run the incident launched, which carries ``corrmon/retrain``).
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagster_corrmon.correlation.engine import INCIDENT_TAG
from dagster_corrmon_tests import graphql_ui as gq
from dagster_corrmon_tests.browser import Chromium
from dagster_corrmon_tests.test_ui_simulated import (
    LOCATION,
    SCENARIO_ENV,
    UI_MODULE,
    _incident,
    _simulated,
)

_STARTUP_SECONDS = 240  # the code server imports Dagster and builds the location on 2 busy cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _text(dom: str) -> str:
    """The page's visible text, as one line (tags dropped, entities decoded)."""
    import html

    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = _simulated(tmp_path_factory)
    home = folder / "out" / "dagster_home"
    workspace = gq.write_workspace(
        tmp_path_factory.mktemp("ui_browser") / "workspace.yaml",
        module=UI_MODULE,
        location=LOCATION,
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "CORRMON_DATABASE_URL"}
    env.update({"DAGSTER_HOME": str(home), SCENARIO_ENV: str(folder / "scenario.yaml")})
    log = (folder / "webserver.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            *("-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not start; see {folder / 'webserver.log'}")
            time.sleep(2)
        yield url, folder
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_the_models_checks_tab_shows_the_incident_headline(
    webserver: tuple[str, Path], chromium: Chromium
) -> None:
    url, folder = webserver
    report = (folder / "out" / "report.json").read_text()
    incident = _incident(__import__("json").loads(report))
    text = _text(chromium.dump_dom(f"{url}/assets/model?view=checks"))
    assert "corrmon_incident" in text
    assert incident["id"] in text
    headline = re.sub(r"\*\*", "", incident["summary"].strip().splitlines()[0])
    assert headline[:60] in text, text[:3000]
    chromium.screenshot(f"{url}/assets/model?view=checks", folder / "model_checks.png")


def test_the_incidents_runs_are_filterable_by_tag(
    webserver: tuple[str, Path], chromium: Chromium
) -> None:
    url, folder = webserver
    incident = _incident(__import__("json").loads((folder / "out" / "report.json").read_text()))
    token = f"tag:{INCIDENT_TAG}={incident['id']}"
    dom = chromium.dump_dom(f"{url}/runs?{urllib.parse.urlencode({'q[0]': token})}")
    shown = set(re.findall(r"/runs/([0-9a-f]{8}-[0-9a-f-]{27})", dom))
    recorded = {run["run_id"] for run in incident["affected_runs"]}
    with dg.DagsterInstance.from_config(str(folder / "out" / "dagster_home")) as instance:
        retrains = {
            record.dagster_run.run_id
            for record in instance.get_run_records(
                dg.RunsFilter(tags={INCIDENT_TAG: incident["id"], "corrmon/retrain": "true"})
            )
        }
    assert shown == recorded | retrains
