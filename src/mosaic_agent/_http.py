"""The HTTP both providers share (httpx): retries, no redirects, size limits, SSE, redacted errors."""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from mosaic_storage import redact
from mosaic_storage._extras import require
from mosaic_storage._redact import remember_secret, remember_secrets_in_url

from ._errors import CredentialError, ProviderError

if TYPE_CHECKING:
    import httpx

# 529 is Anthropic's "overloaded".
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
MAX_BODY = 16 * 1024 * 1024
MAX_STREAM = 64 * 1024 * 1024
MAX_LINE = 1024 * 1024
MAX_HANGING = 8
"""Requests of one endpoint given up on (headers too slow) whose threads still wait on the
server: from this many on, requests fail at once instead of adding threads and connections
(requests already waiting for their headers when the count is reached may still add theirs)."""


class NotSent(ProviderError):
    """A request refused before it was sent (too many earlier ones hang): not retried here, so
    the router moves on at once; it is retryable for the router."""


_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]+$")
_LOOPBACK_HOSTS = frozenset({"localhost", "::1", "[::1]"})
# What a malformed answer can raise while it is decoded or read: bad numbers (int("sk-..."),
# int(1e400)), nesting deeper than the interpreter's stack, bytes that are not UTF-8.
DECODE_ERRORS = (ValueError, OverflowError, RecursionError, TypeError, KeyError, IndexError, AttributeError)


def check_api_key(api_key: str | None, *, provider: str) -> str | None:
    """The key with surrounding whitespace removed; `CredentialError` when it cannot be a header value.

    A key with a non-ASCII character or a control character inside would fail deep in the HTTP
    client, in an exception holding the key; the message here never shows the value.
    """
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise CredentialError(f"the API key for provider {provider!r} must be a string")
    key = api_key.strip()
    if not key:
        return None
    if not _HEADER_VALUE.match(key):
        raise CredentialError(
            f"the API key for provider {provider!r} holds a space, a control character or a "
            "non-ASCII character, so it cannot be sent in a header (the value is not shown)",
            remediation="copy the key again from the provider's console (check for stray quotes or "
            "characters) and store it again",
        )
    return key


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress
    import urllib.parse

    # Only the name ``localhost`` itself: ``*.localhost`` names may be resolved through DNS.
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_httpx() -> Any:
    """httpx, or `MissingExtraError` naming ``pip install 'mosaic-stack[agent]'``."""
    return require("httpx", extra="agent", purpose="LLM providers")


@attrs.frozen
class SSEEvent:
    """One server-sent event: its ``event:`` name (``None`` when absent) and its ``data:`` text."""

    event: str | None
    data: str


