"""The agent layer's errors: provider failures (with whether a retry or another provider may help)."""

from __future__ import annotations

from collections.abc import Sequence

from mosaic_storage import MosaicError


class ProviderError(MosaicError):
    """A provider failed or answered something unusable; the text never quotes the server's answer.

    Attributes:
        provider: the configured provider name.
        status: the HTTP status, when there was one.
        retryable: a later attempt may succeed (timeouts, connection errors, 408/429/5xx).
        started: the failure came after part of a stream had been delivered.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retryable: bool = False,
        started: bool = False,
        remediation: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.started = started
        #: Seconds the server asked to wait before a retry (``Retry-After``), when it said.
        self.retry_after: float | None = None
        super().__init__(f"provider {provider!r}: {message}", remediation=remediation)

    @property
    def unavailable(self) -> bool:
        """Another provider may answer: the error is retryable, or this provider refused the key or model."""
        return self.retryable or self.status in (401, 403, 404)


class NoRouteError(MosaicError):
    """No configured model fits the request (alias, provider/model, capability tags)."""


class AllProvidersFailed(MosaicError):
    """Every candidate model failed; ``attempts`` holds each (provider, model, error) in order."""

    def __init__(self, attempts: Sequence[tuple[str, str, str]]) -> None:
        self.attempts = tuple(attempts)
        tried = "; ".join(f"{provider}/{model}: {error}" for provider, model, error in self.attempts)
        super().__init__(
            f"every candidate failed ({tried})",
            remediation="check `mosaic agent models` for which providers are reachable",
        )


class CredentialError(MosaicError):
    """A provider credential is missing, or cannot be encrypted or decrypted with the configured key."""
