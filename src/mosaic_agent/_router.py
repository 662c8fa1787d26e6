"""`Router`: picks provider and model per request from config rules, and falls back on provider errors."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import attrs

from mosaic_storage import MosaicConfig, redact

from ._config import AgentConfig, ModelConfig, ProviderConfig, RoutingConfig
from ._credentials import ProviderCredentials, resolve_api_key
from ._errors import AllProvidersFailed, CredentialError, NoRouteError, ProviderError
from ._http import ProbeResult
from ._messages import (
    Attempt,
    ChatResponse,
    Message,
    MessageLike,
    StreamEnd,
    StreamEvent,
    ToolLike,
    as_messages,
)
from ._provider import Provider

_CHARS_PER_TOKEN = 4


@attrs.frozen
class Route:
    """One candidate: a provider (by name) and one of its models."""

    provider: str
    model: ModelConfig
    #: False for a ``provider/model`` the config does not list: its tags are unknown, so no
    #: tag rule skips it (the caller named it).
    listed: bool = True

    @property
    def reference(self) -> str:
        return f"{self.provider}/{self.model.name}"


@attrs.frozen
class ModelStatus:
    """A configured model and whether its provider answered a probe (see `Router.status`)."""

    provider: str
    model: str
    tags: tuple[str, ...]
    cost: float
    probe: ProbeResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "tags": list(self.tags),
            "cost": self.cost,
            "reachable": self.probe.status == "ok",
            "status": self.probe.status,
            "latency_ms": self.probe.latency_ms,
            "detail": self.probe.detail,
        }


def build_provider(config: ProviderConfig, api_key: str | None = None) -> Provider:
    """The provider a `ProviderConfig` describes, with ``api_key`` (or none)."""
    from ._anthropic import AnthropicProvider
    from ._openai import OpenAICompatibleProvider

    kind = AnthropicProvider if config.type == "anthropic" else OpenAICompatibleProvider
    return kind(
        config.name,
        config.base_url,
        api_key=api_key,
        timeout=config.timeout,
        max_retries=config.max_retries,
        stream_idle_timeout=config.stream_idle_timeout,
        trust_env=config.trust_env,
        allow_insecure_http=config.allow_insecure_http,
    )


class Router:
    """Routes each request to a provider and model, trying candidates in order until one answers.

    ``model`` is an alias from ``routing.aliases``, a ``provider/model`` reference, or None for
    ``routing.default`` (or every configured model, in config order). Candidates lacking a
    required capability tag are skipped: ``tools`` when tools are passed, ``long_context`` when
    the messages exceed ``routing.long_context_tokens``, and any in ``require``. With
    ``routing.order == "cost"`` the cheapest goes first. A candidate whose provider fails with
    a retryable error (timeouts, connection errors, 429, 5xx) or refuses the key or model
    (401/403/404) is passed over for the next; a bad request (400) is raised at once. The
    response names the provider and model that answered and the candidates passed over
    (``attempts``).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        models: Mapping[str, Sequence[ModelConfig]],
        routing: RoutingConfig | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._models = {name: tuple(models.get(name, ())) for name in providers}
        self._routing = routing or RoutingConfig()

    @classmethod
    def from_config(
        cls,
        config: MosaicConfig | AgentConfig,
        *,
        user_id: str | None = None,
        credentials: ProviderCredentials | None = None,
        env: Mapping[str, str] | None = None,
        fallback_to_env: bool = True,
    ) -> Router:
        """A router over the configured providers.

        Each provider's key is ``user_id``'s stored credential (when ``credentials`` is given),
        else the variable its ``api_key_env`` names in ``env`` (default: ``os.environ``);
        ``fallback_to_env=False`` leaves a user without a stored credential keyless instead.
        A stored credential that cannot be used (wrong key, altered row) fails only its own
        provider: asking it raises that `CredentialError`, and the router passes it over.
        """
        agent = config if isinstance(config, AgentConfig) else AgentConfig.from_config(config)
        providers: dict[str, Provider] = {}
        for name, provider in agent.providers.items():
            try:
                key = resolve_api_key(
                    provider,
                    user_id=user_id,
                    credentials=credentials,
                    env=env,
                    fallback_to_env=fallback_to_env,
                )
                # A key that cannot be a header (from the environment too) fails here.
                providers[name] = build_provider(provider, key.reveal() if key else None)
            except CredentialError as err:
                providers[name] = _Unusable(name, err)
        return cls(providers, {n: p.models for n, p in agent.providers.items()}, agent.routing)

    def __repr__(self) -> str:
        return f"Router(providers={sorted(self._providers)!r})"

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()

    @property
    def providers(self) -> Mapping[str, Provider]:
        return dict(self._providers)

    # --- choosing ----------------------------------------------------------------------------

    def candidates(
        self,
        model: str | None = None,
        *,
        messages: Sequence[MessageLike] = (),
        tools: Sequence[ToolLike] | None = None,
        require: Sequence[str] = (),
    ) -> tuple[Route, ...]:
        """The routes a request would try, in order; `NoRouteError` when none fits."""
        routes = self._named(model)
        needed = set(require)
        if tools:
            needed.add("tools")
        if (
            self._routing.long_context_tokens
            and _estimate_tokens(messages) > self._routing.long_context_tokens
        ):
            needed.add("long_context")
        fitting = [r for r in routes if not r.listed or needed <= r.model.tags]
        if self._routing.order == "cost":
            fitting.sort(key=lambda r: r.model.cost)
        if not fitting:
            listed = ", ".join(r.reference for r in routes) or "(none)"
            raise NoRouteError(
                f"no candidate for {model or 'the default'!r} has the tags {sorted(needed)}; "
                f"candidates: {listed}",
                remediation="tag a model with them in agent.providers.<name>.models, or pick another alias",
            )
        return tuple(fitting)

    def _named(self, model: str | None) -> list[Route]:
        name = model or self._routing.default
        if name is None:
            return [Route(p, m) for p, models in self._models.items() for m in models]
        if name in self._routing.aliases:
            return [self._route(ref) for ref in self._routing.aliases[name]]
        if "/" in name:
            return [self._route(name)]
        matches = [Route(p, m) for p, models in self._models.items() for m in models if m.name == name]
        if matches:
            return matches
        aliases = ", ".join(self._routing.aliases) or "(none)"
        raise NoRouteError(
            f"{name!r} is neither an alias ({aliases}) nor a configured model",
            remediation="pass an alias from agent.routing.aliases or provider/model "
            "(see `mosaic agent models`)",
        )

    def _route(self, reference: str) -> Route:
        provider, _, model = reference.partition("/")
        for candidate in self._models.get(provider, ()):
            if candidate.name == model:
                return Route(provider, candidate)
        if provider in self._providers:
            # Not listed in config: a model the provider serves, with no tags and no price.
            return Route(provider, ModelConfig(model), listed=False)
        raise NoRouteError(
            f"provider {provider!r} is not configured", remediation="see `mosaic agent models`"
        )

    # --- asking ------------------------------------------------------------------------------

    @overload
    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str | None = None,
        require: Sequence[str] = (),
        stream: Literal[False] = False,
        **options: Any,
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str | None = None,
        require: Sequence[str] = (),
        stream: Literal[True],
        **options: Any,
    ) -> Iterator[StreamEvent]: ...

    def chat(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] | None = None,
        *,
        model: str | None = None,
        require: Sequence[str] = (),
        stream: bool = False,
        **options: Any,
    ) -> ChatResponse | Iterator[StreamEvent]:
        """Ask the first candidate that answers; see the class docstring for the rules."""
        msgs: tuple[Message, ...] = as_messages(messages)
        routes = self.candidates(model, messages=msgs, tools=tools, require=require)
        if stream:
            return self._stream(routes, msgs, tools, options)
        attempts: list[Attempt] = []
        for route in routes:
            try:
                response = self._providers[route.provider].chat(
                    msgs, tools, model=route.model.name, stream=False, **options
                )
            except (ProviderError, CredentialError) as err:
                self._pass_over(route, err, attempts)
                continue
            return attrs.evolve(response, provider=route.provider, attempts=tuple(attempts))
        raise AllProvidersFailed([(a.provider, a.model, a.error) for a in attempts])

    def _stream(
        self,
        routes: Sequence[Route],
        msgs: tuple[Message, ...],
        tools: Sequence[ToolLike] | None,
        options: Any,
    ) -> Iterator[StreamEvent]:
        attempts: list[Attempt] = []
        for route in routes:
            try:
                events = self._providers[route.provider].chat(
                    msgs, tools, model=route.model.name, stream=True, **options
                )
                # The first event shows whether the stream started; until then, falling back is safe.
                first = next(events, None)
            except (ProviderError, CredentialError) as err:
                self._pass_over(route, err, attempts)
                continue
            if first is None:
                attempts.append(
                    Attempt(route.provider, route.model.name, "the stream ended without an answer")
                )
                continue
            yield from self._finish(first, events, route, attempts)
            return
        raise AllProvidersFailed([(a.provider, a.model, a.error) for a in attempts])

    @staticmethod
    def _finish(
        first: StreamEvent, events: Iterator[StreamEvent], route: Route, attempts: list[Attempt]
    ) -> Iterator[StreamEvent]:
        for event in _chain(first, events):
            if isinstance(event, StreamEnd):
                yield StreamEnd(
                    attrs.evolve(event.response, provider=route.provider, attempts=tuple(attempts))
                )
            else:
                yield event

    @staticmethod
    def _pass_over(route: Route, err: ProviderError | CredentialError, attempts: list[Attempt]) -> None:
        if isinstance(err, ProviderError) and not err.unavailable:
            raise err
        attempts.append(Attempt(route.provider, route.model.name, redact(err.message)))

    # --- listing -----------------------------------------------------------------------------

    def status(self, timeout: float = 3.0) -> tuple[ModelStatus, ...]:
        """Every configured model with its provider's probe (providers probed in parallel, once each)."""
        names = list(self._providers)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
            probes = dict(
                zip(names, pool.map(lambda n: self._providers[n].probe(timeout), names), strict=True)
            )
        return tuple(
            ModelStatus(name, m.name, tuple(sorted(m.tags)), m.cost, probes[name])
            for name in names
            for m in self._models[name]
        )


class _Unusable:
    """Stands in for a provider whose credential could not be read: every request raises that error."""

    def __init__(self, name: str, error: CredentialError) -> None:
        self._name = name
        self._message = error.message
        self._remediation = error.remediation

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"_Unusable({self._name!r})"

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise CredentialError(self._message, remediation=self._remediation)

    def probe(self, timeout: float = 3.0) -> ProbeResult:
        return ProbeResult(self._name, "error", detail="stored credential unusable")

    def close(self) -> None:
        pass


def _chain(first: StreamEvent, rest: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    yield first
    yield from rest


def _estimate_tokens(messages: Sequence[MessageLike]) -> int:
    chars = 0
    for message in messages:
        content = message.content if isinstance(message, Message) else str(message.get("content") or "")
        chars += len(content)
    return chars // _CHARS_PER_TOKEN
