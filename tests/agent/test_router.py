"""The router over real sockets: aliases, capability tags, cost order, fallback, streaming, who answered."""

from __future__ import annotations

import json
import socket

import pytest

import mosaic_storage as ms
from mosaic_agent import (
    AgentConfig,
    AllProvidersFailed,
    Message,
    NoRouteError,
    ProviderError,
    Router,
    StreamEnd,
    TextDelta,
    ToolSpec,
)

KEY = "sk-router-SECRET-0123456789"
TOOL = ToolSpec("noop", "Does nothing.", {"type": "object", "properties": {}})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_config(openai_server, anthropic_server, *, order="listed", long_context_tokens=None, extra=None):
    providers = {
        "local": {
            "type": "openai",
            "base_url": openai_server.base_url,
            "max_retries": 0,
            "models": [
                {"name": "small", "cost": 0},
                {"name": "tooly", "tags": ["tools"], "cost": 1},
            ],
        },
        "claude": {
            "type": "anthropic",
            "base_url": anthropic_server.base_url,
            "max_retries": 0,
            "api_key_env": "TEST_ANTHROPIC_KEY",
            "models": [
                {
                    "name": "big",
                    "tags": ["tools", "vision", "long_context"],
                    "cost": {"input": 3, "output": 15},
                }
            ],
        },
        **(extra or {}),
    }
    routing = {
        "aliases": {
            "default": ["claude/big", "local/tooly", "local/small"],
            "local-first": ["local/small", "claude/big"],
        },
        "default": "default",
        "order": order,
    }
    if long_context_tokens:
        routing["long_context_tokens"] = long_context_tokens
    return AgentConfig.from_dict({"providers": providers, "routing": routing})


@pytest.fixture
def router(openai_server, anthropic_server):
    with Router.from_config(agent_config(openai_server, anthropic_server), env={}) as r:
        yield r


def refs(routes):
    return [r.reference for r in routes]


def test_an_alias_lists_its_candidates_in_order(router):
    assert refs(router.candidates("default")) == ["claude/big", "local/tooly", "local/small"]
    assert refs(router.candidates()) == refs(router.candidates("default"))
    assert refs(router.candidates("local/small")) == ["local/small"]
    assert refs(router.candidates("big")) == ["claude/big"]


def test_tools_need_the_tools_tag(router):
    assert refs(router.candidates("default", tools=[TOOL])) == ["claude/big", "local/tooly"]
    assert refs(router.candidates("default", require=["vision"])) == ["claude/big"]


def test_cost_order_puts_the_cheapest_first(openai_server, anthropic_server):
    config = agent_config(openai_server, anthropic_server, order="cost")
    with Router.from_config(config, env={}) as router:
        assert refs(router.candidates("default")) == ["local/small", "local/tooly", "claude/big"]


def test_long_prompts_need_the_long_context_tag(openai_server, anthropic_server):
    config = agent_config(openai_server, anthropic_server, long_context_tokens=100)
    with Router.from_config(config, env={}) as router:
        short = [Message.user("hi")]
        long = [Message.user("word " * 200)]
        assert len(router.candidates("local-first", messages=short)) == 2
        assert refs(router.candidates("local-first", messages=long)) == ["claude/big"]


def test_no_fitting_candidate_is_a_clear_error(router):
    with pytest.raises(NoRouteError, match="has the tags \\['vision'\\]"):
        router.candidates("local/small", require=["vision"])
    with pytest.raises(NoRouteError, match="neither an alias"):
        router.candidates("nonexistent")


def test_the_first_candidate_answers_and_is_recorded(router, anthropic_server, openai_server):
    anthropic_server.push(anthropic_server.text("from claude"))
    response = router.chat([Message.user("hi")])
    assert (response.content, response.provider, response.model, response.attempts) == (
        "from claude",
        "claude",
        "m1",
        (),
    )
    assert anthropic_server.chat_requests[0].body["model"] == "big"
    assert openai_server.chat_requests == []


