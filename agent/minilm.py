"""all-MiniLM-L6-v2 in plain numpy: the packaged weights, no torch at run time.

Why: loading torch and sentence-transformers costs ~5 s and ~400 MB before the first vector, which
alone would break a cold ``cloudops plan`` (≤ 3 s), the tray's idle memory and the bundle size. The
model is a 6-layer BERT; its forward pass is a dozen matrix products per layer, which numpy hands to
the same BLAS. ``tests/test_embeddings.py`` holds it to sentence-transformers' output (cosine ≥
0.99999 on every text) so the two can never drift apart.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
BATCH = 64
BATCH_CHARS = 2000  # ~tokens of text per batch


def encode_workers() -> int:
    """How many threads a bulk encode runs batches on: the cores this process may use, or
    ``CLOUDOPS_EMBED_THREADS``."""
    configured = os.environ.get("CLOUDOPS_EMBED_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4] (|erf(±4)| is 1 to within 2e-8): the rational approximation Eigen and
# XLA use for float32; measured here against float64 erf, at most 4.5e-7 off over [-6, 6]. numpy has no
# erf, and scipy (70 MB in the bundle) was imported for this one function; this is also ~6x faster
# than scipy's float32 erf on a (1024, 1536) activation.
_ERF_P = tuple(np.float32(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                       -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                       -1.60960333262415e-02))
_ERF_Q = tuple(np.float32(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                       -7.37332916720468e-03, -1.42647390514189e-02))


def erf(x: np.ndarray) -> np.ndarray:
    """erf of a float32 array, as a new float32 array (see _ERF_P)."""
    x = np.clip(x, np.float32(-4.0), np.float32(4.0), dtype=np.float32)
    x2 = x * x
    p = np.full_like(x, _ERF_P[0])
    for c in _ERF_P[1:]:
        p *= x2
        p += c
    p *= x
    q = np.full_like(x, _ERF_Q[0])
    for c in _ERF_Q[1:]:
        q *= x2
        q += c
    p /= q
    return np.clip(p, np.float32(-1.0), np.float32(1.0), out=p)  # float32 rounding may step past ±1


class MiniLM:
    """Tokenizer + BERT encoder + mean pooling + L2 normalisation, as sentence-transformers runs it."""

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        # One BLAS thread, always; a bulk encode runs whole batches on one thread per core instead.
        # Measured on 2 cores, 989 sync documents: one thread 20.5 s (20.6 CPU-s); BLAS with two
        # threads 16-19 s for 33-40 CPU-s (these products are small, and OpenBLAS's second thread
        # spins between them); two threads of batches 10 s for 20 CPU-s. A prompt on one thread is
        # also the fast case: a second BLAS thread made 11x384 @ 384x1536 25x slower (7.8 vs 0.3 ms).
        self._blas = ThreadpoolController()
        self._blas.limit(limits=1, user_api="blas")
        self.workers = encode_workers()  # read once: a prompt's encode is on the hot path

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        weights = load_file(str(folder / "model.safetensors"))
        self.embeddings = {name: weights[f"embeddings.{name}"] for name in
                           ("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                            "LayerNorm.weight", "LayerNorm.bias")}
        self.layers = [self._layer(weights, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]

    @staticmethod
    def _layer(w: dict[str, np.ndarray], p: str) -> dict[str, np.ndarray]:
        """One layer's weights, transposed once for ``x @ W`` and Q, K, V fused into one product."""
        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[p + name + ".weight"].T)

        return {
            "qkv": np.ascontiguousarray(np.concatenate([t("attention.self.query"), t("attention.self.key"),
                                                        t("attention.self.value")], axis=1)),
            "qkv_b": np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
            "out": t("attention.output.dense"), "out_b": w[p + "attention.output.dense.bias"],
            "ln1": w[p + "attention.output.LayerNorm.weight"], "ln1_b": w[p + "attention.output.LayerNorm.bias"],
            "up": t("intermediate.dense"), "up_b": w[p + "intermediate.dense.bias"],
            "down": t("output.dense"), "down_b": w[p + "output.dense.bias"],
            "ln2": w[p + "output.LayerNorm.weight"], "ln2_b": w[p + "output.LayerNorm.bias"],
        }

    def _norm(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * weight + bias

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        heads, width = self.heads, self.hidden // self.heads
        e = self.embeddings
        x = e["word_embeddings.weight"][ids] + e["position_embeddings.weight"][:length] + e["token_type_embeddings.weight"][0]
        x = self._norm(x.reshape(batch * length, self.hidden), e["LayerNorm.weight"], e["LayerNorm.bias"])
        # Padded keys get the most negative float, as transformers does, so softmax ignores them.
        key_bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(width))
        for layer in self.layers:
            qkv = x @ layer["qkv"] + layer["qkv_b"]
            # Contiguous (batch, head, token, width) blocks keep numpy's stacked matmul on BLAS.
            q, k, v = (np.ascontiguousarray(part.reshape(batch, length, heads, width).transpose(0, 2, 1, 3))
                       for part in np.split(qkv, 3, axis=-1))
            # In place: the score tensor is the largest array here (batch x heads x tokens²), and every
            # temporary copy of it costs an allocation and a pass over memory.
            scores = np.matmul(q, np.ascontiguousarray(k.transpose(0, 1, 3, 2)))
            scores *= scale
            scores += key_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attended = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * length, self.hidden)
            x = self._norm(attended @ layer["out"] + layer["out_b"] + x, layer["ln1"], layer["ln1_b"])
            h = x @ layer["up"]
            h += layer["up_b"]
            g = erf(h * np.float32(1.0 / np.sqrt(2.0)))  # BERT's erf GELU (not the tanh one): h * (1 + erf(h/√2)) / 2
            g += 1.0
            g *= 0.5
            h *= g
            x = self._norm(h @ layer["down"] + layer["down_b"] + x, layer["ln2"], layer["ln2_b"])
        return x.reshape(batch, length, self.hidden)

    @staticmethod
    def _batches(texts: list[str], order: np.ndarray) -> list[np.ndarray]:
        """Longest first, at most BATCH texts and about BATCH_CHARS characters per batch: long documents
        go in smaller batches so the attention scores (batch x heads x tokens²) stay a few tens of MB."""
        batches, current, chars = [], [], 0
        for i in order:
            size = min(len(texts[i]), 4 * MAX_TOKENS)
            if current and (len(current) >= BATCH or chars + size > BATCH_CHARS):
                batches.append(np.array(current))
                current, chars = [], 0
            current.append(i)
            chars += size
        if current:
            batches.append(np.array(current))
        return batches

    def encode(self, texts: list[str], *, threads: int | None = None) -> np.ndarray:
        """Unit-length float32 rows. Texts are batched longest first so a batch pads little; the
        batches run on ``threads`` threads (default: ``self.workers``), numpy and BLAS release the GIL
        for the heavy part of each step."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = self._batches(texts, order)
        workers = min(threads or self.workers, len(batches))
        if workers <= 1:
            for rows in batches:
                self._encode_batch(texts, rows, out)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minilm") as pool:
                list(pool.map(lambda rows: self._encode_batch(texts, rows, out), batches))
        return out

    def _encode_batch(self, texts: list[str], rows: np.ndarray, out: np.ndarray) -> None:
        """Embed ``texts[rows]`` into ``out[rows]`` (each batch owns its rows, so threads never share one)."""
        encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
        ids = np.array([enc.ids for enc in encodings], dtype=np.int64)
        mask = np.array([enc.attention_mask for enc in encodings], dtype=np.float32)
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
