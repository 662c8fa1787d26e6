"""OpenAICompatibleEmbedder against a tiny real HTTP server on a local socket: batching, retries, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mosaic_memory import Embedder, EmbedderError, OpenAICompatibleEmbedder

DIM = 8


class FakeServer:
    """Answers /v1/embeddings; ``script`` holds the statuses to send before succeeding."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list[int] = []
        self.dim = DIM
        self.release = threading.Event()
        self.hang = False
        self.oversize = 0
        self.redirect_to: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if server.hang:
                    server.release.wait(10)
                    return
                if server.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.end_headers()
                    return
                if server.oversize:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"[" + b"0," * (server.oversize // 2))
                    return
                status = server.script.pop(0) if server.script else 200
                if status != 200:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
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


def test_batches_order_and_auth(server):
    embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, api_key="sk-test-SECRETKEY123", batch_size=2)
    assert isinstance(embedder, Embedder) and embedder.name == "openai:tiny"
    vectors = embedder.embed(["a", "bbb", "cc", "dddd", "e"])
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
    assert [r["input"] for r in server.requests] == [["a", "bbb"], ["cc", "dddd"], ["e"]]
    assert server.headers[0]["Authorization"] == "Bearer sk-test-SECRETKEY123"
    expected = np.asarray([[3.0 + j for j in range(DIM)]])
    np.testing.assert_allclose(vectors[1], (expected / np.linalg.norm(expected))[0], rtol=1e-6)


def test_retries_busy_answers_then_succeeds(server):
    server.script = [503, 429]
    embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, backoff=0.001, max_retries=3)
    assert embedder.embed(["x"]).shape == (1, DIM)
    assert len(server.requests) == 3


def test_gives_up_with_a_redacted_error(server):
    server.script = [500] * 10
    embedder = OpenAICompatibleEmbedder(
        server.url, "tiny", DIM, api_key="sk-live-TopSecretKey1", backoff=0.001, max_retries=2
    )
    with pytest.raises(EmbedderError) as err:
        embedder.embed(["x"])
    assert "HTTP 500" in str(err.value)
    assert "busy" not in str(err.value)  # the server's text is never quoted: it may echo secrets
    assert "TopSecretKey1" not in str(err.value) + repr(err.value)
    assert len(server.requests) == 3


def test_times_out_and_names_the_failure(server):
    server.hang = True
    embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, timeout=0.2, max_retries=1, backoff=0.001)
    with pytest.raises(EmbedderError, match="after 2 attempts"):
        embedder.embed(["x"])


def test_wrong_dimension_is_an_error(server):
    server.dim = DIM + 1
    with pytest.raises(EmbedderError, match="shape"):
        OpenAICompatibleEmbedder(server.url, "tiny", DIM).embed(["x"])


def test_unreachable_server(server):
    url = server.url
    server.close()
    embedder = OpenAICompatibleEmbedder(url, "tiny", DIM, timeout=1, max_retries=0)
    with pytest.raises(EmbedderError, match="failed after 1 attempts"):
        embedder.embed(["x"])


def test_only_http_urls():
    with pytest.raises(ValueError, match="http"):
        OpenAICompatibleEmbedder("file:///etc", "tiny", DIM)


def test_a_key_echoed_by_the_server_never_reaches_the_error(server):
    server.script = [401]
    embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, api_key="gsk_1234567890abcdefXYZ")
    with pytest.raises(EmbedderError) as err:
        embedder.embed(["x"])
    assert "HTTP 401" in str(err.value)
    assert "gsk_1234567890abcdefXYZ" not in str(err.value) + repr(err.value)


def test_redirects_are_refused_so_the_key_stays_home(server):
    other = FakeServer()
    try:
        server.redirect_to = other.url + "/embeddings"
        embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, api_key="gsk_1234567890abcdefXYZ")
        with pytest.raises(EmbedderError, match="redirect"):
            embedder.embed(["x"])
        assert other.headers == []
    finally:
        other.close()


def test_an_oversized_answer_is_refused(server):
    server.oversize = 9 * 1024 * 1024
    embedder = OpenAICompatibleEmbedder(server.url, "tiny", DIM, max_retries=0, batch_size=1)
    with pytest.raises(EmbedderError, match="more than"):
        embedder.embed(["x"])


def test_credentials_in_base_url_are_refused_redacted():
    with pytest.raises(ValueError, match="api_key") as err:
        OpenAICompatibleEmbedder("http://alice:s3cretPW99@example.invalid/v1", "tiny", DIM)
    assert "s3cretPW99" not in str(err.value)
