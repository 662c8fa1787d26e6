"""`OpenAICompatibleEmbedder`: embeddings from any ``/v1/embeddings`` server (OpenAI, Ollama, vLLM, TEI)."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mosaic_storage import MosaicError, redact
from mosaic_storage._redact import remember_secret, remember_secrets_in_url

from ._embedders import normalize_rows

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# An answer is a few floats per dimension per text; anything far larger is refused unread.
_MIN_BODY_LIMIT = 8 * 1024 * 1024
_BYTES_PER_FLOAT = 32
_CHUNK = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Embeddings APIs never redirect; following one would carry the API key to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class EmbedderError(MosaicError):
    """The embedding server failed or answered something unusable (message redacted)."""


class OpenAICompatibleEmbedder:
    """Embeds through an OpenAI-compatible HTTP API: ``POST {base_url}/embeddings``.

    Texts go in batches of ``batch_size``; a failed request (timeout, connection error,
    408/409/425/429/5xx) is retried up to ``max_retries`` times with exponential backoff
    (``Retry-After`` honoured, capped at ``max_backoff``). Errors are `EmbedderError`s
    whose text passes through `mosaic_storage.redact`, so keys never leak.

    Examples: OpenAI ``base_url="https://api.openai.com/v1"``; Ollama
    ``"http://localhost:11434/v1"``; vLLM and TEI serve the same route. Uses the standard
    library's HTTP client, so it needs no extra.
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
    ) -> None:
        if batch_size < 1 or dim < 1 or max_retries < 0:
            raise ValueError("batch_size and dim must be positive, max_retries at least 0")
        remember_secrets_in_url(base_url)
        remember_secret(api_key)
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {redact(base_url)!r}")
        if "@" in urllib.parse.urlsplit(base_url).netloc:
            raise ValueError(
                f"base_url must not hold credentials ({redact(base_url)!r}): pass api_key instead"
            )
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._name = name or f"openai:{model}"
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder({redact(self._url)!r}, model={self._model!r}, dim={self._dim})"

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
            # The scheme was checked to be http(s) in __init__.
            request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")  # noqa: S310
            try:
                return self._parse(self._post(request), len(batch))
            except urllib.error.HTTPError as err:
                # The server's own text is left out: servers echo keys and headers back.
                if err.code in RETRY_STATUSES and not last:
                    self._sleep(attempt, err.headers.get("Retry-After"))
                    continue
                redirected = 300 <= err.code < 400
                raise EmbedderError(
                    f"embedding request to {self._url} failed with HTTP {err.code}"
                    + (" (a redirect, which is never followed)" if redirected else ""),
                    remediation="point base_url at the final address"
                    if redirected
                    else "check the model name and the API key",
                ) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as err:
                if last:
                    raise EmbedderError(
                        f"embedding request to {self._url} failed after {attempt + 1} attempts: "
                        f"{type(err).__name__}",
                        remediation="check that the embedding server is up and base_url is right",
                    ) from None
                self._sleep(attempt, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, request: urllib.request.Request) -> bytes:
        """The answer's body, read within ``timeout`` in all and within a size limit."""
        deadline = time.monotonic() + self._timeout
        limit = max(_MIN_BODY_LIMIT, self._batch_size * self._dim * _BYTES_PER_FLOAT)
        chunks: list[bytes] = []
        size = 0
        with _opener.open(request, timeout=self._timeout) as response:
            while chunk := response.read1(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise EmbedderError(f"embedding server at {self._url} sent more than {limit} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError("the answer took longer than the timeout")
                chunks.append(chunk)
        return b"".join(chunks)

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self._backoff * (2**attempt)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = float(retry_after)
        time.sleep(min(self._max_backoff, max(0.0, delay)))

    def _parse(self, raw: bytes, expected: int) -> npt.NDArray[np.float32]:
        try:
            data = sorted(json.loads(raw)["data"], key=lambda item: item["index"])
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
