"""`mosaic mcp serve` driven by the `mcp` SDK's own client, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

import mosaic_storage as ms
from mosaic_agent.coord import init_mission
from mosaic_storage.brain import Brain

SRC = str(Path(__file__).resolve().parents[2] / "src")
TOKEN = "mcp-token-0123456789abcdef-SECRET"


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path}/mcp.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        brain = Brain(store)
        ann, bob = (brain.users.create(name=n).id for n in ("ann", "bob"))
        mission = init_mission(brain, ann, "Map the valley", milestones=["Survey"])
        brain.tasks.create(ann, title="Walk the ridge", mission_id=mission.id, priority="high")
    return {"url": url, "ann": ann, "bob": bob, "mission": mission.id}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("MOSAIC_MCP_TOKEN", None)
    return env


def _text(result) -> str:
    return "".join(part.text for part in result.content if getattr(part, "type", "") == "text")


async def _exercise(client: Client, *, remember: str, query: str) -> dict[str, object]:
    """List everything, remember one fact, recall it, read the mission resources."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
    added = await client.call_tool("remember", {"text": remember})
    recalled = await client.call_tool("recall", {"query": query, "limit": 5})
    tasks = await client.call_tool("list_tasks", {})
    missions = json.loads((await client.read_resource("mosaic://missions")).contents[0].text)
    return {
        "tools": tools,
        "templates": templates,
        "added": added,
        "recalled": _text(recalled),
        "tasks": _text(tasks),
        "missions": missions,
    }


def _stdio(world, user: str) -> Client:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mosaic_cli", "mcp", "serve", "--user", user, "--url", world["url"]],
        env=_env(),
    )
    return Client(params, read_timeout_seconds=60)


def test_stdio_two_users_see_only_their_own_memory_and_work(world):
    async def main():
        async with _stdio(world, world["ann"]) as ann:
            seen_by_ann = await _exercise(ann, remember="Ann's boat is called Heron", query="boat name")
            mission = world["mission"]
            manifest = (await ann.read_resource(f"mosaic://missions/{mission}/manifest")).contents[0].text
            table = (await ann.read_resource(f"mosaic://missions/{mission}/tasks")).contents[0].text
            bad = await ann.call_tool("update_task", {"task_id": "nope", "version": 1, "status": "done"})
            # An argument naming another user is ignored: the server acts as Ann only.
            unknown_arg = await ann.call_tool(
                "remember", {"text": "Ann's locker code", "user_id": world["bob"]}
            )
        async with _stdio(world, world["bob"]) as bob:
            seen_by_bob = await _exercise(
                bob, remember="Bob's bike is red", query="boat name Heron locker code"
            )
            try:
                await bob.read_resource(f"mosaic://missions/{mission}/manifest")
                bob_read_ann_mission = True
            except Exception:
                bob_read_ann_mission = False
        return seen_by_ann, seen_by_bob, manifest, table, bad, unknown_arg, bob_read_ann_mission

    ann, bob, manifest, table, bad, unknown_arg, bob_read_ann_mission = asyncio.run(main())

    expected = {"remember", "recall", "get_preference", "set_preference", "list_tasks", "update_task"}
    assert expected <= set(ann["tools"])
    assert (
        ann["tools"]["remember"].description and "text" in ann["tools"]["remember"].input_schema["properties"]
    )
    assert "mosaic://missions/{mission_id}/tasks" in ann["templates"]
    assert not ann["added"].is_error and "Heron" in ann["recalled"]
    assert "Walk the ridge" in ann["tasks"] and [m["title"] for m in ann["missions"]] == ["Map the valley"]
    assert "| status | active |" in manifest and "| Walk the ridge | not_started | high |" in table
    # Errors come back as tool errors with a message, never a traceback.
    assert bad.is_error and "Traceback" not in _text(bad) and "nope" in _text(bad)
    assert "locker" not in bob["recalled"] and not unknown_arg.is_error
    # Bob sees none of Ann's data.
    assert "Heron" not in bob["recalled"] and "Bob's bike is red" not in ann["recalled"]
    assert bob["missions"] == [] and "Walk the ridge" not in bob["tasks"]
    assert not bob_read_ann_mission


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_http(world, user: str, *, host: str = "127.0.0.1", token: str | None = None):
    port = _free_port()
    env = _env()
    if token:
        env["MOSAIC_MCP_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "mosaic_cli", "mcp", "serve", "--user", user, "--url", world["url"],
         "--transport", "http", "--host", host, "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        with socket.socket() as sock:
            if sock.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the MCP HTTP server did not start")


def test_streamable_http_two_users_and_no_cross_user_data(world):
    servers = [_start_http(world, world["ann"]), _start_http(world, world["bob"])]
    try:

        async def main():
            (_, ann_port), (_, bob_port) = servers
            async with Client(f"http://127.0.0.1:{ann_port}/mcp") as ann:
                seen_by_ann = await _exercise(ann, remember="Ann plays the oboe", query="instrument oboe")
            async with Client(f"http://127.0.0.1:{bob_port}/mcp") as bob:
                seen_by_bob = await _exercise(bob, remember="Bob plays drums", query="oboe instrument")
            return seen_by_ann, seen_by_bob

        ann, bob = asyncio.run(main())
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)
    assert "oboe" in ann["recalled"] and "oboe" not in bob["recalled"] and "drums" in bob["recalled"]
    assert bob["missions"] == [] and len(ann["missions"]) == 1


