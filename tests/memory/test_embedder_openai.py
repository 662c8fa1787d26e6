"""OpenAICompatibleEmbedder (httpx) against a real HTTP server on a local socket started by the test."""

from __future__ import annotations

import email.utils
import gzip
import json
import socket
import sys
import threading
import time
import tracemalloc
import zlib
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
        self.raw: tuple[list[tuple[str, str]], bytes] | None = None  # 200 with these headers and body
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
                if server.raw is not None:
                    headers, payload = server.raw
                    self.send_response(200)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
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
    # httpx's read timeout and the watchdog run out together; either way it is a timeout.
    with pytest.raises(EmbedderError, match=r"after 2 attempts: (ReadTimeout|no complete answer)"):
        make(server, timeout=0.3, max_retries=1).embed(["x"])
    assert len(server.requests) == 2


def test_the_timeout_bounds_the_whole_answer_not_each_read(server):
    server.script = ["trickle"]
    started = time.monotonic()
    with pytest.raises(EmbedderError, match=r"after 1 attempts: no complete answer within the 0\.5 s") as err:
        make(server, timeout=0.5, max_retries=0).embed(["x"])
    assert "_" not in err.value.message.split("attempts:")[1]  # no private class name
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
    with pytest.raises(EmbedderError, match="after 2 attempts: a compressed answer that does not decode"):
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


def test_openai_api_key_goes_to_api_openai_com_only(server, monkeypatch):
    """An operator's OPENAI_API_KEY must not reach a local or third-party embedding server."""
    monkeypatch.delenv("MOSAIC_EMBEDDER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = ms.config_from_dict(
        {"memory": {"embedder": {"type": "openai", "base_url": server.url, "model": "m", "dim": DIM}}}
    )
    embedder_from_config(config).embed(["x"])
    assert "Authorization" not in server.headers[0]


def test_names_under_localhost_are_not_taken_for_this_machine():
    from mosaic_agent._http import is_loopback as provider_loopback
    from mosaic_memory._openai import is_loopback

    assert is_loopback("localhost") and is_loopback("127.0.0.9") and is_loopback("[::1]")
    assert not is_loopback("api.attacker.localhost")
    assert provider_loopback("http://localhost:1/v1") and not provider_loopback("http://x.localhost/v1")


# --- Hardening found by the security review -------------------------------------------------


def _answer(n: int = 1, dim: int = DIM) -> bytes:
    return json.dumps({"data": [{"index": i, "embedding": [1.0] * dim} for i in range(n)]}).encode()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"])
