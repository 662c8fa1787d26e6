"""Scripted LLM servers on local sockets: an OpenAI-compatible one and an Anthropic-compatible one.

Each serves one queue of replies, in order, to chat requests, and records every request.
Build replies with the server's own helpers (``text``, ``tool_call``, ``stream_text``,
``stream_tool_call``, ``error``), which speak the server's format, so one test can run
against either flavour::

    server.push(server.error(429, retry_after=0), server.text("hello"))
    ... call the provider at server.base_url ...
    assert server.requests[-1].body["model"] == "m1"

An unscripted chat request gets HTTP 400 with error code ``unscripted``, so a test that
asks more than it scripted fails with that word in the error.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Recorded:
    """One request the server saw: headers with lower-case names, the JSON body (or None)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@attrs.frozen
class Reply:
    """What the server sends for one request.

    ``delay``: seconds to wait before answering (for timeouts). ``sse``: a list of
    (event name or None, data) sent as server-sent events, ``event_delay`` apart.
    ``hangup``: close the connection without answering. ``echo_secrets``: put the
    request's auth headers in the body, as careless servers do (for redaction tests).
    ``raw``: bytes sent as the body as they are.
    """

    status: int = 200
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    sse: tuple[tuple[str | None, str], ...] | None = None
    delay: float = 0.0
    event_delay: float = 0.0
    hangup: bool = False
    echo_secrets: bool = False
    raw: bytes | None = None
    break_after: int | None = None


class ScriptedServer:
    """A threaded HTTP server answering chat requests from a queue of `Reply`s."""

    chat_path = ""
    models_path = ""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.models_reply = Reply(json={"data": [{"id": "m1", "object": "model"}]})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._record(self, None)
                if self.path.split("?")[0] == server.models_path:
                    server._send(self, server.models_reply)
                else:
                    server._send(self, Reply(404, {"error": {"type": "not_found"}}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                server._record(self, body)
                if self.path.split("?")[0] != server.chat_path:
                    server._send(self, Reply(404, {"error": {"type": "not_found"}}))
                    return
                with server._lock:
                    reply = server._queue.popleft() if server._queue else None
                server._send(
                    self, reply or Reply(400, {"error": {"type": "unscripted", "code": "unscripted"}})
                )

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    # --- scripting ---------------------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        """Queue replies for the next chat requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def error(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        echo_secrets: bool = False,
        delay: float = 0.0,
    ) -> Reply:
        headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        error = {"type": code or "server_error", "message": "scripted failure"}
        if code:
            error["code"] = code
        return Reply(status, {"error": error}, headers=headers, echo_secrets=echo_secrets, delay=delay)

    def text(self, content: str, **kwargs: Any) -> Reply:
        raise NotImplementedError

    def tool_call(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> Reply:
        raise NotImplementedError

    def stream_text(self, pieces: Sequence[str], **kwargs: Any) -> Reply:
        raise NotImplementedError

    def stream_tool_call(self, name: str, fragments: Sequence[str], **kwargs: Any) -> Reply:
        raise NotImplementedError

    # --- internals ---------------------------------------------------------------------------

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Recorded(handler.command, handler.path, headers, body))

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay and self._stopping.wait(reply.delay):
            return
        if reply.hangup:
            handler.close_connection = True
            return
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers:
                handler.send_header(name, value)
            if reply.sse is not None:
                handler.send_header("Content-Type", "text/event-stream")
                handler.send_header("Cache-Control", "no-cache")
                handler.end_headers()
                for i, (event, data) in enumerate(reply.sse):
                    if reply.break_after is not None and i >= reply.break_after:
                        handler.wfile.flush()
                        handler.connection.shutdown(2)
                        return
                    if reply.event_delay and self._stopping.wait(reply.event_delay):
                        return
                    chunk = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
                    handler.wfile.write(chunk.encode())
                    handler.wfile.flush()
                return
            payload = reply.raw
            if payload is None:
                data = reply.json
                if reply.echo_secrets:
                    data = {
                        **(data or {}),
                        "echo": {k: handler.headers.get(k) for k in ("Authorization", "x-api-key")},
                    }
                payload = json.dumps(data).encode()
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _sse(events: Iterable[tuple[str | None, Any]]) -> tuple[tuple[str | None, str], ...]:
    return tuple((name, data if isinstance(data, str) else json.dumps(data)) for name, data in events)


class OpenAIServer(ScriptedServer):
    """Speaks ``POST /v1/chat/completions`` (and ``GET /v1/models``)."""

    chat_path = "/v1/chat/completions"
    models_path = "/v1/models"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def text(
        self,
        content: str,
        *,
        input_tokens: int = 5,
        output_tokens: int = 7,
        model: str | None = None,
        finish: str = "stop",
        **reply: Any,
    ) -> Reply:
        return Reply(
            json=self._completion(
                {"role": "assistant", "content": content}, finish, input_tokens, output_tokens, model
            ),
            **reply,
        )

    def tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        id: str = "call_1",
        content: str = "",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        return self.tool_calls(
            [(id, name, arguments)],
            content=content,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            **reply,
        )

    def tool_calls(
        self,
        calls: Sequence[tuple[str, str, dict[str, Any]]],
        *,
        content: str = "",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        message = {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for cid, name, args in calls
            ],
        }
        return Reply(json=self._completion(message, "tool_calls", input_tokens, output_tokens, None), **reply)

    def stream_text(
        self,
        pieces: Sequence[str],
        *,
        input_tokens: int = 5,
        output_tokens: int = 7,
        model: str = "m1",
        **reply: Any,
    ) -> Reply:
        events: list[tuple[str | None, Any]] = [
            (None, self._chunk({"role": "assistant", "content": ""}, None, model))
        ]
        events += [(None, self._chunk({"content": piece}, None, model)) for piece in pieces]
        events.append((None, self._chunk({}, "stop", model)))
        events.append(
            (
                None,
                {
                    "id": "c1",
                    "model": model,
                    "choices": [],
                    "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens},
                },
            )
        )
        events.append((None, "[DONE]"))
        return Reply(sse=_sse(events), **reply)

    def stream_tool_call(
        self,
        name: str,
        fragments: Sequence[str],
        *,
        id: str = "call_1",
        text: Sequence[str] = (),
        model: str = "m1",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        events: list[tuple[str | None, Any]] = [
            (None, self._chunk({"content": piece}, None, model)) for piece in text
        ]
        events.append(
            (
                None,
                self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    },
                    None,
                    model,
                ),
            )
        )
        events += [
            (None, self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}, None, model))
            for f in fragments
        ]
        events.append((None, self._chunk({}, "tool_calls", model)))
        events.append(
            (
                None,
                {
                    "id": "c1",
                    "model": model,
                    "choices": [],
                    "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens},
                },
            )
        )
        events.append((None, "[DONE]"))
        return Reply(sse=_sse(events), **reply)

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None, model: str) -> dict[str, Any]:
        return {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    @staticmethod
    def _completion(
        message: dict[str, Any], finish: str, input_tokens: int, output_tokens: int, model: str | None
    ) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model or "m1",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }


