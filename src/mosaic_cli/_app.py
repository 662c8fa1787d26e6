"""The ``mosaic`` Typer application and its top-level commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

import mosaic_storage as ms

from . import (
    _agent_session,  # noqa: F401  (adds agent chat|run|list|new|show|delete)
    _coord,  # noqa: F401  (adds mission init|export|import, task next|done)
)
from ._agent import agent_app
from ._brain import mission_app, project_app, task_app
from ._doctor import doctor
from ._jobs import jobs_app, worker
from ._logs import logs_app, summarize
from ._mcp import mcp_app
from ._memory import memory_app, pref_app
from ._migrate import migrate_tier
from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, console, fail, handle_errors, print_json

app = typer.Typer(
    name="mosaic",
    help="Mosaic Stack: one storage layer for AI-agent apps, from a SQLite file to PostgreSQL + pgvector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(doctor)
db_app = typer.Typer(help="Schema migrations: upgrade, current, downgrade.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(project_app, name="project")
app.add_typer(mission_app, name="mission")
app.add_typer(task_app, name="task")
app.command("migrate-tier")(migrate_tier)
app.add_typer(memory_app, name="memory")
app.add_typer(pref_app, name="pref")
app.add_typer(mcp_app, name="mcp")
app.add_typer(agent_app, name="agent")
app.add_typer(logs_app, name="logs")
app.command()(summarize)
app.add_typer(jobs_app, name="jobs")
app.command()(worker)


def _version(value: bool) -> None:
    if value:
        console.print(f"mosaic-stack {ms.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Mosaic Stack for Python."""


@app.command()
@handle_errors
def init(
    tier: Annotated[
        ms.StorageTier, typer.Option(help="The tier this deployment runs.")
    ] = ms.StorageTier.LOCAL,
    url: Annotated[
        str | None, typer.Option(help="Storage URL (default: a SQLite file in the user data dir).")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis/Valkey URL for the job queue.")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Where to write mosaic.config.json.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False,
    upgrade: Annotated[bool, typer.Option(help="Migrate the database to the newest schema.")] = True,
) -> None:
    """Write a mosaic.config.json for a tier and migrate its database."""
    target = directory / "mosaic.config.json"
    if target.exists() and not force:
        fail(f"{target} already exists", code=EXIT_USAGE, remediation="pass --force to overwrite it")
    data: dict[str, object] = {"tier": tier.value, "storage": {"url": url or ms.StorageConfig().url}}
    if redis_url:
        data["queue"] = {"type": "redis", "url": redis_url}
    config = ms.config_from_dict(data, source=str(target), base_dir=directory.resolve())
    # Check the tier (and migrate) before writing: a failed init leaves no config behind.
    with ms.open_store(config) as store:
        if upgrade:
            revision = ms.upgrade(store)
            console.print(f"migrated {store.url} to revision {revision}")
    directory.mkdir(parents=True, exist_ok=True)
    # The file may hold passwords: readable by its owner only.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(data, indent=2) + "\n")
    target.chmod(0o600)
    console.print(f"wrote {target} ({tier.value} tier)")


@app.command()
@handle_errors
def quickstart(
    path: Annotated[
        Path | None,
        typer.Option(help="SQLite file to use (default: quickstart.db in the user data dir)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a local store, migrate it, write and read back sample rows, add and search memories."""
    from mosaic_memory import memory_quickstart
    from mosaic_storage._config import default_data_dir

    db_path = path or default_data_dir() / "quickstart.db"
    with ms.open_store(f"sqlite:///{db_path}") as store:
        report = ms.quickstart(store)
        memory = memory_quickstart(store)
    steps = [(s.action, s.detail) for s in report.steps]
    steps.append(("memory", f"{memory.insights} insights for {memory.user_id} ({memory.backend} store)"))
    best = f"{memory.hits[0].text!r} (score {memory.hits[0].score:.3f})" if memory.hits else "no hits"
    steps.append(("search", f"{memory.query!r} -> {best}"))
    if as_json:
        print_json(
            {
                "url": report.url,
                "revision": report.revision,
                "steps": [{"action": action, "detail": detail} for action, detail in steps],
                "memory": {
                    "user_id": memory.user_id,
                    "query": memory.query,
                    "hits": [{"id": h.id, "text": h.text, "score": h.score} for h in memory.hits],
                },
            }
        )
        return
    for action, detail in steps:
        console.print(f"[bold green]{action:>7}[/]  {detail}", highlight=False)
    console.print("\nNext: `mosaic init` writes a config; see the docs' getting-started page.")


@db_app.command("upgrade")
@handle_errors
def db_upgrade(
    config: ConfigOption = None,
    url: UrlOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Migrate the database schema up (to head by default)."""
    with open_named_store(config, url) as store:
        before = ms.current(store)
        after = ms.upgrade(store, revision)
        console.print(f"{store.url}: {before or 'empty'} -> {after}")


@db_app.command("current")
@handle_errors
def db_current(config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Print the database's schema revision and the newest one this SDK ships."""
    with open_named_store(config, url) as store:
        revision, head = ms.current(store), ms.head()
        if as_json:
            print_json({"url": store.url, "current": revision, "head": head, "up_to_date": revision == head})
            return
        state = "up to date" if revision == head else "behind: run `mosaic db upgrade`"
        console.print(f"{store.url}: {revision or 'empty'} (head {head}, {state})")


@db_app.command("downgrade")
@handle_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every Mosaic table.")],
    config: ConfigOption = None,
    url: UrlOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the database schema down. Downgrading to base deletes all Mosaic data."""
    with open_named_store(config, url) as store:
        if not yes and not typer.confirm(f"Downgrade {store.url} to {revision}? Data may be lost."):
            raise typer.Exit(1)
        after = ms.downgrade(store, revision)
        console.print(f"{store.url}: now at {after or 'base (empty)'}")


def main() -> None:
    """Entry point of the ``mosaic`` console script."""
    app()
