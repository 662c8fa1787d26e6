"""Metadata filters for list and search, compiled to SQL so the database applies them inside the query.

A metadata condition holds only where the key holds a JSON value of the type of the value
given (string, number or boolean), so a key with mixed types across rows (``"5"`` in one,
``5`` in another, ``true`` in a third) never makes a query fail, and SQLite and PostgreSQL
return the same rows:

* SQLite: ``json_type`` guards ``json_extract``; a key that a JSON path cannot name (``"``,
  ``\\``, non-ASCII or control characters: SQLite's paths have no escapes, and Python stores
  non-ASCII keys escaped) is looked up with ``json_each`` instead.
* PostgreSQL: numbers and booleans compare as ``jsonb`` (never a cast that can fail), strings
  as text in the "C" collation (code point order, as SQLite's BINARY).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from mosaic_storage.schema import Insight

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
COLUMNS = {"category": Insight.category, "source": Insight.source, "created_at": Insight.created_at}
"""Filter keys that name a column; every other key is a key of the insight's ``metadata``."""

Kind = Literal["string", "number", "boolean"]
_SQL_OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_SQLITE_TYPES: dict[Kind, tuple[str, ...]] = {
    "string": ("text",),
    "number": ("integer", "real"),
    "boolean": ("true", "false"),
}
_PLAIN_KEY = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
"""Keys a quoted SQLite JSON path names exactly: printable ASCII without ``"`` or ``\\``."""


def compile_filters(filters: Mapping[str, Any] | None) -> list[sa.ColumnElement[bool]]:
    """SQL conditions for ``filters``, all of which must hold.

    ``{"category": "food"}`` is equality; ``{"topic": {"in": ["a", "b"]}}`` membership;
    ``{"created_at": {"gte": datetime, "lt": datetime}}`` a range (also ``gt``, ``lte``, ``ne``).
    ``category``, ``source`` and ``created_at`` are columns; other keys are metadata keys
    (any string). A metadata condition holds only where the key holds a value of the same
    JSON type as the value given: ``{"n": 5}`` matches ``5`` and ``5.0`` but not ``"5"``;
    ``ne`` matches values of that type that differ (not rows without the key); ``in`` may
    mix types. Strings order by code point; booleans take ``eq``, ``ne`` and ``in`` only.
    """
    if not filters:
        return []
    conditions: list[sa.ColumnElement[bool]] = []
    for key, spec in filters.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys are non-empty strings, got {key!r}")
        if "\x00" in key:
            raise ValueError(f"filter key {key!r} contains a NUL character, which no metadata key can hold")
        ops = spec if isinstance(spec, Mapping) else {"eq": spec}
        if not ops:
            raise ValueError(f"filter {key!r} has no operator; use one of {', '.join(OPERATORS)}")
        for op, value in ops.items():
            if op not in OPERATORS:
                raise ValueError(
                    f"unknown filter operator {op!r} for {key!r}; use one of {', '.join(OPERATORS)}"
                )
            conditions.append(_condition(key, op, value))
    return conditions


def _condition(key: str, op: str, value: Any) -> sa.ColumnElement[bool]:
    if op == "in" and not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"filter {key!r}: 'in' takes a list, got {type(value).__name__}")
    column: Any = COLUMNS.get(key)
    if column is None:
        return _metadata_condition(key, op, value)
    if key == "created_at" and not (op == "in" or isinstance(value, dt.datetime)):
        raise ValueError("filter 'created_at' compares with an aware datetime")
    if op == "in":
        return column.in_(list(value))  # type: ignore[no-any-return]
    operations = {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
    }
    return operations[op](value)  # type: ignore[no-any-return]


def _kind(key: str, value: Any) -> Kind:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"filter on metadata key {key!r}: NaN and infinity are not JSON numbers")
        return "number"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"filter on metadata key {key!r}: a string value cannot contain NUL")
        return "string"
    raise ValueError(
        f"filter on metadata key {key!r}: compare with a string, number or boolean, "
        f"got {type(value).__name__}"
    )


