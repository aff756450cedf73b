"""Headless Chromium (Debian's ``chromium`` package) for tests that look at a page as a user does.

Tests that need it use the ``chromium`` fixture: skipped with a reason when the browser is
missing, unless ``CORRMON_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``, which installs it), where a
missing browser is a failure.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_CHROMIUM_ENV = "CORRMON_REQUIRE_CHROMIUM"

# The flags this sandbox needs: no sandbox as root, and no background network (the machine has
# none, and Chromium otherwise retries its lookups at every start).
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@dataclass(frozen=True)
class Chromium:
    executable: str

    def _run(
        self, url: str, *extra: str, budget_ms: int = 15000
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as profile:
            return subprocess.run(
                [
                    self.executable,
                    *_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--virtual-time-budget={budget_ms}",
                    *extra,
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )

    def dump_dom(self, url: str) -> str:
        """The page's DOM after its scripts ran (virtual time lets async rendering finish)."""
        return self._run(url, "--dump-dom").stdout

    def screenshot(self, url: str, path: Path, *, width: int = 1200, height: int = 1600) -> Path:
        self._run(url, f"--window-size={width},{height}", f"--screenshot={path}")
        return path


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get(REQUIRE_CHROMIUM_ENV) == "1":
            pytest.fail(f"{REQUIRE_CHROMIUM_ENV}=1 but no chromium executable is on PATH")
        pytest.skip("browser tests need Debian's chromium package (apt-get install chromium)")
    return Chromium(executable)
