"""What every backend shares: preferences, skills, and insights with dedupe, history and fused search.

A backend subclasses `Insights` and supplies three hooks: vector candidates, keyword
candidates, and each new vector's nearest stored neighbour (for dedupe). Everything else,
SQL included, is here and the same on every backend.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from mosaic_storage import AccessDenied, ConflictError, new_id
from mosaic_storage._store import run_read
from mosaic_storage.schema import TABLES

from ._embedders import Embedder, HashingEmbedder, normalize_rows
from ._errors import NotFoundError
from ._filters import compile_filters
from ._logs import AgentLogs, _metadata_problem
from ._records import (
    SEARCH_MODES,
    SOURCES,
    HistoryEntry,
    Insight,
    InsightHit,
    NewInsight,
    Preference,
    SearchMode,
    Skill,
    Source,
)

if TYPE_CHECKING:
    from mosaic_storage import Store

Matrix = npt.NDArray[np.float32]
Candidates = builtins.list[tuple[str, float]]

INSIGHTS = TABLES["insights"]
HISTORY = TABLES["insight_history"]
GENERATIONS = TABLES["insight_generations"]
PREFERENCES = TABLES["preferences"]
SKILLS = TABLES["skills"]

DEFAULT_DEDUPE_THRESHOLD: Final = 0.95
"""Near-duplicate cosine for semantic embedders: paraphrases of one fact sit above it."""
EXACT_TEXT_ONLY: Final = math.inf
"""The dedupe threshold of lexical embedders: only the same text merges (no cosine reaches it)."""
RRF_K: Final = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009): a hit at rank r adds 1 / (60 + r)."""
DEFAULT_BATCH_SIZE: Final = 1000


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of optional update arguments: leave the field as it is."""


def check_user(user_id: str) -> str:
    """``user_id`` itself, or `ValueError` when it is not a non-empty string."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
    return user_id


def _check_source(source: str) -> Source:
    if source not in SOURCES:
        raise ValueError(f"source must be 'user' or 'agent', got {source!r}")
    return source  # type: ignore[return-value]


@functools.lru_cache(maxsize=4)
def _upper_triangle(n: int) -> npt.NDArray[np.bool_]:
    """The mask of an n x n matrix's diagonal and upper triangle (built once per batch size)."""
    mask = np.triu(np.ones((n, n), dtype=np.bool_))
    mask.flags.writeable = False
    return mask


def _check_str(value: object, what: str, *, limit: int | None = None, optional: bool = False) -> None:
    """A clear `ValueError` for a string the database would refuse or cut (NUL, too long)."""
    if optional and (value is None or (isinstance(value, str) and not value)):
        return
    if not isinstance(value, str) or not value:
        # The type only: a value passed in the wrong field may be a secret.
        got = "an empty string" if isinstance(value, str) else type(value).__name__
        raise ValueError(f"{what} must be a non-empty string, got {got}")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character (\\x00), which PostgreSQL cannot store; remove it")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; at most {limit} are stored")


def _check_json(value: object, what: str) -> None:
    """A clear `ValueError` for a value JSON columns cannot store as given (NaN, NUL, odd types)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be JSON-serializable, without NaN or infinity: {err}") from None
    problem = _metadata_problem(value)
    if problem:
        raise ValueError(f"{what} {problem}; fix or remove it")


def _check_metadata(metadata: object, what: str = "an insight's metadata") -> None:
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(metadata).__name__}")
    _check_json(dict(metadata), what)  # stored as a dict, whatever mapping type it came as


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT`` of many rows with the same keys, as one driver-level executemany.

    Values go through the columns' own bind processing, as `Connection.execute` would do,
    without its per-row bookkeeping (a third of the time of a 1,000-row insight batch).
    """
    if not rows:
        return
    dialect = conn.dialect
    names = builtins.list(rows[0])
    columns = [table.c[name] for name in names]
    processors = [column.type._cached_bind_processor(dialect) for column in columns]
    marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(names))
    quote = dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({marks})"
    # Rows of one batch share many values (the user, the timestamp): each distinct object is
    # processed once per column (processing a datetime for SQLite costs more than inserting it).
    columns_out = []
    for name, process in zip(names, processors, strict=True):
        values = [row[name] for row in rows]
        if process is not None:
            done: dict[int, Any] = {}
            values = [done[id(v)] if id(v) in done else done.setdefault(id(v), process(v)) for v in values]
        columns_out.append(values)
    conn.exec_driver_sql(sql, builtins.list(zip(*columns_out, strict=True)))


def _now() -> Any:
    from mosaic_storage._types import utcnow

    return utcnow()


# --- preferences -----------------------------------------------------------------------------


