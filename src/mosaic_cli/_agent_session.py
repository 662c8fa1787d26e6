"""``mosaic agent chat|run|list|new|show|delete``: talk to an agent, and manage agent configurations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import attrs
import typer

import mosaic_storage as ms
from mosaic_storage.brain import Brain, to_dict

from ._agent import agent_app
from ._brain import UserOption, _cell, _list, _show
from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, console, err_console, fail, handle_errors, print_json

if TYPE_CHECKING:
    from mosaic_agent import AgentSession

AgentOption = Annotated[str | None, typer.Option("--agent", "-a", help="The agent's name or id.")]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="A model alias or provider/model (default: the agent's).")
]
ConversationOption = Annotated[
    str | None, typer.Option("--conversation", "-c", help="Continue this conversation (its id).")
]
NoToolsOption = Annotated[bool, typer.Option("--no-tools", help="Give the agent no tools this time.")]


@contextlib.contextmanager
def _session(
    config_path: Path | None,
    url: str | None,
    user: str,
    agent: str | None,
    model: str | None,
    conversation: str | None,
    tools: bool,
) -> Iterator[AgentSession]:
    """A session for ``user``: new, or resumed from ``conversation``; everything closed after."""
    from mosaic_agent import AgentSession, Router
    from mosaic_agent.tools import ToolsConfig, builtin_tools
    from mosaic_memory import open_memory

    config = ms.load_config(config_path)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(open_named_store(config_path, url))
        router = stack.enter_context(Router.from_config(config, env=None))
        brain = Brain(store)
        memory = open_memory(store)
        stack.callback(memory.close)
        registry = None
        if tools:
            limits = ToolsConfig.from_config(config)
            registry = builtin_tools(user, memory=memory, brain=brain, config=limits)
            servers = config.agent.get("mcp_servers")
            if servers:
                from mosaic_agent.mcp import McpBridge, servers_from_config

                found = servers_from_config(servers, source=str(config.source))
                bridge = stack.enter_context(McpBridge(found))
                for status in bridge.statuses:
                    if not status.ok:
                        why = f"{_cell(status.name)} left out: {_cell(status.error)}"
                        err_console.print(f"MCP server {why}", highlight=False)
                registry.extend(bridge.tools())
        common: dict[str, Any] = {"memory": memory, "tools": registry, "model": model}
        if conversation is not None:
            session = AgentSession.resume(brain, user, router, conversation, **common)
        else:
            session = AgentSession.start(brain, user, router, agent=agent, **common)
        with session:
            yield session


@agent_app.command("run")
@handle_errors
def run(
    prompt: str,
    user: UserOption,
    agent: AgentOption = None,
    model: ModelOption = None,
    conversation: ConversationOption = None,
    no_tools: NoToolsOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one prompt, let the agent use its tools, print the answer."""
    with _session(config, url, user, agent, model, conversation, not no_tools) as session:
        reply = session.send(prompt)
        conversation_id = session.id
    if as_json:
        print_json({"conversation_id": conversation_id, **attrs.asdict(reply)})
        return
    console.print(_cell(reply.text), highlight=False)


@agent_app.command("chat")
@handle_errors
def chat(
    user: UserOption,
    agent: AgentOption = None,
    model: ModelOption = None,
    conversation: ConversationOption = None,
    no_tools: NoToolsOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Talk with an agent, answers streamed. `/model NAME` switches model, `/exit` (or Ctrl-D) ends."""
    from mosaic_agent import Reply, TextDelta, ToolCallEvent, ToolResultEvent

    with _session(config, url, user, agent, model, conversation, not no_tools) as session:
        console.print(f"conversation {session.id} — /model NAME to switch, /exit to end", style="dim")
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text.startswith("/model"):
                name = text.removeprefix("/model").strip() or None
                session.use_model(name)
                console.print(f"model: {_cell(name or 'default route')}", style="dim", highlight=False)
                continue
            for event in session.stream(text):
                if isinstance(event, TextDelta):
                    console.print(_cell(event.text), end="", highlight=False, soft_wrap=True)
                elif isinstance(event, ToolCallEvent):
                    console.print(f"\n[dim]→ {_cell(event.call.name)}[/]", highlight=False)
                elif isinstance(event, ToolResultEvent):
                    mark = "✓" if event.ok else "✗"
                    console.print(f"[dim]{mark} {_cell(event.content[:200])}[/]", highlight=False)
                elif isinstance(event, Reply):
                    console.print(
                        f"\n[dim]({_cell(event.provider)}/{_cell(event.model)})[/]", highlight=False
                    )


# --- agent configurations ------------------------------------------------------------------


@agent_app.command("list")
@handle_errors
def agent_list(
    user: UserOption,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The agents you may use: yours, your teams', and system agents."""
    with open_named_store(config, url) as store:
        page = Brain(store).agents.list(user, cursor=cursor)
    _list(page, ("id", "name", "provider", "model", "is_system"), as_json)


@agent_app.command("new")
@handle_errors
def agent_new(
    name: str,
    user: UserOption,
    team: Annotated[str | None, typer.Option(help="Make it a team's agent (you: owner or admin).")] = None,
    provider: Annotated[str | None, typer.Option(help="Provider name from agent.providers.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name at that provider.")] = None,
    system_prompt: Annotated[str | None, typer.Option("--system-prompt", help="Its instructions.")] = None,
    tool: Annotated[
        list[str] | None,
        typer.Option("--tool", help="An allowed tool or pattern, e.g. 'memory.*' (repeatable)."),
    ] = None,
    skill: Annotated[list[str] | None, typer.Option("--skill", help="A skill name (repeatable).")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an agent configuration."""
    if (provider is None) != (model is None):
        fail("--provider and --model go together", code=EXIT_USAGE)
    with open_named_store(config, url) as store:
        agent = Brain(store).agents.create(
            user,
            name=name,
            team_id=team,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            allowed_tools=tool or (),
            skills=skill or (),
        )
    _show(agent, as_json)


@agent_app.command("show")
@handle_errors
def agent_show(
    agent_id: str,
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one agent configuration."""
    with open_named_store(config, url) as store:
        _show(Brain(store).agents.get(user, agent_id), as_json)


@agent_app.command("delete")
@handle_errors
def agent_delete(
    agent_id: str,
    user: UserOption,
    version: Annotated[
        int | None, typer.Option("--version", help="Only if still at this version (default: current).")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an agent configuration; its conversations stay."""
    with open_named_store(config, url) as store:
        agents = Brain(store).agents
        found = agents.get(user, agent_id)
        agents.delete(user, agent_id, version=version or found.version)
    if as_json:
        print_json({"deleted": to_dict(found)})
    else:
        console.print(f"deleted agent {_cell(found.name)} ({_cell(agent_id)})", highlight=False)