@attrs.frozen
class ProbeResult:
    """Whether a provider answered a cheap request: ``status`` is ok, unauthorized, unreachable or error."""

    provider: str
    status: str
    latency_ms: float | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def error_code(body: bytes) -> str | None:
    """The error's machine-readable code or type (``model_not_found``), never its free text.

    Servers echo requests and headers in messages, so only a short identifier is kept.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        for key in ("code", "type"):
            value = error.get(key)
            if isinstance(value, str) and _SAFE_CODE.match(value):
                return value
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


class SSEDecoder:
    """Turns bytes, cut anywhere, into server-sent events; a line past ``max_line`` is a ValueError."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self._max_line or any(len(raw) > self._max_line for raw in lines):
            raise ValueError(f"streamed a line longer than {self._max_line} bytes")
        events = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """Events still held when the stream ends (a last event without its blank line)."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data:
            events.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event, self._data = None, []
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            event = SSEEvent(self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class HttpEndpoint:
    """POSTs JSON to one base URL with retries; streams SSE; never follows a redirect.

    A request that fails with a timeout, a connection error or 408/409/425/429/5xx/529 is
    retried up to ``max_retries`` times, waiting ``backoff * 2**attempt`` (with jitter) or the
    server's ``Retry-After``, at most ``max_backoff`` seconds. A stream is retried only
    before its first byte was read. Error texts name the URL (redacted), the status and a
    short error code, never the body, which may echo the key.

    Deadlines: the response headers must arrive within ``timeout`` (a server trickling them
    byte by byte does not extend it), a whole answer within ``timeout``, a stream's first event
    within ``timeout`` and each further event within ``stream_idle_timeout`` (default
    ``timeout``); SSE keep-alive comments do not count as progress.

    A key is never sent over plain ``http://`` to a host other than this machine, nor through
    a proxy from the environment (``trust_env``), unless ``allow_insecure_http`` is True.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secret: str | None,
        timeout: float,
        max_retries: int,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_body: int = MAX_BODY,
        stream_idle_timeout: float | None = None,
        trust_env: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        remember_secrets_in_url(base_url)
        remember_secret(secret)
        insecure = secret and base_url.startswith("http://") and not allow_insecure_http
        if insecure and (trust_env or not is_loopback(base_url)):
            from mosaic_storage import ConfigError

            where = "through a proxy from the environment" if trust_env else "to another host"
            raise ConfigError(
                f"provider {provider!r} would send its API key over plain http:// {where} "
                f"({redact(base_url)}), where anyone on the path can read it",
                field=f"agent.providers.{provider}.base_url",
                remediation="use https://, or set allow_insecure_http: true for this provider "
                "if the network is trusted",
            )
        for value in headers.values():
            if not _HEADER_VALUE.match(value.replace(" ", "")):
                raise CredentialError(
                    f"a header for provider {provider!r} holds a control or non-ASCII character "
                    "(the value is not shown)"
                )
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self.timeout = timeout
        self.stream_idle_timeout = timeout if stream_idle_timeout is None else stream_idle_timeout
        self.trust_env = trust_env
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_body = max_body
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._hanging = 0  # sends given up on whose threads still wait (see _send)
        self._hanging_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpEndpoint({self.provider!r}, {redact(self.base_url)!r})"

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                httpx = load_httpx()
                self._client = httpx.Client(
                    headers=self._headers,
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=self.trust_env,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def url(self, path: str) -> str:
        return self.base_url + path

    # --- requests ----------------------------------------------------------------------------

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """The decoded JSON answer, read whole within ``timeout`` and ``max_body`` bytes."""
        payload = json.dumps(body).encode()
        raw = self._with_retries(path, lambda: self._post_once(path, payload))
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            pass
        # Raised outside the handler: a JSONDecodeError holds the whole answer (.doc).
        # Retryable: another provider (or a later try) may answer properly.
        raise self._error(path, "answered with something that is not JSON", retryable=True)

    @contextlib.contextmanager
    def stream_sse(self, path: str, body: Mapping[str, Any]) -> Iterator[Iterator[SSEEvent]]:
        """Opens the stream (retrying until it starts) and yields an iterator of its events."""
        payload = json.dumps(body).encode()
        opened = time.monotonic()
        response = self._with_retries(path, lambda: self._open_stream(path, payload))
        try:
            yield self._events(path, response, opened)
        finally:
            response.close()

    def get_status(self, path: str, timeout: float) -> int:
        """The status of one GET (no retries, no body read): for reachability probes."""
        request = self.client().build_request("GET", self.url(path), timeout=timeout)
        response = self._send(path, request, time.monotonic() + timeout)
        try:
            return int(response.status_code)
        finally:
            response.close()

    # --- internals ---------------------------------------------------------------------------

    def _with_retries(self, path: str, send: Callable[[], Any]) -> Any:
        # httpx's exceptions hold the request, Authorization header included, so errors are
        # raised after the handler ends: they carry no __context__ (not even a suppressed one).
        httpx = load_httpx()
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            failure: ProviderError | None = None
            wait: float | None = None
            try:
                return send()
            except ProviderError as err:
                # A server asking for a longer wait than max_backoff is left alone: the error
                # goes up (retryable), so a router can ask another provider meanwhile.
                too_long = err.retry_after is not None and err.retry_after > self.max_backoff
                if not err.retryable or last or too_long or isinstance(err, NotSent):
                    raise
                wait = err.retry_after
            except httpx.TimeoutException as err:
                if last:
                    failure = self._error(
                        path,
                        f"timed out after {attempt + 1} attempts ({type(err).__name__}, timeout "
                        f"{self.timeout:g}s)",
                        retryable=True,
                        remediation="raise the provider's timeout or check the server's load",
                    )
            except httpx.TransportError as err:
                if last:
                    failure = self._error(
                        path,
                        f"could not be reached after {attempt + 1} attempts ({type(err).__name__})",
                        retryable=True,
                        remediation="check that the server is up and base_url is right",
                    )
            except httpx.HTTPError as err:
                # DecodingError and the like: only its type goes up. Another provider may answer.
                failure = self._error(
                    path,
                    f"sent an answer that could not be read ({type(err).__name__})",
                    retryable=True,
                    remediation="check that base_url points at a server of this provider's type",
                )
            if failure is not None:
                raise failure
            self._sleep(attempt, wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(self, path: str, payload: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        request = self.client().build_request(
            "POST",
            self.url(path),
            content=payload,
            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        )
        response = self._send(path, request, deadline)
        self._check_encoding(path, response)
        try:
            body = self._read(path, response, deadline, self.max_body)
            self._check_status(path, response, body)
            return body
        finally:
            response.close()

    def _open_stream(self, path: str, payload: bytes) -> httpx.Response:
        request = self.client().build_request(
            "POST",
            self.url(path),
            content=payload,
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                "Accept-Encoding": "identity",
            },
        )
        response = self._send(path, request, time.monotonic() + self.timeout)
        self._check_encoding(path, response)
        if not 200 <= response.status_code < 300:
            try:
                body = self._read(path, response, time.monotonic() + self.timeout, 64 * 1024)
                self._check_status(path, response, body)
            finally:
                response.close()
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            response.close()
            raise self._error(path, "answered a stream request without text/event-stream")
        return response

    def _send(self, path: str, request: httpx.Request, deadline: float) -> httpx.Response:
        """``client.send`` that gives up when the headers have not all arrived by ``deadline``.

        httpx's read timeout restarts with every byte, so a server trickling its headers would
        hold the caller forever; the send runs in a worker thread the caller stops waiting for
        (the worker closes the response if it ever gets one). Such a thread waits until the
        server stops; with `MAX_HANGING` of them alive, a request fails at once instead.
        """
        with self._hanging_lock:
            hanging = self._hanging
        if hanging >= MAX_HANGING:
            raise NotSent(
                f"{redact(self.url(path))} was not sent: {hanging} earlier requests still wait for "
                "response headers that came too slowly",
                provider=self.provider,
                retryable=True,
                remediation="check the server (it answers byte by byte); requests go out again "
                "as the stuck ones end",
            )
        client = self.client()
        limit = max(0.0, deadline - time.monotonic())
        lock = threading.Lock()
        done = threading.Event()
        box: dict[str, Any] = {}

        def settle(key: str, value: Any) -> bool:
            """Hand the outcome over; whether the caller had given up (this thread is counted)."""
            with lock:
                abandoned = bool(box.get("abandoned", False))
                box[key] = value
                if abandoned:
                    with self._hanging_lock:
                        self._hanging -= 1
            return abandoned

        def run() -> None:
            try:
                response = client.send(request, stream=True)
            except BaseException as err:  # handed to the caller below
                settle("error", err)
                done.set()
                return
            if settle("response", response):
                response.close()
            done.set()

        threading.Thread(target=run, name=f"mosaic-http-{self.provider}", daemon=True).start()
        done.wait(limit)
        with lock:
            if "response" not in box and "error" not in box:
                box["abandoned"] = True
                with self._hanging_lock:
                    self._hanging += 1
        if box.get("abandoned"):
            raise self._error(
                path,
                f"timed out: its response headers did not arrive within {limit:g}s",
                retryable=True,
                remediation="raise the provider's timeout or check the server's load",
            )
        if "error" in box:
            raise box["error"]
        response: httpx.Response = box["response"]
        return response

    def _check_encoding(self, path: str, response: httpx.Response) -> None:
        # Answers are asked for uncompressed: httpx would inflate a compressed chunk whole
        # before the size limit sees it, so a few KB of stacked gzip could take gigabytes.
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise self._error(
                path, f"answered with Content-Encoding {encoding[:40]!r}; only uncompressed answers are read"
            )

    def _read(self, path: str, response: httpx.Response, deadline: float, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise self._error(path, f"sent an answer larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise self._error(
                    path, f"took longer than the timeout ({self.timeout:g}s) to answer", retryable=True
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_status(self, path: str, response: httpx.Response, body: bytes) -> None:
        status = int(response.status_code)
        if 200 <= status < 300:
            return
        code = error_code(body)
        suffix = f" ({code})" if code else ""
        if 300 <= status < 400:
            raise self._error(
                path,
                f"answered HTTP {status}, a redirect, which is never followed",
                status=status,
                remediation="point base_url at the final address (a redirect would carry the key)",
            )
        remediation = {
            401: "check the API key (stored credential or the env var named by api_key_env)",
            403: "check that the key may use this model",
            404: "check base_url and the model name (is the model pulled or deployed?)",
        }.get(status, "check the request and the provider's status")
        err = self._error(
            path,
            f"answered HTTP {status}{suffix}",
            status=status,
            retryable=status in RETRY_STATUSES,
            remediation=remediation,
        )
        err.retry_after = retry_after(response.headers.get("retry-after"))
        raise err

    def _events(self, path: str, response: httpx.Response, opened: float) -> Iterator[SSEEvent]:
        httpx = load_httpx()
        decoder = SSEDecoder()
        total = 0
        started = False
        broke: ProviderError | None
        # Only whole events move the deadline: keep-alive comments (": ping") do not.
        deadline = opened + self.timeout
        try:
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > MAX_STREAM:
                    raise self._error(path, f"streamed more than {MAX_STREAM} bytes", started=started)
                try:
                    events = decoder.feed(chunk)
                except ValueError as err:
                    raise self._error(path, str(err), started=started) from None
                now = time.monotonic()
                if events:
                    deadline = now + self.stream_idle_timeout
                elif now > deadline:
                    what = "first event" if not started else "further event"
                    limit = self.stream_idle_timeout if started else self.timeout
                    raise self._error(
                        path,
                        f"sent no {what} within {limit:g}s (only keep-alives or partial lines)",
                        retryable=True,
                        started=started,
                        remediation="raise the provider's timeout or stream_idle_timeout, "
                        "or check the server's load",
                    )
                for event in events:
                    started = True
                    yield event
        except httpx.HTTPError as err:
            broke = self._error(
                path, f"broke off the stream ({type(err).__name__})", retryable=True, started=started
            )
        else:
            broke = None
        if broke is not None:
            raise broke  # outside the handler: no __context__ holding the request
        yield from decoder.close()

    def _sleep(self, attempt: int, after: float | None) -> None:
        delay = after if after is not None else self.backoff * (2**attempt) * (0.5 + random.random() / 2)
        time.sleep(min(self.max_backoff, max(0.0, delay)))

    def _error(
        self,
        path: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        started: bool = False,
        remediation: str | None = None,
    ) -> ProviderError:
        return ProviderError(
            f"{redact(self.url(path))} {message}",
            provider=self.provider,
            status=status,
            retryable=retryable,
            started=started,
            remediation=remediation,
        )