def test_proxies_from_the_environment_never_see_the_key(server, monkeypatch, variable):
    proxy = FakeServer()
    try:
        monkeypatch.setenv(variable, proxy.url.removesuffix("/v1"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert make(server, api_key=KEY).embed(["x"]).shape == (1, DIM)
        assert proxy.requests == [] and len(server.requests) == 1
    finally:
        proxy.close()


def test_a_proxy_is_used_only_when_named(server):
    proxy = FakeServer()
    try:
        make(server, api_key=KEY, proxy=proxy.url.removesuffix("/v1")).embed(["x"])
        assert len(proxy.requests) == 1 and server.requests == []  # the fake proxy answered itself
    finally:
        proxy.close()
    with pytest.raises(ValueError, match="through the proxy") as err:
        OpenAICompatibleEmbedder(
            "http://localhost:11434/v1", "m", DIM, api_key=KEY, proxy="http://10.0.0.9:3128"
        )
    assert "SECRETKEY123456" not in str(err.value)
    # https is tunnelled (the proxy sees no header), a local proxy is this machine, or opted in.
    OpenAICompatibleEmbedder(
        "https://api.example/v1", "m", DIM, api_key=KEY, proxy="http://10.0.0.9:3128"
    ).close()
    OpenAICompatibleEmbedder("http://gpu.lan/v1", "m", DIM, proxy="http://10.0.0.9:3128").close()
    OpenAICompatibleEmbedder(
        "http://localhost:1/v1", "m", DIM, api_key=KEY, proxy="http://10.0.0.9:3128", allow_insecure_http=True
    ).close()
    with pytest.raises(ValueError, match="proxy must be") as err:
        OpenAICompatibleEmbedder("http://localhost:1/v1", "m", DIM, proxy="ftp://u:pw-SECRET99@p/")
    assert "pw-SECRET99" not in str(err.value)


def test_the_config_reads_the_proxy_from_its_own_variable_only(server, monkeypatch):
    proxy = FakeServer()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1"))
        settings = {"type": "openai", "base_url": server.url, "model": "m", "dim": DIM}
        config = ms.config_from_dict({"memory": {"embedder": settings}})
        embedder_from_config(config).embed(["x"])
        assert proxy.requests == [] and len(server.requests) == 1
        monkeypatch.setenv("MOSAIC_EMBEDDER_PROXY", proxy.url.removesuffix("/v1"))
        embedder_from_config(config).embed(["x"])
        assert len(proxy.requests) == 1
    finally:
        proxy.close()


def test_it_asks_for_an_uncompressed_answer(server):
    make(server).embed(["x"])
    assert server.headers[0]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda b: zlib.compress(b)[2:-4])],
)
def test_a_single_gzip_or_deflate_answer_is_decoded(server, encoding, pack):
    server.raw = ([("Content-Encoding", encoding)], pack(_answer(2)))
    assert make(server, max_retries=0).embed(["a", "b"]).shape == (2, DIM)


def _gzip_zeros(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(megabytes)), packer.flush()])


def _peak_bytes(call) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        call()
    except BaseException as err:
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def test_a_stacked_gzip_bomb_is_refused_without_inflating_it(server):
    # 128 MiB of zeros in two gzip layers: a few hundred bytes on the wire.
    server.raw = ([("Content-Encoding", "gzip, gzip")], gzip.compress(_gzip_zeros(128), 9))
    err, peak = _peak_bytes(lambda: make(server, max_retries=0, batch_size=1).embed(["x"]))
    assert isinstance(err, EmbedderError) and "Content-Encoding" in str(err)
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    server.raw = ([("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")], server.raw[1])
    with pytest.raises(EmbedderError, match="stacked"):  # the same as two header lines
        make(server, max_retries=0).embed(["x"])
    server.raw = ([("Content-Encoding", "br")], server.raw[1])
    with pytest.raises(EmbedderError, match="Content-Encoding"):
        make(server, max_retries=0).embed(["x"])


