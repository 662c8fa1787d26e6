"""What a provider reads and returns: messages, tool specs and calls, usage, responses, stream events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "error", "other"]


@attrs.frozen
class ToolCall:
    """A call the model asks for: ``arguments`` is the JSON text the model wrote (maybe invalid)."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; `ValueError` naming the tool when they are not a JSON object."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            raise ValueError(f"the arguments of tool call {self.name!r} are not valid JSON") from None
        if not isinstance(value, dict):
            raise ValueError(f"the arguments of tool call {self.name!r} are not a JSON object")
        return value


def _tool_calls(value: Sequence[ToolCall | Mapping[str, Any]]) -> tuple[ToolCall, ...]:
    calls = []
    for call in value:
        if isinstance(call, ToolCall):
            calls.append(call)
            continue
        arguments = call.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(id=str(call["id"]), name=str(call["name"]), arguments=arguments))
    return tuple(calls)


def _role(_inst: object, _attr: object, value: str) -> None:
    if value not in ROLES:
        raise ValueError(f"message role {value!r} is not one of {', '.join(ROLES)}")


@attrs.frozen
class Message:
    """One chat message, in a shape every provider is translated from.

    ``tool`` messages answer the assistant's call ``tool_call_id``; ``is_error`` marks a
    failed call (Anthropic passes it on, OpenAI-compatible servers see only the text).
    """

    role: Role = attrs.field(validator=_role)
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tool_calls)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: Sequence[ToolCall] = ()) -> Message:
        return cls("assistant", content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(
        cls, tool_call_id: str, content: str, *, name: str | None = None, is_error: bool = False
    ) -> Message:
        return cls("tool", content, tool_call_id=tool_call_id, name=name, is_error=is_error)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (JSON-ready) that `from_dict` reads back; defaults are left out."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.is_error:
            out["is_error"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """A message from a plain mapping with the same keys (``role``, ``content``, ...)."""
        unknown = set(data) - {"role", "content", "tool_calls", "tool_call_id", "name", "is_error"}
        if unknown:
            raise ValueError(f"unknown message keys: {', '.join(sorted(unknown))}")
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_calls=data.get("tool_calls") or (),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            is_error=bool(data.get("is_error", False)),
        )


MessageLike = Message | Mapping[str, Any]


def as_messages(messages: Sequence[MessageLike]) -> tuple[Message, ...]:
    """Messages from `Message` records or plain mappings."""
    if isinstance(messages, str | bytes):
        raise TypeError("messages is a sequence of messages; wrap a prompt as [Message.user(prompt)]")
    return tuple(m if isinstance(m, Message) else Message.from_dict(m) for m in messages)


@attrs.frozen
class ToolSpec:
    """A tool the model may call: ``parameters`` is a JSON Schema object for its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})


ToolLike = ToolSpec | Mapping[str, Any]


def as_tools(tools: Sequence[ToolLike] | None) -> tuple[ToolSpec, ...]:
    """Tool specs from `ToolSpec` records or mappings with ``name``, ``description``, ``parameters``."""
    out = []
    for tool in tools or ():
        if isinstance(tool, ToolSpec):
            out.append(tool)
        else:
            out.append(
                ToolSpec(
                    name=str(tool["name"]),
                    description=str(tool.get("description", "")),
                    parameters=tool.get("parameters") or {"type": "object", "properties": {}},
                )
            )
    return tuple(out)


@attrs.frozen
class Usage:
    """Tokens the request used, as the provider counted them (0 when it did not say)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@attrs.frozen
class Attempt:
    """A candidate the router tried before the one that answered, and why it was passed over."""

    provider: str
    model: str
    error: str


@attrs.frozen
class ChatResponse:
    """A provider's answer: text, tool calls, usage, why it stopped, and who answered.

    ``attempts`` lists the candidates a `Router` tried and passed over before this one.
    """

    content: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: FinishReason
    provider: str
    model: str
    attempts: tuple[Attempt, ...] = ()

    def to_message(self) -> Message:
        """The assistant message to append to the conversation."""
        return Message.assistant(self.content, self.tool_calls)


@attrs.frozen
class TextDelta:
    """A piece of the answer's text."""

    text: str
    type: Literal["text"] = "text"


@attrs.frozen
class ToolCallDelta:
    """A piece of tool call ``index``: its id and name arrive first, then argument fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["tool_call_delta"] = "tool_call_delta"


@attrs.frozen
class StreamEnd:
    """The last event: the whole answer, tool calls assembled, with usage and finish reason."""

    response: ChatResponse
    type: Literal["end"] = "end"


StreamEvent = TextDelta | ToolCallDelta | StreamEnd
