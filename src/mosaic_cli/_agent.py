"""``mosaic agent ...``: the agent layer's commands (``models`` lists providers' models and reachability)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import mosaic_storage as ms

from ._options import ConfigOption, JsonOption
from ._output import console, handle_errors, print_json

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
