"""Real local servers that alert tests deliver to: an HTTP endpoint and an SMTP server.

``HttpSink`` is ``http.server`` in a thread on 127.0.0.1 (port 0: the OS picks); it records every
POST and answers with the next status of its script (then 200). ``SmtpSink`` is aiosmtpd's
controller on a free local port; it records every message it accepts.
"""

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class HttpSink:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies of every POST
    delivered: list[dict[str, Any]] = field(default_factory=list)  # bodies answered 200

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else 200


@contextmanager
def http_sink(statuses: list[int] | None = None, *, port: int = 0) -> Iterator[HttpSink]:
    sink: HttpSink | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert sink is not None
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            body["_path"] = self.path
            body["_headers"] = {key.lower(): value for key, value in self.headers.items()}
            sink.requests.append(body)
            status = sink.answer()
            if status == 200:
                sink.delivered.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    sink = HttpSink(
        url=f"http://127.0.0.1:{server.server_address[1]}/hook", statuses=statuses or []
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)  # (from, to)
    logins: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def smtp_sink(
    *, credentials: tuple[str, str] | None = None, port: int | None = None
) -> Iterator[SmtpSink]:
    port = port or free_port()
    sink = SmtpSink(host="127.0.0.1", port=port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 Message accepted for delivery"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        login = (auth.login.decode(), auth.password.decode())
        sink.logins.append(login)
        return AuthResult(success=credentials is not None and login == credentials)

    options: dict[str, Any] = {}
    if credentials is not None:
        # Plain-text AUTH on a local test server (no TLS certificate to set up).
        options = {"authenticator": authenticate, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
