"""What every repository shares: transactions, reads, reused statements, guarded writes, keyset pages."""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from .._errors import AccessDenied, ConflictError
from .._redact import redact
from .._store import run_read
from .._types import utcnow
from ._access import WRITE_ROLES, in_team, users
from ._records import InvalidValue, NotFound, Page

T = TypeVar("T")
S = TypeVar("S")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of every optional field of an update: leave the field as it is (``None`` clears it)."""


def check_one_of(field: str, value: str, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise `InvalidValue` naming them."""
    if value not in allowed:
        raise InvalidValue(
            f"{field} {value!r} is not allowed",
            remediation=f"use one of: {', '.join(allowed)}",
        )
    return value


def page_size(limit: int) -> int:
    """``limit`` checked against 1..MAX_PAGE_SIZE."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidValue(f"limit {limit} is out of range", remediation=f"use 1 to {MAX_PAGE_SIZE}")
    return limit


def changes(**fields: Any) -> dict[str, Any]:
    """The fields of an update that were given (not `UNSET`)."""
    return {name: value for name, value in fields.items() if value is not UNSET}


# The connection of the `atomic` block running in this context, if any, with its engine.
_atomic: contextvars.ContextVar[tuple[Engine, Connection] | None] = contextvars.ContextVar(
    "mosaic_brain_atomic", default=None
)


def _integrity_conflict(err: sa.exc.IntegrityError) -> ConflictError:
    # A database rule broken by a write (a taken email, a missing required value, a race on a
    # unique key) is the caller's conflict, not a driver traceback; nothing is written.
    return ConflictError(
        f"the change breaks a rule of the data: {redact(str(err.orig)).strip().splitlines()[0]}",
        remediation="check required values and unique ones (ids, emails, slugs), then retry",
    )


@contextlib.contextmanager
def atomic(engine: Engine) -> Iterator[None]:
    """Run every repository call on ``engine`` inside this block in one transaction.

    Either all of the block's writes are committed or, if anything raises, none is. An error
    inside the block ends it: catching it and going on is not supported.
    """
    if _atomic.get() is not None:
        raise RuntimeError("atomic blocks do not nest")
    try:
        with engine.begin() as conn:
            token = _atomic.set((engine, conn))
            try:
                yield
            finally:
                _atomic.reset(token)
    except sa.exc.IntegrityError as err:
        raise _integrity_conflict(err) from None


def _shared(engine: Engine) -> Connection | None:
    current = _atomic.get()
    return current[1] if current is not None and current[0] is engine else None


class Repository:
    """Base of the repositories: holds the engine and opens one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        shared = _shared(self._engine)
        if shared is not None:
            yield shared
            return
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as err:
            raise _integrity_conflict(err) from None

    def _read(self, read: Callable[[Connection], T]) -> T:
        # Inside `atomic`, reads see the block's own writes on its connection. Otherwise they
        # run in autocommit without the pool's ping: one round trip per statement, and a
        # connection the server closed is retried once on a fresh one (see `run_read`).
        shared = _shared(self._engine)
        if shared is not None:
            return read(shared)
        return run_read(self._engine, read)

    def _read_page(
        self,
        query: sa.Select[Any],
        params: dict[str, Any],
        record: Callable[..., T],
        *,
        cursor: str | None,
        limit: int,
    ) -> Page[T]:
        """Run a `keyset` page ``query`` (columns in ``record``'s field order) and build the page."""
        size = page_size(limit)
        params["limit"] = size + 1
        if cursor is not None:
            params["cursor"] = cursor
        rows = self._read(lambda conn: conn.execute(query, params).all())
        items = tuple(record(*row) for row in rows[:size])
        next_cursor = str(rows[size - 1][0]) if len(rows) > size else None
        return Page(items=items, next_cursor=next_cursor)


_STATEMENTS: dict[Hashable, Any] = {}


def statement(key: Hashable, build: Callable[[], S]) -> S:
    """The statement ``build()`` makes, built once per ``key`` and reused with new parameter values.

    Statements on hot paths are written with bind parameters (``sa.bindparam("actor")``)
    instead of values: building a SQLAlchemy expression and its cache key on every call cost
    more than the query itself, while a reused statement goes straight to its compiled form.
    The keys are shapes (which filters a call uses), so the cache stays small.
    """
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = build()
    return found


def record_columns(table: sa.Table, record: type[Any], *, first: str = "id") -> list[sa.Column[Any]]:
    """The columns of ``table`` named like the fields of ``record``, in the fields' order.

    Rows selected this way build records positionally (``record(*row)``), the cheapest way;
    ``first`` is checked because pages take their cursor from the first column.
    """
    columns = [table.c[field.name] for field in attrs.fields(record)]
    if columns[0].name != first:
        raise TypeError(f"{record.__name__} must start with {first!r}")
    return columns


def keyset(query: sa.Select[Any], id_column: Any, *, after: bool) -> sa.Select[Any]:
    """``query`` as one keyset page: ``id > :cursor`` when ``after``, by id, ``LIMIT :limit``."""
    if after:
        query = query.where(id_column > sa.bindparam("cursor"))
    return query.order_by(id_column).limit(sa.bindparam("limit", type_=sa.Integer()))


