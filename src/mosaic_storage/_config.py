"""Configuration: ``mosaic.config.json`` plus ``MOSAIC_*`` environment variables -> a frozen record."""

from __future__ import annotations

import enum
import json
import math
import os
import re
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._errors import ConfigError
from ._redact import redact, remember_secrets_in_url

CONFIG_FILENAME = "mosaic.config.json"
APP_NAME = "mosaic"


class StorageTier(enum.StrEnum):
    """Where a deployment sits: one machine, one team, or many machines sharing one brain."""

    LOCAL = "local"
    STANDALONE = "standalone"
    FEDERATED = "federated"

    def __str__(self) -> str:
        return self.value


class QueueType(enum.StrEnum):
    """The job queue backend: a table in the store's own database, or Redis/Valkey streams."""

    DATABASE = "database"
    REDIS = "redis"

    def __str__(self) -> str:
        return self.value


TIER_ALIASES = {"team": StorageTier.STANDALONE}
STORAGE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg", "embedded")
REDIS_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")
EMBEDDER_TYPES = ("hashing", "openai", "minilm")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LIBPQ_KV = re.compile(r"^\s*\w+\s*=")


def default_data_dir() -> Path:
    """The platform's user data directory for Mosaic (``$MOSAIC_HOME`` when set)."""
    home = os.environ.get("MOSAIC_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_storage_url() -> str:
    """The local tier's default: one SQLite file in the user data directory."""
    return f"sqlite:///{default_data_dir() / 'mosaic.db'}"


def url_scheme(url: str) -> str:
    """The scheme of a URL, lower-cased, or ``""`` when there is none."""
    head, sep, _ = url.partition("://")
    if sep and head:
        return head.lower()
    if url.startswith("sqlite:"):
        return "sqlite"
    return ""


def _check_storage_url(_inst: object, _attr: object, url: str) -> None:
    check_storage_url(url)


def _check_queue_url(_inst: object, _attr: object, url: str | None) -> None:
    if url is not None:
        check_redis_url(url)


def _check_schema(_inst: object, _attr: object, schema: str | None) -> None:
    if schema is not None and (not isinstance(schema, str) or not _IDENTIFIER.match(schema)):
        raise ConfigError(
            f"{schema!r} is not a plain lower-case SQL identifier (a-z, 0-9, _; at most 63 chars)",
            field="storage.schema",
        )


def check_storage_url(url: str, *, field: str = "storage.url", source: str | None = None) -> None:
    """Raise `ConfigError` unless ``url`` is a storage URL this SDK can open."""
    if isinstance(url, str):
        remember_secrets_in_url(url)
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            f"expected a non-empty URL string, got {redact(repr(url))}",
            field=field,
            source=source,
            remediation="use sqlite:///PATH, postgresql://USER@HOST/DB or embedded://DIR",
        )
    if _LIBPQ_KV.match(url) and re.search(r"[=\s]", url.partition("://")[0]):
        raise ConfigError(
            f"{redact(url)!r} is a libpq key=value string, which is not accepted",
            field=field,
            source=source,
            remediation="write it as a URL: postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
        )
    scheme = url_scheme(url)
    if scheme not in STORAGE_SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {scheme or '(none)'!r} in {redact(url)!r}; "
            f"allowed: {', '.join(STORAGE_SCHEMES)}",
            field=field,
            source=source,
            remediation="use sqlite:///PATH, postgresql://USER@HOST/DB or embedded://DIR",
        )
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        _check_unambiguous_credentials(url, field=field, source=source)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg", "sqlite"):
        _check_parsable(url, scheme, field=field, source=source)
    if scheme == "embedded" and not url.partition("://")[2]:
        raise ConfigError(
            "embedded:// needs a directory, e.g. embedded://./pgdata",
            field=field,
            source=source,
            remediation="use embedded://DIR, where DIR holds the embedded PostgreSQL's data",
        )


# Characters a URL's user name or password must hold percent-encoded: drivers disagree on where
# the password ends at / ? # @, and quotes and angle brackets end a URL where redaction looks
# for one (they end it in most text around a URL too), so a password holding one would be
# shown in part.
_NEEDS_ENCODING_IN_USERINFO = re.compile(r"[\s/?#@'\"<>]")


