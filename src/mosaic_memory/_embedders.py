"""Embedders: the `Embedder` protocol and `HashingEmbedder`, the offline lexical default."""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors: ``embed(texts)`` returns a float32 array of shape ``(len(texts), dim)``."""

    @property
    def name(self) -> str:
        """A stable name; the store records it, and vectors of different names never mix."""
        ...

    @property
    def dim(self) -> int:
        """The length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text."""
        ...


class HashingEmbedder:
    """Deterministic, offline, model-free: feature hashing of words and character trigrams.

    It is *lexical*: texts that share words (or word pieces, so ``answer`` ~ ``answers``)
    come out close; synonyms and paraphrases with no shared words do not. The same text
    always gives the same vector, on every machine and Python version (crc32, no salt).
    """

    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ValueError(f"dim must be at least 8, got {dim}")
        self._dim = dim
        self._feature = functools.lru_cache(maxsize=200_000)(self._feature_uncached)
        self._word = functools.lru_cache(maxsize=200_000)(self._word_features)

    @property
    def name(self) -> str:
        return "hashing-v1"

    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim})"

    def _feature_uncached(self, feature: str) -> tuple[int, float]:
        digest = zlib.crc32(feature.encode())
        return digest % self._dim, 1.0 if digest & 0x80000000 else -1.0

    def _word_features(self, word: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        features = [self._feature("w:" + word)]
        padded = f"<{word}>"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        # Trigrams share one unit of weight, so long words do not drown short ones.
        scale = 0.7 / max(1, len(grams)) ** 0.5
        for gram in grams:
            column, sign = self._feature("g:" + gram)
            features.append((column, sign * scale))
        columns, values = zip(*features, strict=True)
        return columns, values

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        rows: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        word_features = self._word
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                word_columns, word_values = word_features(word)
                rows += [row] * len(word_columns)
                columns += word_columns
                values += word_values
        if rows:
            # bincount sums repeated (row, column) cells like np.add.at, an order of magnitude faster.
            cells = np.asarray(rows, dtype=np.int64) * self._dim + np.asarray(columns, dtype=np.int64)
            sums = np.bincount(cells, weights=np.asarray(values, dtype=np.float64), minlength=out.size)
            out = sums.astype(np.float32).reshape(out.shape)
        return normalize_rows(out)


def normalize_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (all-zero rows stay zero), as a contiguous float32 array."""
    matrix = np.array(matrix, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix
