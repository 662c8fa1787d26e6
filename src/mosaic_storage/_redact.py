"""One redaction helper: every message that may hold a URL or a secret passes through it."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"

# Schemes whose lone userinfo (``redis://TOKEN@host``) is a credential rather than a user name.
# http(s) too: ``https://TOKEN@github.com`` is how Git hosts take access tokens.
_TOKEN_USERINFO_SCHEMES = frozenset(
    {"redis", "rediss", "valkey", "valkeys", "unix", "http", "https", "ws", "wss", "git"}
)

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
    "authorization",
    "cookie",
    "passphrase",
    "private_key",
    "privatekey",
    "private-key",
    "secretkey",
    "secret-key",
    "secret_access_key",
    "secretaccesskey",
)
# A key that ends in a secret name: password, PGPASSWORD, REDIS_PASSWORD, db_token, ...
#
# Every pattern below runs in linear time, whatever the input (a model can put any text in a
# tool result). A key is one whole run of key characters, taken possessively (``*+``) so the
# engine never retries shorter prefixes of it, and only where a run starts (the look-behind), so
# no run is scanned twice; its secret name is then checked once, looking back from its end. (A
# lazy ``[...]*?`` prefix tried from every word boundary was quadratic: ``"a-" * 10500`` took
# minutes.) A key must reach the ``=``, ``:`` or quote that follows it, so taking the whole run
# masks exactly what a shorter prefix would.
_KEY_CHARS = r"[A-Za-z0-9_\-]"
# Names that end in another name (sslpassword, access_token) add nothing to the check.
_NAME_SUFFIXES = sorted(
    {name for name in _SECRET_NAMES if not any(n != name and name.endswith(n) for n in _SECRET_NAMES)}
)
_ENDS_IN_SECRET_NAME = "(?:" + "|".join(f"(?<={re.escape(name)})" for name in _NAME_SUFFIXES) + ")"
_KEY = rf"{_KEY_CHARS}*+{_ENDS_IN_SECRET_NAME}"
_RUN_START = rf"(?<!{_KEY_CHARS})"
_SECRET_KEY = re.compile(rf"(?i){_KEY}")

# The scheme is short and anchored so that long inputs stay linear. The authority runs to the
# next whitespace or quote; its userinfo ends at the last "@", so a password holding an
# unencoded "/", "?" or "#" is still masked whole. (Config refuses such URLs, and an
# unencoded "@", since drivers disagree on where the password ends.)
_URL = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,30})://(?P<rest>[^\s'\"<>]*)")
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_KEY}=)([^&;#\s'\"]*)")
# Quoted values, with backslash escapes. Runs of plain characters are taken whole (``++``): the
# same match as one character at a time, without a step of the engine per character.
_SINGLE_QUOTED = r"'(?:[^'\\]++|\\.)*+'"
_DOUBLE_QUOTED = r'"(?:[^"\\]++|\\.)*+"'
# libpq key=value strings and env-style assignments: password=..., PGPASSWORD='...'.
# A value that is an auth scheme and its credential (authorization=Basic dXNl...) is masked whole.
_SCHEME_AND_CREDENTIAL = r"(?:bearer|basic|digest|negotiate|token)[ \t]++[^\s'\"\\]++"
# Python reprs too: password=b'...', auth=('user', '...') (a bracket group of bounded length on
# one line, so a line of unclosed groups stays linear).
_PY_PREFIX = "[bBrRuU]{0,2}"
# Quoted with escaped quotes, inside a JSON string: password=\"...\".
_ESCAPED_QUOTED = r'\\++"(?:[^\\\r\n]++|\\++(?!"))*+\\++"' + "|" + r"\\++'(?:[^\\\r\n]++|\\++(?!'))*+\\++'"
_KV_SECRET = re.compile(
    rf"(?i)({_RUN_START}{_KEY}\s*=\s*)"
    rf"({_SCHEME_AND_CREDENTIAL}|{_ESCAPED_QUOTED}|{_PY_PREFIX}{_SINGLE_QUOTED}|{_PY_PREFIX}{_DOUBLE_QUOTED}"
    rf"|(?:[A-Za-z_][\w.]{{0,60}})?[(\[][^()\[\]\r\n]{{0,200}}[)\]]|(?:[^\s\\]++|\\.)++)"
)
# YAML, log and header lines with a bare key: password: ..., "password": 12345678,
# REDIS_PASSWORD: '...', Authorization: ..., userPassword:: .... After a bare key a space
# after the colon is required (host:port and URLs have none); after a quoted key it is not.
# The value is the rest of the line (a YAML scalar runs to its end, and an unquoted password
# may hold spaces), except a quoted string that closes on the line and ends the value (JSON:
# "password": "...", "user": ...).
_LINE_DOUBLE_QUOTED = r'"(?:[^"\\\r\n]++|\\.)*+"'
_LINE_SINGLE_QUOTED = r"'(?:[^'\\\r\n]++|\\.)*+'"
# HTTP allows a header without the space (Authorization:xyz); such names are never hosts.
_HEADER_KEY = rf"{_KEY_CHARS}*+(?:(?<=authorization)|(?<=cookie)|(?<=api-key)|(?<=apikey)|(?<=api_key))"
_COLON_SECRET = re.compile(
    rf"(?i)({_RUN_START}(?<!://)"
    rf"(?:{_HEADER_KEY}[ \t]*+:[ \t]*+|{_KEY}(?:[\"'][ \t]*+:[ \t]*+|[ \t]*+:[:=]?[ \t]++)))"
    rf"((?:{_LINE_DOUBLE_QUOTED}|{_LINE_SINGLE_QUOTED})(?=[ \t]*+(?:[,;}}\]#\r\n]|\Z))|[^\r\n]++)"
)
# Pairs in Python reprs: ('x-api-key', '...'), as httpx's Headers and dict.items() print them
# (b'...' for raw headers).
_PAIR_SECRET = re.compile(
    rf"(?i)(\(\s*+b?(?P<q>[\"']){_KEY}(?P=q)\s*+,\s*+b?)({_DOUBLE_QUOTED}|{_SINGLE_QUOTED})(?=\s*+\))"
)
# JSON inside a JSON string (an API error quoting a request body): \"password\": \"...\". A
# run of backslashes is taken whole, so runs of them stay linear.
_ESCAPED_MAPPING_SECRET = re.compile(
    rf"(?i)(\\++(?P<q>[\"']){_KEY}\\++(?P=q)\s*+:\s*+)"
    rf"(?:(\\++(?P=q))(?:[^\\\r\n]++|\\++(?!(?P=q)))*+(?=\\++(?P=q))|[^\s,;}}\]\\\"']++)"
)
# JSON and Python reprs: "password": "...", 'password': '...'.
_MAPPING_SECRET = re.compile(rf"(?i)((?P<q>[\"']){_KEY}(?P=q)\s*:\s*)({_DOUBLE_QUOTED}|{_SINGLE_QUOTED})")
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
        elif _token_userinfo(scheme):
            remember_secret(userinfo)
    query = authority.partition("?")[2] or rest.partition("?")[2]
    for key, value in parse_qsl(query.split("#")[0], keep_blank_values=True):
        if _SECRET_KEY.fullmatch(key):
            remember_secret(value)


def _token_userinfo(scheme: str) -> bool:
    """Whether a lone user info in a URL of ``scheme`` is a credential (git+https, redis+tls, ...)."""
    return any(part in _TOKEN_USERINFO_SCHEMES for part in scheme.lower().split("+"))


def _mask_url(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    if "@" not in rest:
        return match.group(0)
    userinfo, host = rest.rsplit("@", 1)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        masked = f"{user}:{MASK}"
    elif _token_userinfo(scheme):
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
    reprs (``"password": "..."``), YAML and log lines (``password: ...``), bearer tokens,
    URL-encoded forms, and every secret that configuration parsed earlier in this process.
    """
    out = str(text)
    with _known_lock:
        known = sorted(_known_secrets.items(), key=lambda item: len(item[0]), reverse=True)
    for secret, pattern in known:
        if secret in out:
            out = pattern.sub(MASK, out)
    reversed_text = ""
    for needle, hint, pattern, repl in _STAGES:
        if needle not in out:
            continue
        if not isinstance(hint, re.Pattern):
            starts = hint(out)
        else:
            reversed_text = reversed_text or out[::-1]
            starts = _reversed_starts(hint, reversed_text)
        masked = _sub_at(pattern, out, starts, repl)
        if masked is not out:
            out, reversed_text = masked, ""
    return out


