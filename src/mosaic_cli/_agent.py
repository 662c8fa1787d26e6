"""``mosaic agent ...``: configured models and their reachability, users' stored provider keys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

import mosaic_storage as ms

from ._options import ConfigOption, JsonOption, UrlOption
from ._output import EXIT_USAGE, console, fail, handle_errors, print_json

if TYPE_CHECKING:
    from mosaic_agent import AgentConfig, ProviderCredentials

agent_app = typer.Typer(help="The agent layer: providers, models, routing.", no_args_is_help=True)

_STYLE = {"ok": "bold green", "unauthorized": "bold yellow", "unreachable": "bold red", "error": "bold red"}


@agent_app.command("models")
@handle_errors
def models(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(min=0.1, max=60, help="Seconds per probe.")] = 3.0,
    as_json: JsonOption = False,
) -> None:
    """List the configured models and whether each provider answers (keys from the environment)."""
    from mosaic_agent import Router

    with Router.from_config(ms.load_config(config)) as router:
        statuses = router.status(timeout=timeout)
    if as_json:
        print_json({"models": [status.to_dict() for status in statuses]})
        return
    if not statuses:
        console.print("no models configured: add them under agent.providers in mosaic.config.json")
        return
    table = Table(title="configured models", title_justify="left")
    for column in ("provider", "model", "tags", "cost $/Mtok", "status", "latency"):
        table.add_column(column, overflow="fold")
    for status in statuses:
        probe = status.probe
        latency = "" if probe.latency_ms is None else f"{probe.latency_ms:.0f} ms"
        state = f"[{_STYLE.get(probe.status, 'bold')}]{escape(probe.status)}[/]"
        if probe.detail:
            state += f" {escape(probe.detail)}"
        table.add_row(
            escape(status.provider),
            escape(status.model),
            escape(", ".join(status.tags)),
            f"{status.cost:g}",
            state,
            latency,
        )
    console.print(table)


credentials_app = typer.Typer(
    help="A user's provider keys, stored encrypted (key from $MOSAIC_SECRET_KEY).", no_args_is_help=True
)
agent_app.add_typer(credentials_app, name="credentials")

UserOption = Annotated[str, typer.Option("--user", "-u", help="The id of the user the key belongs to.")]
ProviderArgument = Annotated[str, typer.Argument(help="A provider name from agent.providers.")]


def _credentials(
    config_path: Path | None, url: str | None
) -> tuple[ms.Store, ProviderCredentials, AgentConfig]:
    from mosaic_agent import AgentConfig, ProviderCredentials

    config = ms.load_config(config_path)
    agent = AgentConfig.from_config(config)
    store = ms.open_store(url) if url is not None else ms.open_store(config)
    return store, ProviderCredentials(store, key_env=agent.credentials_key_env), agent


@credentials_app.command("set")
@handle_errors
def credentials_set(
    provider: ProviderArgument,
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Store USER's key for PROVIDER: read from a hidden prompt, or from stdin when piped."""
    store, credentials, agent = _credentials(config, url)
    with store:
        if provider not in agent.providers:
            fail(
                f"provider {provider!r} is not configured",
                code=EXIT_USAGE,
                remediation=f"configured in agent.providers: {', '.join(agent.providers) or '(none)'}",
            )
        # Never an argument: arguments show in `ps` and in shell history.
        if sys.stdin.isatty():
            secret = typer.prompt(f"key for {provider}", hide_input=True)
        else:
            secret = sys.stdin.readline().strip()
        credentials.set(user, provider, secret)
    console.print(f"stored the key for {escape(provider)} of user {escape(user)} (encrypted)")


@credentials_app.command("list")
@handle_errors
def credentials_list(
    user: UserOption, config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """The providers USER has stored keys for (names only, never the keys)."""
    store, credentials, _ = _credentials(config, url)
    with store:
        providers = credentials.providers(user)
    if as_json:
        print_json({"user": user, "providers": list(providers)})
        return
    console.print("\n".join(escape(p) for p in providers) or "no stored keys", highlight=False)


@credentials_app.command("delete")
@handle_errors
def credentials_delete(
    provider: ProviderArgument, user: UserOption, config: ConfigOption = None, url: UrlOption = None
) -> None:
    """Remove USER's stored key for PROVIDER (exit 1 when there was none)."""
    store, credentials, _ = _credentials(config, url)
    with store:
        deleted = credentials.delete(user, provider)
    if not deleted:
        fail(f"user {user!r} has no stored key for {provider!r}")
    console.print(f"deleted the key for {escape(provider)} of user {escape(user)}")
