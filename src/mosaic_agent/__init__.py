"""mosaic_agent: LLM providers and routing (tools, sessions and chat build on them).

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from ._anthropic import AnthropicProvider
from ._config import (
    CAPABILITY_TAGS,
    PROVIDER_TYPES,
    AgentConfig,
    ModelConfig,
    ProviderConfig,
    RoutingConfig,
)
from ._credentials import ProviderCredentials, Secret, generate_secret_key, resolve_api_key
from ._errors import AllProvidersFailed, CredentialError, NoRouteError, ProviderError
from ._http import ProbeResult
from ._messages import (
    Attempt,
    ChatResponse,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from ._openai import OpenAICompatibleProvider
from ._provider import Provider
from ._router import ModelStatus, Route, Router, build_provider
from ._session import (
    AgentSession,
    ChatBackend,
    Reply,
    SessionError,
    SessionEvent,
    ToolCallEvent,
    ToolResultEvent,
)

__all__ = [
    "CAPABILITY_TAGS",
    "PROVIDER_TYPES",
    "AgentConfig",
    "AgentSession",
    "AllProvidersFailed",
    "AnthropicProvider",
    "Attempt",
    "ChatBackend",
    "ChatResponse",
    "CredentialError",
    "Message",
    "ModelConfig",
    "ModelStatus",
    "NoRouteError",
    "OpenAICompatibleProvider",
    "ProbeResult",
    "Provider",
    "ProviderConfig",
    "ProviderCredentials",
    "ProviderError",
    "Reply",
    "Route",
    "Router",
    "RoutingConfig",
    "Secret",
    "SessionError",
    "SessionEvent",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEvent",
    "ToolResultEvent",
    "ToolSpec",
    "Usage",
    "build_provider",
    "generate_secret_key",
    "resolve_api_key",
]