def _preference(row: Any) -> Preference:
    return Preference(
        user_id=row.user_id,
        key=row.key,
        value=row.value,
        category=row.category,
        source=row.source,
        mutable=bool(row.mutable),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Preferences:
    """A user's preferences: JSON values by key. Immutable ones change only by the user."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def get(self, user_id: str, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the user has no such preference."""
        record = self.get_record(user_id, key)
        return default if record is None else record.value

    def get_record(self, user_id: str, key: str) -> Preference | None:
        """The whole preference (value, category, source, mutable, times), or None."""
        check_user(user_id)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(PREFERENCES).where(PREFERENCES.c.user_id == user_id, PREFERENCES.c.key == key)
            ).one_or_none()
        return None if row is None else _preference(row)

    def set(
        self,
        user_id: str,
        key: str,
        value: Any,
        *,
        category: str | None = None,
        source: Source = "user",
        mutable: bool | None = None,
    ) -> Preference:
        """Create or change a preference; returns it as stored.

        ``category`` None keeps the current one. Only the user (``source="user"``) may set
        ``mutable``; new preferences are mutable unless the user says otherwise.

        Raises:
            AccessDenied: an agent-sourced write to an immutable preference, or an agent
                trying to set ``mutable``.
        """
        check_user(user_id)
        _check_source(source)
        _check_str(key, "a preference key", limit=255)
        _check_str(category, "a preference category", limit=100, optional=True)
        _check_json(value, f"the value of preference {key!r}")
        if source == "agent" and mutable is not None:
            raise AccessDenied(
                f"preference {key!r}: only the user can make a preference mutable or immutable",
                remediation="call set(..., source='user') for that, or leave mutable unset",
            )
        for attempt in range(2):
            try:
                return self._set(user_id, key, value, category, source, mutable)
            except sa.exc.IntegrityError:
                # Another writer created the same key between our read and our insert: update it.
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _set(
        self, user_id: str, key: str, value: Any, category: str | None, source: str, mutable: bool | None
    ) -> Preference:
        now = _now()
        where = (PREFERENCES.c.user_id == user_id, PREFERENCES.c.key == key)
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(PREFERENCES).where(*where).with_for_update()).one_or_none()
            if row is None:
                values = {
                    "id": new_id(),
                    "user_id": user_id,
                    "key": key,
                    "value": value,
                    "category": category,
                    "source": source,
                    "mutable": True if mutable is None else mutable,
                    "created_at": now,
                    "updated_at": now,
                }
                conn.execute(sa.insert(PREFERENCES).values(**values))
            else:
                if not row.mutable and source == "agent":
                    raise AccessDenied(
                        f"preference {key!r} of user {user_id!r} is immutable: an agent cannot change it",
                        remediation="only the user can change it (source='user')",
                    )
                changes: dict[str, Any] = {"value": value, "source": source, "updated_at": now}
                if category is not None:
                    changes["category"] = category
                if mutable is not None:
                    changes["mutable"] = mutable
                # The rule is part of the write itself: SQLite ignores FOR UPDATE, so a user
                # locking the preference between the read above and this write still wins.
                guard = (*where, PREFERENCES.c.mutable == sa.true()) if source == "agent" else where
                if conn.execute(sa.update(PREFERENCES).where(*guard).values(**changes)).rowcount != 1:
                    raise AccessDenied(
                        f"preference {key!r} of user {user_id!r} is immutable: an agent cannot change it",
                        remediation="only the user can change it (source='user')",
                    )
            stored = conn.execute(sa.select(PREFERENCES).where(*where)).one()
        return _preference(stored)

    def list(self, user_id: str, *, category: str | None = None) -> builtins.list[Preference]:
        """The user's preferences, by key; only those of ``category`` when given."""
        check_user(user_id)
        query = sa.select(PREFERENCES).where(PREFERENCES.c.user_id == user_id)
        if category is not None:
            query = query.where(PREFERENCES.c.category == category)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(PREFERENCES.c.key)).all()
        return [_preference(row) for row in rows]

    def delete(self, user_id: str, key: str, *, source: Source = "user") -> bool:
        """Delete a preference; False when there was none.

        Raises:
            AccessDenied: an agent tried to delete an immutable preference.
        """
        check_user(user_id)
        _check_source(source)
        where = (PREFERENCES.c.user_id == user_id, PREFERENCES.c.key == key)
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(PREFERENCES.c.mutable).where(*where).with_for_update()).one_or_none()
            if row is None:
                return False
            if not row.mutable and source == "agent":
                raise AccessDenied(
                    f"preference {key!r} of user {user_id!r} is immutable: an agent cannot delete it",
                    remediation="only the user can delete it (source='user')",
                )
            guard = (*where, PREFERENCES.c.mutable == sa.true()) if source == "agent" else where
            if conn.execute(sa.delete(PREFERENCES).where(*guard)).rowcount != 1:
                raise AccessDenied(
                    f"preference {key!r} of user {user_id!r} is immutable: an agent cannot delete it",
                    remediation="only the user can delete it (source='user')",
                )
        return True


