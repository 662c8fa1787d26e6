"""Scripted LLM servers on local sockets, started per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent._servers import AnthropicServer, OpenAIServer, ScriptedServer


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(params=["openai", "anthropic"])
def llm_server(request: pytest.FixtureRequest) -> ScriptedServer:
    """The same test against both flavours of server."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]
