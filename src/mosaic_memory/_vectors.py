"""Exact vector search in process memory: one contiguous float32 matrix per user, kept in step with writes.

Used where the database cannot search vectors itself (SQLite, PostgreSQL without pgvector).
Each user's unit vectors sit in one C-contiguous matrix with spare capacity; a search is a
single matrix-vector product and an ``argpartition``. Writes made through this process
patch the matrix in place; writes made elsewhere (another process, another connection)
are noticed through the user's row in ``insight_generations``, bumped by every write and
read by every search, and trigger a reload of that user only.

The cache is bounded: users' matrices are evicted least recently used first once their
bytes exceed ``max_bytes`` (a user larger than the whole budget is searched without being
kept).

Dedupe asks, for each vector of a batch, for its most similar stored vector: one matrix
product of the batch with the user's matrix (in steps of bounded size) and an ``argmax``
along each row.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

DEFAULT_MAX_BYTES = 1 << 30
"""Default budget of one store's vector cache (1 GiB: about 650,000 vectors of 384 floats)."""
_ID_BYTES = 120
"""Rough memory of one id: the str in ``ids`` and its ``positions`` entry."""
_CHUNK_CELLS = 16_000_000
"""Score-matrix cells per step of `UserVectors.nearest` (64 MB of float32; smaller steps cost BLAS speed)."""


