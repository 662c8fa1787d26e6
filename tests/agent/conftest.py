"""Scripted LLM servers on local sockets, started per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent._servers import AnthropicServer, OpenAIServer, ScriptedServer


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers honour proxy variables only with trust_env; the local servers need none either way."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


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
