"""What both HTTP providers share: the ``chat`` entry point, streaming plumbing, probes, closing."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

from mosaic_storage import redact

from ._errors import ProviderError
from ._http import DECODE_ERRORS, HttpEndpoint, NotSent, ProbeResult, SSEEvent, load_httpx
from ._messages import (
    ChatResponse,
    Message,
    MessageLike,
    StreamEvent,
    ToolLike,
    ToolSpec,
    as_messages,
    as_tools,
)


class HttpProvider:
    """Base of the httpx providers; subclasses translate requests, answers and stream events."""

    _chat_path = ""
    _probe_path = ""

    def __init__(self, name: str, endpoint: HttpEndpoint) -> None:
        self._name = name
        self._endpoint = endpoint

    @property
    def name(self) -> str:
        return self._name

    @property
    def base_url(self) -> str:
        return self._endpoint.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, base_url={redact(self._endpoint.base_url)!r})"

    def __enter__(self) -> HttpProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._endpoint.close()

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
        """Send one chat request; see `Provider.chat`."""
        body = self._body(as_messages(messages), as_tools(tools), model, stream, options)
        if stream:
            return self._stream(body, model)
        return self._parse(self._endpoint.post_json(self._chat_path, body), model)

    def _stream(self, body: Mapping[str, Any], model: str) -> Iterator[StreamEvent]:
        with self._endpoint.stream_sse(self._chat_path, body) as events:
            started = False
            try:
                for event in self._assemble(events, model):
                    started = True
                    yield event
                return
            except ProviderError:
                raise
            except DECODE_ERRORS as err:
                # Text pieces of the wrong type and the like, met while assembling the answer.
                kind = type(err).__name__
            # Outside the handler, so no __context__ quoting the server.
            raise self._protocol_error(f"a malformed stream ({kind})", started=started)

    def probe(self, timeout: float = 3.0) -> ProbeResult:
        """GET the provider's model list: any answer means reachable; 401/403 mean a bad key."""
        httpx = load_httpx()
        start = time.perf_counter()
        try:
            status = self._endpoint.get_status(self._probe_path, timeout)
        except httpx.HTTPError as err:
            return ProbeResult(self._name, "unreachable", detail=type(err).__name__)
        except ProviderError as err:
            if isinstance(err, NotSent):
                detail = "not sent: earlier requests still wait for headers"
            else:
                detail = "headers timed out"
            return ProbeResult(self._name, "unreachable", detail=detail)
        latency = round((time.perf_counter() - start) * 1000, 1)
        if 200 <= status < 300:
            return ProbeResult(self._name, "ok", latency)
        if status in (401, 403):
            return ProbeResult(self._name, "unauthorized", latency, f"HTTP {status}")
        return ProbeResult(self._name, "error", latency, f"HTTP {status}")

    def _protocol_error(self, what: str, *, started: bool = False) -> ProviderError:
        return ProviderError(
            f"{redact(self._endpoint.url(self._chat_path))} sent {what}",
            provider=self._name,
            # Retryable: the next candidate of a router may well answer properly.
            retryable=True,
            started=started,
            remediation="check that base_url points at a server of this provider's type",
        )

    # Subclasses fill these in.
    def _body(
        self,
        messages: tuple[Message, ...],
        tools: tuple[ToolSpec, ...],
        model: str,
        stream: bool,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, data: Any, model: str) -> ChatResponse:
        raise NotImplementedError

    def _assemble(self, events: Iterator[SSEEvent], model: str) -> Iterator[StreamEvent]:
        raise NotImplementedError
