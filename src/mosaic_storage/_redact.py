"""One redaction helper: every message that may hold a URL or a secret passes through it."""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"

# Schemes whose lone userinfo (``redis://TOKEN@host``) is a credential rather than a user name.
_TOKEN_USERINFO_SCHEMES = frozenset({"redis", "rediss", "valkey", "valkeys", "unix"})

# Names of fields that hold secrets (not secrets themselves).
_SECRET_NAMES = (
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
_SECRET_KEYS = "|".join(_SECRET_NAMES)
# A key that ends in a secret name: password, PGPASSWORD, REDIS_PASSWORD, db_token, ...
_KEY = rf"[A-Za-z0-9_\-]*?(?:{_SECRET_KEYS})"

# The scheme is short and anchored so that long inputs stay linear. The authority runs to the
# next whitespace or quote; its userinfo ends at the last "@", so a password holding an
# unencoded "/", "?" or "#" is still masked whole. (Config refuses such URLs, and an
# unencoded "@", since drivers disagree on where the password ends.)
_URL = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,30})://(?P<rest>[^\s'\"<>]*)")
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_KEY}=)([^&;#\s'\"]*)")
# libpq key=value strings and env-style assignments: password=..., PGPASSWORD='...'.
_KV_SECRET = re.compile(rf"(?i)(\b{_KEY}\s*=\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?:\\.|[^\s\\])+)")
# JSON and Python reprs: "password": "...", 'password': '...'.
_MAPPING_SECRET = re.compile(
    rf"(?i)((?P<q>[\"']){_KEY}(?P=q)\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
)
_BEARER = re.compile(r"(?i)\b((?:bearer|token|basic)\s+)[A-Za-z0-9._~+/=\-]{6,}")
# Redis echoes a command's arguments in errors ("unknown command 'HELLO', with args beginning
# with: '3' 'AUTH' 'default' 'PASSWORD'"), cut at 128 characters: mask all that follows AUTH.
_AUTH_ARGS = re.compile(r"(\bAUTH\b['\"`]?[ \t,]+)[^\r\n]*")
_API_KEY_LIKE = re.compile(r"\b(sk|pk|rk|xox[abp])-[A-Za-z0-9_\-]{8,}")

_known_secrets: dict[str, re.Pattern[str]] = {}
_known_lock = threading.Lock()
# Short strings would mask ordinary words; the structural patterns above still cover them.
_MIN_REMEMBERED = 4


def remember_secret(secret: str | None) -> None:
    """Register a secret from config or a URL, so it is masked wherever it reappears later.

    Only secrets the SDK itself parsed out of configuration are remembered, never values seen
    in arbitrary messages; they are masked only where they stand as a whole token.
    """
    if not secret or len(secret) < _MIN_REMEMBERED:
        return
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    with _known_lock:
        for form in forms:
            if len(form) >= _MIN_REMEMBERED and form not in _known_secrets:
                _known_secrets[form] = re.compile(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])")


def remember_secrets_in_url(url: str) -> None:
    """Register the password, token-like user info and secret query values of ``url``."""
    if "://" not in url:
        return
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[\s'\"<>]", rest, maxsplit=1)[0]
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        if ":" in userinfo:
            remember_secret(userinfo.split(":", 1)[1])
        elif scheme.lower().split("+")[0] in _TOKEN_USERINFO_SCHEMES:
            remember_secret(userinfo)
    query = authority.partition("?")[2] or rest.partition("?")[2]
    for key, value in parse_qsl(query.split("#")[0], keep_blank_values=True):
        if re.fullmatch(_KEY, key, flags=re.IGNORECASE):
            remember_secret(value)


def _mask_url(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    if "@" not in rest:
        return match.group(0)
    userinfo, host = rest.rsplit("@", 1)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        masked = f"{user}:{MASK}"
    elif scheme.lower().split("+")[0] in _TOKEN_USERINFO_SCHEMES:
        masked = MASK
    else:
        masked = userinfo
    return f"{scheme}://{masked}@{host}"


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(match.lastindex or 2)
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{quote_char}{MASK}{quote_char}"


def redact(text: object) -> str:
    """Return ``str(text)`` with every password, token or secret query parameter masked.

    Covers URL userinfo (``postgresql://u:PW@h``, ``redis://:PW@h``, ``redis://TOKEN@h``),
    secret query parameters, libpq ``key=value`` strings, ``PGPASSWORD=...``, JSON and dict
    reprs (``"password": "..."``), bearer tokens, URL-encoded forms, and every secret that
    configuration parsed earlier in this process.
    """
    out = str(text)
    with _known_lock:
        known = sorted(_known_secrets.items(), key=lambda item: len(item[0]), reverse=True)
    for secret, pattern in known:
        if secret in out:
            out = pattern.sub(MASK, out)
    out = _URL.sub(_mask_url, out)
    out = _QUERY_SECRET.sub(_mask_value, out)
    out = _KV_SECRET.sub(_mask_value, out)
    out = _MAPPING_SECRET.sub(lambda m: m.group(1) + m.group(3)[0] + MASK + m.group(3)[0], out)
    out = _BEARER.sub(lambda m: m.group(1) + MASK, out)
    out = _AUTH_ARGS.sub(lambda m: m.group(1) + MASK, out)
    return _API_KEY_LIKE.sub(lambda m: f"{m.group(1)}-{MASK}", out)


def redact_url(url: str) -> str:
    """A URL safe to print: the same URL with its credentials masked."""
    return redact(url)
