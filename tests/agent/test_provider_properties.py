"""Properties: SSE decoding does not depend on where the bytes are cut; tool-call fragments reassemble."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mosaic_storage as ms
from mosaic_agent import AnthropicProvider, Message, OpenAICompatibleProvider, ProviderError, ToolCall
from mosaic_agent._http import SSEDecoder, SSEEvent
from tests.agent._servers import AnthropicServer, OpenAIServer

# Event names and data lines: no newlines inside a line (SSE splits on them), no leading ':'.
_line = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40)
_name = st.from_regex(r"[a-z_]{1,20}", fullmatch=True)
_event = st.tuples(st.none() | _name, st.lists(_line, min_size=1, max_size=3))


def encode(events: list[tuple[str | None, list[str]]], crlf: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    out = []
    for name, lines in events:
        if name:
            out.append(f"event: {name}{end}")
        out.extend(f"data: {line}{end}" for line in lines)
        out.append(end)
    return "".join(out).encode()


@given(st.lists(_event, max_size=8), st.booleans(), st.data())
def test_sse_decoding_is_the_same_wherever_the_stream_is_cut(events, crlf, data):
    raw = encode(events, crlf)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    decoder = SSEDecoder()
    decoded: list[SSEEvent] = []
    for start, stop in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        decoded += decoder.feed(raw[start:stop])
    decoded += decoder.close()
    assert decoded == [SSEEvent(name, "\n".join(lines)) for name, lines in events]


def test_an_endless_line_is_refused():
    decoder = SSEDecoder(max_line=100)
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        decoder.feed(b"data: " + b"x" * 200)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OpenAIServer, AnthropicServer]]:
    with OpenAIServer() as oa, AnthropicServer() as an:
        yield oa, an  # type: ignore[misc]


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=25)
@given(
    arguments=st.dictionaries(st.text(min_size=1, max_size=10), _json_value, max_size=4),
    flavour=st.sampled_from(["openai", "anthropic"]),
    data=st.data(),
)
def test_streamed_tool_arguments_reassemble_however_they_are_split(servers, arguments, flavour, data):
    text = json.dumps(arguments)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=6))))
    fragments = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    oa, an = servers
    server = oa if flavour == "openai" else an
    server.push(server.stream_tool_call("tool", fragments))
    kind = OpenAICompatibleProvider if flavour == "openai" else AnthropicProvider
    with kind("p", server.base_url) as provider:
        *_, end = provider.chat([Message.user("go")], model="m1", stream=True)
    (call,) = end.response.tool_calls
    assert call.parsed_arguments() == arguments


def test_a_retry_after_longer_than_max_backoff_is_not_waited_for(servers):
    oa, _ = servers
    oa.push(oa.error(429, retry_after=30))
    before = len(oa.chat_requests)
    with OpenAICompatibleProvider("p", oa.base_url, max_retries=3, max_backoff=2) as provider:
        with pytest.raises(ProviderError) as info:
            provider.chat([Message.user("go")], model="m1")
    assert info.value.retryable and info.value.retry_after == 30
    assert len(oa.chat_requests) == before + 1


def test_without_httpx_the_error_names_the_extra(servers, monkeypatch):
    oa, _ = servers
    monkeypatch.setitem(sys.modules, "httpx", None)
    provider = OpenAICompatibleProvider("p", oa.base_url)
    with pytest.raises(ms.MissingExtraError) as info:
        provider.chat([Message.user("go")], model="m1")
    assert "mosaic-stack[agent]" in str(info.value)


_text = st.text(max_size=30)
_calls = st.lists(st.builds(ToolCall, _text, _text, _text), max_size=3)
_messages = st.one_of(
    st.builds(Message.user, _text),
    st.builds(Message.system, _text),
    st.builds(Message.assistant, _text, _calls),
    st.builds(Message.tool, _text, _text, name=st.none() | _text, is_error=st.booleans()),
)


@given(_messages)
def test_messages_round_trip_through_plain_json(message):
    assert Message.from_dict(json.loads(json.dumps(message.to_dict()))) == message
