"""The numpy MiniLM against the reference: sentence-transformers over the same packaged weights.
If the two drift apart (a tokenizer setting, truncation, pooling, a GELU variant), this fails."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import PLAYBOOKS, ROOT

pytestmark = pytest.mark.slow


def _texts() -> list[str]:
    texts = ["Stop pg-instance-main1", "", "a", "¿Dónde está el bucket? données — 東京 region ✓",
             "arn:aws:rds:us-west-2:111111111111:db:pg-instance-main1 " * 80,  # past the 256-token limit
             "env=prod AND app=main", "scale web-asg to 4", "  spaces   and\ttabs\n"]
    for path in sorted(PLAYBOOKS.glob("*.yaml"))[:20]:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts += [str(data.get("description", ""))] + [str(u) for u in data.get("utterances", [])[:3]]
    estate = yaml.safe_load((ROOT / "tests" / "eval" / "estate.yaml").read_text(encoding="utf-8"))
    texts += [yaml.safe_dump(r)[:1500] for r in estate["resources"][:30]]
    return texts


def test_numpy_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from agent.embeddings import model_folder
    from agent.minilm import MiniLM

    texts = _texts()
    ours = MiniLM(model_folder()).encode(texts)
    reference = SentenceTransformer(str(model_folder()), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
    assert ours.shape == reference.shape == (len(texts), 384)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() > 0.99999, [texts[i][:60] for i in np.argsort(cosines)[:3]]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_default_embedder_never_imports_torch():
    code = ("import sys; from agent.embeddings import shared_embedder; v = shared_embedder().encode(['stop the db']);"
            "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,", "384)", "False", "False"]


def test_erf_without_scipy_matches_math_erf():
    """The GELU's erf (agent.minilm.erf, numpy only) against the standard library's double-precision erf."""
    import math

    from agent.minilm import erf

    x = np.concatenate([np.linspace(-8, 8, 400_001), [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    reference = np.array([math.erf(float(v)) for v in x])
    ours = erf(x)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    assert np.abs(ours.astype(np.float64) - reference).max() < 5e-7
    assert ours[-4] == 0.0 and np.all(np.abs(ours) <= 1.0)


def test_a_bulk_encode_on_several_threads_gives_the_rows_one_thread_gives():
    """Batches run on one thread per core (agent.minilm.encode_workers); each batch owns its rows, so
    the vectors are the very ones a single thread computes, in the caller's order."""
    from agent.embeddings import model_folder
    from agent.minilm import MiniLM

    texts = _texts() * 3
    model = MiniLM(model_folder())
    one = model.encode(texts, threads=1)
    assert np.array_equal(model.encode(texts, threads=3), one)
    # Reversed, ties of length fall into other batches (other padding): equal to float rounding.
    assert np.allclose(model.encode(texts[::-1], threads=2), one[::-1], atol=1e-5)