def _sub_at(
    pattern: re.Pattern[str], text: str, starts: Iterable[int], repl: Callable[[re.Match[str]], str]
) -> str:
    """``pattern.sub(repl, text)``, given (in increasing order) every position a match can start at.

    Tried left to right, skipping those inside an earlier match, the first that matches is the
    leftmost match ``re.sub`` would find, so the result is the same. None of the patterns matches
    the empty string.
    """
    parts: list[str] = []
    done = 0
    for start in starts:
        if start < done:
            continue
        match = pattern.match(text, start)
        if match is None:
            continue
        parts += (text[done:start], repl(match))
        done = match.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _reversed_starts(hint: re.Pattern[str], reversed_text: str) -> list[int]:
    """Where each match of ``hint`` in the reversed text ends, as increasing positions in the text."""
    size = len(reversed_text)
    starts = [size - match.end() for match in hint.finditer(reversed_text)]
    starts.reverse()
    return starts


def _bearer_starts(text: str) -> list[int]:
    """Where bearer, token or basic starts, in any case (``lower`` and ``find`` beat a regex)."""
    if any(char in text for char in _FOLDS_TO_ASCII):  # (?i) matches them, lower() keeps them
        return _reversed_starts(_BEARER_HINT, text[::-1])
    lowered = text.lower()
    starts: list[int] = []
    for word in ("bearer", "token", "basic"):
        at = lowered.find(word)
        while at >= 0:
            starts.append(at)
            at = lowered.find(word, at + 1)
    starts.sort()
    return starts


