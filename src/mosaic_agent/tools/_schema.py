"""JSON Schema from a typed Python function, and checking a model's arguments against it."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

import attrs

_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolDefinitionError(TypeError):
    """A function cannot become a tool: a parameter type without a JSON Schema, ``*args``, no docstring."""


@attrs.frozen
class Parameter:
    """One parameter of a tool: its JSON Schema, whether the model must give it, its default."""

    name: str
    schema: dict[str, Any]
    required: bool
    default: Any = None


@attrs.frozen
class Signature:
    """What a tool's function takes and says about itself."""

    description: str
    parameters: tuple[Parameter, ...]

    def json_schema(self) -> dict[str, Any]:
        """The ``parameters`` object of a tool definition."""
        return {
            "type": "object",
            "properties": {p.name: p.schema for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }


def _type_schema(annotation: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return {}
    if annotation is type(None):
        return {"type": "null"}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if origin is Literal:
        kinds = {type(a) for a in args}
        if not kinds <= {str, int, bool} or len(kinds) != 1:
            raise ToolDefinitionError(f"{where}: a Literal of one type (str, int or bool) is needed")
        return {"type": _JSON_TYPES[kinds.pop()], "enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nullable = len(options) != len(args)
        if len(options) == 1:
            inner = _type_schema(options[0], where)
            if not nullable:
                return inner
            if set(inner) == {"type"}:
                return {"type": [inner["type"], "null"]}
            if set(inner) == {"type", "enum"}:
                return {"type": [inner["type"], "null"], "enum": [*inner["enum"], None]}
            return {"anyOf": [inner, {"type": "null"}]}
        schemas = [_type_schema(a, where) for a in options]
        if all(set(s) == {"type"} and isinstance(s["type"], str) for s in schemas):
            return {"type": [s["type"] for s in schemas] + (["null"] if nullable else [])}
        return {"anyOf": schemas + ([{"type": "null"}] if nullable else [])}
    if origin in (list, tuple, abc.Sequence):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise ToolDefinitionError(f"{where}: use list[X] or tuple[X, ...], not a fixed tuple")
        item = args[0] if args else Any
        return {"type": "array", "items": _type_schema(item, where)}
    if annotation in (list, tuple):
        return {"type": "array"}
    if origin in (dict, abc.Mapping) or annotation is dict:
        if args and args[0] is not str:
            raise ToolDefinitionError(f"{where}: JSON object keys are strings: use dict[str, X]")
        value = args[1] if len(args) == 2 else Any
        value_schema = _type_schema(value, where)
        return {"type": "object", **({"additionalProperties": value_schema} if value_schema else {})}
    raise ToolDefinitionError(
        f"{where}: type {annotation!r} has no JSON Schema; use str, int, float, bool, ..."
    )


_ARG = re.compile(r"^\s+\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (text before the first section) and the Args section of a Google docstring."""
    text = inspect.cleandoc(doc or "")
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    item_indent: int | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        heading = _SECTION.match(line)
        if heading and indent == 0:
            section, current, item_indent = heading.group(1), None, None
            continue
        if section is None:
            description.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not line.strip():
            continue
        item = _ARG.match(line)
        if item and (item_indent is None or indent <= item_indent):
            item_indent = indent
            current = item.group(1)
            args[current] = item.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), args


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    # Only the parameters matter: a return type the model never sees need not resolve.
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    annotations = dict(getattr(target, "__annotations__", {}))
    annotations.pop("return", None)
    shim = types.SimpleNamespace(__annotations__=annotations, __globals__=getattr(target, "__globals__", {}))
    return typing.get_type_hints(shim, globalns=shim.__globals__)


def describe(fn: Callable[..., Any], *, description: str | None = None) -> Signature:
    """Read ``fn``'s parameters, their types and defaults, and its docstring.

    Raises:
        ToolDefinitionError: ``*args``/``**kwargs``, a parameter without a type or with a type
            that has no JSON Schema, or no description at all.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        hints = _parameter_hints(fn)
    except Exception as err:
        raise ToolDefinitionError(f"{name}: cannot read its type hints ({err})") from None
    summary, arg_docs = parse_docstring(inspect.getdoc(fn))
    summary = description or summary
    if not summary:
        raise ToolDefinitionError(f"{name}: a tool needs a description: write a docstring or pass one")
    params: list[Parameter] = []
    for param in inspect.signature(fn).parameters.values():
        where = f"{name}({param.name})"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"{where}: *args and **kwargs cannot be described to a model")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"{where}: positional-only parameters cannot be passed by name")
        if param.name not in hints:
            raise ToolDefinitionError(f"{where}: the parameter needs a type annotation")
        schema = _type_schema(hints[param.name], where)
        if param.name in arg_docs:
            schema = {**schema, "description": arg_docs[param.name]}
        required = param.default is inspect.Parameter.empty
        if not required and param.default is not None:
            schema = {**schema, "default": param.default}
        params.append(Parameter(param.name, schema, required, None if required else param.default))
    return Signature(summary, tuple(params))


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def _describe_value(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array"}
    if value is None:
        return "null"
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)


def check_value(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """Why ``value`` does not fit ``schema`` (the subset `describe` produces), or None if it does."""
    if "anyOf" in schema:
        problems = [check_value(value, option, where) for option in schema["anyOf"]]
        if all(problems):
            return problems[0]
        return None
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_type_ok(value, k) for k in kinds):
            return f"{where} must be {' or '.join(kinds)}, got {_describe_value(value)}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return f"{where} must be one of {allowed}, got {value!r}"
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problem = check_value(item, schema["items"], f"{where}[{index}]")
            if problem:
                return problem
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            problem = check_value(item, schema["additionalProperties"], f"{where}[{key!r}]")
            if problem:
                return problem
    return None


def check_arguments(signature: Signature, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments to call with (defaults filled in), and every problem found."""
    problems: list[str] = []
    known = {p.name: p for p in signature.parameters}
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        expected = ", ".join(known) or "no arguments"
        problems.append(f"unknown argument(s) {', '.join(map(repr, unknown))}; this tool takes {expected}")
    kwargs: dict[str, Any] = {}
    for param in signature.parameters:
        if param.name not in arguments:
            if param.required:
                problems.append(f"missing required argument {param.name!r}")
            continue
        problem = check_value(arguments[param.name], param.schema, repr(param.name))
        if problem:
            problems.append(problem)
        else:
            kwargs[param.name] = arguments[param.name]
    return kwargs, problems
