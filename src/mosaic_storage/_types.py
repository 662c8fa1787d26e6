"""Column types shared by every backend: one embedding type, one JSON type, aware timestamps."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Set on an engine's dialect by the store when the database's embedding column is pgvector.
VECTOR_FLAG = "mosaic_vector"


def dialect_uses_vector(dialect: Dialect) -> bool:
    """Whether this engine's embedding columns are pgvector ``vector(dim)``."""
    return bool(getattr(dialect, VECTOR_FLAG, False))


class Embedding(TypeDecorator[Any]):
    """An embedding vector: pgvector ``vector(dim)`` where the extension is present, float32 bytes elsewhere.

    Values go in as any float sequence or numpy array and come out as a ``float32`` numpy array.
    """

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql" and dialect_uses_vector(dialect):
            from pgvector.sqlalchemy import Vector

            return dialect.type_descriptor(Vector())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        import numpy as np

        array = _as_float32(value)
        if dialect.name == "postgresql" and dialect_uses_vector(dialect):
            return array
        return np.ascontiguousarray(array).tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> npt.NDArray[np.float32] | None:
        if value is None:
            return None
        import numpy as np

        if isinstance(value, bytes | bytearray | memoryview):
            return np.frombuffer(bytes(value), dtype=np.float32).copy()
        return _as_float32(value)


def _as_float32(value: Any) -> npt.NDArray[np.float32]:
    import numpy as np

    if isinstance(value, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(value), dtype=np.float32)
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"an embedding must be one-dimensional, got shape {array.shape}")
    return array


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp; SQLite (which has no zones) stores it as UTC and reads it back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (e.g. datetime.now(UTC))")
        if dialect.name == "sqlite":
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    """Now, in UTC, aware."""
    return dt.datetime.now(dt.UTC)
