"""`OpenAICompatibleProvider`: ``POST {base_url}/chat/completions`` (OpenAI, Ollama, vLLM, LM Studio)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ._base import HttpProvider
from ._errors import ProviderError
from ._http import DECODE_ERRORS, HttpEndpoint, SSEEvent, check_api_key
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

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


class OpenAICompatibleProvider(HttpProvider):
    """Any server speaking OpenAI's chat completions API; ``base_url`` ends in ``/v1``.

    OpenAI ``https://api.openai.com/v1``, Ollama ``http://localhost:11434/v1``, vLLM
    ``http://HOST:8000/v1``, LM Studio ``http://localhost:1234/v1``. The key, when given,
    goes in ``Authorization: Bearer`` and is registered for redaction; surrounding whitespace
    is stripped and a key that cannot be a header value is a `CredentialError`.
    ``stream_idle_timeout``, ``trust_env`` and ``allow_insecure_http``: see `HttpEndpoint`
    (the providers page): a key is sent over plain http:// only to this machine unless allowed.
    """

    _chat_path = "/chat/completions"
    _probe_path = "/models"

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        stream_idle_timeout: float | None = None,
        trust_env: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        from ._config import check_base_url

        check_base_url(base_url)
        api_key = check_api_key(api_key, provider=name)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
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
        body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages], **options}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in tools
            ]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _parse(self, data: Any, model: str) -> ChatResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            calls = tuple(
                ToolCall(
                    id=str(call.get("id") or f"call_{i}"),
                    name=str(call["function"]["name"]),
                    arguments=_arguments(call["function"].get("arguments")),
                )
                for i, call in enumerate(message.get("tool_calls") or ())
            )
            return ChatResponse(
                content=message.get("content") or "",
                tool_calls=calls,
                usage=_usage(data.get("usage")),
                finish_reason=_finish(choice.get("finish_reason"), calls),
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
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish: str | None = None
        answered_model = model
        done = False
        for event in events:
            if event.data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(event.data)
                if chunk.get("error"):
                    raise self._protocol_error("an error in the stream", started=True)
                answered_model = str(chunk.get("model") or answered_model)
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    finish = choice.get("finish_reason") or finish
                    if delta.get("content"):
                        text.append(delta["content"])
                        yield TextDelta(delta["content"])
                    for part in delta.get("tool_calls") or ():
                        index = int(part.get("index", 0))
                        call = calls.setdefault(index, {"id": None, "name": "", "arguments": []})
                        function = part.get("function") or {}
                        call["id"] = part.get("id") or call["id"]
                        if function.get("name"):
                            call["name"] += function["name"]
                        fragment = function.get("arguments") or ""
                        call["arguments"].append(fragment)
                        yield ToolCallDelta(index, part.get("id"), function.get("name"), fragment)
            except ProviderError:
                raise
            except DECODE_ERRORS as err:
                malformed = type(err).__name__
                break
        if malformed is not None:
            # Outside the handler: the exception quoting the event does not ride along.
            raise self._protocol_error(f"a malformed stream event ({malformed})", started=True)
        if not done and finish is None:
            raise self._protocol_error("a stream that ended before it finished", started=True)
        assembled = tuple(
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments="".join(c["arguments"]) or "{}")
            for i, c in sorted(calls.items())
        )
        yield StreamEnd(
            ChatResponse(
                content="".join(text),
                tool_calls=assembled,
                usage=usage,
                finish_reason=_finish(finish, assembled),
                provider=self.name,
                model=answered_model,
            )
        )


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    return out


def _arguments(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value)


def _usage(data: Any) -> Usage:
    if not isinstance(data, Mapping):
        return Usage()
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


def _finish(reason: Any, calls: tuple[ToolCall, ...]) -> FinishReason:
    if reason is None:
        return "tool_calls" if calls else "stop"
    return _FINISH.get(str(reason), "other")
