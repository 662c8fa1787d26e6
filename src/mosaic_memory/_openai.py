"""`OpenAICompatibleEmbedder`: embeddings from any ``/v1/embeddings`` server (OpenAI, Ollama, vLLM, TEI)."""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from mosaic_storage import MosaicError, redact
from mosaic_storage._extras import require
from mosaic_storage._redact import remember_secret, remember_secrets_in_url

from ._embedders import normalize_rows

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# An answer is a few floats per dimension per text; anything far larger is refused unread.
_MIN_BODY_LIMIT = 8 * 1024 * 1024
_BYTES_PER_FLOAT = 32
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class EmbedderError(MosaicError):
    """The embedding server failed or answered something unusable (message redacted)."""


class _Transient(Exception):
    """A failure worth a retry; ``reason`` is safe to show (it never quotes the server)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotFinite(ValueError):
    """The answer spelled NaN or Infinity, which JSON does not allow."""


def _no_constant(name: str) -> NoReturn:
    raise _NotFinite


def _checked_key(api_key: str | None) -> str | None:
    """The key without surrounding whitespace, or an error that never quotes it."""
    if api_key is None or not api_key.strip():
        return None
    key = api_key.strip()
    if not all("!" <= char <= "~" for char in key):
        raise EmbedderError(
            "the API key holds characters an HTTP header cannot carry (non-ASCII, whitespace or "
            "control characters inside it)",
            remediation="copy the key again from your provider; it is printable ASCII only",
        )
    return key


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: ``localhost``, 127.0.0.0/8, ``::1``."""
    # Only the name ``localhost`` itself: ``*.localhost`` names may be resolved through DNS.
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAICompatibleEmbedder:
    """Embeds through an OpenAI-compatible HTTP API: ``POST {base_url}/embeddings``.

    Texts go in batches of ``batch_size``; a failed request (timeout, connection error,
    408/409/425/429/5xx) is retried up to ``max_retries`` times with exponential backoff
    (``Retry-After`` honoured, capped at ``max_backoff``). Each request, answer included,
    must finish within ``timeout`` seconds in all. Errors are `EmbedderError`s that never
    quote the server's text and pass through `mosaic_storage.redact`, so keys never leak.

    Hardening: redirects are never followed (they would carry the key to another host);
    answers larger than the batch can need are refused (a single gzip or deflate encoding
    is decoded with bounded memory, any other or stacked encoding is refused); a
    ``base_url`` holding credentials is refused; an ``api_key`` is not sent over plain
    ``http://`` to a host other than this machine unless ``allow_insecure_http=True``; the
    key is stripped of surrounding whitespace and must be printable ASCII; vectors must be
    finite numbers with ``index`` values 0..n-1.

    Proxies: ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` are ignored (they would see the key
    even for a ``localhost`` server); pass ``proxy="http://proxy:3128"`` to use one.
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` are still honoured. Each request opens its own
    connection, so that the ``timeout`` can end it wherever it is stuck.

    Examples: OpenAI ``base_url="https://api.openai.com/v1"``; Ollama
    ``"http://localhost:11434/v1"``; vLLM ``"http://localhost:8000/v1"``; TEI
    ``"http://localhost:8080/v1"``. Needs the ``http`` extra (httpx). Use it as a context
    manager, or call `close`, to release its connections.

    Raises:
        MissingExtraError: httpx is not installed (``pip install 'mosaic-stack[http]'``).
        ValueError: a bad ``base_url``, ``proxy`` or setting.
        EmbedderError: an ``api_key`` that no HTTP header can carry (the message omits it).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        dim: int,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        name: str | None = None,
        allow_insecure_http: bool = False,
        proxy: str | None = None,
    ) -> None:
        remember_secrets_in_url(base_url)
        remember_secret(api_key)
        if proxy:
            remember_secrets_in_url(proxy)
        api_key = _checked_key(api_key)
        remember_secret(api_key)
        if batch_size < 1 or dim < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(
                "batch_size, dim and timeout must be positive and max_retries at least 0, got "
                f"batch_size={batch_size}, dim={dim}, timeout={timeout}, max_retries={max_retries}"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {redact(base_url)!r}")
        parts = urllib.parse.urlsplit(base_url)
        if "@" in parts.netloc:
            raise ValueError(
                f"base_url must not hold credentials ({redact(base_url)!r}): pass api_key instead"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment, got {redact(base_url)!r}")
        host = parts.hostname or ""
        if api_key and parts.scheme == "http" and not is_loopback(host) and not allow_insecure_http:
            raise ValueError(
                f"refusing to send the API key in clear text over plain http:// to {host!r}: use an "
                "https:// base_url, drop the key if the server needs none, or pass "
                "allow_insecure_http=True (config: set MOSAIC_EMBEDDER_ALLOW_INSECURE_HTTP=1) "
                "if the network between you and the server is trusted"
            )
        if proxy and not proxy.startswith(("http://", "https://", "socks5://", "socks5h://")):
            raise ValueError(f"proxy must be an http://, https:// or socks5:// URL, got {redact(proxy)!r}")
        proxy_host = (urllib.parse.urlsplit(proxy).hostname or "") if proxy else ""
        proxied = bool(proxy) and not is_loopback(proxy_host)
        if api_key and proxied and parts.scheme == "http" and not allow_insecure_http:
            raise ValueError(
                f"refusing to send the API key in clear text through the proxy {proxy_host!r} "
                "to a plain http:// base_url: the proxy would read it; use an https:// base_url, "
                "no proxy, or pass allow_insecure_http=True if you trust the proxy"
            )
        http = require("httpx", extra="http", purpose="OpenAICompatibleEmbedder")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._name = name or f"openai:{model}"
        self._timeout = timeout
        self._limit = max(_MIN_BODY_LIMIT, batch_size * dim * _BYTES_PER_FLOAT)
        # identity: a compressed answer could inflate far past the size limit before it is counted.
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # trust_env=False: no proxy from the environment (HTTP_PROXY would see the key even for
        # localhost), no .netrc. The CA bundle variables are still honoured, explicitly.
        verify: ssl.SSLContext | bool = True
        if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
            verify = ssl.create_default_context(
                cafile=os.environ.get("SSL_CERT_FILE") or None,
                capath=os.environ.get("SSL_CERT_DIR") or None,
            )
        # No keep-alive: every request has its own socket, which the deadline watchdog may end.
        self._client: httpx.Client = http.Client(
            headers=headers,
            timeout=http.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            proxy=proxy or None,
            verify=verify,
            limits=http.Limits(max_keepalive_connections=0),
        )
        # HTTPError: transport failures (a socket ended by the watchdog too).
        self._http_error: type[Exception] = http.HTTPError

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder({redact(self._url)!r}, model={self._model!r}, dim={self._dim})"

    def close(self) -> None:
        """Close the pooled connections; the embedder cannot be used afterwards."""
        self._client.close()

    def __enter__(self) -> OpenAICompatibleEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            out[start : start + len(batch)] = self._embed_batch(batch)
        return normalize_rows(out)

    def _embed_batch(self, batch: list[str]) -> npt.NDArray[np.float32]:
        body = json.dumps({"model": self._model, "input": batch}).encode()
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                status, retry_after, raw = self._post(body)
            except (self._http_error, _Transient) as err:
                # Only the error's type: httpx's text may name proxies or echo the request.
                reason = err.reason if isinstance(err, _Transient) else type(err).__name__
                if last:
                    raise EmbedderError(
                        f"embedding request to {self._url} failed after {attempt + 1} attempts: {reason}",
                        remediation="check that the embedding server is up and base_url is right",
                    ) from None
                self._sleep(attempt, None)
                continue
            if 200 <= status < 300:
                return self._parse(raw, len(batch))
            if status in RETRY_STATUSES and not last:
                self._sleep(attempt, retry_after)
                continue
            # The server's own text is left out: servers echo keys and headers back.
            redirected = 300 <= status < 400
            raise EmbedderError(
                f"embedding request to {self._url} failed with HTTP {status}"
                + (" (a redirect, which is never followed)" if redirected else "")
                + (f" after {attempt + 1} attempts" if attempt else ""),
                remediation="point base_url at the final address"
                if redirected
                else "check the model name and the API key",
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, body: bytes) -> tuple[int, str | None, bytes]:
        """Status, Retry-After and body of one POST, all within ``timeout`` and a size limit.

        httpx's timeouts bound each read, not the whole: a server trickling header lines
        or body bytes would never trip them. A watchdog timer shuts the request's socket
        down when ``timeout`` runs out, wherever the request is (TLS, headers or body).
        """
        deadline = time.monotonic() + self._timeout
        sockets: list[socket.socket] = []
        lock = threading.Lock()
        expired = threading.Event()

        def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith("connect_tcp.complete") and info.get("return_value") is not None:
                raw = info["return_value"].get_extra_info("socket")
                if isinstance(raw, socket.socket):
                    # A duplicate: TLS detaches the original, and shutdown acts on the connection.
                    sock = raw.dup()
                    with lock:
                        sockets.append(sock)
                        if expired.is_set():
                            _shutdown(sock)

        def expire() -> None:
            with lock:
                expired.set()
                for sock in sockets:
                    _shutdown(sock)

        watchdog = threading.Timer(self._timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            answer = self._exchange(body, deadline, trace)
            if expired.is_set():  # a body without a length reads a shut socket as its end
                raise self._timed_out()
            return answer
        except self._http_error:
            if expired.is_set():
                raise self._timed_out() from None
            raise
        finally:
            watchdog.cancel()
            with lock:
                for sock in sockets:
                    sock.close()

    def _timed_out(self) -> _Transient:
        return _Transient(f"no complete answer within the {self._timeout:g} s timeout")

    def _exchange(self, body: bytes, deadline: float, trace: Any) -> tuple[int, str | None, bytes]:
        with self._client.stream("POST", self._url, content=body, extensions={"trace": trace}) as response:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            if not 200 <= status < 300:
                return status, retry_after, b""  # never read: it is never shown
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._limit:
                self._too_large()
            encodings = [
                part.strip().lower()
                for part in response.headers.get_list("Content-Encoding", split_commas=True)
            ]
            encodings = [part for part in encodings if part and part != "identity"]
            if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
                raise EmbedderError(
                    f"embedding server at {self._url} sent a Content-Encoding other than identity, "
                    "gzip or deflate (stacked encodings are refused)",
                    remediation="the embedder asks for an uncompressed answer; check the server or a "
                    "proxy in between",
                )
            # wbits 47 reads gzip or zlib; deflate without the zlib header is retried raw below.
            decoder = zlib.decompressobj(47) if encodings else None
            chunks: list[bytes] = []
            size = wire = 0
            # Raw bytes, decoded here with max_length: memory stays within the limit however
            # well the answer compresses. No chunk_size: the deadline is checked per chunk.
            for chunk in response.iter_raw():
                wire += len(chunk)
                if wire > self._limit:
                    self._too_large()
                if time.monotonic() > deadline:
                    raise self._timed_out()
                if decoder is None:
                    size += len(chunk)
                    if size > self._limit:
                        self._too_large()
                    chunks.append(chunk)
                    continue
                pending = chunk
                while pending and not decoder.eof:
                    try:
                        out = decoder.decompress(pending, self._limit - size + 1)
                    except zlib.error:
                        if size or wire != len(chunk) or encodings[0] != "deflate":
                            raise _Transient("a compressed answer that does not decode") from None
                        decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                        continue
                    size += len(out)
                    if size > self._limit:
                        self._too_large()
                    chunks.append(out)
                    pending = decoder.unconsumed_tail
            if decoder is not None and not decoder.eof:
                raise _Transient("a compressed answer that does not decode")
        return status, retry_after, b"".join(chunks)

    def _too_large(self) -> NoReturn:
        raise EmbedderError(
            f"embedding server at {self._url} sent more than {self._limit} bytes",
            remediation="check that base_url points at an embeddings API",
        )

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self._backoff * (2**attempt)
        if retry_after is not None:
            delay = _retry_after_seconds(retry_after, default=delay)
        time.sleep(min(self._max_backoff, max(0.0, delay)))

    def _parse(self, raw: bytes, expected: int) -> npt.NDArray[np.float32]:
        try:
            data = json.loads(raw, parse_constant=_no_constant)["data"]
            problem = _check_data(data, expected)
            if problem is None:
                rows = [item["embedding"] for item in sorted(data, key=lambda item: item["index"])]
                with np.errstate(over="ignore", invalid="ignore"):
                    vectors = np.asarray(rows, dtype=np.float64).astype(np.float32)
        except _NotFinite:
            problem = "NaN or Infinity, which are not JSON numbers"
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as err:
            # Only the error's type: its text would quote the server's answer.
            raise EmbedderError(
                f"embedding server at {self._url} sent an unexpected answer ({type(err).__name__})"
            ) from None
        if problem is not None:
            raise EmbedderError(f"embedding server at {self._url} sent an unexpected answer: {problem}")
        if vectors.shape != (expected, self._dim):
            raise EmbedderError(
                f"embedding server at {self._url} returned shape {vectors.shape}, "
                f"expected {(expected, self._dim)}",
                remediation="set dim to the model's output dimension",
            )
        if not np.isfinite(vectors).all():
            raise EmbedderError(
                f"embedding server at {self._url} sent an unexpected answer: a vector value that "
                "is not a finite 32-bit float (NaN, infinity or too large)"
            )
        return vectors


def _check_data(data: Any, expected: int) -> str | None:
    """What is wrong with the answer's ``data`` (never quoting it), or None."""
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        return "data is not a list of objects"
    if len(data) != expected:
        return f"{len(data)} vectors for {expected} texts"
    indexes = [item.get("index") for item in data]
    if any(type(index) is not int for index in indexes) or sorted(indexes) != list(range(expected)):
        return f"index values are not exactly 0..{expected - 1}"
    for item in data:
        vector = item.get("embedding")
        if not isinstance(vector, list) or not all(type(x) is float or type(x) is int for x in vector):
            return "an embedding that is not a list of numbers"
    return None


def _retry_after_seconds(value: str, *, default: float) -> float:
    """``Retry-After`` as seconds: a number, or an HTTP date; ``default`` when it is neither."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()
