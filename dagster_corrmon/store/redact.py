"""Database URLs without their secrets: the one place that hides them.

A password can reach a URL three ways: ``user:password@host`` (where it may hold an unescaped
``@``, which SQLAlchemy's parser splits at the wrong place), ``?password=...`` in the query
(libpq reads it there too), or percent-encoded in either. :func:`hide_password` renders the URL
with each of them as ``***``; :func:`redact_secrets` removes the same secrets from any other text —
a driver's error message repeats the host it could not reach, and with an unescaped ``@`` that
"host" is the rest of the password.
"""

import re
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"
_SHORTEST_SECRET = 3
# Query parameters whose value is a secret (libpq's and common drivers' names).
SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "pass", "sslpassword", "secret", "token", "access_token"}
)


_KEY_VALUE = re.compile(r"(\w+)\s*=\s*('[^']*'|\S+)")


def _split(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme://, userinfo, rest of the location and path, ?query)``, userinfo up to the
    *last* ``@`` before the query; None when ``url`` has no ``://``."""
    scheme, found, rest = url.partition("://")
    if not found:
        return None
    location, question, query = rest.partition("?")
    at = location.rfind("@")
    userinfo, remainder = (location[:at], location[at:]) if at >= 0 else ("", location)
    return scheme + "://", userinfo, remainder, question + query


def url_secrets(url: str) -> list[str]:
    """Every secret ``url`` holds, as written and decoded, longest first."""
    parts = _split(url)
    if parts is None:
        return []
    _, userinfo, _, query = parts
    found: list[str] = []
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found.append(password)
        # An unescaped "@" makes a parser see the tail as the host (which a driver's message
        # repeats): hide what lies on either side of each "@" too.
        pieces = password.split("@")
        for cut in range(1, len(pieces)):
            found.extend(("@".join(pieces[:cut]), "@".join(pieces[cut:])))
    for name, value in parse_qsl(query.lstrip("?"), keep_blank_values=False):
        if name.lower() in SECRET_PARAMETERS:
            found.append(value)
    variants = {variant for secret in found for variant in (secret, unquote(secret), quote(secret))}
    # Shorter fragments are left: replacing every "p" of a message would hide nothing worth it.
    return sorted((s for s in variants if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)


def redact_secrets(text: str, url: str | None) -> str:
    """``text`` with every secret of ``url`` replaced by ``***``."""
    if not url:
        return text
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    return text


def hide_password(url: str) -> str:
    """The URL with its password (in the user info or the query) replaced by ``***``."""
    parts = _split(url)
    if parts is None:  # a libpq "key=value" string, or no URL at all
        return _KEY_VALUE.sub(
            lambda m: f"{m[1]}={MASK}" if m[1].lower() in SECRET_PARAMETERS else m[0], url
        )
    scheme, userinfo, remainder, query = parts
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    if query:
        query = re.sub(
            r"([?&])([^=&]+)=([^&]*)",
            lambda m: (
                f"{m[1]}{m[2]}={MASK}" if unquote(m[2]).lower() in SECRET_PARAMETERS else m[0]
            ),
            query,
        )
    return scheme + userinfo + remainder + query
