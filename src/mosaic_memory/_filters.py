"""Metadata filters for list and search, compiled to SQL so the database applies them inside the query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from mosaic_storage.schema import Insight

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
COLUMNS = {"category": Insight.category, "source": Insight.source, "created_at": Insight.created_at}
"""Filter keys that name a column; every other key is a key of the insight's ``metadata``."""


def compile_filters(filters: Mapping[str, Any] | None) -> list[sa.ColumnElement[bool]]:
    """SQL conditions for ``filters``, all of which must hold.

    ``{"category": "food"}`` is equality; ``{"topic": {"in": ["a", "b"]}}`` membership;
    ``{"created_at": {"gte": datetime, "lt": datetime}}`` a range (also ``gt``, ``lte``, ``ne``).
    ``category``, ``source`` and ``created_at`` are columns; other keys are metadata keys,
    compared as strings, numbers or booleans by the type of the value given.
    """
    if not filters:
        return []
    conditions: list[sa.ColumnElement[bool]] = []
    for key, spec in filters.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys are non-empty strings, got {key!r}")
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
    sample = value[0] if op == "in" and isinstance(value, list | tuple) and value else value
    if op == "in" and not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"filter {key!r}: 'in' takes a list, got {type(value).__name__}")
    if key == "created_at" and not (op == "in" or isinstance(value, dt.datetime)):
        raise ValueError("filter 'created_at' compares with an aware datetime")
    column: Any = COLUMNS.get(key)
    if column is None:
        column = _metadata_value(key, sample)
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


def _metadata_value(key: str, sample: Any) -> Any:
    element = Insight.metadata_[key]
    if isinstance(sample, bool):
        return element.as_boolean()
    if isinstance(sample, int | float):
        # Compared as floats, so 3 matches 3.0; a key compared as a number must hold numbers.
        return element.as_float()
    if isinstance(sample, str):
        return element.as_string()
    raise ValueError(
        f"filter on metadata key {key!r}: compare with a string, number or boolean, "
        f"got {type(sample).__name__}"
    )
