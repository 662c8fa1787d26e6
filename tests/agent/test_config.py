"""The ``agent`` config section: providers, models, routing; literal keys refused; tools passed through."""

from __future__ import annotations

import json

import pytest

import mosaic_storage as ms
from mosaic_agent import AgentConfig

GOOD = {
    "providers": {
        "local": {
            "type": "openai",
            "base_url": "http://localhost:11434/v1",
            "timeout": 30,
            "max_retries": 1,
            "models": ["llama3.2", {"name": "qwen2.5", "tags": ["tools"], "cost": 0}],
        },
        "claude": {
            "type": "anthropic",
            "api_key_env": "ANTHROPIC_API_KEY",
            "models": [
                {
                    "name": "claude-sonnet-4-5",
                    "tags": ["tools", "vision", "long_context"],
                    "cost": {"input": 3, "output": 15},
                    "context_window": 200000,
                }
            ],
        },
    },
    "routing": {
        "aliases": {
            "default": ["local/qwen2.5", "claude/claude-sonnet-4-5"],
            "smart": "claude/claude-sonnet-4-5",
        },
        "default": "default",
        "order": "cost",
        "long_context_tokens": 30000,
    },
    "credentials_key_env": "MY_SECRET_KEY",
    "tools": {"shell": {"allow": ["git"]}},
    "workspace_root": "/srv/workspaces",
}


def write_config(tmp_path, agent):
    path = tmp_path / "mosaic.config.json"
    path.write_text(json.dumps({"agent": agent}))
    return ms.load_config(path)


def test_a_full_section_is_read(tmp_path):
    agent = AgentConfig.from_config(write_config(tmp_path, GOOD))
    local, claude = agent.providers["local"], agent.providers["claude"]
    assert (local.type, local.base_url, local.timeout, local.max_retries) == (
        "openai",
        "http://localhost:11434/v1",
        30.0,
        1,
    )
    assert [m.name for m in local.models] == ["llama3.2", "qwen2.5"]
    assert local.model("qwen2.5").tags == {"tools"}
    assert claude.base_url == "https://api.anthropic.com"
    assert claude.api_key_env == "ANTHROPIC_API_KEY"
    sonnet = claude.model("claude-sonnet-4-5")
    assert (sonnet.input_cost, sonnet.output_cost, sonnet.cost, sonnet.context_window) == (3, 15, 18, 200000)
    assert agent.routing.aliases["smart"] == ("claude/claude-sonnet-4-5",)
    assert (agent.routing.default, agent.routing.order, agent.routing.long_context_tokens) == (
        "default",
        "cost",
        30000,
    )
    assert agent.credentials_key_env == "MY_SECRET_KEY"
    assert agent.tools["shell"]["allow"] == ("git",)
    assert agent.workspace_root == "/srv/workspaces"


def test_an_empty_section_has_defaults():
    agent = AgentConfig.from_config(ms.MosaicConfig())
    assert agent.providers == {} and agent.routing.aliases == {}
    assert agent.credentials_key_env == "MOSAIC_SECRET_KEY"


@pytest.mark.parametrize(
    ("agent", "field", "words"),
    [
        ({"model": "x"}, "agent.model", "allowed keys: providers, routing"),
        (
            {"providers": {"p": {"type": "gemini"}}},
            "agent.providers.p.type",
            "allowed values: openai, anthropic",
        ),
        (
            {"providers": {"p": {"type": "openai", "base_url": "ftp://x"}}},
            "agent.providers.p.base_url",
            "http",
        ),
        ({"providers": {"p": {"type": "openai", "timeout": 0}}}, "agent.providers.p.timeout", "from 0.1"),
        (
            {"providers": {"p": {"type": "openai", "max_retries": 99}}},
            "agent.providers.p.max_retries",
            "0 to 10",
        ),
        (
            {"providers": {"p": {"type": "openai", "models": [{"name": "m", "tags": ["fast"]}]}}},
            "agent.providers.p.models[0].tags",
            "tools, vision, long_context",
        ),
        (
            {"providers": {"p": {"type": "openai", "models": ["m", "m"]}}},
            "agent.providers.p.models",
            "listed twice",
        ),
        (
            {"providers": {"p": {"type": "openai", "models": ["m"]}}, "routing": {"aliases": {"a": ["q/m"]}}},
            "agent.routing.aliases.a",
            "provider 'q' is not configured",
        ),
        (
            {
                "providers": {"p": {"type": "openai", "models": ["m"]}},
                "routing": {"aliases": {"a": ["p/zz"]}},
            },
            "agent.routing.aliases.a",
            "model 'zz' is not listed",
        ),
        ({"routing": {"order": "random"}}, "agent.routing.order", "allowed values: listed, cost"),
        ({"routing": {"default": "nowhere"}}, "agent.routing.default", "neither an alias"),
    ],
)
def test_bad_values_name_the_file_the_field_and_what_is_allowed(tmp_path, agent, field, words):
    config = write_config(tmp_path, agent)
    with pytest.raises(ms.ConfigError) as info:
        AgentConfig.from_config(config)
    assert info.value.field == field
    assert str(tmp_path / "mosaic.config.json") in str(info.value)
    assert words in str(info.value)


