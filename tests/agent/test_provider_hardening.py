"""Hostile or broken servers: bad numbers, deep nesting, undecodable bodies, stalls, plain http, odd keys."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import mosaic_storage as ms
from mosaic_agent import (
    AgentConfig,
    AnthropicProvider,
    CredentialError,
    Message,
    OpenAICompatibleProvider,
    ProviderError,
    Router,
    StreamEnd,
)
from mosaic_agent import _http as http_module
from mosaic_agent._http import SSEDecoder
from tests.agent._servers import OpenAIServer, Reply, ScriptedServer

KEY = "vllm-local-key-42abc"
HI = [Message.user("Hi")]


def provider_for(server: ScriptedServer, **kwargs: object) -> OpenAICompatibleProvider | AnthropicProvider:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", KEY)
    if isinstance(server, OpenAIServer):
        return OpenAICompatibleProvider("oa", server.base_url, **kwargs)  # type: ignore[arg-type]
    return AnthropicProvider("an", server.base_url, **kwargs)  # type: ignore[arg-type]


def assert_clean(err: BaseException) -> None:
    """No server text, no key, no chained exception carrying either."""
    assert KEY not in str(err) and KEY not in repr(err)
    assert err.__cause__ is None and err.__context__ is None


def bad_usage(server: ScriptedServer, value: object) -> Reply:
    if isinstance(server, OpenAIServer):
        body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
        return Reply(json={**body, "usage": {"prompt_tokens": value}})
    return Reply(json={"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": value}})


@pytest.mark.parametrize("value", [KEY, 1e300 * 1e300, [KEY]], ids=["text", "infinity", "list"])
def test_bad_numbers_in_an_answer_are_a_retryable_protocol_error(llm_server, value):
    llm_server.push(bad_usage(llm_server, value))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError) as info:
        provider.chat(HI, model="m1")
    assert info.value.retryable
    assert "unexpected answer" in str(info.value)
    assert_clean(info.value)


def test_nesting_deeper_than_the_stack_is_a_retryable_protocol_error(llm_server):
    llm_server.push(Reply(raw=b"[" * 200_000))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError) as info:
        provider.chat(HI, model="m1")
    assert info.value.retryable and "not JSON" in str(info.value)
    assert_clean(info.value)


def test_bad_numbers_in_a_stream_are_a_protocol_error(openai_server):
    chunk = {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}
    openai_server.push(
        Reply(sse=((None, json.dumps(chunk)), (None, json.dumps({"usage": {"prompt_tokens": KEY}}))))
    )
    with provider_for(openai_server) as provider, pytest.raises(ProviderError) as info:
        list(provider.chat(HI, model="m1", stream=True))
    assert info.value.retryable
    assert_clean(info.value)


def test_text_of_the_wrong_type_in_a_stream_is_a_protocol_error(openai_server):
    chunk = {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 7}}]}}]}
    openai_server.push(Reply(sse=((None, json.dumps(chunk)), (None, "[DONE]"))))
    with provider_for(openai_server) as provider, pytest.raises(ProviderError) as info:
        list(provider.chat(HI, model="m1", stream=True))
    assert "malformed stream" in str(info.value)
    assert_clean(info.value)


def test_the_router_falls_back_past_a_malformed_answer():
    with OpenAIServer() as bad, OpenAIServer() as good:
        config = AgentConfig.from_dict(
            {
                "providers": {
                    "bad": {"type": "openai", "base_url": bad.base_url, "models": ["m1"], "max_retries": 0},
                    "good": {"type": "openai", "base_url": good.base_url, "models": ["m1"]},
                },
                "routing": {"aliases": {"x": ["bad/m1", "good/m1"]}},
            }
        )
        bad.push(bad_usage(bad, KEY), Reply(raw=b"[" * 200_000))
        good.push(good.text("first"), good.text("second"))
        with Router.from_config(config, env={}) as router:
            answers = [router.chat(HI, model="x") for _ in range(2)]
        assert [a.content for a in answers] == ["first", "second"]
        assert all(a.provider == "good" and a.attempts[0].provider == "bad" for a in answers)
        assert KEY not in repr([a.attempts for a in answers])


def test_a_compressed_or_undecodable_body_is_a_provider_error_without_the_request(openai_server):
    # Answers are asked for uncompressed; a compressed one (here not even valid gzip) is
    # refused before anything is inflated, so a stacked-gzip bomb cannot take memory.
    openai_server.push(Reply(raw=b"not gzip at all", headers=(("Content-Encoding", "gzip"),)))
    with provider_for(openai_server) as provider, pytest.raises(ProviderError) as info:
        provider.chat(HI, model="m1")
    assert "Content-Encoding 'gzip'" in str(info.value)
    assert not hasattr(info.value, "request")
    assert_clean(info.value)
    assert openai_server.chat_requests[0].headers.get("accept-encoding") == "identity"


# --- keys as header values -------------------------------------------------------------------


def test_whitespace_around_a_key_is_stripped(llm_server):
    llm_server.push(llm_server.text("ok"))
    with provider_for(llm_server, api_key=f"  {KEY}\n") as provider:
        assert provider.chat(HI, model="m1").content == "ok"
    sent = llm_server.chat_requests[0].headers
    assert KEY in (sent.get("authorization") or sent.get("x-api-key"))
    assert "\n" not in (sent.get("authorization") or sent.get("x-api-key"))


@pytest.mark.parametrize("key", ["clé-secrète-123", "key-with\ninside", "key with space", "k\x00y"])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(llm_server, key):
    with pytest.raises(CredentialError) as info:
        provider_for(llm_server, api_key=key)
    assert "not shown" in str(info.value)
    assert key not in str(info.value) and key not in repr(info.value)
    assert "secrète" not in str(info.value)


# --- deadlines -------------------------------------------------------------------------------


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A socket server answering every connection with ``handle`` (for answers no HTTP server sends)."""
    stopping = threading.Event()
    servers: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        servers.append(srv)

        def serve() -> None:
            while not stopping.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue

                def run(conn: socket.socket = conn) -> None:
                    with conn:
                        conn.recv(65536)
                        try:
                            handle(conn)
                        except OSError:
                            pass

                threading.Thread(target=run, daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}/v1"

    yield start
    stopping.set()
    for srv in servers:
        srv.close()