class AnthropicServer(ScriptedServer):
    """Speaks ``POST /v1/messages`` (and ``GET /v1/models``) in Anthropic's shapes and SSE events."""

    chat_path = "/v1/messages"
    models_path = "/v1/models"

    @property
    def base_url(self) -> str:
        return self.root_url

    def error(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        echo_secrets: bool = False,
        delay: float = 0.0,
    ) -> Reply:
        headers = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
        body = {"type": "error", "error": {"type": code or "api_error", "message": "scripted failure"}}
        return Reply(status, body, headers=headers, echo_secrets=echo_secrets, delay=delay)

    def text(
        self,
        content: str,
        *,
        input_tokens: int = 5,
        output_tokens: int = 7,
        model: str | None = None,
        finish: str = "end_turn",
        **reply: Any,
    ) -> Reply:
        return Reply(
            json=self._message(
                [{"type": "text", "text": content}], finish, input_tokens, output_tokens, model
            ),
            **reply,
        )

    def tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        id: str = "toolu_1",
        content: str = "",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        return self.tool_calls(
            [(id, name, arguments)],
            content=content,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            **reply,
        )

    def tool_calls(
        self,
        calls: Sequence[tuple[str, str, dict[str, Any]]],
        *,
        content: str = "",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        blocks += [{"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in calls]
        return Reply(json=self._message(blocks, "tool_use", input_tokens, output_tokens, None), **reply)

    def stream_text(
        self,
        pieces: Sequence[str],
        *,
        input_tokens: int = 5,
        output_tokens: int = 7,
        model: str = "m1",
        **reply: Any,
    ) -> Reply:
        events: list[tuple[str | None, Any]] = [self._start(model, input_tokens)]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        events.append(("ping", {"type": "ping"}))
        events += [
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            for piece in pieces
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events += self._end("end_turn", output_tokens)
        return Reply(sse=_sse(events), **reply)

    def stream_tool_call(
        self,
        name: str,
        fragments: Sequence[str],
        *,
        id: str = "toolu_1",
        text: Sequence[str] = (),
        model: str = "m1",
        input_tokens: int = 5,
        output_tokens: int = 7,
        **reply: Any,
    ) -> Reply:
        events: list[tuple[str | None, Any]] = [self._start(model, input_tokens)]
        index = 0
        if text:
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            events += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
                for piece in text
            ]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}},
                },
            )
        )
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": f},
                },
            )
            for f in fragments
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events += self._end("tool_use", output_tokens)
        return Reply(sse=_sse(events), **reply)

    def stream_error(self, kind: str = "overloaded_error", *, after_text: Sequence[str] = ()) -> Reply:
        """A stream that starts (with ``after_text``) and then sends an ``error`` event."""
        events: list[tuple[str | None, Any]] = [self._start("m1", 5)]
        if after_text:
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            events += [
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
                )
                for t in after_text
            ]
        events.append(("error", {"type": "error", "error": {"type": kind, "message": "Overloaded"}}))
        return Reply(sse=_sse(events))

    @staticmethod
    def _start(model: str, input_tokens: int) -> tuple[str, dict[str, Any]]:
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )

    @staticmethod
    def _end(stop: str, output_tokens: int) -> list[tuple[str | None, Any]]:
        return [
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]

    @staticmethod
    def _message(
        blocks: list[dict[str, Any]], stop: str, input_tokens: int, output_tokens: int, model: str | None
    ) -> dict[str, Any]:
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model or "m1",
            "content": blocks,
            "stop_reason": stop,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