def test_a_literal_api_key_is_refused_without_echoing_it(tmp_path):
    secret = "sk-live-ABCDEFGHIJKLMNOP1234"
    config = write_config(tmp_path, {"providers": {"p": {"type": "openai", "api_key": secret}}})
    with pytest.raises(ms.ConfigError) as info:
        AgentConfig.from_config(config)
    assert info.value.field == "agent.providers.p.api_key"
    assert "api_key_env" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_a_key_written_where_an_env_var_name_goes_is_refused_without_echoing_it(tmp_path):
    secret = "sk-ant-api03-zzzz-9999"
    config = write_config(tmp_path, {"providers": {"p": {"type": "anthropic", "api_key_env": secret}}})
    with pytest.raises(ms.ConfigError) as info:
        AgentConfig.from_config(config)
    assert info.value.field == "agent.providers.p.api_key_env"
    assert "NAME of an environment variable" in str(info.value)
    assert "zzzz-9999" not in str(info.value)


def test_a_base_url_with_credentials_is_refused_without_echoing_them(tmp_path):
    config = write_config(
        tmp_path, {"providers": {"p": {"type": "openai", "base_url": "https://u:pa55word@h/v1"}}}
    )
    with pytest.raises(ms.ConfigError) as info:
        AgentConfig.from_config(config)
    assert "pa55word" not in str(info.value)
    assert info.value.field == "agent.providers.p.base_url"


@pytest.mark.parametrize(
    "pasted",
    [
        "gsk_4f9XbQ2LmN8pR7tV1wY3zA6cE0hJ",
        "3f9a0c1b2d4e5f60718293a4b5c6d7e8",
        "AKIAIOSFODNN7EXAMPLE",
        "ABCDEF0123456789ABCDEF",
        "openai_api_key",
    ],
)
def test_a_pasted_key_in_api_key_env_is_refused_without_echoing_it(tmp_path, pasted):
    config = write_config(tmp_path, {"providers": {"p": {"type": "openai", "api_key_env": pasted}}})
    with pytest.raises(ms.ConfigError) as info:
        AgentConfig.from_config(config)
    assert info.value.field == "agent.providers.p.api_key_env"
    assert "upper-case" in str(info.value)
    assert pasted not in str(info.value) and pasted not in repr(info.value)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "GROQ_API_KEY_2", "K", "_PRIVATE_KEY"])
def test_ordinary_env_var_names_are_accepted(name):
    agent = AgentConfig.from_dict({"providers": {"p": {"type": "openai", "api_key_env": name}}})
    assert agent.providers["p"].api_key_env == name


def test_api_key_env_stays_out_of_the_repr():
    agent = AgentConfig.from_dict({"providers": {"p": {"type": "openai", "api_key_env": "SOME_VAR"}}})
    assert "SOME_VAR" not in repr(agent.providers["p"]) and "SOME_VAR" not in repr(agent)


def test_transport_options_are_read_and_checked():
    agent = AgentConfig.from_dict(
        {
            "providers": {
                "p": {
                    "type": "openai",
                    "base_url": "http://10.0.0.5:8000/v1",
                    "allow_insecure_http": True,
                    "trust_env": True,
                    "stream_idle_timeout": 5,
                }
            }
        }
    )
    p = agent.providers["p"]
    assert (p.allow_insecure_http, p.trust_env, p.stream_idle_timeout) == (True, True, 5.0)
    q = AgentConfig.from_dict({"providers": {"q": {"type": "openai"}}}).providers["q"]
    assert (q.allow_insecure_http, q.trust_env, q.stream_idle_timeout) == (False, False, None)
    with pytest.raises(ms.ConfigError, match="true or false") as info:
        AgentConfig.from_dict({"providers": {"p": {"type": "openai", "allow_insecure_http": "yes"}}})
    assert info.value.field == "agent.providers.p.allow_insecure_http"
