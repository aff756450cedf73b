"""No secret of a database URL is ever printed: not in the store's errors, not in `corrmon db
info`, not in a CLI error line, not in a failed Dagster run's messages.

Each URL below carries its password one of the ways people write it: in the user info, in the
query (``?password=``, which libpq reads), with an unescaped ``@`` (which URL parsers split at
the wrong place, so the tail shows up as the "host" in the driver's message), percent-encoded.
"""

import dagster as dg
import pytest

from dagster_corrmon.errors import StoreError
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore, hide_password
from dagster_corrmon.store.redact import redact_secrets
from dagster_corrmon_tests.cli_run import corrmon

SECRETS = ("s3cretA", "s3cretB", "p1ece@tail9x", "pct@enc0ded")
UNREACHABLE = [  # port 1 on loopback: refused at once
    "postgresql+psycopg2://corrmon:s3cretA@127.0.0.1:1/db",
    "postgresql+psycopg2://corrmon@127.0.0.1:1/db?sslmode=disable&password=s3cretB",
    "postgresql+psycopg2://corrmon:p1ece@tail9x@127.0.0.1:1/db",
    "postgresql+psycopg2://corrmon:pct%40enc0ded@127.0.0.1:1/db",
]


def _leaks(text: str) -> list[str]:
    fragments = [
        fragment for secret in SECRETS for fragment in (secret, *secret.split("@")) if fragment
    ]
    fragments += ["pct%40enc0ded", "tail9x", "p1ece"]
    return [fragment for fragment in fragments if fragment in text]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_hide_password_hides_every_form(url: str) -> None:
    hidden = hide_password(url)
    assert not _leaks(hidden), hidden
    assert "127.0.0.1:1/db" in hidden and "***" in hidden


def test_libpq_key_value_strings_and_text_are_redacted() -> None:
    assert hide_password("host=h password=s3cretA user=u") == "host=h password=*** user=u"
    message = 'could not translate host name "tail9x@127.0.0.1" to address'
    assert not _leaks(redact_secrets(message, UNREACHABLE[2]))


@pytest.mark.parametrize("url", UNREACHABLE)
def test_store_errors_name_the_url_without_its_secret(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        CorrmonStore(url)
    message = str(raised.value)
    assert "127.0.0.1" in message
    assert not _leaks(message), message


@pytest.mark.parametrize("url", UNREACHABLE)
@pytest.mark.parametrize("command", [["db", "info"], ["incidents", "list"], ["db", "upgrade"]])
def test_cli_errors_are_one_line_without_the_secret(url: str, command: list[str]) -> None:
    code, printed = corrmon(*command, "--database-url", url)
    assert code == 2
    assert printed.startswith("corrmon: error: ") and printed.count("\n") == 1, printed
    assert not _leaks(printed), printed


def test_a_secret_in_the_environment_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRMON_DATABASE_URL", UNREACHABLE[2])
    code, printed = corrmon("incidents", "list")
    assert code == 2 and not _leaks(printed), printed


def test_a_failed_run_does_not_log_the_secret() -> None:
    @dg.asset(required_resource_keys={"corrmon"})
    def checked(context: dg.AssetExecutionContext) -> int:
        context.resources.corrmon.get_store()
        return 1

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [checked],
            instance=instance,
            resources={"corrmon": CorrmonResource(database_url=UNREACHABLE[2])},
            raise_on_error=False,
        )
        assert not result.success
        logged = " ".join(
            str(record.user_message) + str(record.dagster_event)
            for record in instance.all_logs(result.run_id)
        )
    assert "127.0.0.1" in logged
    assert not _leaks(logged)


@pytest.mark.postgres
def test_db_info_shows_the_url_without_its_secret(postgres_url: str) -> None:
    # trust authentication ignores the password: the store opens and `db info` prints its URL
    base, _, database = postgres_url.rpartition("/")
    user_host = base.split("://", 1)[1]
    user, _, host = user_host.partition("@")
    with_secrets = f"postgresql+psycopg2://{user}:pct%40enc0ded@{host}/{database}?password=s3cretB"
    code, printed = corrmon("db", "info", "--database-url", with_secrets)
    assert code == 0, printed
    assert "database:" in printed and host in printed
    assert not _leaks(printed), printed
