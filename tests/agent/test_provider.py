"""Both providers over real sockets: text, tool calls, streaming, retries, timeouts, redirects, redaction."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

import mosaic_storage as ms
from mosaic_agent import (
    AnthropicProvider,
    ChatResponse,
    Message,
    OpenAICompatibleProvider,
    Provider,
    ProviderError,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
)
from tests.agent._servers import OpenAIServer, Reply, ScriptedServer

KEY = "sk-test-SECRETKEY1234567890"
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def provider_for(server: ScriptedServer, **kwargs: object) -> OpenAICompatibleProvider | AnthropicProvider:
    kwargs.setdefault("backoff", 0.01)
    if isinstance(server, OpenAIServer):
        return OpenAICompatibleProvider("oa", server.base_url, **kwargs)  # type: ignore[arg-type]
    return AnthropicProvider("an", server.base_url, **kwargs)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_both_providers_satisfy_the_protocol(llm_server):
    with provider_for(llm_server) as provider:
        assert isinstance(provider, Provider)


def test_text_answer_with_usage_and_finish_reason(llm_server):
    llm_server.push(llm_server.text("Hello there", input_tokens=11, output_tokens=3))
    with provider_for(llm_server, api_key=KEY) as provider:
        response = provider.chat(
            [Message.system("Be brief."), Message.user("Hi")], model="m1", temperature=0.2
        )
    assert isinstance(response, ChatResponse)
    assert response.content == "Hello there"
    assert response.tool_calls == ()
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)
    assert response.finish_reason == "stop"
    assert response.provider == provider.name
    (request,) = llm_server.chat_requests
    assert request.body["model"] == "m1"
    assert request.body["temperature"] == 0.2
    if isinstance(llm_server, OpenAIServer):
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert request.headers["x-api-key"] == KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.body["system"] == "Be brief."
        assert request.body["messages"] == [{"role": "user", "content": "Hi"}]
        assert request.body["max_tokens"] > 0


def test_plain_mappings_are_accepted_as_messages_and_tools(llm_server):
    llm_server.push(llm_server.text("ok"))
    with provider_for(llm_server) as provider:
        response = provider.chat(
            [{"role": "user", "content": "Hi"}],
            [{"name": "noop", "description": "Does nothing.", "parameters": {"type": "object"}}],
            model="m1",
        )
    assert response.content == "ok"
    tools = llm_server.chat_requests[0].body["tools"]
    assert "noop" in json.dumps(tools)


def test_tool_call_is_parsed_and_tools_are_sent_in_the_providers_format(llm_server):
    llm_server.push(llm_server.tool_call("get_weather", {"city": "Paris"}, id="call_9"))
    with provider_for(llm_server) as provider:
        response = provider.chat([Message.user("Weather in Paris?")], [WEATHER], model="m1")
    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in response.tool_calls] == [("call_9", "get_weather")]
    assert response.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    (tool,) = llm_server.chat_requests[0].body["tools"]
    if isinstance(llm_server, OpenAIServer):
        assert tool == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER.description,
                "parameters": WEATHER.parameters,
            },
        }
    else:
        assert tool == {
            "name": "get_weather",
            "description": WEATHER.description,
            "input_schema": WEATHER.parameters,
        }


def test_tool_results_go_back_in_the_providers_format(llm_server):
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    history = [
        Message.system("sys"),
        Message.user("Weather?"),
        Message.assistant("Let me look.", [call]),
        Message.tool("call_1", "18C and sunny", name="get_weather"),
    ]
    llm_server.push(llm_server.text("It is 18C."))
    with provider_for(llm_server) as provider:
        assert provider.chat(history, [WEATHER], model="m1").content == "It is 18C."
    sent = llm_server.chat_requests[0].body["messages"]
    if isinstance(llm_server, OpenAIServer):
        assert sent[2]["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        }
        assert sent[3] == {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1"}
    else:
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert sent[1]["content"][1] == {
            "type": "tool_use",
            "id": "call_1",
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        assert sent[2]["content"] == [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"}
        ]


def test_anthropic_marks_failed_tool_results_and_joins_them_in_one_turn(anthropic_server):
    calls = [ToolCall("a", "t1", "{}"), ToolCall("b", "t2", "{}")]
    history = [
        Message.user("go"),
        Message.assistant("", calls),
        Message.tool("a", "fine"),
        Message.tool("b", "boom", is_error=True),
    ]
    anthropic_server.push(anthropic_server.text("done"))
    with provider_for(anthropic_server) as provider:
        provider.chat(history, model="m1")
    turn = anthropic_server.chat_requests[0].body["messages"][2]
    assert turn["role"] == "user"
    assert [b["tool_use_id"] for b in turn["content"]] == ["a", "b"]
    assert turn["content"][1]["is_error"] is True


def test_streamed_text_arrives_in_pieces_and_ends_with_the_whole_answer(llm_server):
    llm_server.push(llm_server.stream_text(["Hel", "lo", " world"], input_tokens=4, output_tokens=9))
    with provider_for(llm_server) as provider:
        events = list(provider.chat([Message.user("Hi")], model="m1", stream=True))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    assert isinstance(events[-1], StreamEnd)
    assert sum(isinstance(e, StreamEnd) for e in events) == 1
    response = events[-1].response
    assert response.content == "Hello world"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 9)
    assert response.finish_reason == "stop"
    assert llm_server.chat_requests[0].body["stream"] is True


def test_streamed_tool_call_fragments_are_assembled(llm_server):
    fragments = ['{"ci', 'ty": ', '"Pa', 'ris"}']
    llm_server.push(llm_server.stream_tool_call("get_weather", fragments, id="call_7", text=["Checking"]))
    with provider_for(llm_server) as provider:
        events = list(provider.chat([Message.user("Weather?")], [WEATHER], model="m1", stream=True))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(d.arguments for d in deltas) == '{"city": "Paris"}'
    assert deltas[0].id == "call_7" and deltas[0].name == "get_weather"
    response = events[-1].response
    assert response.content == "Checking"
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (ToolCall("call_7", "get_weather", '{"city": "Paris"}'),)
    assert response.tool_calls[0].parsed_arguments() == {"city": "Paris"}


def test_429_is_retried_after_the_servers_retry_after(llm_server):
    llm_server.push(llm_server.error(429, retry_after=0.6), llm_server.text("finally"))
    start = time.monotonic()
    with provider_for(llm_server, max_retries=2, backoff=0.0) as provider:
        response = provider.chat([Message.user("Hi")], model="m1")
    assert response.content == "finally"
    assert len(llm_server.chat_requests) == 2
    assert time.monotonic() - start >= 0.55


def test_5xx_is_retried_with_backoff_then_succeeds(llm_server):
    llm_server.push(llm_server.error(500), llm_server.error(503), llm_server.text("ok"))
    with provider_for(llm_server, max_retries=2) as provider:
        assert provider.chat([Message.user("Hi")], model="m1").content == "ok"
    assert len(llm_server.chat_requests) == 3


def test_retries_run_out_with_a_retryable_error(llm_server):
    llm_server.push(*[llm_server.error(502)] * 3)
    with provider_for(llm_server, max_retries=2) as provider, pytest.raises(ProviderError) as info:
        provider.chat([Message.user("Hi")], model="m1")
    assert info.value.status == 502 and info.value.retryable
    assert len(llm_server.chat_requests) == 3
    assert "HTTP 502" in str(info.value)


def test_a_bad_request_is_not_retried_and_names_only_the_error_code(llm_server):
    llm_server.push(llm_server.error(400, code="invalid_request_error"))
    with provider_for(llm_server, max_retries=3) as provider, pytest.raises(ProviderError) as info:
        provider.chat([Message.user("Hi")], model="m1")
    assert info.value.status == 400 and not info.value.retryable and not info.value.unavailable
    assert "invalid_request_error" in str(info.value)
    assert "scripted failure" not in str(info.value)
    assert len(llm_server.chat_requests) == 1


def test_a_slow_server_times_out_and_is_retried(llm_server):
    llm_server.push(Reply(delay=5), Reply(delay=5))
    start = time.monotonic()
    with (
        provider_for(llm_server, timeout=0.3, max_retries=1) as provider,
        pytest.raises(ProviderError) as info,
    ):
        provider.chat([Message.user("Hi")], model="m1")
    assert time.monotonic() - start < 4
    assert info.value.retryable and "timed out" in str(info.value)
    assert len(llm_server.chat_requests) == 2


def test_a_server_that_hangs_up_is_a_retryable_connection_error(llm_server):
    llm_server.push(Reply(hangup=True), llm_server.text("second try"))
    with provider_for(llm_server, max_retries=1) as provider:
        assert provider.chat([Message.user("Hi")], model="m1").content == "second try"


def test_nothing_listening_is_a_retryable_error():
    with OpenAICompatibleProvider(
        "gone", f"http://127.0.0.1:{closed_port()}/v1", max_retries=1, backoff=0.01
    ) as p:
        with pytest.raises(ProviderError) as info:
            p.chat([Message.user("Hi")], model="m1")
    assert info.value.retryable and info.value.status is None
    assert "could not be reached after 2 attempts" in str(info.value)


def test_redirects_are_never_followed(llm_server):
    llm_server.push(Reply(302, {}, headers=(("Location", "http://example.invalid/steal"),)))
    with provider_for(llm_server, api_key=KEY) as provider, pytest.raises(ProviderError) as info:
        provider.chat([Message.user("Hi")], model="m1")
    assert "redirect" in str(info.value) and info.value.status == 302
    assert len(llm_server.requests) == 1


def test_an_oversized_answer_is_refused(llm_server):
    llm_server.push(Reply(raw=b"x" * 200_000))
    with provider_for(llm_server) as provider:
        provider._endpoint.max_body = 100_000
        with pytest.raises(ProviderError, match="larger than 100000 bytes"):
            provider.chat([Message.user("Hi")], model="m1")


def test_an_answer_that_is_not_json_is_a_clear_error(llm_server):
    llm_server.push(Reply(raw=b"<html>proxy error</html>"))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError, match="not JSON"):
        provider.chat([Message.user("Hi")], model="m1")


def test_an_answer_of_the_wrong_shape_is_a_clear_error(llm_server):
    llm_server.push(Reply(json={"unexpected": True}))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError, match="unexpected answer"):
        provider.chat([Message.user("Hi")], model="m1")


def test_a_stream_is_retried_while_it_has_not_started(llm_server):
    llm_server.push(llm_server.error(429, retry_after=0), llm_server.stream_text(["ok"]))
    with provider_for(llm_server, max_retries=1) as provider:
        events = list(provider.chat([Message.user("Hi")], model="m1", stream=True))
    assert events[-1].response.content == "ok"
    assert len(llm_server.chat_requests) == 2


def test_anthropic_error_event_mid_stream_is_a_started_retryable_error(anthropic_server):
    anthropic_server.push(anthropic_server.stream_error("overloaded_error", after_text=["par", "tial"]))
    seen = []
    with provider_for(anthropic_server) as provider, pytest.raises(ProviderError) as info:
        for event in provider.chat([Message.user("Hi")], model="m1", stream=True):
            seen.append(event)
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["par", "tial"]
    assert info.value.started and info.value.retryable
    assert "overloaded_error" in str(info.value)


def test_a_stream_cut_off_midway_is_a_started_error(llm_server):
    reply = llm_server.stream_text(["a", "b", "c"])
    llm_server.push(Reply(sse=reply.sse, break_after=3))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError) as info:
        list(provider.chat([Message.user("Hi")], model="m1", stream=True))
    assert info.value.started and "ended before it finished" in str(info.value)


@pytest.mark.parametrize("key", [KEY, "plainTOKENwithoutAprefix987654"])
def test_the_key_never_reaches_an_error_a_repr_or_a_log(llm_server, caplog, key):
    caplog.set_level(logging.DEBUG)
    llm_server.push(llm_server.error(401, code="authentication_error", echo_secrets=True))
    provider = provider_for(llm_server, api_key=key)
    # Registered with the redaction helper: masked wherever it turns up later, whatever its shape.
    assert key not in ms.redact(f"upstream said: bad key {key}.")
    with provider, pytest.raises(ProviderError) as info:
        provider.chat([Message.user(f"my key is {key}")], model="m1")
    assert info.value.status == 401 and info.value.unavailable
    texts = [str(info.value), repr(info.value), repr(provider), caplog.text, repr(provider._endpoint)]
    assert llm_server.chat_requests[0].headers.get("authorization", "").endswith(key) or (
        llm_server.chat_requests[0].headers.get("x-api-key") == key
    )
    for text in texts:
        assert key not in text


def test_base_urls_with_credentials_are_refused_without_echoing_them():
    with pytest.raises(ValueError) as info:
        OpenAICompatibleProvider("x", "http://user:hunter2secret@localhost:11434/v1")
    assert "hunter2secret" not in str(info.value)


def test_probe_reports_ok_unauthorized_and_unreachable(llm_server):
    with provider_for(llm_server) as provider:
        assert provider.probe(timeout=2).ok
        llm_server.models_reply = Reply(401, {"error": {"type": "authentication_error"}})
        result = provider.probe(timeout=2)
        assert result.status == "unauthorized" and result.latency_ms is not None
    with OpenAICompatibleProvider("gone", f"http://127.0.0.1:{closed_port()}/v1") as gone:
        assert gone.probe(timeout=1).status == "unreachable"