def test_http_off_loopback_needs_a_token_and_checks_it(world):
    refused = subprocess.run(
        [sys.executable, "-m", "mosaic_cli", "mcp", "serve", "--user", world["ann"], "--url", world["url"],
         "--transport", "http", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "needs a bearer token" in refused.stderr

    proc, port = _start_http(world, world["ann"], host="0.0.0.0", token=TOKEN)
    try:
        wrong = httpx2.post(
            f"http://127.0.0.1:{port}/mcp", json={}, headers={"Authorization": "Bearer wrong"}, timeout=10
        )
        assert wrong.status_code == 401 and TOKEN not in wrong.text

        async def main():
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
                transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
                async with Client(transport) as client:
                    return [t.name for t in (await client.list_tools()).tools]

        assert "recall" in asyncio.run(main())
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert TOKEN not in stderr


def test_every_loopback_bind_checks_the_host_header_and_tokens_must_be_long(world):
    proc, port = _start_http(world, world["ann"], host="127.0.0.2")
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        rebinding = httpx2.post(
            f"http://127.0.0.2:{port}/mcp",
            json=body,
            headers={"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"},
            timeout=10,
        )
        assert rebinding.status_code in (403, 421)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    short = subprocess.run(
        [sys.executable, "-m", "mosaic_cli", "mcp", "serve", "--user", world["ann"], "--url", world["url"],
         "--transport", "http", "--host", "0.0.0.0", "--port", str(_free_port())],
        env={**_env(), "MOSAIC_MCP_TOKEN": "short"}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert short.returncode == 1 and "shorter than 16" in short.stderr and "short\n" not in short.stderr


def test_the_bearer_scheme_is_case_insensitive_and_the_token_exact():
    from mosaic_agent.mcp import BearerAuth

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    auth = BearerAuth(app, TOKEN)

    async def call(header: bytes | None) -> list[dict]:
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        headers = [(b"authorization", header)] if header is not None else []
        await auth({"type": "http", "headers": headers}, None, send)
        return sent

    assert asyncio.run(call(b"bearer " + TOKEN.encode())) == [] and seen == ["http"]
    for bad in (None, b"Bearer " + TOKEN.encode()[:-1], b"Basic " + TOKEN.encode(), TOKEN.encode()):
        assert asyncio.run(call(bad))[0]["status"] == 401
    assert seen == ["http"]


def test_oversized_arguments_are_a_tool_error_and_nothing_is_stored(world):
    from mosaic_agent.mcp import build_server
    from mosaic_agent.mcp._server import MAX_ARGUMENTS_CHARS
    from mosaic_memory import open_memory

    with ms.open_store(world["url"]) as store:
        memory = open_memory(store)
        server = build_server(Brain(store), memory, world["ann"])

        async def main():
            async with Client(server) as client:
                return await client.call_tool("remember", {"text": "x" * (MAX_ARGUMENTS_CHARS + 1)})

        result = asyncio.run(main())
        assert result.is_error and "characters" in _text(result)
        assert memory.insights.list(user_id=world["ann"]) == []
        memory.close()


def test_a_token_with_whitespace_is_refused_before_listening():
    from mosaic_agent.mcp import McpServeError, http_app

    with pytest.raises(McpServeError, match="whitespace"):
        http_app(None, host="0.0.0.0", token=" " * 20)  # type: ignore[arg-type]
    with pytest.raises(McpServeError, match="whitespace"):
        http_app(None, host="0.0.0.0", token=TOKEN + " ")  # type: ignore[arg-type]
