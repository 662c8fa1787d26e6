"""``mosaic memory`` and ``mosaic pref``: insights and preferences of a user, from the shell."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

import mosaic_storage as ms

from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_FAILURE, EXIT_USAGE, console, fail, handle_errors, print_json

memory_app = typer.Typer(
    help="Insights of a user: add, search, list, forget, history; reembed, reindex (admin).",
    no_args_is_help=True,
)
pref_app = typer.Typer(help="Preferences of a user: get, set, list, delete.", no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", "-u", help="The user the memory belongs to (any string).")]

P = ParamSpec("P")
R = TypeVar("R")


def _usage_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Bad arguments the library rejects (ValueError) are usage errors: exit 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ValueError as err:
            if isinstance(err, ms.MosaicError):
                raise
            fail(str(err), code=EXIT_USAGE)

    return wrapper


@contextlib.contextmanager
def _memory(config: Path | None, url: str | None) -> Iterator[Any]:
    from mosaic_memory import open_memory

    store = open_named_store(config, url)
    with store, open_memory(store) as memory:
        yield memory


def _pairs(values: list[str] | None, option: str) -> dict[str, Any]:
    """``key=value`` options as a dict; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"{option} takes key=value, got {item!r}", code=EXIT_USAGE)
        out[key] = _json_or_text(raw)
    return out


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _dict(record: Any) -> dict[str, Any]:
    from mosaic_memory import to_dict

    return to_dict(record)


# --- memory ----------------------------------------------------------------------------------


