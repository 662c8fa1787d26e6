"""`OpenAICompatibleEmbedder`: embeddings from any ``/v1/embeddings`` server (OpenAI, Ollama, vLLM, TEI)."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mosaic_storage import MosaicError, redact

from ._embedders import normalize_rows

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


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
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {redact(base_url)!r}")
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
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                    return self._parse(response.read(), len(batch))
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode(errors="replace")
                if err.code in RETRY_STATUSES and not last:
                    self._sleep(attempt, err.headers.get("Retry-After"))
                    continue
                raise EmbedderError(
                    f"embedding request to {self._url} failed with HTTP {err.code}: {detail}",
                    remediation="check the model name and the API key",
                ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if last:
                    reason = getattr(err, "reason", err)
                    raise EmbedderError(
                        f"embedding request to {self._url} failed after {attempt + 1} attempts: "
                        f"{type(err).__name__}: {reason}",
                        remediation="check that the embedding server is up and base_url is right",
                    ) from None
                self._sleep(attempt, None)
        raise AssertionError("unreachable")  # pragma: no cover

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
            raise EmbedderError(
                f"embedding server at {self._url} sent an unexpected answer: {type(err).__name__}: {err}"
            ) from None
        if vectors.shape != (expected, self._dim):
            raise EmbedderError(
                f"embedding server at {self._url} returned shape {vectors.shape}, "
                f"expected {(expected, self._dim)}",
                remediation="set dim to the model's output dimension",
            )
        return vectors