def pinging(first: bytes = b"") -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + first)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            conn.sendall(b": ping\n\n")
            time.sleep(0.1)

    return handle


def test_keep_alives_alone_do_not_hold_a_stream_open(raw_server):
    url = raw_server(pinging())
    provider = OpenAICompatibleProvider("p", url, timeout=0.5, max_retries=0)
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        list(provider.chat(HI, model="m", stream=True))
    assert time.monotonic() - start < 10
    assert "no first event" in str(info.value)
    assert info.value.retryable and not info.value.started


def test_a_stream_that_goes_idle_after_its_first_event_is_broken_off(raw_server):
    chunk = json.dumps({"choices": [{"delta": {"content": "hel"}}]})
    url = raw_server(pinging(f"data: {chunk}\n\n".encode()))
    provider = OpenAICompatibleProvider("p", url, timeout=30, stream_idle_timeout=0.5, max_retries=0)
    events = provider.chat(HI, model="m", stream=True)
    assert next(events).text == "hel"  # type: ignore[union-attr]
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        list(events)
    assert time.monotonic() - start < 10
    assert "no further event" in str(info.value) and info.value.started


def test_the_router_falls_back_past_a_stream_of_keep_alives(raw_server):
    with OpenAIServer() as good:
        good.push(good.stream_text(["fine"]))
        config = AgentConfig.from_dict(
            {
                "providers": {
                    "stuck": {
                        "type": "openai",
                        "base_url": raw_server(pinging()),
                        "models": ["m1"],
                        "timeout": 0.5,
                        "max_retries": 0,
                    },
                    "good": {"type": "openai", "base_url": good.base_url, "models": ["m1"]},
                },
            }
        )
        with Router.from_config(config, env={}) as router:
            events = list(router.chat(HI, stream=True))
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.response.provider == "good" and end.response.content == "fine"


def test_headers_trickled_byte_by_byte_time_out(raw_server):
    def trickle(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)

    provider = OpenAICompatibleProvider("p", raw_server(trickle), timeout=0.5, max_retries=0)
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.chat(HI, model="m")
    assert time.monotonic() - start < 10
    assert "timed out" in str(info.value) and info.value.retryable
    assert provider.probe(timeout=0.5).status == "unreachable"