class UserVectors:
    """The unit vectors of one user's insights; ``matrix[:size]`` is live, rows in ``ids`` order."""

    __slots__ = ("generation", "ids", "matrix", "positions", "size")

    def __init__(self, dim: int, generation: int, ids: Sequence[str], vectors: Matrix) -> None:
        self.generation = generation
        self.size = len(ids)
        self.ids: list[str] = list(ids)
        self.positions: dict[str, int] = {id_: pos for pos, id_ in enumerate(self.ids)}
        capacity = max(64, self.size + self.size // 4)
        self.matrix: Matrix = np.zeros((capacity, dim), dtype=np.float32)
        if self.size:
            self.matrix[: self.size] = vectors

    @property
    def nbytes(self) -> int:
        """Memory held, roughly: the matrix with its spare rows, and the ids."""
        return int(self.matrix.nbytes) + _ID_BYTES * len(self.ids)

    def upsert(self, ids: Sequence[str], vectors: Matrix) -> None:
        """Set the vectors of ``ids``: overwrite known rows, append new ones (growing by doubling)."""
        fresh = [i for i, id_ in enumerate(ids) if id_ not in self.positions]
        known = [i for i, id_ in enumerate(ids) if id_ in self.positions]
        if known:
            rows = np.fromiter((self.positions[ids[i]] for i in known), dtype=np.intp, count=len(known))
            self.matrix[rows] = vectors[known]
        if fresh:
            needed = self.size + len(fresh)
            if needed > len(self.matrix):
                capacity = max(needed, len(self.matrix) * 2)
                grown = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
                grown[: self.size] = self.matrix[: self.size]
                self.matrix = grown
            self.matrix[self.size : needed] = vectors[fresh]
            for offset, i in enumerate(fresh):
                self.positions[ids[i]] = self.size + offset
                self.ids.append(ids[i])
            self.size = needed

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids``: the last live row moves into each hole, so the live rows stay contiguous."""
        for id_ in ids:
            pos = self.positions.pop(id_, None)
            if pos is None:
                continue
            last = self.size - 1
            if pos != last:
                moved = self.ids[last]
                self.matrix[pos] = self.matrix[last]
                self.ids[pos] = moved
                self.positions[moved] = pos
            self.ids.pop()
            self.size = last

    def top_k(
        self, query: Matrix, k: int, rows: npt.NDArray[np.intp] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` rows most similar to the unit vector ``query`` (among ``rows`` if given), best first."""
        # einsum, not BLAS: a matrix-vector product gains nothing from OpenBLAS threads, and their
        # wake-ups cost tens of milliseconds at p95 on a busy machine (measured: 0.25 ms vs 24 ms).
        scores = np.einsum("ij,j->i", self.matrix[: self.size] if rows is None else self.matrix[rows], query)
        if scores.size == 0:
            return []
        k = min(k, scores.size)
        np.negative(scores, out=scores)
        best = np.argpartition(scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        best = best[np.argsort(scores[best], kind="stable")]
        picked = best if rows is None else rows[best]
        ids = self.ids
        return [(ids[p], -s) for p, s in zip(picked.tolist(), scores[best].tolist(), strict=True)]

    def rows_of(self, ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """The matrix rows of those ``ids`` that are cached."""
        positions = self.positions
        return np.fromiter((positions[i] for i in ids if i in positions), dtype=np.intp)

    def nearest(self, batch: Matrix, threshold: float) -> list[tuple[str, float] | None]:
        """For each unit row of ``batch``: its most similar row if their cosine is >= ``threshold``."""
        found: list[tuple[str, float] | None] = [None] * len(batch)
        if self.size == 0 or len(batch) == 0:
            return found
        live = self.matrix[: self.size]
        # Steps of whole batch rows keep the (batch x rows) scores near 64 MB however big the user.
        step = max(1, _CHUNK_CELLS // self.size)
        ids = self.ids
        for start in range(0, len(batch), step):
            scores = batch[start : start + step] @ live.T
            best = scores.argmax(axis=1)
            sims = scores[np.arange(len(best)), best]
            for offset in np.flatnonzero(sims >= threshold).tolist():
                found[start + offset] = (ids[int(best[offset])], float(sims[offset]))
        return found


Loader = Callable[[], tuple[list[str], Matrix]]


class VectorCache:
    """Per-user `UserVectors` for one memory store, safe to share between threads, at most ``max_bytes``."""

    def __init__(self, dim: int, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0 (0 keeps nothing between calls)")
        self.dim = dim
        self.max_bytes = max_bytes
        self._users: OrderedDict[str, UserVectors] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached users now."""
        return self._bytes

    def cached_users(self) -> list[str]:
        """The users whose vectors are held, least recently used first."""
        with self._lock:
            return list(self._users)

    def _drop(self, user_id: str) -> None:
        gone = self._users.pop(user_id, None)
        if gone is not None:
            self._bytes -= gone.nbytes

    def _keep(self, user_id: str, vectors: UserVectors) -> None:
        """Hold ``vectors`` as the user's, evicting the least recently used users to stay in budget."""
        self._drop(user_id)
        size = vectors.nbytes
        if size > self.max_bytes:
            return
        while self._users and self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._users)))
        self._users[user_id] = vectors
        self._bytes += size

    def vectors(self, user_id: str, generation: int, load: Loader) -> UserVectors:
        """The user's vectors as of ``generation``: the cached ones, or freshly loaded when stale."""
        with self._lock:
            cached = self._users.get(user_id)
            if cached is not None and cached.generation == generation:
                self._users.move_to_end(user_id)
                return cached
        ids, matrix = load()
        fresh = UserVectors(self.dim, generation, ids, matrix)
        with self._lock:
            self._keep(user_id, fresh)
        return fresh

    def search(
        self,
        user_id: str,
        generation: int,
        load: Loader,
        query: Matrix,
        k: int,
        among: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """The user's ``k`` nearest insights to ``query`` (only those in ``among`` when given)."""
        vectors = self.vectors(user_id, generation, load)
        with self._lock:
            rows = None if among is None else vectors.rows_of(among)
            return vectors.top_k(query, k, rows)

    def nearest(
        self, user_id: str, generation: int, load: Loader, batch: Matrix, threshold: float
    ) -> list[tuple[str, float] | None]:
        """For each row of ``batch``, the user's most similar insight if its cosine is >= ``threshold``."""
        vectors = self.vectors(user_id, generation, load)
        with self._lock:
            return vectors.nearest(batch, threshold)

    def apply(
        self,
        user_id: str,
        generation: int,
        *,
        upserts: tuple[Sequence[str], Matrix] | None = None,
        removals: Sequence[str] = (),
    ) -> None:
        """Patch the user's vectors after a committed write that moved them to ``generation``.

        Patches only when the cache is exactly one generation behind (no one else wrote in
        between); otherwise forgets the user, to be reloaded by the next search.
        """
        with self._lock:
            cached = self._users.get(user_id)
            if cached is None:
                return
            if cached.generation != generation - 1:
                self._drop(user_id)
                return
            before = cached.nbytes
            if upserts is not None and len(upserts[0]):
                cached.upsert(upserts[0], upserts[1])
            if removals:
                cached.remove(removals)
            cached.generation = generation
            self._bytes += cached.nbytes - before
            self._users.move_to_end(user_id)
            if self._bytes > self.max_bytes:
                self._keep(user_id, cached)

    def forget(self, user_id: str | None = None) -> None:
        """Drop one user's cached vectors, or everyone's."""
        with self._lock:
            if user_id is None:
                self._users.clear()
                self._bytes = 0
            else:
                self._drop(user_id)