def test_a_single_gzip_bomb_fails_on_size_with_bounded_memory(server):
    server.raw = ([("Content-Encoding", "gzip")], _gzip_zeros(128))  # 128 MiB decoded, limit 8 MiB
    err, peak = _peak_bytes(lambda: make(server, max_retries=0, batch_size=1).embed(["x"]))
    assert isinstance(err, EmbedderError) and "more than" in str(err)
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def _trickling_headers_server() -> tuple[socket.socket, threading.Event]:
    """A server that sends one header line every 0.2 s for 20 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for i in range(100):
                    if stop.wait(0.2):
                        return
                    conn.sendall(b"X-Pad-%d: a\r\n" % i)
                conn.sendall(b"Content-Length: 2\r\n\r\n{}")
            except OSError:
                pass

    threading.Thread(target=run, daemon=True).start()
    return listener, stop


def test_the_timeout_covers_the_headers_too():
    listener, stop = _trickling_headers_server()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        embedder = OpenAICompatibleEmbedder(url, "m", DIM, timeout=1, max_retries=0)
        started = time.monotonic()
        with pytest.raises(EmbedderError, match="no complete answer within the 1 s timeout") as err:
            embedder.embed(["x"])
        assert time.monotonic() - started < 8  # the server would go on for 20 s
        assert "_" not in err.value.message.split("attempts:")[1]
    finally:
        stop.set()
        listener.close()


BAD_ANSWERS = {
    "NaN": b'{"data":[{"index":0,"embedding":[NaN,1,2,3,4,5,6,7]}]}',
    "Infinity": b'{"data":[{"index":0,"embedding":[1,1,2,3,4,5,6,-Infinity]}]}',
    "beyond float32": b'{"data":[{"index":0,"embedding":[1e300,1,2,3,4,5,6,7]}]}',
    "huge integer": b'{"data":[{"index":0,"embedding":[' + b"9" * 400 + b",1,2,3,4,5,6,7]}]}",
    "null": b'{"data":[{"index":0,"embedding":[null,1,2,3,4,5,6,7]}]}',
    "strings": b'{"data":[{"index":0,"embedding":["1","1","2","3","4","5","6","7"]}]}',
    "booleans": b'{"data":[{"index":0,"embedding":[true,1,2,3,4,5,6,7]}]}',
    "deep nesting": b'{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge index": b'{"data":[{"index":' + b"9" * 5000 + b',"embedding":[1,1,2,3,4,5,6,7]}]}',
    "float index": b'{"data":[{"index":0.0,"embedding":[1,1,2,3,4,5,6,7]}]}',
    "no index": b'{"data":[{"embedding":[1,1,2,3,4,5,6,7]}]}',
    "index out of range": b'{"data":[{"index":3,"embedding":[1,1,2,3,4,5,6,7]}]}',
    "too many": b'{"data":[{"index":0,"embedding":[1,1,2,3,4,5,6,7]},'
    b'{"index":1,"embedding":[1,1,2,3,4,5,6,7]}]}',
    "not objects": b'{"data":[[1,1,2,3,4,5,6,7]]}',
    "not a list": b'{"data":{"index":0}}',
}


@pytest.mark.parametrize("case", BAD_ANSWERS)
def test_an_answer_that_is_not_finite_numbers_in_order_is_refused(server, case):
    server.raw = ([], BAD_ANSWERS[case])
    with pytest.raises(EmbedderError, match="unexpected answer") as err:
        make(server, max_retries=0).embed(["x"])
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)


def test_duplicate_indexes_are_refused(server):
    vector = [1.0] * DIM
    server.raw = ([], json.dumps({"data": [{"index": 1, "embedding": vector}] * 2}).encode())
    with pytest.raises(EmbedderError, match=r"index values are not exactly 0\.\.1"):
        make(server, max_retries=0).embed(["a", "b"])


@pytest.mark.parametrize(
    "bad_key",
    [
        "sk-ünicodeSECRETKEY123456",
        "sk-SECRET KEY123456",
        "sk-SECRETKEY123\r\nX-Inj: 1",
        "sk-SECRET\tKEY123456",
    ],
)
def test_a_key_no_header_can_carry_is_refused_without_quoting_it(server, bad_key):
    with pytest.raises(EmbedderError, match="API key holds characters") as err:
        make(server, api_key=bad_key)
    shown = str(err.value) + repr(err.value) + repr(err.value.args)
    assert "SECRET" not in shown and "KEY123" not in shown
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert server.requests == []


def test_surrounding_whitespace_is_stripped_from_the_key(server):
    make(server, api_key=f"  {KEY}\n").embed(["x"])
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    make(server, api_key=" \n").embed(["x"])  # blank: no key at all
    assert "Authorization" not in server.headers[1]


def test_the_config_blames_the_key_variable_not_base_url(server, monkeypatch):
    monkeypatch.setenv("MOSAIC_EMBEDDER_API_KEY", "sk-ünicodeSECRETKEY123456")
    settings = {"type": "openai", "base_url": server.url, "model": "m", "dim": DIM}
    with pytest.raises(ms.ConfigError) as err:
        embedder_from_config(ms.config_from_dict({"memory": {"embedder": settings}}))
    assert err.value.field == "MOSAIC_EMBEDDER_API_KEY" and "SECRETKEY" not in str(err.value)
