"""Turn source values into what PostgreSQL's COPY takes: embeddings in any stored form, JSON, timestamps."""

from __future__ import annotations

import datetime as dt
import json
import struct
from typing import TYPE_CHECKING, Any

from .._errors import MigrationError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class VectorBinary(bytes):
    """A pgvector value already in its binary wire format."""


class JsonbText(str):
    """JSON text bound for a ``jsonb`` column (sent as jsonb's binary format: version 1, then the text)."""


class JsonText(str):
    """JSON text bound for a ``json`` column."""


def embedding_array(value: Any, *, table: str, column: str, key: object, dim: int) -> npt.NDArray[np.float32]:
    """An embedding stored as float32 bytes, JSON text or an array, as a float32 array of ``dim`` values.

    Raises:
        MigrationError: the value is not an embedding, or its dimension is not ``dim``.
    """
    import numpy as np

    try:
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) % 4:
                raise ValueError(f"{len(raw)} bytes are not float32 values")
            array = np.frombuffer(raw, dtype="<f4")
        else:
            if isinstance(value, str):
                value = json.loads(value)
            array = np.asarray(value, dtype=np.float32)
            if array.ndim != 1:
                raise ValueError(f"shape {array.shape} is not one vector")
    except (ValueError, TypeError) as err:
        raise MigrationError(
            f"table {table}, row {key}: column {column} does not hold an embedding ({err})",
            remediation="fix or clear that value in the source, then run the same command again",
        ) from None
    if array.shape[0] != dim:
        raise dimension_error(table, column, key, array.shape[0], dim)
    if not np.isfinite(array).all():
        raise MigrationError(
            f"table {table}, row {key}: column {column} holds NaN or infinite values, "
            "which no similarity search can use",
            remediation=(
                "re-embed that row (or clear its embedding) in the source, then run the same command again"
            ),
        )
    return array


def dimension_error(table: str, column: str, key: object, found: float, dim: int) -> MigrationError:
    """The error for an embedding whose dimension does not match the target column."""
    return MigrationError(
        f"table {table}, row {key}: the embedding has {found:g} dimensions, "
        f"the target column {table}.{column} has {dim}",
        remediation=(
            "re-embed the source with a model of the target's dimension, or migrate into an empty "
            "database with --init-target (it takes the source's dimension)"
        ),
    )


def vector_binary(array: npt.NDArray[np.float32]) -> VectorBinary:
    """pgvector's binary format: dimension and a zero (int16 each), then big-endian float32 values."""
    return VectorBinary(struct.pack(">HH", array.shape[0], 0) + array.astype(">f4").tobytes())


def vector_text(array: npt.NDArray[np.float32]) -> str:
    """pgvector's text format; 9 significant digits give back the same float32."""
    return "[" + ",".join(["%.9g"] * array.shape[0]) % tuple(array.tolist()) + "]"


def float32_bytes(array: npt.NDArray[np.float32]) -> bytes:
    """The bytes form of an embedding (what tiers without pgvector store)."""
    return array.astype("<f4").tobytes()


def timestamp(value: Any, *, aware: bool) -> Any:
    """A datetime from SQLite's text timestamps; naive values are UTC (how Mosaic stores them)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if aware and isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def jsonb_value(value: Any) -> Any:
    """JSON for a binary COPY into ``jsonb``: text as it is, Python objects serialised."""
    if value is None:
        return None
    return JsonbText(value if isinstance(value, str) else json.dumps(value))


def json_value(value: Any) -> Any:
    """JSON for a binary COPY into ``json``."""
    if value is None:
        return None
    return JsonText(value if isinstance(value, str) else json.dumps(value))
