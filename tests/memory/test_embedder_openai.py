"""OpenAICompatibleEmbedder (httpx) against a real HTTP server on a local socket started by the test."""

from __future__ import annotations

import email.utils
import gzip
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import mosaic_storage as ms
from mosaic_memory import Embedder, EmbedderError, OpenAICompatibleEmbedder
from mosaic_memory._open import embedder_from_config
from mosaic_memory._openai import _retry_after_seconds

DIM = 8
KEY = "sk-test-SECRETKEY123456"


class FakeServer:
    """Answers POST /v1/embeddings; ``script`` lists what to do before answering normally.

    Script entries: an HTTP status (sent with ``retry_after`` as Retry-After and a body
    that echoes the Authorization header), ``"drop"`` (close the connection without an
    answer), ``"trickle"`` (a 200 whose body arrives one byte at a time for seconds).
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.times: list[float] = []
        self.script: list[int | str] = []
        self.retry_after = "0"
        self.dim = DIM
        self.release = threading.Event()
        self.hang = False
        self.oversize = 0
        self.gzip_bomb = 0
        self.redirect_to: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                server.times.append(time.monotonic())
                if server.hang:
                    server.release.wait(10)
                    return
                if server.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", server.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.oversize:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"[" + b"0," * (server.oversize // 2))
                    return
                if server.gzip_bomb:
                    packed = gzip.compress(b" " * server.gzip_bomb) if server.gzip_bomb > 1 else b"not gzip"
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(packed)))
                    self.end_headers()
                    self.wfile.write(packed)
                    return
                step = server.script.pop(0) if server.script else 200
                if step == "drop":
                    self.close_connection = True
                    return
                if step == "trickle":
                    self.send_response(200)
                    self.end_headers()
                    deadline = time.monotonic() + 5
                    try:
                        while time.monotonic() < deadline and not server.release.is_set():
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.05)
                    except OSError:
                        pass
                    return
                if step != 200:
                    self.send_response(int(step))
                    self.send_header("Retry-After", server.retry_after)
                    self.end_headers()
                    # Some servers echo the request: the key must still not reach the error.
                    self.wfile.write(
                        json.dumps({"error": "busy", "auth": self.headers.get("Authorization")}).encode()
                    )
                    return
                data = [
                    {"index": i, "embedding": [float(len(text) + j) for j in range(server.dim)]}
                    for i, text in enumerate(body["input"])
                ]
                payload = json.dumps({"data": list(reversed(data))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def make(server: FakeServer, **options: object) -> OpenAICompatibleEmbedder:
    options = {"backoff": 0.001, **options}
    return OpenAICompatibleEmbedder(server.url, "tiny", DIM, **options)  # type: ignore[arg-type]


def test_batches_keep_order_and_send_the_key(server):
    with make(server, api_key=KEY, batch_size=2) as embedder:
        assert isinstance(embedder, Embedder) and embedder.name == "openai:tiny" and embedder.dim == DIM
        vectors = embedder.embed(["a", "bbb", "cc", "dddd", "e"])
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    assert [r["input"] for r in server.requests] == [["a", "bbb"], ["cc", "dddd"], ["e"]]
    assert {r["model"] for r in server.requests} == {"tiny"}
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    # The server answered in reverse order; rows follow the texts, unit length.
    for row, text in zip(vectors, ["a", "bbb", "cc", "dddd", "e"], strict=True):
        expected = np.asarray([len(text) + j for j in range(DIM)], dtype=np.float64)
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), rtol=1e-6)
    assert make(server).embed([]).shape == (0, DIM)
    with pytest.raises(TypeError, match="sequence"):
        make(server).embed("one text")  # type: ignore[arg-type]


def test_busy_answers_are_retried_then_succeed(server):
    server.script = [500, 503]
    assert make(server, max_retries=3).embed(["x"]).shape == (1, DIM)
    assert len(server.requests) == 3


def test_429_waits_as_long_as_retry_after_says(server):
    server.script = [429]
    server.retry_after = "1"
    make(server, max_retries=1).embed(["x"])
    assert len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.9  # backoff alone would be 1 ms


def test_retry_after_is_capped_by_max_backoff(server):
    server.script = [429]
    server.retry_after = "3600"
    started = time.monotonic()
    make(server, max_retries=1, max_backoff=0.05).embed(["x"])
    assert time.monotonic() - started < 60
    assert len(server.requests) == 2


def test_retry_after_may_be_a_date():
    soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after_seconds(soon, default=1.0) <= 30
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", default=1.0) < 0  # past: no wait
    assert _retry_after_seconds(" 2.5 ", default=1.0) == 2.5
    assert _retry_after_seconds("soon", default=1.0) == 1.0


def test_a_dropped_connection_is_a_transport_error_and_is_retried(server):
    server.script = ["drop", "drop"]
    assert make(server, max_retries=2).embed(["x"]).shape == (1, DIM)
    assert len(server.requests) == 3


def test_gives_up_after_the_retries_with_a_redacted_error(server):
    server.script = [500] * 10
    embedder = make(server, api_key=KEY, max_retries=2)
    with pytest.raises(EmbedderError) as err:
        embedder.embed(["x"])
    text = str(err.value) + repr(err.value)
    assert "HTTP 500 after 3 attempts" in text
    assert "busy" not in text  # the server's text is never quoted: it may echo secrets
    assert "SECRETKEY123456" not in text + repr(embedder)
    assert len(server.requests) == 3
    # The key is registered for redaction: wherever it shows up later, it is masked.
    assert "SECRETKEY123456" not in ms.redact(f"upstream said: key {KEY} is rate limited")


def test_a_hanging_server_times_out_on_every_attempt(server):
    server.hang = True
    with pytest.raises(EmbedderError, match="after 2 attempts: ReadTimeout"):
        make(server, timeout=0.3, max_retries=1).embed(["x"])
    assert len(server.requests) == 2


def test_the_timeout_bounds_the_whole_answer_not_each_read(server):
    server.script = ["trickle"]
    started = time.monotonic()
    with pytest.raises(EmbedderError, match="after 1 attempts: _TotalTimeout"):
        make(server, timeout=0.5, max_retries=0).embed(["x"])
    # A byte every 50 ms never trips a per-read timeout; the server would go on for 5 s.
    assert time.monotonic() - started < 4


def test_wrong_dimension_is_an_error(server):
    server.dim = DIM + 1
    with pytest.raises(EmbedderError, match="shape"):
        make(server).embed(["x"])


def test_an_unreachable_server_is_named(server):
    url = server.url
    server.close()
    with pytest.raises(EmbedderError, match="failed after 2 attempts: ConnectError") as err:
        OpenAICompatibleEmbedder(url, "tiny", DIM, timeout=1, max_retries=1, backoff=0.001).embed(["x"])
    assert err.value.remediation and "base_url" in err.value.remediation


def test_a_key_echoed_by_the_server_never_reaches_the_error(server):
    server.script = [401]
    with pytest.raises(EmbedderError) as err:
        make(server, api_key=KEY).embed(["x"])
    assert "HTTP 401" in str(err.value)
    assert len(server.requests) == 1  # 401 is not retried
    assert "SECRETKEY123456" not in str(err.value) + repr(err.value)


def test_redirects_are_refused_so_the_key_stays_home(server):
    other = FakeServer()
    try:
        server.redirect_to = other.url + "/embeddings"
        with pytest.raises(EmbedderError, match="redirect, which is never followed"):
            make(server, api_key=KEY).embed(["x"])
        assert other.requests == []
    finally:
        other.close()


def test_an_oversized_answer_is_refused(server):
    server.oversize = 9 * 1024 * 1024
    with pytest.raises(EmbedderError, match="more than"):
        make(server, max_retries=0, batch_size=1).embed(["x"])


def test_a_compressed_answer_is_limited_by_its_decoded_size(server):
    server.gzip_bomb = 12 * 1024 * 1024  # 12 MiB of spaces (the limit is 8 MiB), ~12 KiB on the wire
    with pytest.raises(EmbedderError, match="more than"):
        make(server, max_retries=0, batch_size=1).embed(["x"])


def test_a_body_that_cannot_be_decoded_is_wrapped(server):
    server.gzip_bomb = 1  # claims gzip, sends plain bytes
    with pytest.raises(EmbedderError, match="after 2 attempts: DecodingError"):
        make(server, max_retries=1).embed(["x"])


def test_only_http_urls_without_credentials():
    with pytest.raises(ValueError, match="http"):
        OpenAICompatibleEmbedder("file:///etc", "tiny", DIM)
    with pytest.raises(ValueError, match="api_key") as err:
        OpenAICompatibleEmbedder("http://alice:s3cretPW99@example.invalid/v1", "tiny", DIM)
    assert "s3cretPW99" not in str(err.value)
    with pytest.raises(ValueError, match="batch_size"):
        OpenAICompatibleEmbedder("http://localhost/v1", "tiny", DIM, batch_size=0)


@pytest.mark.parametrize("host", ["10.0.0.7:8000", "gpu-box.internal", "example.invalid"])
def test_a_key_is_not_sent_in_clear_text_to_another_host(host):
    with pytest.raises(ValueError, match="plain http") as err:
        OpenAICompatibleEmbedder(f"http://{host}/v1", "tiny", DIM, api_key=KEY)
    assert "SECRETKEY123456" not in str(err.value)
    # Explicitly allowed, over https, or without a key, it is fine (nothing is sent yet).
    OpenAICompatibleEmbedder(f"http://{host}/v1", "tiny", DIM, api_key=KEY, allow_insecure_http=True).close()
    OpenAICompatibleEmbedder(f"https://{host}/v1", "tiny", DIM, api_key=KEY).close()
    OpenAICompatibleEmbedder(f"http://{host}/v1", "tiny", DIM).close()


@pytest.mark.parametrize("host", ["localhost:11434", "127.0.0.1:8000", "127.9.9.9", "[::1]:8080"])
def test_a_key_may_go_over_http_to_this_machine(host):
    OpenAICompatibleEmbedder(f"http://{host}/v1", "tiny", DIM, api_key=KEY).close()


def test_without_httpx_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ms.MissingExtraError) as err:
        OpenAICompatibleEmbedder("http://localhost/v1", "tiny", DIM)
    assert "mosaic-stack[http]" in str(err.value)


def test_the_config_selects_it_and_reads_the_key_from_the_environment(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MOSAIC_EMBEDDER_API_KEY", KEY)
    config = ms.config_from_dict(
        {"memory": {"embedder": {"type": "openai", "base_url": server.url, "model": "m", "dim": DIM}}}
    )
    embedder = embedder_from_config(config)
    assert embedder.name == "openai:m" and embedder.dim == DIM
    embedder.embed(["x"])
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"

    remote = {"type": "openai", "base_url": "http://10.0.0.7/v1", "model": "m", "dim": DIM}
    with pytest.raises(ms.ConfigError, match="MOSAIC_EMBEDDER_ALLOW_INSECURE_HTTP") as err:
        embedder_from_config(ms.config_from_dict({"memory": {"embedder": remote}}))
    assert err.value.field == "memory.embedder.base_url" and "SECRETKEY" not in str(err.value)
    monkeypatch.setenv("MOSAIC_EMBEDDER_ALLOW_INSECURE_HTTP", "1")
    assert embedder_from_config(ms.config_from_dict({"memory": {"embedder": remote}})).dim == DIM