def insert_where(conn: Connection, table: sa.Table, values: Mapping[str, Any], condition: Any) -> bool:
    """``INSERT .. SELECT values WHERE condition``: the row is written only if the rule holds.

    The rule is checked by the same statement that writes, so a permission revoked a moment
    before cannot be slipped past between a check and the insert.
    """
    columns = list(values)
    select = sa.select(*[sa.literal(values[c], type_=table.c[c].type).label(c) for c in columns])
    # RETURNING, not rowcount: psycopg reports -1 for INSERT .. SELECT through SQLAlchemy.
    stmt = sa.insert(table).from_select(columns, select.where(condition)).returning(table.c.id)
    return conn.execute(stmt).first() is not None


def versioned_delete(
    conn: Connection, table: sa.Table, record_id: str, *, version: int, writable: Any, visible: Any, what: str
) -> None:
    """Delete the row if ``actor`` may change it and it is still at ``version``.

    Raises:
        NotFound: not visible.
        AccessDenied: visible but not changeable.
        ConflictError: it changed since ``version`` was read; nothing was deleted.
    """
    deleted = conn.execute(
        sa.delete(table).where(table.c.id == record_id, table.c.version == version, writable)
    )
    if deleted.rowcount == 1:
        return
    if not exists(conn, table, record_id, writable):
        raise deny(conn, table, record_id, visible, what)
    raise ConflictError(
        f"{what} {record_id} changed since version {version}", remediation="read it again and retry"
    )


def holds(conn: Connection, condition: Any) -> bool:
    """Whether ``condition`` is true (``SELECT 1 WHERE condition``)."""
    return conn.execute(sa.select(sa.literal(1)).where(condition)).first() is not None


def exists(conn: Connection, table: sa.Table, record_id: str, condition: Any) -> bool:
    """Whether the row ``record_id`` exists and satisfies ``condition``."""
    return holds(conn, sa.exists().where(table.c.id == record_id, condition))


def insert_owned(
    conn: Connection, table: sa.Table, values: Mapping[str, Any], actor: str, team_id: str | None, what: str
) -> None:
    """Insert a record owned by ``actor``, or by ``team_id`` if ``actor`` is its owner or admin.

    Raises:
        NotFound: ``actor`` is not a user, or not a member of the team.
        AccessDenied: ``actor`` is a plain member of the team.
    """
    if team_id is None:
        if not insert_where(conn, table, values, sa.exists().where(users.c.id == actor)):
            raise not_found("user", actor)
    elif not insert_where(conn, table, values, in_team(actor, team_id, WRITE_ROLES)):
        if holds(conn, in_team(actor, team_id)):
            raise AccessDenied(
                f"only owners and admins may create {what} in team {team_id}",
                remediation="ask an owner or admin of the team to do it, or to make you an admin",
            )
        raise not_found("team", team_id)


def deny(conn: Connection, table: sa.Table, record_id: str, visible: Any, what: str) -> Exception:
    """The error for a write that matched no row: `NotFound` if unseen, else `AccessDenied`."""
    if not exists(conn, table, record_id, visible):
        return NotFound(f"{what} {record_id} not found", remediation=_not_found_hint(what))
    return AccessDenied(
        f"you may read {what} {record_id} but not change it",
        remediation="ask an owner or admin of its team to make the change, or to make you an admin",
    )


def _not_found_hint(what: str) -> str:
    return f"check the {what} id; records you may not see are reported as not found"


def not_found(what: str, record_id: str) -> NotFound:
    """A `NotFound` for ``what`` ``record_id``."""
    return NotFound(f"{what} {record_id} not found", remediation=_not_found_hint(what))


def versioned_update(
    conn: Connection,
    table: sa.Table,
    record_id: str,
    *,
    version: int,
    values: Mapping[str, Any],
    writable: Any,
    visible: Any,
    what: str,
) -> RowMapping:
    """``UPDATE .. WHERE id = ? AND version = ? AND <writable>``, returning the new row.

    Nothing is written unless the version still matches and the actor may write; otherwise
    raises `NotFound` (not visible), `AccessDenied` (visible, not writable) or
    `ConflictError` (changed since it was read).
    """
    stmt = (
        sa.update(table)
        .where(table.c.id == record_id, table.c.version == version, writable)
        .values(**values, version=table.c.version + 1, updated_at=utcnow())
        .returning(*table.c)
    )
    row = conn.execute(stmt).mappings().first()
    if row is not None:
        return row
    if not exists(conn, table, record_id, writable):
        raise deny(conn, table, record_id, visible, what)
    current = conn.execute(sa.select(table.c.version).where(table.c.id == record_id)).scalar()
    raise ConflictError(
        f"{what} {record_id} is at version {current}, not {version}: it changed since you read it",
        remediation="read it again, reapply your change and retry",
    )


def ids(values: Iterable[str]) -> list[str]:
    """``values`` as a list of distinct ids, in order."""
    return list(dict.fromkeys(values))