def _check_unambiguous_credentials(url: str, *, field: str, source: str | None) -> None:
    """Refuse URLs whose password end drivers read differently; the message never echoes the URL."""
    rest = url.partition("://")[2].split("#", 1)[0]
    userinfo = rest.rpartition("@")[0]
    if re.search(r"\s", url) or _NEEDS_ENCODING_IN_USERINFO.search(userinfo):
        raise ConfigError(
            "the URL's user name, password or a query value holds an unencoded space, /, ?, #, @, "
            "quote or angle bracket "
            "(the URL is not shown: it may hold a password)",
            field=field,
            source=source,
            remediation="percent-encode it, e.g. urllib.parse.quote(password, safe='')",
        )


def _check_parsable(url: str, scheme: str, *, field: str, source: str | None) -> None:
    import sqlalchemy as sa

    example = "sqlite:///PATH" if scheme == "sqlite" else "postgresql://USER@HOST:5432/DB"
    if scheme == "sqlite" and not url.startswith("sqlite://"):
        raise ConfigError(
            f"{redact(url)!r} is not a SQLite URL SQLAlchemy can open",
            field=field,
            source=source,
            remediation=f"write it as {example} (three slashes, then the path)",
        )
    try:
        parsed = sa.make_url(url)
        _ = parsed.port
    except (sa.exc.ArgumentError, ValueError) as err:
        raise ConfigError(
            f"{redact(url)!r} is not a valid URL: {redact(err)}",
            field=field,
            source=source,
            remediation=f"write it as {example} (a password goes after USER, percent-encoded)",
        ) from None


def check_redis_url(url: str, *, field: str = "queue.url", source: str | None = None) -> None:
    """Raise `ConfigError` unless ``url`` is a Redis/Valkey URL redis-py can parse."""
    if isinstance(url, str):
        remember_secrets_in_url(url)
    scheme = url_scheme(url) if isinstance(url, str) else ""
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"unsupported queue URL {redact(repr(url))}; allowed schemes: {', '.join(REDIS_SCHEMES)}",
            field=field,
            source=source,
            remediation="use redis://HOST:6379/0 (or rediss://, valkey://)",
        )
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if _NEEDS_ENCODING_IN_USERINFO.search(userinfo):
        raise ConfigError(
            "the user name or password in the queue URL holds an unencoded / ? # @, space, quote"
            " or angle bracket",
            field=field,
            source=source,
            remediation="percent-encode it, e.g. urllib.parse.quote(password, safe='')",
        )


