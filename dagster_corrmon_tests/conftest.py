"""Shared fixtures.

PostgreSQL: tests marked ``postgres`` use a fresh database created on the server named by
``CORRMON_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) and
dropped afterwards. Without the variable they are skipped with that reason — unless
``CORRMON_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where a missing server is a failure.
"""

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

# The ``chromium`` fixture (headless browser tests) lives beside its helper.
pytest_plugins = ["dagster_corrmon_tests.browser"]

POSTGRES_URL_ENV = "CORRMON_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "CORRMON_REQUIRE_POSTGRES"


def _base_postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (a postgresql+psycopg2:// URL)")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a brand-new, empty PostgreSQL database, dropped after the test."""
    base = sa.make_url(_base_postgres_url())
    name = f"corrmon_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            raise
        pytest.skip(f"PostgreSQL at {base.render_as_string()} is not reachable: {error}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