def test_requests_are_not_sent_while_too_many_wait_on_trickled_headers(raw_server, monkeypatch):
    monkeypatch.setattr(http_module, "MAX_HANGING", 2)
    stop = threading.Event()
    answered: list[int] = []

    def trickle(conn: socket.socket) -> None:
        answered.append(1)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 2000:
            if stop.is_set():
                return  # the connection closes: the client's waiting thread ends
            conn.sendall(bytes([byte]))
            time.sleep(0.02)

    provider = OpenAICompatibleProvider("p", raw_server(trickle), timeout=0.4, max_retries=0)
    endpoint = provider._endpoint
    for _ in range(2):
        with pytest.raises(ProviderError, match="timed out"):
            provider.chat(HI, model="m")
    # Two threads still wait on the server: the third request fails at once, unsent, and is
    # not retried here (max_retries=5 would wait between tries): the router moves on.
    endpoint.max_retries = 5
    start = time.monotonic()
    with pytest.raises(ProviderError, match="was not sent: 2 earlier requests still wait") as info:
        provider.chat(HI, model="m")
    assert info.value.retryable and time.monotonic() - start < 0.4
    endpoint.max_retries = 0
    probe = provider.probe(timeout=0.3)  # doctor's view: unreachable, and why
    assert probe.status == "unreachable"
    assert probe.detail == "not sent: earlier requests still wait for headers"
    time.sleep(0.2)
    assert len(answered) == 2
    stop.set()
    # Once the server gives up on them, requests go out again.
    deadline = time.monotonic() + 10
    while True:
        with pytest.raises(ProviderError) as again:
            provider.chat(HI, model="m")
        if "was not sent" not in str(again.value):
            break
        assert time.monotonic() < deadline, "the waiting threads never ended"
        time.sleep(0.05)
    assert len(answered) == 3
    # Every thread given up on is released once it ends, and only those: the count is back to 0.
    while endpoint._hanging and time.monotonic() < deadline:
        time.sleep(0.05)
    assert endpoint._hanging == 0


def test_every_streamed_line_is_held_to_the_limit():
    decoder = SSEDecoder(max_line=100)
    with pytest.raises(ValueError, match="longer than 100"):
        decoder.feed(b"data: " + b"x" * 200 + b"\n\n")
    assert SSEDecoder(max_line=100).feed(b"data: short\n\n")[0].data == "short"


# --- plain http and proxies ------------------------------------------------------------------


def test_a_key_is_not_sent_over_plain_http_to_another_host():
    with pytest.raises(ms.ConfigError) as info:
        OpenAICompatibleProvider("p", "http://10.9.9.9:8000/v1", api_key=KEY)
    assert "allow_insecure_http" in str(info.value) and KEY not in str(info.value)
    # Allowed: asked for, no key, https, or this machine.
    OpenAICompatibleProvider("p", "http://10.9.9.9:8000/v1", api_key=KEY, allow_insecure_http=True)
    OpenAICompatibleProvider("p", "http://10.9.9.9:8000/v1")
    AnthropicProvider("p", "https://10.9.9.9", api_key=KEY)
    for host in ("localhost", "127.0.0.2", "[::1]"):
        OpenAICompatibleProvider("p", f"http://{host}:8000/v1", api_key=KEY)


def test_a_key_over_plain_http_is_not_handed_to_an_environment_proxy():
    with pytest.raises(ms.ConfigError, match="proxy"):
        OpenAICompatibleProvider("p", "http://127.0.0.1:8000/v1", api_key=KEY, trust_env=True)
    OpenAICompatibleProvider("p", "https://api.example.com/v1", api_key=KEY, trust_env=True)


def test_the_router_refuses_a_config_sending_a_key_over_plain_http():
    config = AgentConfig.from_dict(
        {"providers": {"v": {"type": "openai", "base_url": "http://10.9.9.9/v1", "api_key_env": "K"}}}
    )
    with pytest.raises(ms.ConfigError) as info:
        Router.from_config(config, env={"K": KEY})
    assert info.value.field == "agent.providers.v.base_url" and KEY not in str(info.value)
    allowed = AgentConfig.from_dict(
        {
            "providers": {
                "v": {
                    "type": "openai",
                    "base_url": "http://10.9.9.9/v1",
                    "api_key_env": "K",
                    "allow_insecure_http": True,
                }
            }
        }
    )
    Router.from_config(allowed, env={"K": KEY}).close()


def test_proxy_variables_are_ignored_unless_trust_env(openai_server, monkeypatch):
    with OpenAIServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        openai_server.push(openai_server.text("direct"))
        with provider_for(openai_server, api_key=None) as provider:
            assert provider.chat(HI, model="m1").content == "direct"
        assert proxy.requests == []


def test_an_error_answer_nested_deeper_than_the_stack_is_still_a_provider_error(llm_server):
    llm_server.push(Reply(500, raw=b'{"error":' * 100_000))
    with provider_for(llm_server) as provider, pytest.raises(ProviderError) as info:
        provider.chat(HI, model="m1")
    assert info.value.status == 500 and info.value.retryable
    assert_clean(info.value)


@pytest.mark.parametrize("value", ["1e400", "nan", "Wed, 21 Oct 99999 07:28:00 GMT", "Mon, 32 Foo"])
def test_odd_retry_after_values_do_not_escape(value):
    from mosaic_agent._http import retry_after

    wait = retry_after(value)
    assert wait is None or wait >= 0