# --- skills ----------------------------------------------------------------------------------


def _skill(row: Any) -> Skill:
    return Skill(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        description=row.description,
        version=row.version,
        config=dict(row.config or {}),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_skill(
    name: object, description: object, version: object, config: object, *, new: bool = True
) -> None:
    # A name only looked up (update) is not length-checked: it names what is stored.
    _check_str(name, "a skill name", limit=200 if new else None)
    _check_str(description, "a skill's description", optional=True)
    _check_str(version, "a skill's version", limit=50)
    _check_metadata(config, "a skill's config")


class Skills:
    """A user's skills: name, description, version, config; enabled or disabled."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def create(
        self,
        user_id: str,
        name: str,
        *,
        description: str | None = None,
        version: str = "1",
        config: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> Skill:
        """Add a skill.

        Raises:
            ConflictError: the user already has a skill of that name.
        """
        check_user(user_id)
        _check_skill(name, description, version, config)
        now = _now()
        values = {
            "id": new_id(),
            "user_id": user_id,
            "name": name,
            "description": description,
            "version": version,
            "config": dict(config or {}),
            "enabled": enabled,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(SKILLS).values(**values))
        except sa.exc.IntegrityError:
            raise ConflictError(
                f"user {user_id!r} already has a skill named {name!r}",
                remediation="update it, or delete it first",
            ) from None
        return Skill(**values)

    def get(self, user_id: str, name: str) -> Skill | None:
        """The skill, or None."""
        check_user(user_id)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(SKILLS).where(SKILLS.c.user_id == user_id, SKILLS.c.name == name)
            ).one_or_none()
        return None if row is None else _skill(row)

    def list(self, user_id: str, *, enabled: bool | None = None) -> builtins.list[Skill]:
        """The user's skills by name; only enabled (or disabled) ones when ``enabled`` is given."""
        check_user(user_id)
        query = sa.select(SKILLS).where(SKILLS.c.user_id == user_id)
        if enabled is not None:
            query = query.where(SKILLS.c.enabled == enabled)
        with self._engine.connect() as conn:
            return [_skill(row) for row in conn.execute(query.order_by(SKILLS.c.name))]

    def update(
        self,
        user_id: str,
        name: str,
        *,
        description: str | _Unset | None = UNSET,
        version: str | _Unset = UNSET,
        config: Mapping[str, Any] | _Unset = UNSET,
        enabled: bool | _Unset = UNSET,
    ) -> Skill:
        """Change the fields given; returns the skill as stored.

        Raises:
            NotFoundError: the user has no skill of that name.
        """
        check_user(user_id)
        _check_skill(
            name,
            None if description is UNSET else description,
            "1" if version is UNSET else version,
            None if config is UNSET else config,
            new=False,
        )
        changes: dict[str, Any] = {"updated_at": _now()}
        for field, value in (
            ("description", description),
            ("version", version),
            ("config", config),
            ("enabled", enabled),
        ):
            if value is not UNSET:
                changes[field] = dict(value) if isinstance(value, Mapping) else value
        where = (SKILLS.c.user_id == user_id, SKILLS.c.name == name)
        with self._engine.begin() as conn:
            if conn.execute(sa.update(SKILLS).where(*where).values(**changes)).rowcount == 0:
                raise NotFoundError(f"user {user_id!r} has no skill named {name!r}")
            return _skill(conn.execute(sa.select(SKILLS).where(*where)).one())

    def enable(self, user_id: str, name: str) -> Skill:
        """Enable a skill."""
        return self.update(user_id, name, enabled=True)

    def disable(self, user_id: str, name: str) -> Skill:
        """Disable a skill (it stays stored)."""
        return self.update(user_id, name, enabled=False)

    def delete(self, user_id: str, name: str) -> bool:
        """Delete a skill; False when there was none."""
        check_user(user_id)
        with self._engine.begin() as conn:
            result = conn.execute(sa.delete(SKILLS).where(SKILLS.c.user_id == user_id, SKILLS.c.name == name))
        return bool(result.rowcount)


# --- insights --------------------------------------------------------------------------------


def _insight(row: Any) -> Insight:
    return Insight(
        id=row.id,
        user_id=row.user_id,
        text=row.text,
        category=row.category,
        source=row.source,
        metadata=dict(row.metadata or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


INSIGHT_COLUMNS = _INSIGHT_COLUMNS = (
    INSIGHTS.c.id,
    INSIGHTS.c.user_id,
    INSIGHTS.c.text,
    INSIGHTS.c.category,
    INSIGHTS.c.source,
    INSIGHTS.c.metadata,
    INSIGHTS.c.created_at,
    INSIGHTS.c.updated_at,
)


# Built once: hot statements of every search (building and keying them cost more than
# running them on SQLite).
_ROWS_BY_ID = sa.select(*_INSIGHT_COLUMNS).where(INSIGHTS.c.id.in_(sa.bindparam("ids", expanding=True)))
_GENERATION_OF = sa.select(GENERATIONS.c.generation).where(GENERATIONS.c.user_id == sa.bindparam("user_id"))


class Insights:
    """A user's insights: add (with dedupe), get, update, delete, list, search, history.

    Every call takes ``user_id``; no call reads or changes another user's insights.
    """

    search_in_transaction = True
    """Whether `search` runs its statements in one transaction; a backend that opens one only
    where it needs one (pgvector: for the ``SET LOCAL`` of an HNSW scan) saves the
    ``BEGIN``/``COMMIT`` round trips of every other search."""

    def __init__(self, memory: Memory) -> None:
        self._memory = memory
        self._engine = memory.store.engine
        self._embedder = memory.embedder
        self.dim = memory.embedder.dim
        self.dedupe_threshold = memory.dedupe_threshold

    # Backend hooks ---------------------------------------------------------------------------

    def _vector_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        """The user's ``k`` insights nearest to the unit vector ``query``: (id, cosine), best first."""
        raise NotImplementedError

    def _keyword_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        words: Sequence[str],
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        """The user's ``k`` best full-text matches for any of ``words``: (id, rank), best first."""
        raise NotImplementedError

    def _vector_search(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
        *,
        with_rows: bool,
    ) -> tuple[Candidates, dict[str, Any]]:
        """`_vector_candidates`, and (``with_rows``, where the backend can) their rows, fetched with them."""
        return self._vector_candidates(conn, user_id, query, k, conditions), {}

    def _nearest(
        self, conn: sa.Connection, user_id: str, vectors: Matrix, generation: int, threshold: float
    ) -> list[tuple[str, float] | None]:
        """For each row of ``vectors``, the user's most similar stored insight and its cosine.

        Called inside a write that holds the user's generation lock; ``generation`` is the
        user's generation before that write. None where no insight reaches ``threshold``
        (a backend may also return a weaker neighbour: the caller compares again).
        """
        raise NotImplementedError

    def _written(
        self,
        user_id: str,
        generation: int,
        *,
        upserts: tuple[Sequence[str], Matrix] | None = None,
        removals: Sequence[str] = (),
    ) -> None:
        """Called after a write committed (the user is now at ``generation``)."""

    # Writing ---------------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        user_id: str,
        category: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        embedding: Any = None,
        source: Source = "agent",
        dedupe: bool = True,
    ) -> str:
        """Add an insight and return its id.

        With ``dedupe`` (the default) an insight with the same text, or one whose vector has a
        cosine >= ``dedupe_threshold`` with the new one, is updated instead (new text,
        category and metadata merged in, old text kept in `history`), and its id returned.
        ``embedding`` (length ``dim``) skips the embedder.
        """
        item = NewInsight(text, category, dict(metadata) if metadata else None, embedding)
        return self.add_many([item], user_id=user_id, source=source, dedupe=dedupe)[0]

    def add_many(
        self,
        items: Iterable[str | NewInsight],
        *,
        user_id: str,
        source: Source = "agent",
        dedupe: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> builtins.list[str]:
        """Add many insights; returns one id per item, in order (a deduplicated item: the id it merged into).

        Works in batches of ``batch_size``: one embedder call, one transaction and a fixed
        number of statements per batch, whatever its size. Dedupe also applies within a batch.
        """
        check_user(user_id)
        _check_source(source)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ids: builtins.list[str] = []
        batch: builtins.list[NewInsight] = []
        for item in items:
            batch.append(NewInsight(item) if isinstance(item, str) else item)
            if len(batch) == batch_size:
                ids += self._add_batch(user_id, batch, source, dedupe)
                batch = []
        if batch:
            ids += self._add_batch(user_id, batch, source, dedupe)
        return ids

    def _vectors(self, texts: Sequence[str], given: Sequence[Any]) -> Matrix:
        """Unit vectors for ``texts``: the given embeddings where present, the embedder for the rest."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing = [i for i, vector in enumerate(given) if vector is None]
        if missing:
            embedded = self._embedder.embed([texts[i] for i in missing])
            if embedded.shape != (len(missing), self.dim):
                raise ValueError(
                    f"embedder {self._embedder.name} returned shape {embedded.shape}, "
                    f"expected {(len(missing), self.dim)}"
                )
            out[missing] = embedded
        for i, vector in enumerate(given):
            if vector is not None:
                array = np.asarray(vector, dtype=np.float32)
                if array.shape != (self.dim,):
                    raise ValueError(f"an embedding must have shape ({self.dim},), got {array.shape}")
                out[i] = array
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            source = "given" if given[int(bad[0])] is not None else f"from embedder {self._embedder.name}"
            raise ValueError(f"the embedding of item {int(bad[0])} ({source}) holds NaN or infinity")
        return normalize_rows(out)

    def _add_batch(
        self, user_id: str, items: Sequence[NewInsight], source: str, dedupe: bool
    ) -> builtins.list[str]:
        texts = [item.text.strip() if isinstance(item.text, str) else item.text for item in items]
        for text, item in zip(texts, items, strict=True):
            _check_str(text, "an insight's text")
            _check_str(item.category, "an insight's category", limit=100, optional=True)
            _check_metadata(item.metadata)
        vectors = self._vectors(texts, [item.embedding for item in items])
        hashes = [_text_hash(text) for text in texts]
        now = _now()
        threshold = self.dedupe_threshold
        with self._engine.begin() as conn:
            # The user's generation is bumped first: its row lock (SQLite: the write lock) makes
            # a concurrent write for the same user wait here, so two adds of the same text
            # cannot both miss each other in the dedupe check below.
            generation = self._bump(conn, user_id)
            exact: dict[str, str] = {}
            nearest: builtins.list[tuple[str, float] | None] = [None] * len(items)
            if dedupe:
                rows = conn.execute(
                    sa.select(INSIGHTS.c.id, INSIGHTS.c.text_hash).where(
                        INSIGHTS.c.user_id == user_id, INSIGHTS.c.text_hash.in_(set(hashes))
                    )
                ).all()
                exact = {row.text_hash: row.id for row in rows}
                if threshold <= 1.0:
                    nearest = self._nearest(conn, user_id, vectors, generation - 1, threshold)
            # Each item's most similar earlier item of the batch, all at once (lower triangle only).
            earlier_best = np.full(len(items), -1, dtype=np.intp)
            earlier_sim = np.full(len(items), -2.0, dtype=np.float32)
            if dedupe and threshold <= 1.0 and len(items) > 1:
                in_batch = vectors @ vectors.T
                in_batch[_upper_triangle(len(items))] = -2.0
                earlier_best = np.argmax(in_batch, axis=1)
                earlier_sim = in_batch[np.arange(len(items)), earlier_best]
            earlier_rows: builtins.list[int] = earlier_best.tolist()
            earlier_sims: builtins.list[float] = earlier_sim.tolist()

            # Decide, item by item, whether it is new or merges into an earlier or stored insight.
            targets: builtins.list[str] = []
            new_rows: dict[str, dict[str, Any]] = {}
            merges: dict[str, builtins.list[int]] = {}
            for i, item in enumerate(items):
                target = exact.get(hashes[i]) if dedupe else None
                if dedupe and target is None:
                    best = nearest[i] or ("", -1.0)
                    if i and earlier_sims[i] > best[1]:
                        best = (targets[earlier_rows[i]], earlier_sims[i])
                    if best[1] >= threshold:
                        target = best[0]
                if target is None:
                    target = new_id()
                    new_rows[target] = {
                        "id": target,
                        "user_id": user_id,
                        "text": texts[i],
                        "text_hash": hashes[i],
                        "category": item.category,
                        "source": source,
                        "metadata": dict(item.metadata or {}),
                        "embedding": vectors[i],
                        "created_at": now,
                        "updated_at": now,
                    }
                else:
                    merges.setdefault(target, []).append(i)
                targets.append(target)
                exact[hashes[i]] = target

            # Merges: fold each item into its target's current state, oldest first.
            stored_ids = [target for target in merges if target not in new_rows]
            stored: dict[str, Any] = {}
            if stored_ids:
                stored = {
                    row.id: row
                    for row in conn.execute(
                        sa.select(
                            INSIGHTS.c.id, INSIGHTS.c.text, INSIGHTS.c.category, INSIGHTS.c.metadata
                        ).where(INSIGHTS.c.user_id == user_id, INSIGHTS.c.id.in_(stored_ids))
                    )
                }
            history: builtins.list[dict[str, Any]] = [
                self._history_row(row_id, user_id, "add", None, new["text"], source, now)
                for row_id, new in new_rows.items()
            ]
            updates: builtins.list[dict[str, Any]] = []
            changed: builtins.list[str] = []
            for target, indexes in merges.items():
                if target in new_rows:
                    state = new_rows[target]
                else:
                    row = stored[target]
                    state = {"text": row.text, "category": row.category, "metadata": dict(row.metadata or {})}
                for i in indexes:
                    history.append(
                        self._history_row(target, user_id, "merge", state["text"], texts[i], source, now)
                    )
                    state["text"] = texts[i]
                    state["text_hash"] = hashes[i]
                    state["embedding"] = vectors[i]
                    state["category"] = items[i].category or state["category"]
                    state["metadata"] = {**state["metadata"], **(items[i].metadata or {})}
                if target not in new_rows:
                    updates.append(
                        {
                            "b_id": target,
                            "b_text": state["text"],
                            "b_text_hash": state["text_hash"],
                            "b_category": state["category"],
                            "b_metadata": state["metadata"],
                            "b_embedding": state["embedding"],
                        }
                    )
                    changed.append(target)

            if new_rows:
                self._insert_rows(conn, builtins.list(new_rows.values()))
            if updates:
                for update in updates:
                    update["b_updated_at"] = now
                self._update_rows(conn, updates)
            self._insert_history(conn, history)
        written = [*new_rows, *changed]
        vectors_written = np.stack(
            [new_rows[i]["embedding"] for i in new_rows] + [u["b_embedding"] for u in updates]
        )
        self._written(user_id, generation, upserts=(written, vectors_written))
        return targets

    def _insert_rows(self, conn: sa.Connection, rows: builtins.list[dict[str, Any]]) -> None:
        """Insert new insights (one statement, many parameter sets)."""
        insert_many(conn, INSIGHTS, rows)

    def _insert_history(self, conn: sa.Connection, rows: builtins.list[dict[str, Any]]) -> None:
        insert_many(conn, HISTORY, rows)

    def _update_rows(self, conn: sa.Connection, updates: builtins.list[dict[str, Any]]) -> None:
        """Rewrite merged insights: ``b_``-prefixed keys, one parameter set per insight."""
        conn.execute(
            sa.update(INSIGHTS)
            .where(INSIGHTS.c.id == sa.bindparam("b_id"))
            .values(
                text=sa.bindparam("b_text"),
                text_hash=sa.bindparam("b_text_hash"),
                category=sa.bindparam("b_category"),
                metadata=sa.bindparam("b_metadata", type_=INSIGHTS.c.metadata.type),
                embedding=sa.bindparam("b_embedding", type_=INSIGHTS.c.embedding.type),
                updated_at=sa.bindparam("b_updated_at", type_=INSIGHTS.c.updated_at.type),
            ),
            updates,
        )

    @staticmethod
    def _history_row(
        insight_id: str, user_id: str, action: str, old: str | None, new: str | None, actor: str, now: Any
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "insight_id": insight_id,
            "user_id": user_id,
            "action": action,
            "old_text": old,
            "new_text": new,
            "actor": actor,
            "changed_at": now,
        }

    def _bump(self, conn: sa.Connection, user_id: str) -> int:
        """Move the user to the next generation (in the write's transaction); returns it."""
        insert: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(GENERATIONS).values(user_id=user_id, generation=1)
        statement = statement.on_conflict_do_update(
            index_elements=[GENERATIONS.c.user_id],
            set_={"generation": GENERATIONS.c.generation + 1},
        ).returning(GENERATIONS.c.generation)
        return int(conn.execute(statement).scalar_one())

    @staticmethod
    def _generation(conn: sa.Connection, user_id: str) -> int:
        value = conn.execute(_GENERATION_OF, {"user_id": user_id}).scalar_one_or_none()
        return int(value or 0)

    def update(
        self,
        insight_id: str,
        *,
        user_id: str,
        text: str | None = None,
        category: str | _Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        embedding: Any = None,
        source: Source = "agent",
    ) -> Insight:
        """Change an insight; a new text is re-embedded and the old one kept in `history`.

        ``metadata`` replaces the whole mapping when given.

        Raises:
            NotFoundError: the user has no insight with that id.
        """
        check_user(user_id)
        _check_source(source)
        now = _now()
        where = (INSIGHTS.c.id == insight_id, INSIGHTS.c.user_id == user_id)
        vector = None
        # Checked and embedded before any lock is taken.
        if text is not None:
            text = text.strip() if isinstance(text, str) else text
            _check_str(text, "an insight's text")
            vector = self._vectors([text], [embedding])
        if category is not UNSET:
            _check_str(category, "an insight's category", limit=100, optional=True)
        _check_metadata(metadata)
        with self._engine.begin() as conn:
            # The user's generation row first, as `add` takes it: one lock order, no deadlock.
            generation = self._bump(conn, user_id)
            row = conn.execute(sa.select(INSIGHTS.c.text).where(*where).with_for_update()).one_or_none()
            if row is None:
                raise NotFoundError(f"user {user_id!r} has no insight {insight_id!r}")
            changes: dict[str, Any] = {"updated_at": now}
            if text is not None and vector is not None:
                changes.update(text=text, text_hash=_text_hash(text), embedding=vector[0])
            if category is not UNSET:
                changes["category"] = category
            if metadata is not None:
                changes["metadata"] = dict(metadata)
            conn.execute(sa.update(INSIGHTS).where(*where).values(**changes))
            conn.execute(
                sa.insert(HISTORY).values(
                    **self._history_row(
                        insight_id, user_id, "update", row.text, text or row.text, source, now
                    )
                )
            )
            stored = conn.execute(sa.select(*_INSIGHT_COLUMNS).where(*where)).one()
        self._written(user_id, generation, upserts=([insight_id], vector) if vector is not None else None)
        return _insight(stored)

    def delete(self, insight_id: str, *, user_id: str, source: Source = "agent") -> bool:
        """Delete an insight (its history stays); False when the user has no such insight."""
        check_user(user_id)
        _check_source(source)
        now = _now()
        where = (INSIGHTS.c.id == insight_id, INSIGHTS.c.user_id == user_id)
        with self._engine.begin() as conn:
            # The user's generation row first, as `add` takes it: one lock order, no deadlock.
            generation = self._bump(conn, user_id)
            row = conn.execute(sa.select(INSIGHTS.c.text).where(*where).with_for_update()).one_or_none()
            if row is None:
                return False
            conn.execute(sa.delete(INSIGHTS).where(*where))
            conn.execute(
                sa.insert(HISTORY).values(
                    **self._history_row(insight_id, user_id, "delete", row.text, None, source, now)
                )
            )
        self._written(user_id, generation, removals=[insight_id])
        return True

    # Reading ---------------------------------------------------------------------------------

    def get(self, insight_id: str, *, user_id: str) -> Insight | None:
        """The insight, or None when the user has no insight with that id."""
        check_user(user_id)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(*_INSIGHT_COLUMNS).where(INSIGHTS.c.id == insight_id, INSIGHTS.c.user_id == user_id)
            ).one_or_none()
        return None if row is None else _insight(row)

    def list(
        self,
        *,
        user_id: str,
        limit: int = 50,
        offset: int = 0,
        filters: Mapping[str, Any] | None = None,
    ) -> builtins.list[Insight]:
        """One page of the user's insights, newest first (``filters`` as in `search`)."""
        check_user(user_id)
        if limit < 1 or offset < 0:
            raise ValueError("limit must be at least 1 and offset at least 0")
        query = (
            sa.select(*_INSIGHT_COLUMNS)
            .where(INSIGHTS.c.user_id == user_id, *compile_filters(filters))
            .order_by(INSIGHTS.c.created_at.desc(), INSIGHTS.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            return [_insight(row) for row in conn.execute(query)]

    def count(self, *, user_id: str) -> int:
        """How many insights the user has."""
        check_user(user_id)
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(INSIGHTS).where(INSIGHTS.c.user_id == user_id)
                ).scalar_one()
            )

    def history(self, insight_id: str, *, user_id: str) -> builtins.list[HistoryEntry]:
        """Every change of the insight, oldest first (also after it was deleted)."""
        check_user(user_id)
        query = (
            sa.select(HISTORY)
            .where(HISTORY.c.insight_id == insight_id, HISTORY.c.user_id == user_id)
            .order_by(HISTORY.c.changed_at, HISTORY.c.id)
        )
        with self._engine.connect() as conn:
            return [
                HistoryEntry(
                    insight_id=row.insight_id,
                    action=row.action,
                    old_text=row.old_text,
                    new_text=row.new_text,
                    actor=row.actor,
                    changed_at=row.changed_at,
                )
                for row in conn.execute(query)
            ]

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        mode: SearchMode = "hybrid",
        min_score: float | None = None,
        vector: Any = None,
    ) -> builtins.list[InsightHit]:
        """The user's insights that best match ``query``, best first.

        Modes: ``vector`` ranks by cosine similarity of embeddings, ``keyword`` by full-text
        rank (SQLite FTS5 / PostgreSQL full text; any of the query's words matches), and
        ``hybrid`` (default) fuses both lists by reciprocal rank fusion. ``filters`` (see
        `compile_filters`) are applied inside the database query, before ranking.
        ``min_score`` drops hits whose ``score`` is lower. ``vector`` replaces the query's
        embedding (the query text is still used for keyword search).
        """
        check_user(user_id)
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        conditions = compile_filters(filters)
        pool = max(50, limit * 5) if mode == "hybrid" else limit
        # Embedded before the read: a retry of the read on a fresh connection does not embed again.
        query_vector = self._vectors([query], [vector])[0] if mode != "keyword" else None

        def read(conn: sa.Connection) -> tuple[dict[str, Any], builtins.list[Any]]:
            by_vector: Candidates = []
            by_keyword: Candidates = []
            prefetched: dict[str, Any] = {}
            if query_vector is not None:
                by_vector, prefetched = self._vector_search(
                    conn, user_id, query_vector, pool, conditions, with_rows=mode == "vector"
                )
            if mode != "vector":
                words = words_of(query)
                if words:
                    by_keyword = self._keyword_candidates(conn, user_id, words, pool, conditions)
            ranked = _rank(by_vector, by_keyword, mode)
            if min_score is not None:
                ranked = [hit for hit in ranked if hit[1] >= min_score]
            ranked = ranked[:limit]
            rows = {hit[0]: prefetched[hit[0]] for hit in ranked if hit[0] in prefetched}
            missing = [hit[0] for hit in ranked if hit[0] not in rows]
            if missing:
                # By primary key alone: with user_id in the WHERE clause SQLite walks the user's
                # index instead.
                rows.update((row.id, row) for row in conn.execute(_ROWS_BY_ID, {"ids": missing}))
            # The user check is kept, in Python, as a second line of defence.
            return {id_: row for id_, row in rows.items() if row.user_id == user_id}, ranked

        # Without the checkout ping (a dead pooled connection is retried once).
        rows, ranked = run_read(self._engine, read, transaction=self.search_in_transaction)
        return [
            InsightHit(
                id=id_,
                text=rows[id_].text,
                score=score,
                vector_score=vector_score,
                keyword_score=keyword_score,
                fused_score=fused,
                category=rows[id_].category,
                metadata=dict(rows[id_].metadata or {}),
                created_at=rows[id_].created_at,
            )
            for id_, score, vector_score, keyword_score, fused in ranked
            if id_ in rows
        ]


def words_of(text: str) -> builtins.list[str]:
    """The distinct lower-case words of ``text``, in order (what keyword search looks for)."""
    import re

    return builtins.list(dict.fromkeys(re.findall(r"\w+", text.lower())))


def _rank(
    by_vector: Candidates, by_keyword: Candidates, mode: str
) -> builtins.list[tuple[str, float, float | None, float | None, float | None]]:
    """(id, score, vector part, keyword part, fused part), best first."""
    vector_scores = dict(by_vector)
    keyword_scores = dict(by_keyword)
    if mode == "vector":
        return [(id_, score, score, keyword_scores.get(id_), None) for id_, score in by_vector]
    if mode == "keyword":
        return [(id_, score, vector_scores.get(id_), score, None) for id_, score in by_keyword]
    fused: dict[str, float] = {}
    for candidates in (by_vector, by_keyword):
        for rank, (id_, _score) in enumerate(candidates, start=1):
            fused[id_] = fused.get(id_, 0.0) + 1.0 / (RRF_K + rank)
    order = sorted(fused, key=lambda id_: (-fused[id_], -vector_scores.get(id_, -2.0)))
    return [(id_, fused[id_], vector_scores.get(id_), keyword_scores.get(id_), fused[id_]) for id_ in order]


# --- the store -------------------------------------------------------------------------------


def default_dedupe_threshold(embedder: Embedder) -> float:
    """The dedupe threshold for ``embedder`` when the caller gives none.

    A lexical embedder (`HashingEmbedder`, or any embedder with ``lexical = True``) measures
    shared words, not meaning: "User is allergic to nuts and ..." and "User is not allergic
    to nuts and ..." share all but one word and exceed any useful cosine, so merging them
    would lose a fact. For those only the same text merges (`EXACT_TEXT_ONLY`). Semantic
    embedders get `DEFAULT_DEDUPE_THRESHOLD` (0.95).
    """
    lexical = isinstance(embedder, HashingEmbedder) or bool(getattr(embedder, "lexical", False))
    return EXACT_TEXT_ONLY if lexical else DEFAULT_DEDUPE_THRESHOLD


class Memory:
    """A user-scoped memory on one store: ``preferences``, ``insights``, ``skills`` and agent ``logs``.

    Build it with `open_memory`, which picks the backend subclass from what the store can do.
    """

    backend: ClassVar[str] = "base"
    insights_class: ClassVar[type[Insights]] = Insights

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        dedupe_threshold: float | None = None,
        owns_store: bool = False,
    ) -> None:
        if dedupe_threshold is None:
            dedupe_threshold = default_dedupe_threshold(embedder)
        if not dedupe_threshold > 0.0:
            raise ValueError("dedupe_threshold is a cosine in (0, 1]; above 1 only exact texts merge")
        self.store = store
        self.embedder = embedder
        self.dedupe_threshold = dedupe_threshold
        self._owns_store = owns_store
        self.preferences = Preferences(store.engine)
        self.skills = Skills(store.engine)
        self.insights = self.insights_class(self)
        self.logs = AgentLogs(store.engine, store.config.memory.logs)

    def close(self) -> None:
        """Close the store if `open_memory` opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        embedder = f"{self.embedder.name}/{self.embedder.dim}"
        return f"<{type(self).__name__} store={self.store.url!r} embedder={embedder}>"