# Letters that (?i) matches to ASCII s or i, but that lower() keeps (or, for the dotted I, lengthens).
_FOLDS_TO_ASCII = "\u017f\u0131\u0130"
_BEARER_HINT = re.compile(r"(?i)\s(?:reraeb|nekot|cisab)")

# Where a match can start, found fast; each pattern is tried only there (``_sub_at``), which gives
# ``re.sub``'s result without an attempt at every position (one that opens with a look-behind or
# ``\b`` is slow). Each hint searches the reversed text from a literal or a short set of
# characters (a fast scan) and walks back to where the match would start: a key ends right
# before its ``=`` or quote, a scheme before its ``://``, a bearer word before its space. A hint
# finds every start of a match (and maybe more), and hints never overlap one such start.
_NAMES_REVERSED = "|".join(re.escape(name[::-1]) for name in _NAME_SUFFIXES)
_Hint = re.Pattern[str] | Callable[[str], list[int]]
_STAGES: tuple[tuple[str, _Hint, re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    ("://", re.compile(r"//:[A-Za-z0-9+.\-]*+"), _URL, _mask_url),
    ("=", re.compile(rf"(?i)=(?:{_NAMES_REVERSED}){_KEY_CHARS}*+[?&;]"), _QUERY_SECRET, _mask_value),
    ("=", re.compile(rf"(?i)=\s*(?:{_NAMES_REVERSED}){_KEY_CHARS}*+"), _KV_SECRET, _mask_value),
    (
        ":",
        re.compile(rf"(?i):\s*([\"'])(?:{_NAMES_REVERSED}){_KEY_CHARS}*+\1"),
        _MAPPING_SECRET,
        lambda m: m.group(1) + m.group(3)[0] + MASK + m.group(3)[0],
    ),
    (
        ":",
        re.compile(rf"(?i):[ \t]*+[\"']?(?:{_NAMES_REVERSED}){_KEY_CHARS}*+"),
        _COLON_SECRET,
        _mask_value,
    ),
    (
        "\\",
        re.compile(rf"(?i):\s*+([\"'])\\++(?:{_NAMES_REVERSED}){_KEY_CHARS}*+\1\\++"),
        _ESCAPED_MAPPING_SECRET,
        lambda m: m.group(1) + (m.group(3) or "") + MASK,
    ),
    (
        "(",
        re.compile(rf"(?i),\s*+([\"'])(?:{_NAMES_REVERSED}){_KEY_CHARS}*+\1b?\s*+\("),
        _PAIR_SECRET,
        lambda m: m.group(1) + m.group(3)[0] + MASK + m.group(3)[0],
    ),
    ("", _bearer_starts, _BEARER, lambda m: m.group(1) + MASK),
    ("AUTH", re.compile("HTUA"), _AUTH_ARGS, lambda m: m.group(1) + MASK),
    ("-", re.compile(r"-(?:ks|kp|kr|[abp]xox)"), _API_KEY_LIKE, lambda m: f"{m.group(1)}-{MASK}"),
)


def redact_data(data: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, numbers) safe to print or log.

    Every string is `redact`-ed, keys too, and every value under a secret-named key
    (``password``, ``api_key``, ``api key``, ``db.password``, ``Authorization``, ...) or a key
    naming a bag of secrets (``secrets``, ``credentials``, ``api_keys``, ``secrets.db``) is
    masked whole, at any depth, and so is the value of a ``{"name": ..., "value": ...}`` entry
    whose name is a secret's (environment lists, headers as records): a job
    payload ``{"smtp": {"password": "..."}}`` prints as ``{"smtp": {"password": "***"}}``. So is
    the second item of a ``(name, value)`` tuple with a secret name (headers as pairs). Named
    tuples become dicts. Redact before encoding: JSON escaping would hide a secret from a pass
    over the text.
    """
    if isinstance(data, dict):
        # A {"name": "DB_PASSWORD", "value": ...} entry (environment lists, HAR headers,
        # named tuples of headers): the name tells whether the value is a secret.
        named = _named_secret_values(data)
        return {
            _redact_key(key): MASK
            if value is not None and (_is_secret_name(key) or key in named)
            else redact_data(value)
            for key, value in data.items()
        }
    if isinstance(data, tuple) and hasattr(data, "_asdict"):
        return redact_data(data._asdict())
    if isinstance(data, tuple) and len(data) == 2 and _is_secret_name(data[0]):
        return [_redact_key(data[0]), MASK]
    if isinstance(data, list):
        # Pairs as JSON gives headers back, [["X-Api-Key", "..."], ["Accept", "json"]], are
        # read as tuples; a list of words (scopes: ["auth", "billing"]) is not a pair.
        return [redact_data(tuple(item)) if _is_pair(item) else redact_data(item) for item in data]
    if isinstance(data, tuple):
        return [redact_data(value) for value in data]
    if isinstance(data, str):
        return redact(data)
    return data


def _is_pair(item: object) -> bool:
    return isinstance(item, list) and len(item) == 2 and isinstance(item[0], str | bytes)


def _named_secret_values(entry: dict[Any, Any]) -> list[str]:
    """The keys of the values to mask in a name/value entry whose name is a secret's.

    Only ``name``: ``key``/``value`` records are this SDK's own preferences (a preference
    called ``auth`` holding ``sso`` is no secret), which print in clear elsewhere too."""
    names = [key for key in entry if isinstance(key, str) and key.lower() == "name"]
    if not names or not any(_is_secret_name(entry[name]) for name in names):
        return []
    return [key for key in entry if isinstance(key, str) and key.lower() == "value"]


# Keys whose whole value is a bag of secrets: {"secrets": {"db": ...}}, {"credentials": [...]},
# {"api_keys": [...]}, {"cookies": [...]}. ("tokens" is not one: max_tokens and output_tokens are counts.)
_SECRET_CONTAINER = re.compile(
    rf"(?i){_KEY_CHARS}*+(?:(?<=secrets)|(?<=credentials)|(?<=credential)|(?<=creds)|(?<=cookies)"
    r"|(?<=passwords)|(?<=api_keys)|(?<=api-keys)|(?<=apikeys))"
)
# What separates the parts of a key written otherwise: "api key", "db.password", "password:".
_KEY_SEPARATORS = re.compile(r"[\s.:/]+")


def _is_secret_name(key: object) -> bool:
    """A key whose value is masked whole: a secret name (``password``, ``X-Api-Key``, ``api
    key``, ``db.password``) or a bag of secrets (``secrets``, ``credentials``, ``creds``,
    ``api_keys``), also as any part of a dotted key (``secrets.db``)."""
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    parts = [part for part in _KEY_SEPARATORS.split(key) if part]
    if not parts:
        return False
    if _SECRET_KEY.fullmatch("_".join(parts)) is not None:
        return True
    return any(_SECRET_CONTAINER.fullmatch(part) is not None for part in parts)


def _redact_key(key: object) -> object:
    return redact(key) if isinstance(key, str) else key


def redact_url(url: str) -> str:
    """A URL safe to print: the same URL with its credentials masked."""
    return redact(url)