def _positive(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected a positive integer, got {value!r}", field=attr.name)


def _redacted_repr(value: object) -> str:
    return repr(redact(value)) if value is not None else "None"


@attrs.frozen
class StorageConfig:
    """Where the data lives."""

    url: str = attrs.field(factory=default_storage_url, validator=_check_storage_url, repr=_redacted_repr)
    pool_size: int = attrs.field(default=5, validator=_positive)
    schema: str | None = attrs.field(default=None, validator=_check_schema)
    connect_timeout: float = 5.0


@attrs.frozen
class QueueConfig:
    """The job queue: ``database`` (a table in the store) or ``redis`` (Redis/Valkey streams)."""

    type: QueueType = QueueType.DATABASE
    url: str | None = attrs.field(default=None, repr=_redacted_repr, validator=_check_queue_url)


@attrs.frozen
class EmbedderConfig:
    """Which embedder memory uses, and its dimension."""

    type: str = "hashing"
    dim: int = attrs.field(default=384, validator=_positive)
    model: str | None = None
    base_url: str | None = attrs.field(default=None, repr=_redacted_repr)


DEFAULT_SCHEDULE = "0 * * * *"
_CRON_HELP = "write five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *'"


def is_cron(schedule: object) -> bool:
    """Whether ``schedule`` is a five-field cron expression (croniter reads it)."""
    from croniter import croniter

    return isinstance(schedule, str) and len(schedule.split()) == 5 and bool(croniter.is_valid(schedule))


def _check_cron(_inst: object, _attr: object, schedule: str) -> None:
    if not is_cron(schedule):
        raise ConfigError(
            f"{redact(repr(schedule))} is not a cron expression",
            field="memory.summarization.schedule",
            remediation=_CRON_HELP,
        )


@attrs.frozen
class SummarizationConfig:
    """When agent logs are summarized into insights (a cron schedule, in UTC), which, how many at once."""

    schedule: str = attrs.field(default=DEFAULT_SCHEDULE, validator=_check_cron)
    older_than_hours: float = 24.0
    batch_size: int = attrs.field(default=200, validator=_positive)


@attrs.frozen
class LogsConfig:
    """When agent logs move from the hot tier to warm, and from warm to cold (by age, in days)."""

    warm_after_days: float = 7.0
    cold_after_days: float = 30.0


@attrs.frozen
class MemoryConfig:
    """Agent memory settings."""

    embedder: EmbedderConfig = attrs.field(factory=EmbedderConfig)
    summarization: SummarizationConfig = attrs.field(factory=SummarizationConfig)
    logs: LogsConfig = attrs.field(factory=LogsConfig)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only deep copy: nested objects become read-only mappings, arrays tuples."""
    frozen: Mapping[str, Any] = _freeze(dict(value))
    return frozen


@attrs.frozen
class MosaicConfig:
    """A whole deployment's configuration. Build it with `load_config` or directly."""

    tier: StorageTier = StorageTier.LOCAL
    storage: StorageConfig = attrs.field(factory=StorageConfig)
    queue: QueueConfig = attrs.field(factory=QueueConfig)
    memory: MemoryConfig = attrs.field(factory=MemoryConfig)
    #: The agent layer's section, kept as read: `mosaic_agent` validates it (storage cannot
    #: import the agent layer). Secrets never live here, only the names of env vars holding them.
    agent: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    source: Path | None = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this config (the file format); secrets are kept, so do not print it."""
        storage: dict[str, Any] = {
            "url": self.storage.url,
            "pool_size": self.storage.pool_size,
            "connect_timeout": self.storage.connect_timeout,
        }
        if self.storage.schema is not None:
            storage["schema"] = self.storage.schema
        queue: dict[str, Any] = {"type": self.queue.type.value}
        if self.queue.url is not None:
            queue["url"] = self.queue.url
        embedder: dict[str, Any] = {
            "type": self.memory.embedder.type,
            "dim": self.memory.embedder.dim,
        }
        if self.memory.embedder.model is not None:
            embedder["model"] = self.memory.embedder.model
        if self.memory.embedder.base_url is not None:
            embedder["base_url"] = self.memory.embedder.base_url
        data: dict[str, Any] = {
            "tier": self.tier.value,
            "storage": storage,
            "queue": queue,
            "memory": {
                "embedder": embedder,
                "summarization": attrs.asdict(self.memory.summarization),
                "logs": attrs.asdict(self.memory.logs),
            },
        }
        if self.agent:
            data["agent"] = _thaw(self.agent)
        return data

    def to_json(self) -> str:
        """`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def redacted(self) -> dict[str, Any]:
        """`to_dict` with every secret masked: safe to print or log."""
        data = self.to_dict()
        data["storage"]["url"] = redact(data["storage"]["url"])
        if "url" in data["queue"]:
            data["queue"]["url"] = redact(data["queue"]["url"])
        embedder = data["memory"]["embedder"]
        if "base_url" in embedder:
            embedder["base_url"] = redact(embedder["base_url"])
        return data


# --- parsing -------------------------------------------------------------------------------


class _Reader:
    """Reads one mapping of the config, raising `ConfigError` with file and field on bad input."""

    def __init__(self, data: object, prefix: str, source: str | None) -> None:
        self.source = source
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"expected an object, got {type(data).__name__}",
                source=source,
                field=prefix or None,
                remediation="see https://mosaic-stack.readthedocs.io/configuration/",
            )
        self.data = data

    def field_name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def reject_unknown(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key {redact(str(key))!r}; allowed keys: {', '.join(allowed)}",
                    source=self.source,
                    field=self.field_name(str(key)),
                )

    def error(self, key: str, message: str, remediation: str | None = None) -> ConfigError:
        return ConfigError(message, source=self.source, field=self.field_name(key), remediation=remediation)

    def text(self, key: str, *, optional: bool = True) -> str | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {redact(repr(value))}")
        return value

    def integer(self, key: str, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and math.isnan(value))
            or not low <= value <= high
        ):
            raise self.error(key, f"expected a number from {low} to {high}, got {value!r}")
        return float(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            raise self.error(
                key, f"{redact(repr(value))} is not allowed; allowed values: {', '.join(allowed)}"
            )
        return str(value)

    def section(self, key: str) -> _Reader:
        return _Reader(self.data.get(key, {}), self.field_name(key), self.source)


def parse_tier(value: object, *, source: str | None = None, field: str = "tier") -> StorageTier:
    """Read a tier name; ``team`` is read as ``standalone`` with a DeprecationWarning."""
    if isinstance(value, StorageTier):
        return value
    if isinstance(value, str) and value.lower() in TIER_ALIASES:
        warnings.warn(
            f"tier {value!r} is deprecated; write 'standalone' instead",
            DeprecationWarning,
            stacklevel=3,
        )
        return TIER_ALIASES[value.lower()]
    allowed = [tier.value for tier in StorageTier]
    if isinstance(value, str) and value.lower() in allowed:
        return StorageTier(value.lower())
    raise ConfigError(
        f"{redact(repr(value))} is not a tier; allowed values: {', '.join(allowed)}",
        source=source,
        field=field,
    )


def _resolve_relative(url: str, base: Path | None) -> str:
    """Relative paths in a config file are relative to that file, not to the working directory."""
    if base is None:
        return url
    scheme = url_scheme(url)
    if scheme == "sqlite" and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///") :]
        path = Path(rest).expanduser()
        if rest and rest != ":memory:" and not path.is_absolute():
            return f"sqlite:///{(base / path).resolve()}"
        if rest.startswith("~"):
            return f"sqlite:///{path}"
    if scheme == "embedded":
        rest = url.partition("://")[2]
        if not Path(rest).expanduser().is_absolute():
            return f"embedded://{(base / rest).resolve()}"
    return url


def config_from_dict(
    data: object, *, source: str | None = None, base_dir: Path | None = None
) -> MosaicConfig:
    """Validate a config mapping (the JSON file's shape) into a `MosaicConfig`."""
    root = _Reader(data, "", source)
    root.reject_unknown(("tier", "storage", "queue", "memory", "agent", "$schema"))
    tier = parse_tier(root.data.get("tier", "local"), source=source)

    storage = root.section("storage")
    storage.reject_unknown(("url", "pool_size", "schema", "connect_timeout"))
    url = storage.text("url")
    if url is not None:
        check_storage_url(url, field="storage.url", source=source)
        remember_secrets_in_url(url)
        url = _resolve_relative(url, base_dir)
    schema = storage.text("schema")
    if schema is not None and not _IDENTIFIER.match(schema):
        raise storage.error(
            "schema",
            f"{schema!r} is not a plain lower-case SQL identifier (a-z, 0-9, _; at most 63 chars)",
        )
    storage_cfg = StorageConfig(
        url=url if url is not None else default_storage_url(),
        pool_size=storage.integer("pool_size", 5, high=1000),
        schema=schema,
        connect_timeout=storage.number("connect_timeout", 5.0, low=0.1, high=600.0),
    )

    queue = root.section("queue")
    queue.reject_unknown(("type", "url"))
    queue_url = queue.text("url")
    if queue_url is not None:
        check_redis_url(queue_url, source=source)
        remember_secrets_in_url(queue_url)
    default_type = QueueType.REDIS.value if queue_url else QueueType.DATABASE.value
    queue_type = QueueType(queue.choice("type", tuple(t.value for t in QueueType), default_type))
    if queue_type is QueueType.REDIS and queue_url is None:
        raise queue.error(
            "url",
            "queue type 'redis' needs a url",
            remediation="set queue.url (or MOSAIC_REDIS_URL) to redis://HOST:6379/0",
        )

    memory = root.section("memory")
    memory.reject_unknown(("embedder", "summarization", "logs"))
    embedder = memory.section("embedder")
    embedder.reject_unknown(("type", "dim", "model", "base_url"))
    embedder_cfg = EmbedderConfig(
        type=embedder.choice("type", EMBEDDER_TYPES, "hashing"),
        dim=embedder.integer("dim", 384, high=16000),
        model=embedder.text("model"),
        base_url=_remembered(embedder.text("base_url")),
    )
    summarization = memory.section("summarization")
    summarization.reject_unknown(("schedule", "older_than_hours", "batch_size"))
    schedule = summarization.data.get("schedule", DEFAULT_SCHEDULE)
    if not is_cron(schedule):
        raise summarization.error(
            "schedule", f"{redact(repr(schedule))} is not a cron expression", remediation=_CRON_HELP
        )
    ages = memory.section("logs")
    ages.reject_unknown(("warm_after_days", "cold_after_days"))
    warm_after = ages.number("warm_after_days", 7.0, low=0.0, high=36500.0)
    cold_after = ages.number("cold_after_days", 30.0, low=0.0, high=36500.0)
    if cold_after < warm_after:
        raise ages.error(
            "cold_after_days", f"must be at least warm_after_days ({warm_after}), got {cold_after}"
        )
    memory_cfg = MemoryConfig(
        embedder=embedder_cfg,
        summarization=SummarizationConfig(
            schedule=schedule,
            older_than_hours=summarization.number("older_than_hours", 24.0, low=0.0, high=87600.0),
            batch_size=summarization.integer("batch_size", 200, high=100_000),
        ),
        logs=LogsConfig(warm_after_days=warm_after, cold_after_days=cold_after),
    )
    return MosaicConfig(
        tier=tier,
        storage=storage_cfg,
        queue=QueueConfig(type=queue_type, url=queue_url),
        memory=memory_cfg,
        agent=root.section("agent").data,
    )


def _remembered(url: str | None) -> str | None:
    if url is not None:
        remember_secrets_in_url(url)
    return url


# Environment variables, named as the TypeScript Mosaic named them, mapped onto config fields.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "MOSAIC_STORAGE_TIER": ("tier",),
    "MOSAIC_DATABASE_URL": ("storage", "url"),
    "MOSAIC_DATABASE_SCHEMA": ("storage", "schema"),
    "MOSAIC_DATABASE_POOL_SIZE": ("storage", "pool_size"),
    "MOSAIC_CONNECT_TIMEOUT": ("storage", "connect_timeout"),
    "MOSAIC_QUEUE_TYPE": ("queue", "type"),
    "MOSAIC_REDIS_URL": ("queue", "url"),
    "MOSAIC_VALKEY_URL": ("queue", "url"),
    "MOSAIC_EMBEDDER": ("memory", "embedder", "type"),
    "MOSAIC_EMBEDDING_DIM": ("memory", "embedder", "dim"),
}
_NUMERIC_ENV = {"MOSAIC_DATABASE_POOL_SIZE", "MOSAIC_EMBEDDING_DIM", "MOSAIC_CONNECT_TIMEOUT"}


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    applied = []
    for name, path in ENV_VARS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        value: Any = raw
        if name in _NUMERIC_ENV:
            try:
                value = float(raw) if name == "MOSAIC_CONNECT_TIMEOUT" else int(raw)
            except ValueError:
                raise ConfigError(
                    f"expected a number, got {redact(repr(raw))}",
                    source=f"environment variable {name}",
                    field=".".join(path),
                ) from None
        node = data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = value
        applied.append(name)
    # A Redis URL from the environment means a Redis queue unless the type says otherwise.
    if ("MOSAIC_REDIS_URL" in applied or "MOSAIC_VALKEY_URL" in applied) and (
        "MOSAIC_QUEUE_TYPE" not in applied
    ):
        data.setdefault("queue", {})["type"] = QueueType.REDIS.value
    return applied


def find_config_file(cwd: Path | None = None) -> Path | None:
    """The config file in use: cwd, then ``$MOSAIC_HOME``, then the user config dir."""
    import platformdirs

    candidates = [(cwd or Path.cwd()) / CONFIG_FILENAME]
    home = os.environ.get("MOSAIC_HOME")
    if home:
        candidates.append(Path(home).expanduser() / CONFIG_FILENAME)
    candidates.append(Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILENAME)
    return next((path for path in candidates if path.is_file()), None)


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> MosaicConfig:
    """Load the configuration.

    Reads ``path`` when given (it must exist), else the first ``mosaic.config.json`` found in
    the working directory, ``$MOSAIC_HOME`` and the platform's user config directory; then
    applies ``MOSAIC_*`` environment variables. With no file and no variables, the result is
    the ``local`` tier on a SQLite file in the user data directory.

    Raises:
        ConfigError: naming the file, the field, the bad value (redacted) and the allowed values.
    """
    environ = os.environ if env is None else env
    file = Path(path) if path is not None else find_config_file()
    data: dict[str, Any] = {}
    source: str | None = None
    if file is not None:
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                "config file not found",
                source=source,
                remediation="run `mosaic init` to write one, or pass an existing path",
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config file: {err}", source=source) from None
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}",
                source=source,
                remediation="fix the JSON syntax (mosaic.config.json is plain JSON, no comments)",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"expected a JSON object at the top level, got {type(loaded).__name__}",
                source=source,
            )
        data = loaded
    base_dir = file.parent.resolve() if file is not None else None
    storage = data.get("storage")
    if base_dir is not None and isinstance(storage, dict) and isinstance(storage.get("url"), str):
        # Relative paths in the file are relative to the file; in the environment, to the cwd.
        storage["url"] = _resolve_relative(storage["url"], base_dir)
    applied = _apply_env(data, environ)
    if applied and source is None:
        source = "environment (" + ", ".join(applied) + ")"
    elif applied:
        source = f"{source} + environment ({', '.join(applied)})"
    config = config_from_dict(data, source=source)
    return attrs.evolve(config, source=file)
