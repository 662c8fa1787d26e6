"""HashingEmbedder: deterministic, normalised, lexical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mosaic_memory import Embedder, HashingEmbedder

SRC = Path(__file__).resolve().parents[2] / "src"


def test_shape_dtype_and_unit_rows():
    embedder = HashingEmbedder(dim=64)
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed(["one two", "three", ""])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-6)
    assert not vectors[2].any()
    with pytest.raises(TypeError):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_same_text_same_vector_in_another_process():
    here = HashingEmbedder().embed(["Prefers short answers"])[0]
    code = (
        "import sys; from mosaic_memory import HashingEmbedder; "
        "sys.stdout.write(HashingEmbedder().embed(['Prefers short answers'])[0].tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "123"},
    )
    assert bytes.fromhex(out.stdout) == here.tobytes()


def test_it_is_lexical_shared_words_and_word_forms_are_close():
    embedder = HashingEmbedder()
    a, b, c, d = embedder.embed(
        ["prefers short answers", "short answer preferred", "enjoys mountain hiking", "automobile"]
    )
    assert float(a @ b) > 0.4
    assert float(a @ b) > float(a @ c) + 0.3
    # Lexical: a synonym with no shared letters is not close.
    assert abs(float(embedder.embed(["car"])[0] @ d)) < 0.3
