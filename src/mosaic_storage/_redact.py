"""One redaction helper: every message that may hold a URL or a secret passes through it."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote

MASK = "***"

# Schemes whose lone userinfo (``redis://TOKEN@host``) is a credential rather than a user name.
_TOKEN_USERINFO_SCHEMES = frozenset({"redis", "rediss", "valkey", "valkeys", "unix"})

# Names of fields that hold secrets (not secrets themselves).
_SECRET_KEYS = "|".join(
    (
        "password",
        "passwd",
        "pwd",
        "pass",
        "sslpassword",
        "sslkey_password",
        "token",
        "access_token",
        "refresh_token",
        "auth_token",
        "id_token",
        "api_key",
        "apikey",
        "api-key",
        "secret",
        "client_secret",
        "secret_key",
        "auth",
    )
)

_URL_AUTHORITY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^\s/?#'\"<>]*)")
# ?password=..., &token=... in query strings.
_QUERY_SECRET = re.compile(rf"(?i)([?&;](?:{_SECRET_KEYS})=)([^&;#\s'\"]*)")
# libpq key=value strings and similar: password=..., password = '...', "password": "..."
# An unquoted libpq value runs to the next whitespace (``;``, ``,``, ``&`` and ``)`` are part of
# it), so masking stops only there: masking a few characters too many is harmless.
_KV_SECRET = re.compile(rf"(?i)(\b(?:{_SECRET_KEYS})\s*=\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s]+)")
_JSON_SECRET = re.compile(rf"(?i)(\"(?:{_SECRET_KEYS})\"\s*:\s*)(\"(?:[^\"\\]|\\.)*\")")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+")
_API_KEY_LIKE = re.compile(r"\b(sk|pk|rk|xox[abp])-[A-Za-z0-9_\-]{8,}")

_known_secrets: set[str] = set()
_known_lock = threading.Lock()
# Short strings would mask ordinary words; the structural patterns above still cover them.
_MIN_REMEMBERED = 4


def remember_secret(secret: str | None) -> None:
    """Register a secret seen in config so it is masked wherever it appears later."""
    if not secret or len(secret) < _MIN_REMEMBERED:
        return
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    with _known_lock:
        _known_secrets.update(form for form in forms if len(form) >= _MIN_REMEMBERED)


def _mask_authority(match: re.Match[str]) -> str:
    scheme, authority = match.group("scheme"), match.group("authority")
    if "@" not in authority:
        return match.group(0)
    userinfo, host = authority.rsplit("@", 1)
    if ":" in userinfo:
        user, secret = userinfo.split(":", 1)
        remember_secret(secret)
        masked = f"{user}:{MASK}" if secret else f"{user}:"
    elif scheme.lower().split("+")[0] in _TOKEN_USERINFO_SCHEMES:
        remember_secret(userinfo)
        masked = MASK
    else:
        masked = userinfo
    return f"{scheme}://{masked}@{host}"


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(2)
    stripped = value.strip("'\"")
    remember_secret(stripped)
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{quote_char}{MASK}{quote_char}"


def redact(text: object) -> str:
    """Return ``str(text)`` with every password, token or secret query parameter masked.

    Covers URL userinfo (``postgresql://u:PW@h``, ``redis://:PW@h``, ``redis://TOKEN@h``),
    secret query parameters, libpq ``key=value`` strings, JSON ``"password": "..."``,
    bearer tokens, URL-encoded forms, and any secret seen earlier by this process.
    """
    out = str(text)
    out = _URL_AUTHORITY.sub(_mask_authority, out)
    out = _QUERY_SECRET.sub(_mask_value, out)
    out = _KV_SECRET.sub(_mask_value, out)
    out = _JSON_SECRET.sub(_mask_value, out)
    out = _BEARER.sub(lambda m: m.group(1) + MASK, out)
    out = _API_KEY_LIKE.sub(lambda m: f"{m.group(1)}-{MASK}", out)
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def redact_url(url: str) -> str:
    """A URL safe to print: the same URL with its credentials masked."""
    return redact(url)
