"""`AnthropicProvider`: Anthropic's Messages API (``POST {base_url}/v1/messages``), tool_use blocks, SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ._base import HttpProvider
from ._errors import ProviderError
from ._http import DECODE_ERRORS, RETRY_STATUSES, HttpEndpoint, SSEEvent, check_api_key
from ._messages import (
    ChatResponse,
    FinishReason,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}
# Error types Anthropic sends inside a stream that a retry may get past.
_RETRYABLE_STREAM_ERRORS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429}


class AnthropicProvider(HttpProvider):
    """Anthropic's Messages API; ``base_url`` is the host (``https://api.anthropic.com``).

    System messages become the ``system`` parameter, tool calls ``tool_use`` blocks and tool
    results ``tool_result`` blocks in a user turn. ``max_tokens`` defaults to 4096. The key
    goes in ``x-api-key`` and is registered for redaction. ``stream_idle_timeout``,
    ``trust_env`` and ``allow_insecure_http`` work as for `OpenAICompatibleProvider`.
    """

    _chat_path = "/v1/messages"
    _probe_path = "/v1/models"

    def __init__(
        self,
        name: str,
        base_url: str = "https://api.anthropic.com",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        stream_idle_timeout: float | None = None,
        trust_env: bool = False,
        allow_insecure_http: bool = False,
        api_version: str = API_VERSION,
    ) -> None:
        from ._config import check_base_url

        check_base_url(base_url)
        api_key = check_api_key(api_key, provider=name)
        headers = {"Accept": "application/json", "anthropic-version": api_version}
        if api_key:
            headers["x-api-key"] = api_key
        super().__init__(
            name,
            HttpEndpoint(
                provider=name,
                base_url=base_url,
                headers=headers,
                secret=api_key,
                timeout=timeout,
                max_retries=max_retries,
                backoff=backoff,
                max_backoff=max_backoff,
                stream_idle_timeout=stream_idle_timeout,
                trust_env=trust_env,
                allow_insecure_http=allow_insecure_http,
            ),
        )

    def _body(
        self,
        messages: tuple[Message, ...],
        tools: tuple[ToolSpec, ...],
        model: str,
        stream: bool,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": _turns(m for m in messages if m.role != "system"),
            **options,
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in tools
            ]
        if stream:
            body["stream"] = True
        return body

    def _parse(self, data: Any, model: str) -> ChatResponse:
        try:
            text: list[str] = []
            calls: list[ToolCall] = []
            for block in data["content"]:
                if block["type"] == "text":
                    text.append(block["text"])
                elif block["type"] == "tool_use":
                    calls.append(
                        ToolCall(str(block["id"]), str(block["name"]), json.dumps(block.get("input") or {}))
                    )
            usage = data.get("usage") or {}
            return ChatResponse(
                content="".join(text),
                tool_calls=tuple(calls),
                usage=Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
                finish_reason=_FINISH.get(str(data.get("stop_reason")), "other"),
                provider=self.name,
                model=str(data.get("model") or model),
            )
        except DECODE_ERRORS as err:
            kind = type(err).__name__
        # Outside the handler: int("the server's text") must not ride along as __context__.
        raise self._protocol_error(f"an unexpected answer ({kind})")

    def _assemble(self, events: Iterator[SSEEvent], model: str) -> Iterator[StreamEvent]:
        malformed: str | None = None
        text: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        input_tokens = output_tokens = 0
        stop: str | None = None
        answered_model = model
        for event in events:
            try:
                data = json.loads(event.data)
                kind = event.event or data.get("type")
                if kind == "error":
                    raise self._stream_error(data)
                if kind == "message_start":
                    message = data["message"]
                    answered_model = str(message.get("model") or answered_model)
                    usage = message.get("usage") or {}
                    input_tokens = int(usage.get("input_tokens") or 0)
                    output_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "content_block_start":
                    index, block = int(data["index"]), data["content_block"]
                    blocks[index] = {
                        "type": block["type"],
                        "id": block.get("id"),
                        "name": block.get("name"),
                        "json": [],
                    }
                    if block["type"] == "tool_use":
                        yield ToolCallDelta(index, block.get("id"), block.get("name"), "")
                    elif block["type"] == "text" and block.get("text"):
                        text.append(block["text"])
                        yield TextDelta(block["text"])
                elif kind == "content_block_delta":
                    index, delta = int(data["index"]), data["delta"]
                    if delta["type"] == "text_delta":
                        text.append(delta["text"])
                        yield TextDelta(delta["text"])
                    elif delta["type"] == "input_json_delta":
                        blocks[index]["json"].append(delta["partial_json"])
                        yield ToolCallDelta(index, arguments=delta["partial_json"])
                elif kind == "message_delta":
                    stop = (data.get("delta") or {}).get("stop_reason") or stop
                    usage = data.get("usage") or {}
                    output_tokens = int(usage.get("output_tokens") or output_tokens)
                    input_tokens = int(usage.get("input_tokens") or input_tokens)
                elif kind == "message_stop":
                    stop = stop or "end_turn"
                    break
            except ProviderError:
                raise
            except DECODE_ERRORS as err:
                malformed = type(err).__name__
                break
        if malformed is not None:
            # Outside the handler: the exception quoting the event does not ride along.
            raise self._protocol_error(f"a malformed stream event ({malformed})", started=True)
        if stop is None:
            raise self._protocol_error("a stream that ended before it finished", started=True)
        calls = tuple(
            ToolCall(str(b["id"]), str(b["name"]), "".join(b["json"]) or "{}")
            for _, b in sorted(blocks.items())
            if b["type"] == "tool_use"
        )
        yield StreamEnd(
            ChatResponse(
                content="".join(text),
                tool_calls=calls,
                usage=Usage(input_tokens, output_tokens),
                finish_reason=_FINISH.get(str(stop), "other"),
                provider=self.name,
                model=answered_model,
            )
        )

    def _stream_error(self, data: Any) -> ProviderError:
        error = data.get("error") if isinstance(data, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        kind = kind if isinstance(kind, str) and kind.replace("_", "").isalnum() and len(kind) < 64 else None
        status = _RETRYABLE_STREAM_ERRORS.get(kind or "")
        return ProviderError(
            f"sent an error in the stream ({kind or 'unknown'})",
            provider=self.name,
            status=status,
            retryable=status in RETRY_STATUSES,
            started=True,
        )


def _turns(messages: Iterator[Message] | Any) -> list[dict[str, Any]]:
    """Anthropic turns: tool results join one user turn; assistant tool calls become tool_use blocks."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            if message.is_error:
                block["is_error"] = True
            if turns and turns[-1]["role"] == "user" and isinstance(turns[-1]["content"], list):
                turns[-1]["content"].append(block)
            else:
                turns.append({"role": "user", "content": [block]})
        elif message.role == "assistant" and message.tool_calls:
            content: list[dict[str, Any]] = []
            if message.content:
                content.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                try:
                    arguments = call.parsed_arguments()
                except ValueError:
                    arguments = {}
                content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
            turns.append({"role": "assistant", "content": content})
        else:
            turns.append({"role": message.role, "content": message.content})
    return turns