def _metadata_condition(key: str, op: str, value: Any) -> sa.ColumnElement[bool]:
    if op != "in":
        kind = _kind(key, value)
        if kind == "boolean" and op not in ("eq", "ne"):
            raise ValueError(f"filter on metadata key {key!r}: booleans compare with eq, ne or in only")
        if kind == "boolean":
            return MetadataCondition(key, kind, "in", [value] if op == "eq" else [not value])
        return MetadataCondition(key, kind, op, [value])
    groups: dict[Kind, list[Any]] = {}
    for item in value:
        groups.setdefault(_kind(key, item), []).append(item)
    if not groups:
        return sa.false()
    return sa.or_(*(MetadataCondition(key, kind, "in", items) for kind, items in groups.items()))


class MetadataCondition(sa.sql.expression.ColumnElement[bool]):
    """``metadata[key] <op> values`` for values of one JSON type, compiled per backend (see the module)."""

    type = sa.Boolean()
    # Rendered with backend-specific bound parameters: statements holding it are not cached.
    inherit_cache = False

    def __init__(self, key: str, kind: Kind, op: str, values: Sequence[Any]) -> None:
        self.metadata_key = key
        self.kind = kind
        self.operator = op
        self.values = list(values)


def _render(compiler: SQLCompiler, expression: sa.ColumnElement[Any], **kw: Any) -> str:
    # Parenthesised: SQLite appends "= 1" to a boolean element in WHERE.
    return f"({compiler.process(expression, **kw)})"


def _compare(left: Any, op: str, values: Sequence[Any]) -> sa.ColumnElement[bool]:
    if op == "in":
        return left.in_(values)  # type: ignore[no-any-return]
    return left.op(_SQL_OPERATORS[op], is_comparison=True)(values[0])  # type: ignore[no-any-return]


@compiles(MetadataCondition, "sqlite")
def _sqlite(element: MetadataCondition, compiler: SQLCompiler, **kw: Any) -> str:
    types = _SQLITE_TYPES[element.kind]
    if element.kind == "boolean":
        # json_type names true and false apart: no value comparison needed.
        types = tuple("true" if value else "false" for value in element.values)
    metadata = Insight.__table__.c.metadata
    if _PLAIN_KEY.fullmatch(element.metadata_key):
        path = sa.bindparam(None, f'$."{element.metadata_key}"', type_=sa.String())
        json_type = sa.func.json_type(metadata, path)
        condition: sa.ColumnElement[bool] = json_type.in_(types)
        if element.kind != "boolean":
            value = sa.func.json_extract(metadata, path)
            condition = sa.and_(condition, _compare(value, element.operator, element.values))
        return _render(compiler, condition, **kw)
    each = sa.func.json_each(metadata).table_valued("key", "value", "type").alias("metadata_entry")
    key = sa.bindparam(None, element.metadata_key, type_=sa.String())
    found = [each.c.key == key, each.c.type.in_(types)]
    if element.kind != "boolean":
        found.append(_compare(each.c.value, element.operator, element.values))
    return _render(compiler, sa.exists().where(*found), **kw)


@compiles(MetadataCondition, "postgresql")
def _postgresql(element: MetadataCondition, compiler: SQLCompiler, **kw: Any) -> str:
    from sqlalchemy.dialects.postgresql import JSONB

    metadata = Insight.__table__.c.metadata
    key = sa.bindparam(None, element.metadata_key, type_=sa.Text())
    entry = metadata.op("->", return_type=JSONB)(key)
    typeof = {"string": "string", "number": "number", "boolean": "boolean"}[element.kind]
    guard = sa.func.jsonb_typeof(entry) == typeof
    if element.kind == "string":
        text = metadata.op("->>", return_type=sa.Text)(key).collate("C")
        compared = _compare(text, element.operator, element.values)
    else:
        # jsonb compares numbers as numerics and booleans as booleans; no cast, nothing to fail.
        literals = [
            sa.cast(sa.bindparam(None, json.dumps(value), type_=sa.Text()), JSONB) for value in element.values
        ]
        if element.operator == "in":
            compared = entry.in_(literals)
        else:
            compared = entry.op(_SQL_OPERATORS[element.operator], is_comparison=True)(literals[0])
    return _render(compiler, sa.and_(guard, compared), **kw)
