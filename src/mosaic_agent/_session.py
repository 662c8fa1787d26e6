"""`AgentSession`: one conversation between a user and an agent, persisted message by message.

Every message — the user's, the model's (with its tool calls) and each tool result — is
appended to the store's ``conversations``/``messages`` as it happens, so a session resumed by
id, in another process or on another tier after `migrate-tier`, continues with the same history.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from mosaic_storage import MosaicError
from mosaic_storage.brain import Agent, Brain
from mosaic_storage.brain import Message as StoredMessage

from ._messages import (
    ChatResponse,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

#: How many stored messages a turn sends to the model (the latest ones).
DEFAULT_HISTORY = 200
DEFAULT_MAX_STEPS = 8


class ChatBackend(Protocol):
    """What a session talks to: a `Provider` (``model`` required) or a `Router` (aliases)."""

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        model: Any = None,
        stream: Any = False,
        **options: Any,
    ) -> Any: ...


class SessionError(MosaicError, RuntimeError):
    """A session cannot do what was asked (closed, no model, unknown agent); the message says why."""


@attrs.frozen
class ToolCallEvent:
    """The model asked for a tool; it runs next."""

    call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@attrs.frozen
class ToolResultEvent:
    """What a tool call gave back (``ok`` false: ``content`` says what went wrong)."""

    call_id: str
    name: str
    ok: bool
    content: str
    type: Literal["tool_result"] = "tool_result"


@attrs.frozen
class Reply:
    """The end of a turn: the final text, every step's usage summed, who answered, why it stopped.

    ``finish_reason`` is the model's for its last answer, or ``step_limit`` when the turn
    stopped because the model kept calling tools past ``max_steps``.
    """

    text: str
    steps: int
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    provider: str
    model: str
    finish_reason: str
    type: Literal["final"] = "final"


SessionEvent = TextDelta | ToolCallEvent | ToolResultEvent | Reply


class _Tools(Protocol):
    def schemas(
        self, allowed: Sequence[str] | None = None, *, style: Any = "neutral"
    ) -> list[dict[str, Any]]: ...

    def call(self, name: str, arguments: Any = None, *, allowed: Sequence[str] | None = None) -> Any: ...


def _from_store(message: StoredMessage) -> Message:
    calls = tuple(
        ToolCall(id=str(c["id"]), name=str(c["name"]), arguments=str(c.get("arguments", "{}")))
        for c in message.tool_calls or ()
    )
    return Message(
        role=message.role,  # type: ignore[arg-type]
        content=message.content,
        tool_calls=calls,
        tool_call_id=message.tool_call_id,
        name=message.metadata.get("tool"),
        is_error=bool(message.metadata.get("is_error", False)),
    )


INTERRUPTED = "error: the tool call was interrupted before it gave a result"


def _window(messages: Sequence[Message]) -> list[Message]:
    """The history as a provider accepts it: starting at a user message, every tool call answered.

    A window cut from a long conversation may begin with tool results whose call was cut
    off; providers refuse those, so they are dropped (the window starts at a user message,
    a turn boundary). A turn that was interrupted (Ctrl-C, a stream consumer that stopped, a
    tool that raised) leaves tool calls without a stored result; providers refuse those too,
    so each gets a synthetic error result right after the calls that asked for it.
    """
    out: list[Message] = []
    pending: dict[str, ToolCall] = {}

    def answer_pending() -> None:
        out.extend(Message.tool(c.id, INTERRUPTED, name=c.name, is_error=True) for c in pending.values())
        pending.clear()

    started = False
    for message in messages:
        if not started:
            if message.role in ("tool", "assistant"):
                continue
            started = True
        if message.role == "tool":
            if message.tool_call_id in pending:
                del pending[message.tool_call_id]
                out.append(message)
            continue  # a result whose call is not in the window: providers refuse it
        answer_pending()
        out.append(message)
        if message.role == "assistant":
            pending = {c.id: c for c in message.tool_calls}
    answer_pending()
    return out


class AgentSession:
    """A conversation of ``user_id`` with an agent: send text, run tools, keep everything in the store.

    Build one with `AgentSession.start` (a new conversation) or `AgentSession.resume` (by id).
    Each `send` (or `stream`) is one turn: the user's text, then up to ``max_steps`` model
    answers, running the tools the model asks for in between (only tools the agent's
    ``allowed_tools`` patterns let through; without an agent, every tool in ``tools``).

    Args:
        brain: the brain over the store the conversation lives in.
        user_id: the user the session acts for; every read and write is theirs.
        backend: a `Router` (``model`` may be an alias, or None for the default route) or a
            `Provider` (``model`` is required).
        conversation_id: the conversation's id.
        agent: the agent's configuration (system prompt, allowed tools, skills, model), if any.
        tools: a `ToolRegistry` (e.g. from `builtin_tools`), if the agent may use tools.
        model: the model to ask; default: the agent's ``provider/model``, else the router's default.
        system_prompt: overrides the agent's system prompt.
        skills: extra instructions appended to the system prompt, one per enabled skill.
        max_steps: model answers per turn at most (a tool loop that does not end stops there).
        history: how many of the latest stored messages each turn sends.
    """

    def __init__(
        self,
        brain: Brain,
        user_id: str,
        backend: ChatBackend,
        conversation_id: str,
        *,
        agent: Agent | None = None,
        tools: _Tools | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        skills: Sequence[str] = (),
        max_steps: int = DEFAULT_MAX_STEPS,
        history: int = DEFAULT_HISTORY,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_steps < 1:
            raise SessionError("max_steps must be at least 1")
        self.brain = brain
        self.user_id = user_id
        self.backend = backend
        self.id = conversation_id
        self.agent = agent
        self.tools = tools
        self.model = model or (
            f"{agent.provider}/{agent.model}" if agent and agent.provider and agent.model else None
        )
        prompt = system_prompt if system_prompt is not None else (agent.system_prompt if agent else None)
        parts = [p for p in (prompt, *skills) if p]
        self.system_prompt = "\n\n".join(parts) or None
        self.max_steps = max_steps
        self.history_size = history
        self.options = dict(options or {})
        self._closed = False

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        brain: Brain,
        user_id: str,
        backend: ChatBackend,
        *,
        agent: Agent | str | None = None,
        title: str | None = None,
        project_id: str | None = None,
        memory: Any = None,
        **kwargs: Any,
    ) -> AgentSession:
        """Start a new conversation of ``user_id`` (with ``agent``: an `Agent`, or its id or name).

        With ``memory`` (a `mosaic_memory` store), the agent's enabled skills are read from it.

        Raises:
            NotFound: the agent or project is not visible to ``user_id``.
        """
        found = _agent(brain, user_id, agent)
        conversation = brain.conversations.create(
            user_id, title=title, agent_id=found.id if found else None, project_id=project_id
        )
        return cls._build(brain, user_id, backend, conversation.id, found, memory, kwargs)

    @classmethod
    def resume(
        cls,
        brain: Brain,
        user_id: str,
        backend: ChatBackend,
        conversation_id: str,
        *,
        memory: Any = None,
        **kwargs: Any,
    ) -> AgentSession:
        """Continue ``user_id``'s conversation ``conversation_id`` with the agent it was started with.

        Raises:
            NotFound: no such conversation, or someone else's.
        """
        conversation = brain.conversations.get(user_id, conversation_id)
        found = brain.agents.get(user_id, conversation.agent_id) if conversation.agent_id else None
        return cls._build(brain, user_id, backend, conversation.id, found, memory, kwargs)

    @classmethod
    def _build(
        cls,
        brain: Brain,
        user_id: str,
        backend: ChatBackend,
        conversation_id: str,
        agent: Agent | None,
        memory: Any,
        kwargs: dict[str, Any],
    ) -> AgentSession:
        skills = kwargs.pop("skills", None)
        if skills is None:
            skills = _skill_prompts(memory, user_id, agent)
        return cls(brain, user_id, backend, conversation_id, agent=agent, skills=skills, **kwargs)

    # --- reading ----------------------------------------------------------------------------

    def history(self, *, last: int | None = None) -> tuple[Message, ...]:
        """The conversation's latest messages (default: the window a turn sends), oldest first."""
        stored = self.brain.conversations.messages(
            self.user_id, self.id, last=min(last or self.history_size, 500)
        )
        return tuple(_from_store(m) for m in stored)

    @property
    def allowed_tools(self) -> tuple[str, ...] | None:
        """The agent's tool patterns (None: every tool given to the session)."""
        return self.agent.allowed_tools if self.agent is not None else None

    def _tool_specs(self) -> list[dict[str, Any]] | None:
        if self.tools is None:
            return None
        specs = self.tools.schemas(self.allowed_tools)
        # Providers carry "group__name"; the registry answers to either spelling.
        return [{**s, "name": str(s["name"]).replace(".", "__")} for s in specs] or None

    # --- talking ----------------------------------------------------------------------------

    def send(self, text: str, **options: Any) -> Reply:
        """One turn without streaming: returns the final `Reply`."""
        reply: Reply | None = None
        for event in self._turn(text, stream=False, options=options):
            if isinstance(event, Reply):
                reply = event
        assert reply is not None  # a turn always ends with a Reply
        return reply

    def stream(self, text: str, **options: Any) -> Iterator[SessionEvent]:
        """One turn, streamed: text deltas, tool calls, tool results, then the final `Reply`."""
        return self._turn(text, stream=True, options=options)

    def _turn(self, text: str, *, stream: bool, options: Mapping[str, Any]) -> Iterator[SessionEvent]:
        if self._closed:
            raise SessionError("this session is closed", remediation="resume it by id to go on")
        if not text.strip():
            raise SessionError("the message is empty", remediation="say something")
        turn_start = self._user_message(text)
        specs = self._tool_specs()
        calls: list[ToolCall] = []
        usage = Usage()
        response: ChatResponse | None = None
        for step in range(1, self.max_steps + 1):
            messages = self._prompt(turn_start)
            response = yield from self._ask(messages, specs, stream, {**self.options, **options})
            usage = Usage(
                usage.input_tokens + response.usage.input_tokens,
                usage.output_tokens + response.usage.output_tokens,
            )
            self._append(
                "assistant",
                response.content,
                tool_calls=[attrs.asdict(c) for c in response.tool_calls] or None,
                metadata={
                    "provider": response.provider,
                    "model": response.model,
                    "finish_reason": response.finish_reason,
                    "usage": attrs.asdict(response.usage),
                },
            )
            if not response.tool_calls:
                yield self._reply(response, step, calls, usage, response.finish_reason)
                return
            for call in response.tool_calls:
                calls.append(call)
                yield ToolCallEvent(call)
                result = self._run_tool(call)
                yield result
        assert response is not None
        yield self._reply(response, self.max_steps, calls, usage, "step_limit")

    def _ask(
        self,
        messages: list[Message],
        specs: list[dict[str, Any]] | None,
        stream: bool,
        options: Mapping[str, Any],
    ) -> Generator[SessionEvent, None, ChatResponse]:
        # A generator that yields the stream's text deltas and returns the whole response.
        if not stream:
            response: ChatResponse = self.backend.chat(
                messages, specs, model=self.model, stream=False, **options
            )
            return response
        end: ChatResponse | None = None
        events: Iterator[StreamEvent] = self.backend.chat(
            messages, specs, model=self.model, stream=True, **options
        )
        for event in events:
            if isinstance(event, TextDelta):
                yield event
            elif isinstance(event, StreamEnd):
                end = event.response
            elif not isinstance(event, ToolCallDelta):  # pragma: no cover - a new event type
                continue
        if end is None:
            raise SessionError("the model's stream ended without a final answer", remediation="try again")
        return end

    def _run_tool(self, call: ToolCall) -> ToolResultEvent:
        if self.tools is None:
            ok, content = False, f"error: there is no tool {call.name!r}: this session has no tools"
        else:
            result = self.tools.call(call.name, call.arguments, allowed=self.allowed_tools)
            ok, content = bool(result.ok), str(result.content)
        self._append(
            "tool",
            content,
            tool_call_id=call.id,
            metadata={"tool": call.name, "is_error": not ok},
        )
        return ToolResultEvent(call.id, call.name, ok, content)

    def _user_message(self, text: str) -> StoredMessage:
        """Store the turn's user message, or reuse it when a failed turn stored it with no reply."""
        last = self.brain.conversations.messages(self.user_id, self.id, last=1)
        if last and last[0].role == "user" and last[0].content == text:
            return last[0]  # a retry after the provider failed: do not send the text twice
        return self._append("user", text)

    def _prompt(self, turn_start: StoredMessage | None = None) -> list[Message]:
        stored = list(
            self.brain.conversations.messages(self.user_id, self.id, last=min(self.history_size, 500))
        )
        # A turn longer than the history window still sends all of itself, from its user message.
        while turn_start is not None and stored and stored[0].seq > turn_start.seq:
            stored[:0] = self.brain.conversations.messages(
                self.user_id, self.id, last=500, before=stored[0].id
            )
        messages = _window([_from_store(m) for m in stored])
        if self.system_prompt:
            messages.insert(0, Message.system(self.system_prompt))
        return messages

    def _append(self, role: str, content: str, **kwargs: Any) -> StoredMessage:
        return self.brain.conversations.append(self.user_id, self.id, role, content, **kwargs)

    @staticmethod
    def _reply(response: ChatResponse, steps: int, calls: list[ToolCall], usage: Usage, finish: str) -> Reply:
        return Reply(
            text=response.content,
            steps=steps,
            tool_calls=tuple(calls),
            usage=usage,
            provider=response.provider,
            model=response.model,
            finish_reason=finish,
        )

    # --- switching and closing --------------------------------------------------------------

    def use_model(self, model: str | None) -> None:
        """Ask ``model`` (an alias or ``provider/model``; None: the default route) from the next turn."""
        self.model = model

    def close(self) -> None:
        """End the session; what was said stays in the store (resume it by id)."""
        self._closed = True

    def __enter__(self) -> AgentSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AgentSession(id={self.id!r}, user_id={self.user_id!r}, model={self.model!r})"


def _agent(brain: Brain, user_id: str, agent: Agent | str | None) -> Agent | None:
    if agent is None or isinstance(agent, Agent):
        return agent
    from mosaic_storage.brain import NotFound

    try:
        return brain.agents.get(user_id, agent)
    except NotFound:
        pass
    cursor: str | None = None
    while True:
        page = brain.agents.list(user_id, cursor=cursor)
        for candidate in page:
            if candidate.name == agent:
                return candidate
        if page.next_cursor is None:
            raise NotFound(
                f"no agent {agent!r} that you can use", remediation="list them with `mosaic agent list`"
            )
        cursor = page.next_cursor


def _skill_prompts(memory: Any, user_id: str, agent: Agent | None) -> list[str]:
    """Instructions from the agent's skills that ``user_id`` has enabled in memory."""
    if memory is None or agent is None or not agent.skills:
        return []
    prompts = []
    for name in agent.skills:
        skill = memory.skills.get(user_id, name)
        if skill is None or not skill.enabled:
            continue
        instructions = skill.config.get("instructions") or skill.description
        if instructions:
            prompts.append(f"Skill {skill.name} (v{skill.version}): {instructions}")
    return prompts
