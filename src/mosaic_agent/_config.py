"""The ``agent`` section of the config: providers, their models, routing, and the credential key's env var."""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from mosaic_storage import ConfigError, MosaicConfig, redact
from mosaic_storage._redact import remember_secrets_in_url

PROVIDER_TYPES: tuple[str, ...] = ("openai", "anthropic")
CAPABILITY_TAGS: tuple[str, ...] = ("tools", "vision", "long_context")
ROUTING_ORDERS: tuple[str, ...] = ("listed", "cost")
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
DEFAULT_KEY_ENV = "MOSAIC_SECRET_KEY"

_AGENT_KEYS = ("providers", "routing", "credentials_key_env", "tools", "workspace_root", "mcp_servers")
_PROVIDER_KEYS = (
    "type",
    "base_url",
    "api_key_env",
    "timeout",
    "stream_idle_timeout",
    "max_retries",
    "allow_insecure_http",
    "trust_env",
    "models",
)
_MODEL_KEYS = ("name", "tags", "cost", "context_window")
_ROUTING_KEYS = ("aliases", "default", "order", "long_context_tokens")
# Environment variable names as people write them: upper case, digits, underscore. Lower case is
# refused because keys are mostly mixed case (``gsk_4f9X...``), so a pasted key stands out.
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# Upper-case key shapes: AWS access key ids, and any long run of letters mixed with digits.
_KEY_LIKE = re.compile(
    r"^(AKIA|ASIA)[A-Z0-9]{12,}$|(^|_)(?=[A-Z0-9]*[0-9])(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,}(_|$)"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_LITERAL_KEYS = ("api_key", "apikey", "key", "token", "secret", "password")


@attrs.frozen
class ModelConfig:
    """A model one provider serves: its capability tags and price (USD per million tokens)."""

    name: str
    tags: frozenset[str] = frozenset()
    input_cost: float = 0.0
    output_cost: float = 0.0
    context_window: int | None = None

    @property
    def cost(self) -> float:
        """The cost the router orders by: input plus output price per million tokens."""
        return self.input_cost + self.output_cost


@attrs.frozen
class ProviderConfig:
    """One provider endpoint. The API key is never here: only the name of the env var holding it."""

    name: str
    type: Literal["openai", "anthropic"]
    base_url: str
    #: Kept out of ``repr``: a key pasted here by mistake must not reach a log line.
    api_key_env: str | None = attrs.field(default=None, repr=False)
    timeout: float = 60.0
    max_retries: int = 2
    models: tuple[ModelConfig, ...] = ()
    #: Seconds a stream may go without an event once it started (keep-alives do not count);
    #: None means ``timeout``.
    stream_idle_timeout: float | None = None
    #: Send the key over plain http:// to a host other than this machine (or through a proxy).
    allow_insecure_http: bool = False
    #: Use the proxy and certificate settings of the environment (HTTP_PROXY, SSL_CERT_FILE...).
    trust_env: bool = False

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)


@attrs.frozen
class RoutingConfig:
    """How the router picks: aliases name candidate lists of ``provider/model``, tried in order.

    ``order="cost"`` tries the cheapest candidate first (ties keep the listed order). A request
    whose messages look longer than ``long_context_tokens`` (about four characters a token)
    needs the ``long_context`` tag; one with tools needs ``tools``.
    """

    aliases: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    default: str | None = None
    order: Literal["listed", "cost"] = "listed"
    long_context_tokens: int | None = None


