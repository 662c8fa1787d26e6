"""``mosaic agent models``: configured models and whether each provider answers, as a table or JSON."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.agent._servers import OpenAIServer

KEY = "sk-router-SECRET-0123456789"


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server  # type: ignore[misc]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mosaic_agent_models_json(tmp_path, openai_server, mosaic):
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    config = {
        "agent": {
            "providers": {
                "local": {
                    "type": "openai",
                    "base_url": openai_server.base_url,
                    "models": [{"name": "m1", "tags": ["tools"], "cost": 2}],
                },
                "dead": {"type": "openai", "base_url": dead, "api_key_env": "DEAD_KEY", "models": ["ghost"]},
            }
        }
    }
    (tmp_path / "mosaic.config.json").write_text(json.dumps(config))
    result = mosaic("agent", "models", "--json", "--timeout", "2", env={"DEAD_KEY": KEY})
    assert result.returncode == 0, result.stderr
    models = {m["model"]: m for m in json.loads(result.stdout)["models"]}
    assert (
        models["m1"]["reachable"] is True and models["m1"]["tags"] == ["tools"] and models["m1"]["cost"] == 2
    )
    assert models["ghost"]["reachable"] is False and models["ghost"]["status"] == "unreachable"
    assert KEY not in result.stdout + result.stderr
    table = mosaic("agent", "models")
    assert table.returncode == 0 and "unreachable" in table.stdout and "m1" in table.stdout


def test_mosaic_agent_models_refuses_a_bad_config_with_exit_2(tmp_path, mosaic):
    (tmp_path / "mosaic.config.json").write_text(
        json.dumps({"agent": {"providers": {"p": {"type": "nope"}}}})
    )
    result = mosaic("agent", "models")
    assert result.returncode == 2
    assert "agent.providers.p.type" in result.stderr


def test_mosaic_agent_credentials_set_list_delete(tmp_path, mosaic):
    import mosaic_storage as ms
    from mosaic_agent import ProviderCredentials, generate_secret_key
    from mosaic_storage.brain import Brain

    url = f"sqlite:///{tmp_path}/brain.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        ann = Brain(store).users.create(name="ann").id
    config = {
        "storage": {"url": url},
        "agent": {
            "providers": {"claude": {"type": "anthropic", "models": ["big"]}},
            "credentials_key_env": "APP_KEY",
        },
    }
    (tmp_path / "mosaic.config.json").write_text(json.dumps(config))
    env = {"APP_KEY": generate_secret_key()}

    stored = mosaic("agent", "credentials", "set", "claude", "--user", ann, env=env, input=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    listed = mosaic("agent", "credentials", "list", "--user", ann, "--json", env=env)
    assert json.loads(listed.stdout) == {"user": ann, "providers": ["claude"]}
    with ms.open_store(url) as store:
        assert ProviderCredentials(store, key_env="APP_KEY", env=env).get(ann, "claude").reveal() == KEY
    typo = mosaic("agent", "credentials", "set", "claud", "--user", ann, env=env, input=KEY + "\n")
    assert typo.returncode == 2 and "configured in agent.providers: claude" in typo.stderr
    no_key = mosaic(
        "agent", "credentials", "set", "claude", "--user", ann, env={"APP_KEY": ""}, input=KEY + "\n"
    )
    assert no_key.returncode == 1 and "$APP_KEY is not set" in no_key.stderr
    assert mosaic("agent", "credentials", "delete", "claude", "--user", ann, env=env).returncode == 0
    again = mosaic("agent", "credentials", "delete", "claude", "--user", ann, env=env)
    assert again.returncode == 1 and "no stored key" in again.stderr
    for result in (stored, listed, typo, no_key, again):
        assert KEY not in result.stdout + result.stderr
