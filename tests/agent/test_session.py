"""AgentSession over real sockets: the tool loop, streaming, persistence, resuming, routing, limits."""

from __future__ import annotations

import pytest

import mosaic_storage as ms
from mosaic_agent import (
    AgentSession,
    AnthropicProvider,
    OpenAICompatibleProvider,
    Reply,
    Router,
    SessionError,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from mosaic_agent.tools import builtin_tools
from mosaic_memory import open_memory
from mosaic_storage.brain import Brain, NotFound
from mosaic_storage.migrate import PostgresTarget, SqlAlchemySource, migrate_tier


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path}/agent.db"
    store = ms.open_store(url)
    ms.upgrade(store)
    brain = Brain(store, workspace_root=tmp_path / "workspaces")
    memory = open_memory(store)
    ann = brain.users.create(name="ann").id
    yield {"url": url, "store": store, "brain": brain, "memory": memory, "ann": ann}
    memory.close()
    store.close()


def provider_for(server):
    kind = AnthropicProvider if "messages" in server.chat_path else OpenAICompatibleProvider
    return kind("local", server.base_url, api_key="sk-test-0123456789abcdef", max_retries=0, timeout=10)


def stored_roles(session):
    return [m.role for m in session.history()]


def test_a_turn_runs_the_tool_loop_and_persists_every_message(world, llm_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    llm_server.push(
        llm_server.tool_call("memory__remember", {"text": "Ann drinks green tea"}),
        llm_server.text("Noted: green tea."),
    )
    tools = builtin_tools(ann, memory=memory)
    with AgentSession.start(brain, ann, provider_for(llm_server), model="m1", tools=tools) as session:
        reply = session.send("Remember that I drink green tea")

    assert isinstance(reply, Reply)
    assert (reply.text, reply.steps, reply.finish_reason) == ("Noted: green tea.", 2, "stop")
    assert [c.name for c in reply.tool_calls] == ["memory__remember"]
    assert reply.usage.input_tokens == 10 and reply.usage.output_tokens == 14  # two answers summed
    assert [i.text for i in memory.insights.list(user_id=ann)] == ["Ann drinks green tea"]
    assert stored_roles(session) == ["user", "assistant", "tool", "assistant"]
    # The second request carried the tool's result back to the model.
    second = llm_server.chat_requests[-1].body
    assert "Ann drinks green tea" in str(second["messages"])


def test_streaming_yields_text_tool_calls_results_and_a_final_reply(world, llm_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    memory.insights.add("Ann's cat is called Miso", user_id=ann)
    llm_server.push(
        llm_server.stream_tool_call("memory__recall", ['{"query": ', '"cat name"}']),
        llm_server.stream_text(["Your cat ", "is Miso."]),
    )
    tools = builtin_tools(ann, memory=memory)
    session = AgentSession.start(brain, ann, provider_for(llm_server), model="m1", tools=tools)
    events = list(session.stream("What is my cat called?"))

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ToolCallEvent" and kinds[1] == "ToolResultEvent" and kinds[-1] == "Reply"
    result = events[1]
    assert isinstance(result, ToolResultEvent) and result.ok and "Miso" in result.content
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Your cat is Miso." == events[-1].text
    assert stored_roles(session) == ["user", "assistant", "tool", "assistant"]


def test_a_session_resumes_by_id_with_the_same_history_and_sends_it(world, openai_server):
    brain, ann = world["brain"], world["ann"]
    openai_server.push(openai_server.text("Hello Ann."), openai_server.text("You said hi."))
    first = AgentSession.start(brain, ann, provider_for(openai_server), model="m1", system_prompt="Be brief.")
    first.send("hi")
    first.close()
    with pytest.raises(SessionError, match="closed"):
        first.send("again")

    again = AgentSession.resume(brain, ann, provider_for(openai_server), first.id, model="m1")
    assert again.history() == first.history()
    again.send("what did I say?")
    sent = openai_server.chat_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [m["content"] for m in sent] == ["hi", "Hello Ann.", "what did I say?"]


def test_another_user_cannot_resume_a_conversation(world, openai_server):
    brain, ann = world["brain"], world["ann"]
    session = AgentSession.start(brain, ann, provider_for(openai_server), model="m1")
    bob = brain.users.create(name="bob").id
    with pytest.raises(NotFound):
        AgentSession.resume(brain, bob, provider_for(openai_server), session.id, model="m1")


def test_resumed_on_another_tier_after_migrate_tier_the_history_is_the_same(
    world, openai_server, pgvector_url
):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    openai_server.push(
        openai_server.tool_call("memory__remember", {"text": "Ann lives in Lyon"}),
        openai_server.text("Got it."),
        openai_server.text("Lyon."),
    )
    tools = builtin_tools(ann, memory=memory)
    local = AgentSession.start(brain, ann, provider_for(openai_server), model="m1", tools=tools)
    local.send("I live in Lyon")
    before = local.history()

    with SqlAlchemySource(world["url"]) as source, PostgresTarget(pgvector_url) as target:
        assert migrate_tier(source, target, init_target=True).ok
    with ms.open_store(pgvector_url) as bigger:
        remote_brain = Brain(bigger)
        remote_memory = open_memory(bigger)
        moved = AgentSession.resume(
            remote_brain,
            ann,
            provider_for(openai_server),
            local.id,
            model="m1",
            tools=builtin_tools(ann, memory=remote_memory),
        )
        assert moved.history() == before
        assert moved.send("Where do I live?").text == "Lyon."
        assert [m.role for m in moved.history()] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
        ]
        remote_memory.close()


def test_the_router_falls_back_and_the_reply_says_who_answered(world, openai_server, anthropic_server):
    brain, ann = world["brain"], world["ann"]
    openai_server.push(openai_server.error(500))
    anthropic_server.push(anthropic_server.text("from claude"))
    config = ms.config_from_dict(
        {
            "agent": {
                "providers": {
                    "local": {"type": "openai", "base_url": openai_server.base_url, "max_retries": 0,
                              "models": [{"name": "m1"}]},
                    "claude": {"type": "anthropic", "base_url": anthropic_server.base_url, "max_retries": 0,
                               "models": [{"name": "c1"}]},
                },
                "routing": {"aliases": {"default": ["local/m1", "claude/c1"]}, "default": "default"},
            }
        }
    )  # fmt: skip
    with Router.from_config(config, env={}) as router:
        session = AgentSession.start(brain, ann, router, model="default")
        reply = session.send("hello")
    assert (reply.text, reply.provider) == ("from claude", "claude")
    assert anthropic_server.chat_requests[0].body["model"] == "c1"
    assert session.history()[-1].content == "from claude"


def test_tools_the_agent_may_not_use_are_refused_to_the_model(world, openai_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    agent = brain.agents.create(ann, name="reader", allowed_tools=["memory.recall"])
    openai_server.push(
        openai_server.tool_call("memory__remember", {"text": "sneaky"}),
        openai_server.text("I could not."),
    )
    tools = builtin_tools(ann, memory=memory)
    session = AgentSession.start(
        brain, ann, provider_for(openai_server), agent="reader", model="m1", tools=tools
    )
    assert session.agent == agent
    assert session.send("remember sneaky").text == "I could not."
    result = next(m for m in session.history() if m.role == "tool")
    assert result.is_error and "no tool 'memory__remember' available" in result.content
    assert memory.insights.list(user_id=ann) == []
    offered = [t["function"]["name"] for t in openai_server.chat_requests[0].body["tools"]]
    assert offered == ["memory__recall"]


def test_a_tool_loop_that_does_not_end_stops_at_max_steps(world, openai_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    for n in range(3):
        openai_server.push(openai_server.tool_call("memory__recall", {"query": "x"}, id=f"call_{n}"))
    tools = builtin_tools(ann, memory=memory)
    session = AgentSession.start(
        brain, ann, provider_for(openai_server), model="m1", tools=tools, max_steps=3
    )
    reply = session.send("loop forever")
    assert (reply.finish_reason, reply.steps, len(reply.tool_calls)) == ("step_limit", 3, 3)
    assert openai_server.pending == 0


def test_enabled_skills_of_the_agent_go_into_the_system_prompt(world, llm_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    memory.skills.create(
        ann, "haiku", description="Answer in haiku.", config={"instructions": "Write 5-7-5."}
    )
    memory.skills.create(ann, "shout", description="Answer in capitals.")
    memory.skills.disable(ann, "shout")
    brain.agents.create(ann, name="poet", system_prompt="You are a poet.", skills=["haiku", "shout"])
    llm_server.push(llm_server.text("Quiet pond"))
    session = AgentSession.start(
        brain, ann, provider_for(llm_server), agent="poet", model="m1", memory=memory
    )
    session.send("a poem please")
    body = llm_server.chat_requests[0].body
    system = body.get("system") or body["messages"][0]["content"]
    system = system if isinstance(system, str) else " ".join(part["text"] for part in system)
    assert "You are a poet." in system and "Write 5-7-5." in system and "capitals" not in system


def test_empty_messages_and_unknown_agents_are_clear_errors(world, openai_server):
    brain, ann = world["brain"], world["ann"]
    with pytest.raises(NotFound, match="no agent 'nobody'"):
        AgentSession.start(brain, ann, provider_for(openai_server), agent="nobody", model="m1")
    session = AgentSession.start(brain, ann, provider_for(openai_server), model="m1")
    with pytest.raises(SessionError, match="empty"):
        session.send("   ")
    assert session.history() == ()


def test_tool_call_events_carry_the_call(world, openai_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    session = AgentSession.start(
        brain, ann, provider_for(openai_server), model="m1", tools=builtin_tools(ann, memory=memory)
    )
    openai_server.push(
        openai_server.stream_tool_call("memory__get_preference", ['{"key": "theme"}'], id="call_pref"),
        openai_server.stream_text(["none set"]),
    )
    events = list(session.stream("my theme?"))
    call = next(e for e in events if isinstance(e, ToolCallEvent)).call
    assert (call.id, call.name) == ("call_pref", "memory__get_preference")
    stored_tool = next(m for m in session.history() if m.role == "tool")
    assert stored_tool.tool_call_id == "call_pref"


class _RaisingTools:
    """A tool set whose only tool raises (a bug in a tool, or Ctrl-C while it runs)."""

    def schemas(self, allowed=None, *, style="neutral"):
        return [{"name": "boom", "description": "raises", "parameters": {"type": "object"}}]

    def call(self, name, arguments=None, *, allowed=None):
        raise KeyboardInterrupt


def _interrupted_result_follows_the_call(body, call_id):
    text = str(body["messages"])
    return call_id in text and "the tool call was interrupted" in text


def test_a_turn_interrupted_in_a_tool_leaves_a_history_providers_accept(world, llm_server):
    brain, ann = world["brain"], world["ann"]
    session = AgentSession.start(brain, ann, provider_for(llm_server), model="m1", tools=_RaisingTools())
    llm_server.push(llm_server.tool_call("boom", {}, id="call_boom"), llm_server.text("back again"))
    with pytest.raises(KeyboardInterrupt):
        session.send("run boom")
    assert stored_roles(session) == ["user", "assistant"]  # the call has no stored result

    assert session.send("are you there?").text == "back again"
    body = llm_server.chat_requests[-1].body
    assert _interrupted_result_follows_the_call(body, "call_boom")
    if "messages" in llm_server.chat_path:  # Anthropic: the result opens the next user message
        results = [b for m in body["messages"] for b in m["content"] if isinstance(m["content"], list)]
        assert any(b.get("type") == "tool_result" and b.get("tool_use_id") == "call_boom" for b in results)
    else:
        roles = [(m["role"], m.get("tool_call_id")) for m in body["messages"]]
        assert roles == [("user", None), ("assistant", None), ("tool", "call_boom"), ("user", None)]


def test_a_stream_abandoned_after_the_tool_call_event_leaves_a_valid_history(world, openai_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    tools = builtin_tools(ann, memory=memory)
    session = AgentSession.start(brain, ann, provider_for(openai_server), model="m1", tools=tools)
    openai_server.push(
        openai_server.stream_tool_call("memory__recall", ['{"query": "x"}'], id="call_x"),
        openai_server.text("fine"),
    )
    for event in session.stream("find x"):
        if isinstance(event, ToolCallEvent):
            break
    assert stored_roles(session) == ["user", "assistant"]
    session.send("next")
    messages = openai_server.chat_requests[-1].body["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in messages] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_x"),
        ("user", None),
    ]
    assert "interrupted" in messages[2]["content"]


def test_a_retry_after_a_failed_provider_call_sends_the_user_text_once(world, openai_server):
    brain, ann = world["brain"], world["ann"]
    session = AgentSession.start(brain, ann, provider_for(openai_server), model="m1")
    openai_server.push(openai_server.error(500), openai_server.text("ok"))
    with pytest.raises(ms.MosaicError):
        session.send("hello")
    assert session.send("hello").text == "ok"
    sent = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].body["messages"]]
    assert sent == [("user", "hello")]
    assert [(m.role, m.content) for m in session.history()] == [("user", "hello"), ("assistant", "ok")]


def test_a_turn_longer_than_the_history_window_still_sends_its_user_message(world, openai_server):
    brain, memory, ann = world["brain"], world["memory"], world["ann"]
    tools = builtin_tools(ann, memory=memory)
    session = AgentSession.start(brain, ann, provider_for(openai_server), model="m1", tools=tools, history=4)
    openai_server.push(
        openai_server.tool_call("memory__recall", {"query": "a"}, id="c1"),
        openai_server.tool_call("memory__recall", {"query": "b"}, id="c2"),
        openai_server.text("done"),
    )
    assert session.send("go").text == "done"
    messages = openai_server.chat_requests[-1].body["messages"]
    assert messages[0] == {"role": "user", "content": "go"}
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool"]