def test_a_failing_provider_falls_back_to_the_next_candidate(router, anthropic_server, openai_server):
    anthropic_server.push(anthropic_server.error(503))
    openai_server.push(openai_server.text("from local", model="tooly"))
    response = router.chat([Message.user("hi")], tools=[TOOL])
    assert response.content == "from local"
    assert (response.provider, response.model) == ("local", "tooly")
    assert [(a.provider, a.model) for a in response.attempts] == [("claude", "big")]
    assert "HTTP 503" in response.attempts[0].error
    assert openai_server.chat_requests[0].body["model"] == "tooly"


def test_an_unreachable_provider_falls_back(openai_server, anthropic_server):
    dead = {
        "dead": {
            "type": "openai",
            "base_url": f"http://127.0.0.1:{closed_port()}/v1",
            "max_retries": 0,
            "models": ["ghost"],
        }
    }
    config = agent_config(openai_server, anthropic_server, extra=dead)
    config = AgentConfig.from_dict(
        {
            "providers": {name: _raw(p) for name, p in config.providers.items()},
            "routing": {"aliases": {"a": ["dead/ghost", "local/small"]}},
        }
    )
    openai_server.push(openai_server.text("alive"))
    with Router.from_config(config, env={}) as router:
        response = router.chat([Message.user("hi")], model="a")
    assert response.provider == "local"
    assert response.attempts[0].provider == "dead" and "could not be reached" in response.attempts[0].error


def _raw(provider):
    return {
        "type": provider.type,
        "base_url": provider.base_url,
        "max_retries": provider.max_retries,
        "models": [m.name for m in provider.models],
    }


def test_a_bad_request_is_raised_without_falling_back(router, anthropic_server, openai_server):
    anthropic_server.push(anthropic_server.error(400, code="invalid_request_error"))
    with pytest.raises(ProviderError) as info:
        router.chat([Message.user("hi")])
    assert info.value.status == 400
    assert openai_server.chat_requests == []


def test_a_refused_key_or_unknown_model_falls_back(router, anthropic_server, openai_server):
    anthropic_server.push(anthropic_server.error(401, code="authentication_error"))
    openai_server.push(openai_server.error(404, code="model_not_found"), openai_server.text("small one"))
    response = router.chat([Message.user("hi")])
    assert response.model == "m1" and response.provider == "local"
    assert [a.model for a in response.attempts] == ["big", "tooly"]


def test_when_every_candidate_fails_each_is_named(router, anthropic_server, openai_server):
    anthropic_server.push(anthropic_server.error(500))
    openai_server.push(openai_server.error(502), openai_server.error(503))
    with pytest.raises(AllProvidersFailed) as info:
        router.chat([Message.user("hi")])
    assert [(p, m) for p, m, _ in info.value.attempts] == [
        ("claude", "big"),
        ("local", "tooly"),
        ("local", "small"),
    ]
    assert "HTTP 502" in str(info.value)


def test_a_stream_falls_back_before_it_starts_and_records_who_answered(
    router, anthropic_server, openai_server
):
    anthropic_server.push(anthropic_server.error(429, retry_after=0))
    openai_server.push(openai_server.stream_text(["str", "eam"], model="tooly"))
    events = list(router.chat([Message.user("hi")], stream=True))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["str", "eam"]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.response.content, end.response.provider) == ("stream", "local")
    assert [a.provider for a in end.response.attempts] == ["claude"]


def test_a_stream_that_broke_after_starting_is_not_replayed_elsewhere(
    router, anthropic_server, openai_server
):
    anthropic_server.push(anthropic_server.stream_error("overloaded_error", after_text=["half"]))
    seen = []
    with pytest.raises(ProviderError) as info:
        for event in router.chat([Message.user("hi")], stream=True):
            seen.append(event)
    assert info.value.started
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["half"]
    assert openai_server.chat_requests == []


