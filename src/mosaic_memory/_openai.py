"""`OpenAICompatibleEmbedder`: embeddings from any ``/v1/embeddings`` server (OpenAI, Ollama, vLLM, TEI)."""

from __future__ import annotations

import email.utils
import ipaddress
import json
import time
import urllib.parse
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


class _TotalTimeout(Exception):
    """The answer was still arriving when the embedder's ``timeout`` ran out."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: ``localhost``, 127.0.0.0/8, ``::1``."""
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
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
    answers larger than the batch can need are refused; a ``base_url`` holding credentials
    is refused; an ``api_key`` is not sent over plain ``http://`` to a host other than this
    machine unless ``allow_insecure_http=True``.

    Examples: OpenAI ``base_url="https://api.openai.com/v1"``; Ollama
    ``"http://localhost:11434/v1"``; vLLM ``"http://localhost:8000/v1"``; TEI
    ``"http://localhost:8080/v1"``. Needs the ``http`` extra (httpx). Use it as a context
    manager, or call `close`, to release its connections.

    Raises:
        MissingExtraError: httpx is not installed (``pip install 'mosaic-stack[http]'``).
        ValueError: a bad ``base_url`` or setting.
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
    ) -> None:
        remember_secrets_in_url(base_url)
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
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # trust_env keeps HTTPS_PROXY / SSL_CERT_FILE working; httpx reads no .netrc unless asked.
        self._client: httpx.Client = http.Client(
            headers=headers, timeout=http.Timeout(timeout), follow_redirects=False
        )
        # HTTPError: transport failures, and answers httpx cannot decode (a broken gzip body).
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
            except (self._http_error, _TotalTimeout) as err:
                # Only the error's type: httpx's text may name proxies or echo the request.
                if last:
                    raise EmbedderError(
                        f"embedding request to {self._url} failed after {attempt + 1} attempts: "
                        f"{type(err).__name__}",
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
        """Status, Retry-After and body of one POST, read within ``timeout`` in all and a size limit."""
        deadline = time.monotonic() + self._timeout
        with self._client.stream("POST", self._url, content=body) as response:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            if not 200 <= status < 300:
                return status, retry_after, b""  # never read: it is never shown
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._limit:
                self._too_large()
            chunks: list[bytes] = []
            size = 0
            # iter_bytes decompresses, so the limit holds for what is decoded, not what was sent.
            # No chunk_size: httpx would buffer up to it, and the deadline is checked per chunk.
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self._limit:
                    self._too_large()
                if time.monotonic() > deadline:
                    raise _TotalTimeout
                chunks.append(chunk)
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
            data: list[Any] = sorted(json.loads(raw)["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as err:
            # Only the error's type: its text would quote the server's answer.
            raise EmbedderError(
                f"embedding server at {self._url} sent an unexpected answer ({type(err).__name__})"
            ) from None
        if vectors.shape != (expected, self._dim):
            raise EmbedderError(
                f"embedding server at {self._url} returned shape {vectors.shape}, "
                f"expected {(expected, self._dim)}",
                remediation="set dim to the model's output dimension",
            )
        return vectors


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
