"""The `Provider` protocol: chat completion with tools and streaming, one answer shape for every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol, overload, runtime_checkable

from ._http import ProbeResult
from ._messages import ChatResponse, MessageLike, StreamEvent, ToolLike


@runtime_checkable
class Provider(Protocol):
    """An LLM endpoint: ``chat`` sends messages (and tools) to ``model``.

    With ``stream=False`` it returns a `ChatResponse`; with ``stream=True`` an iterator of
    `TextDelta` and `ToolCallDelta` events ending in one `StreamEnd`, whose response holds
    the whole text, the assembled tool calls, usage and finish reason. Failures raise
    `ProviderError` (``retryable`` when another try or another provider may succeed).
    ``options`` carries sampling settings (``temperature``, ``max_tokens``, ...).
    """

    @property
    def name(self) -> str:
        """The provider's configured name: the ``provider`` in ``provider/model``."""
        ...

    @overload
    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str,
        stream: Literal[False] = False,
        **options: Any,
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str,
        stream: Literal[True],
        **options: Any,
    ) -> Iterator[StreamEvent]: ...

    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str,
        stream: bool = False,
        **options: Any,
    ) -> ChatResponse | Iterator[StreamEvent]:
        """Send one chat request."""
        ...

    def probe(self, timeout: float = 3.0) -> ProbeResult:
        """Whether the endpoint answers a cheap request within ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