@attrs.frozen
class AgentConfig:
    """The validated ``agent`` section; ``tools`` and ``workspace_root`` pass through as read."""

    providers: Mapping[str, ProviderConfig] = attrs.field(factory=dict)
    routing: RoutingConfig = attrs.field(factory=RoutingConfig)
    credentials_key_env: str = DEFAULT_KEY_ENV
    tools: Any = None
    workspace_root: Any = None
    source: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_config(cls, config: MosaicConfig) -> AgentConfig:
        """Validate ``config.agent``; `ConfigError` names the file, the field and what is allowed."""
        return cls.from_dict(config.agent, source=str(config.source) if config.source else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> AgentConfig:
        """Validate a mapping shaped like the config file's ``agent`` section."""
        return _parse(data, source)


class _Fields:
    """Reads one mapping, raising `ConfigError` with the file and the dotted field."""

    def __init__(self, data: object, prefix: str, source: str | None) -> None:
        self.prefix, self.source = prefix, source
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected an object, got {type(data).__name__}", source=source, field=prefix)
        self.data = data

    def error(self, key: str, message: str, remediation: str | None = None) -> ConfigError:
        field = f"{self.prefix}.{key}" if key else self.prefix
        return ConfigError(message, source=self.source, field=field, remediation=remediation)

    def only(self, allowed: tuple[str, ...], *, literal_key_hint: bool = False) -> None:
        for key in self.data:
            if key in allowed:
                continue
            if literal_key_hint and str(key).lower() in _LITERAL_KEYS:
                raise self.error(
                    str(key),
                    "API keys are never written in the config file (it is read by people and tools)",
                    remediation="put the key in an environment variable and name it in api_key_env, "
                    "or store it with mosaic_agent.ProviderCredentials (encrypted)",
                )
            raise self.error(
                redact(str(key)), f"unknown key {redact(str(key))!r}; allowed keys: {', '.join(allowed)}"
            )

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or math.isnan(value)
            or not low <= value <= high
        ):
            raise self.error(key, f"expected a number from {low:g} to {high:g}, got {redact(repr(value))}")
        return float(value)

    def integer(self, key: str, default: int | None, *, low: int, high: int) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"expected an integer from {low} to {high}, got {redact(repr(value))}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            raise self.error(
                key, f"{redact(repr(value))} is not allowed; allowed values: {', '.join(allowed)}"
            )
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {redact(repr(value))}")
        return value

    def env_name(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not _ENV_NAME.match(value) or _KEY_LIKE.search(value):
            # Not echoed: a value that is not a variable name may well be the key itself.
            raise self.error(
                key,
                "expected the NAME of an environment variable (upper-case letters, digits, _), "
                "and this looks like a key or is not such a name (the value is not shown)",
                remediation='write e.g. "OPENAI_API_KEY" and export the key in that variable; '
                "if a key was pasted here, revoke it (the config file is read by people and tools)",
            )
        return value


def _parse(data: Mapping[str, Any], source: str | None) -> AgentConfig:
    root = _Fields(data, "agent", source)
    root.only(_AGENT_KEYS)
    providers_raw = _Fields(root.data.get("providers", {}), "agent.providers", source)
    providers: dict[str, ProviderConfig] = {}
    for name in providers_raw.data:
        if not isinstance(name, str) or not _NAME.match(name) or "/" in name:
            raise providers_raw.error(
                redact(str(name)), "a provider name is letters, digits, '.', '_' or '-' (at most 100)"
            )
        providers[name] = _provider(
            name, _Fields(providers_raw.data[name], f"agent.providers.{name}", source)
        )
    routing = _routing(_Fields(root.data.get("routing", {}), "agent.routing", source), providers)
    return AgentConfig(
        providers=providers,
        routing=routing,
        credentials_key_env=root.env_name("credentials_key_env", DEFAULT_KEY_ENV) or DEFAULT_KEY_ENV,
        tools=root.data.get("tools"),
        workspace_root=root.data.get("workspace_root"),
        source=source,
    )


def _provider(name: str, fields: _Fields) -> ProviderConfig:
    fields.only(_PROVIDER_KEYS, literal_key_hint=True)
    kind = fields.choice("type", PROVIDER_TYPES, None)
    base_url = fields.data.get("base_url", DEFAULT_BASE_URLS[kind])
    check_base_url(base_url, field=f"{fields.prefix}.base_url", source=fields.source)
    models_raw = fields.data.get("models", [])
    if not isinstance(models_raw, list | tuple):
        raise fields.error("models", "expected a list of model names or objects")
    models = tuple(
        _model(_model_fields(item, f"{fields.prefix}.models[{i}]", fields.source))
        for i, item in enumerate(models_raw)
    )
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise fields.error("models", f"model {model.name!r} is listed twice")
        seen.add(model.name)
    return ProviderConfig(
        name=name,
        type=kind,  # type: ignore[arg-type]
        base_url=base_url.rstrip("/"),
        api_key_env=fields.env_name("api_key_env", None),
        timeout=fields.number("timeout", 60.0, low=0.1, high=3600.0),
        max_retries=fields.integer("max_retries", 2, low=0, high=10) or 0,
        models=models,
        stream_idle_timeout=(
            fields.number("stream_idle_timeout", 60.0, low=0.1, high=3600.0)
            if "stream_idle_timeout" in fields.data
            else None
        ),
        allow_insecure_http=fields.flag("allow_insecure_http", False),
        trust_env=fields.flag("trust_env", False),
    )


def _model_fields(item: object, prefix: str, source: str | None) -> _Fields:
    return _Fields({"name": item} if isinstance(item, str) else item, prefix, source)


def _model(fields: _Fields) -> ModelConfig:
    fields.only(_MODEL_KEYS)
    name = fields.data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise fields.error("name", f"expected a model name, got {redact(repr(name))}")
    tags = fields.data.get("tags", [])
    if not isinstance(tags, list | tuple) or any(tag not in CAPABILITY_TAGS for tag in tags):
        raise fields.error(
            "tags", f"{redact(repr(tags))} is not a list of allowed tags: {', '.join(CAPABILITY_TAGS)}"
        )
    cost = fields.data.get("cost", 0)
    if isinstance(cost, Mapping):
        cost_fields = _Fields(cost, f"{fields.prefix}.cost", fields.source)
        cost_fields.only(("input", "output"))
        input_cost = cost_fields.number("input", 0.0, low=0.0, high=1e6)
        output_cost = cost_fields.number("output", 0.0, low=0.0, high=1e6)
    else:
        input_cost = output_cost = fields.number("cost", 0.0, low=0.0, high=1e6) / 2
    return ModelConfig(
        name=name,
        tags=frozenset(tags),
        input_cost=input_cost,
        output_cost=output_cost,
        context_window=fields.integer("context_window", None, low=1, high=100_000_000),
    )


def _routing(fields: _Fields, providers: Mapping[str, ProviderConfig]) -> RoutingConfig:
    fields.only(_ROUTING_KEYS)
    aliases_raw = _Fields(fields.data.get("aliases", {}), f"{fields.prefix}.aliases", fields.source)
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, candidates in aliases_raw.data.items():
        if not isinstance(alias, str) or not _NAME.match(alias):
            raise aliases_raw.error(redact(str(alias)), "an alias is letters, digits, '.', '_' or '-'")
        if isinstance(candidates, str):
            candidates = [candidates]  # noqa: PLW2901
        if not isinstance(candidates, list | tuple) or not candidates:
            raise aliases_raw.error(alias, "expected a non-empty list of 'provider/model' candidates")
        for candidate in candidates:
            problem = reference_problem(candidate, providers)
            if problem:
                raise aliases_raw.error(alias, problem, remediation="write each candidate as provider/model")
        aliases[alias] = tuple(candidates)
    default = fields.data.get("default")
    if default is not None and default not in aliases and reference_problem(default, providers):
        raise fields.error(
            "default", f"{redact(repr(default))} is neither an alias nor a configured provider/model"
        )
    return RoutingConfig(
        aliases=aliases,
        default=default,
        order=fields.choice("order", ROUTING_ORDERS, "listed"),  # type: ignore[arg-type]
        long_context_tokens=fields.integer("long_context_tokens", None, low=1, high=100_000_000),
    )


def reference_problem(reference: object, providers: Mapping[str, ProviderConfig]) -> str | None:
    """Why ``reference`` is not a configured ``provider/model``, or None when it is."""
    if not isinstance(reference, str) or "/" not in reference:
        return f"{redact(repr(reference))} is not of the form provider/model"
    provider, _, model = reference.partition("/")
    if provider not in providers:
        return f"provider {provider!r} is not configured; configured: {', '.join(providers) or '(none)'}"
    if providers[provider].model(model) is None:
        known = ", ".join(m.name for m in providers[provider].models) or "(none)"
        return f"model {model!r} is not listed under provider {provider!r}; listed: {known}"
    return None


def check_base_url(url: object, *, field: str = "base_url", source: str | None = None) -> None:
    """Refuse a base URL that is not http(s) or carries credentials (pass keys by env var instead)."""
    if isinstance(url, str):
        remember_secrets_in_url(url)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"expected an http:// or https:// URL, got {redact(repr(url))}", source=source, field=field
        )
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "the base URL must not hold credentials, a query or a fragment (the URL is not shown)",
            source=source,
            field=field,
            remediation="put the API key in an environment variable named by api_key_env",
        )