@memory_app.command("add")
@handle_errors
@_usage_errors
def memory_add(
    text: Annotated[str, typer.Argument(help="What to remember.")],
    user: UserOption,
    category: Annotated[str | None, typer.Option(help="A category, e.g. food.")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Metadata key=value (repeatable).")] = None,
    dedupe: Annotated[bool, typer.Option(help="Fold near-duplicates into the existing insight.")] = True,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an insight (a near-duplicate updates the existing one); prints its id."""
    with _memory(config, url) as memory:
        insight_id = memory.insights.add(
            text, user_id=user, category=category, metadata=_pairs(meta, "--meta"), dedupe=dedupe
        )
        insight = memory.insights.get(insight_id, user_id=user)
    if as_json:
        print_json(_dict(insight))
        return
    console.print(insight_id, highlight=False)


@memory_app.command("search")
@handle_errors
@_usage_errors
def memory_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: UserOption,
    limit: Annotated[int, typer.Option(help="At most this many hits.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword.")] = "hybrid",
    min_score: Annotated[float | None, typer.Option(help="Drop hits scoring lower.")] = None,
    filters: Annotated[
        list[str] | None, typer.Option("--filter", help="Equality filter key=value (repeatable).")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search a user's insights, best first."""
    with _memory(config, url) as memory:
        hits = memory.insights.search(
            query,
            user_id=user,
            limit=limit,
            mode=mode,
            min_score=min_score,
            filters=_pairs(filters, "--filter") or None,
        )
    if as_json:
        print_json([_dict(hit) for hit in hits])
        return
    if not hits:
        console.print("no matching insights")
    for hit in hits:
        console.print(f"{hit.score:8.4f}  {hit.id}  {hit.text}", highlight=False, markup=False)


@memory_app.command("list")
@handle_errors
@_usage_errors
def memory_list(
    user: UserOption,
    limit: Annotated[int, typer.Option(help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many (newest first).")] = 0,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's insights, newest first."""
    with _memory(config, url) as memory:
        insights = memory.insights.list(user_id=user, limit=limit, offset=offset)
    if as_json:
        print_json([_dict(insight) for insight in insights])
        return
    for insight in insights:
        console.print(
            f"{insight.created_at:%Y-%m-%d %H:%M}  {insight.id}  {insight.text}",
            highlight=False,
            markup=False,
        )


@memory_app.command("forget")
@handle_errors
@_usage_errors
def memory_forget(
    insight_id: Annotated[str, typer.Argument(help="The insight's id.")],
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an insight (its history stays). Exits 1 when the user has no such insight."""
    with _memory(config, url) as memory:
        deleted = memory.insights.delete(insight_id, user_id=user, source="user")
    if as_json:
        print_json({"id": insight_id, "deleted": deleted})
    elif deleted:
        console.print(f"forgot {insight_id}", highlight=False)
    if not deleted:
        fail(f"user {user!r} has no insight {insight_id!r}", code=EXIT_FAILURE)


@memory_app.command("history")
@handle_errors
@_usage_errors
def memory_history(
    insight_id: Annotated[str, typer.Argument(help="The insight's id.")],
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every change of an insight, oldest first."""
    with _memory(config, url) as memory:
        entries = memory.insights.history(insight_id, user_id=user)
    if as_json:
        print_json([_dict(entry) for entry in entries])
        return
    if not entries:
        fail(f"user {user!r} has no history for insight {insight_id!r}", code=EXIT_FAILURE)
    for entry in entries:
        change = f"{entry.old_text!r} -> {entry.new_text!r}"
        console.print(
            f"{entry.changed_at:%Y-%m-%d %H:%M:%S}  {entry.action:<6} by {entry.actor:<5}  {change}",
            highlight=False,
            markup=False,
        )


@memory_app.command("reembed")
@handle_errors
@_usage_errors
def memory_reembed(
    dim: Annotated[int, typer.Option(help="Dimension of the new hashing embedder.")],
    config: ConfigOption = None,
    url: UrlOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-embed every insight of every user with the hashing embedder of dimension DIM (admin)."""
    from mosaic_memory import HashingEmbedder, reembed

    store = open_named_store(config, url)
    with store:
        if not yes and not typer.confirm(f"Rewrite every vector in {store.url} with dimension {dim}?"):
            raise typer.Exit(EXIT_FAILURE)
        count = reembed(store, HashingEmbedder(dim))
    if as_json:
        print_json({"reembedded": count, "dim": dim})
        return
    console.print(f"re-embedded {count} insights with dimension {dim}")


@memory_app.command("reindex")
@handle_errors
@_usage_errors
def memory_reindex(
    check: Annotated[
        bool, typer.Option("--check", help="Only check the keyword index; exit 1 when it is broken.")
    ] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check or rebuild the keyword index of every user's insights (admin)."""
    from mosaic_memory import check_keyword_index, rebuild_keyword_index

    with open_named_store(config, url) as store:
        report = check_keyword_index(store) if check else rebuild_keyword_index(store)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "rebuilt": not check,
                "insights": report.insights,
                "indexed": report.indexed,
                "problems": list(report.problems),
                "remediation": report.remediation,
            }
        )
    else:
        what = "checked" if check else "rebuilt"
        console.print(
            f"keyword index {what}: {report.indexed} entries for {report.insights} insights",
            highlight=False,
        )
        for problem in report.problems:
            console.print(f"  {problem}", highlight=False, markup=False)
        if report.remediation:
            console.print(report.remediation, highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


# --- preferences -----------------------------------------------------------------------------


@pref_app.command("get")
@handle_errors
@_usage_errors
def pref_get(
    key: Annotated[str, typer.Argument(help="The preference's key.")],
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a preference's value (JSON). Exits 1 when the user has no such preference."""
    with _memory(config, url) as memory:
        record = memory.preferences.get_record(user, key)
    if record is None:
        fail(f"user {user!r} has no preference {key!r}", code=EXIT_FAILURE)
    if as_json:
        print_json(_dict(record))
        return
    console.print(json.dumps(record.value), highlight=False, markup=False)


@pref_app.command("set")
@handle_errors
@_usage_errors
def pref_set(
    key: Annotated[str, typer.Argument(help="The preference's key.")],
    value: Annotated[str, typer.Argument(help="The value: JSON (42, true, {...}) or plain text.")],
    user: UserOption,
    category: Annotated[str | None, typer.Option(help="A category, e.g. display.")] = None,
    immutable: Annotated[
        bool | None,
        typer.Option(
            "--immutable/--mutable", help="Whether agents may change it (default: keep; new: mutable)."
        ),
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a preference, as the user (so immutable preferences can be changed here)."""
    with _memory(config, url) as memory:
        record = memory.preferences.set(
            user,
            key,
            _json_or_text(value),
            category=category,
            source="user",
            mutable=None if immutable is None else not immutable,
        )
    if as_json:
        print_json(_dict(record))
        return
    console.print(f"{key} = {json.dumps(record.value)}", highlight=False, markup=False)


@pref_app.command("list")
@handle_errors
@_usage_errors
def pref_list(
    user: UserOption,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's preferences by key."""
    with _memory(config, url) as memory:
        records = memory.preferences.list(user, category=category)
    if as_json:
        print_json([_dict(record) for record in records])
        return
    for record in records:
        lock = "" if record.mutable else "  (immutable)"
        console.print(f"{record.key} = {json.dumps(record.value)}{lock}", highlight=False, markup=False)


@pref_app.command("delete")
@handle_errors
@_usage_errors
def pref_delete(
    key: Annotated[str, typer.Argument(help="The preference's key.")],
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a preference, as the user. Exits 1 when there was none."""
    with _memory(config, url) as memory:
        deleted = memory.preferences.delete(user, key, source="user")
    if as_json:
        print_json({"key": key, "deleted": deleted})
    elif deleted:
        console.print(f"deleted {key}", highlight=False)
    if not deleted:
        fail(f"user {user!r} has no preference {key!r}", code=EXIT_FAILURE)