def test_keys_come_from_the_named_env_var_and_never_show(openai_server, anthropic_server):
    config = agent_config(openai_server, anthropic_server)
    anthropic_server.push(anthropic_server.error(500, echo_secrets=True))
    openai_server.push(openai_server.error(500, echo_secrets=True), openai_server.error(500))
    with Router.from_config(config, env={"TEST_ANTHROPIC_KEY": KEY}) as router:
        with pytest.raises(AllProvidersFailed) as info:
            router.chat([Message.user("hi")])
        assert KEY not in repr(router) and KEY not in repr(router.providers["claude"])
    assert anthropic_server.chat_requests[0].headers["x-api-key"] == KEY
    assert "authorization" not in openai_server.chat_requests[0].headers
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_router_from_a_loaded_config_file(tmp_path, openai_server, anthropic_server):
    path = tmp_path / "mosaic.config.json"
    path.write_text(
        json.dumps(
            {
                "agent": {
                    "providers": {
                        "local": {"type": "openai", "base_url": openai_server.base_url, "models": ["m1"]}
                    }
                }
            }
        )
    )
    openai_server.push(openai_server.text("configured"))
    with Router.from_config(ms.load_config(path)) as router:
        assert router.chat([Message.user("hi")]).content == "configured"


def test_status_probes_each_provider_once(openai_server, anthropic_server):
    config = agent_config(openai_server, anthropic_server)
    with Router.from_config(config, env={}) as router:
        anthropic_server.models_reply = anthropic_server.error(401)
        statuses = router.status(timeout=2)
    by_model = {s.model: s for s in statuses}
    assert set(by_model) == {"small", "tooly", "big"}
    assert by_model["small"].probe.ok and by_model["tooly"].probe.ok
    assert by_model["big"].probe.status == "unauthorized"
    assert by_model["big"].to_dict()["reachable"] is False
    assert by_model["big"].cost == 18
    assert len([r for r in openai_server.requests if r.method == "GET"]) == 1


class EchoProvider:
    """A provider in plain Python: the protocol is all the router needs."""

    name = "echo"

    def __init__(self):
        self.closed = False

    def chat(self, messages, tools=None, *, model, stream=False, **options):
        from mosaic_agent import ChatResponse, Usage

        response = ChatResponse(f"{model}: {messages[-1].content}", (), Usage(1, 1), "stop", self.name, model)
        if stream:
            return iter([TextDelta(response.content), StreamEnd(response)])
        return response

    def probe(self, timeout=3.0):
        from mosaic_agent import ProbeResult

        return ProbeResult(self.name, "ok", 0.0)

    def close(self):
        self.closed = True


def test_any_object_following_the_protocol_can_be_routed_to():
    from mosaic_agent import ModelConfig, Provider

    echo = EchoProvider()
    assert isinstance(echo, Provider)
    with Router({"echo": echo}, {"echo": [ModelConfig("parrot")]}) as router:
        assert router.chat([Message.user("hello")]).content == "parrot: hello"
        events = list(router.chat([Message.user("again")], stream=True))
        assert events[-1].response.content == "parrot: again"
        assert router.status()[0].probe.ok
    assert echo.closed


def test_an_unlisted_model_named_directly_is_asked_whatever_the_tags(router, openai_server):
    openai_server.push(openai_server.text("from an unlisted model"))
    response = router.chat([Message.user("hi")], tools=[TOOL], model="local/llama-unlisted")
    assert response.content == "from an unlisted model"
    assert openai_server.chat_requests[0].body["model"] == "llama-unlisted"
    with pytest.raises(NoRouteError, match="not configured"):
        router.chat([Message.user("hi")], model="nowhere/x")


def test_a_bad_environment_key_makes_only_its_provider_unusable(openai_server, anthropic_server):
    """A key with a space (say) cannot be a header: that provider is passed over, the rest answer."""
    openai_server.push(openai_server.text("from local"))
    config = agent_config(openai_server, anthropic_server)
    with Router.from_config(config, env={"TEST_ANTHROPIC_KEY": "bad key with spaces"}) as router:
        answer = router.chat([Message.user("hi")], model="default")
    assert answer.provider == "local" and answer.content == "from local"
    assert [a.provider for a in answer.attempts] == ["claude"]
    assert "bad key" not in repr(answer.attempts)
