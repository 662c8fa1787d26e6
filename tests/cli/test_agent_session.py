"""``mosaic agent run|chat|new|list|show|delete`` through the real CLI, against a scripted model server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import mosaic_storage as ms
from mosaic_storage.brain import Brain
from tests.agent._servers import OpenAIServer


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def world(tmp_path, openai_server):
    url = f"sqlite:///{tmp_path}/agent.db"
    config = {
        "storage": {"url": url},
        "agent": {
            "providers": {"local": {"type": "openai", "base_url": openai_server.base_url, "max_retries": 0,
                                    "models": [{"name": "m1", "tags": ["tools"]}]}},
            "workspace_root": str(tmp_path / "workspaces"),
        },
    }  # fmt: skip
    (tmp_path / "mosaic.config.json").write_text(json.dumps(config))
    with ms.open_store(url) as store:
        ms.upgrade(store)
        ann = Brain(store).users.create(name="ann").id
    return {"url": url, "ann": ann}


def _json(out):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_run_answers_as_json_uses_tools_and_continues_a_conversation(mosaic, world, openai_server):
    ann = world["ann"]
    agent = _json(
        mosaic("agent", "new", "helper", "--provider", "local", "--model", "m1", "--tool", "memory.*",
               "--system-prompt", "Be brief.", "--user", ann, "--json")
    )  # fmt: skip
    openai_server.push(
        openai_server.tool_call("memory__remember", {"text": "Ann likes jazz"}),
        openai_server.text("Remembered."),
    )
    first = _json(mosaic("agent", "run", "I like jazz", "--agent", "helper", "--user", ann, "--json"))
    assert first["text"] == "Remembered." and first["steps"] == 2
    assert [c["name"] for c in first["tool_calls"]] == ["memory__remember"]
    assert openai_server.chat_requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}

    openai_server.push(openai_server.text("Jazz."))
    again = _json(
        mosaic("agent", "run", "what do I like?", "--conversation", first["conversation_id"], "--user", ann,
               "--json")
    )  # fmt: skip
    assert again["text"] == "Jazz." and again["conversation_id"] == first["conversation_id"]
    sent = [m["role"] for m in openai_server.chat_requests[-1].body["messages"]]
    assert sent == ["system", "user", "assistant", "tool", "assistant", "user"]

    listed = _json(mosaic("agent", "list", "--user", ann, "--json"))
    assert [a["name"] for a in listed["items"]] == ["helper"]
    assert _json(mosaic("agent", "show", agent["id"], "--user", ann, "--json"))["allowed_tools"] == [
        "memory.*"
    ]
    deleted = _json(mosaic("agent", "delete", agent["id"], "--user", ann, "--json"))
    assert deleted["deleted"]["id"] == agent["id"]
    assert _json(mosaic("agent", "list", "--user", ann, "--json"))["items"] == []


def test_chat_streams_switches_model_and_exits(mosaic, world, openai_server):
    openai_server.push(openai_server.stream_text(["Hel", "lo!"]), openai_server.stream_text(["Bye."]))
    out = mosaic(
        "agent", "chat", "--model", "local/m1", "--no-tools", "--user", world["ann"],
        input="hi\n/model local/m2\nagain\n/exit\n",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Hello!" in out.stdout and "Bye." in out.stdout and "model: local/m2" in out.stdout
    assert [r.body["model"] for r in openai_server.chat_requests] == ["m1", "m2"]


def test_run_with_an_unknown_agent_exits_1_with_a_clear_message(mosaic, world):
    out = mosaic("agent", "run", "hello", "--agent", "nobody", "--user", world["ann"])
    assert out.returncode == 1 and "no agent 'nobody'" in out.stderr and "Traceback" not in out.stderr
