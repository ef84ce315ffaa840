"""The int8 OpenVINO runtime against the model as trained (PyTorch): same word pieces, near-identical vectors, one
build reused, and PyTorch for a model it cannot reproduce."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedding import DEFAULT_MODEL_CACHE, Embedder, SentenceTransformerEmbedder, resolve_model
from retrieval.openvino_embedding import OpenVinoEmbedder, calibration_texts
from retrieval.runtimes import load_embedder
from tests.datasets import scifact_abstracts

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def trained() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_the_default_runtime_is_int8_and_agrees_with_pytorch(embedder: Embedder,
                                                             trained: SentenceTransformerEmbedder) -> None:
    assert isinstance(embedder, OpenVinoEmbedder)
    prose = scifact_abstracts(0, 20).split("\n\n")
    texts = [*prose, "short", "Wer reitet so spät durch Nacht und Wind?",
             "x = np.arange(10) ** 2", "", "café ☕ naïve 東京"]
    fast, exact = embedder.encode(texts), trained.encode(texts)
    assert fast.shape == exact.shape == (len(texts), trained.dimension)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    cosine = (fast * exact).sum(axis=1)
    assert cosine[:len(prose)].min() > 0.98 and cosine[:len(prose)].mean() > 0.99, cosine
    # Odd inputs drift a little more. An empty text is only [CLS][SEP], never a chunk or a query, and how far int8
    # moves it depends on the CPU's int8 kernels: 0.939 on an AMD EPYC (AVX-512 VNNI), over 0.95 elsewhere.
    empty = texts.index("")
    assert np.delete(cosine, empty).min() > 0.95 and cosine[empty] > 0.9, cosine
    # The nearest neighbours are the same: each text's own vector is its best match across runtimes.
    assert (np.argmax(fast @ exact.T, axis=1) == np.arange(len(texts))).all()
    assert (embedder.window, embedder.dimension) == (trained.window, trained.dimension)
    for text in texts:
        assert embedder.token_spans(text) == trained.token_spans(text)


def test_a_single_text_and_a_batch_give_the_same_vector(embedder: Embedder) -> None:
    texts = scifact_abstracts(0, 10).split("\n\n")
    batch = embedder.encode(texts)
    alone = np.stack([embedder.encode([text])[0] for text in texts[:5]])
    # Padding to a batch's longest text moves int8 rounding a little, never the meaning.
    assert (batch[:5] * alone).sum(axis=1).min() > 0.995
    assert embedder.encode([]).shape == (0, embedder.dimension)


def test_the_int8_model_is_built_once_and_then_read(embedder: Embedder) -> None:
    built = [p for p in DEFAULT_MODEL_CACHE.iterdir() if (p / "meta.json").exists()]
    assert built, "the session's embedder builds into the default cache"
    stamps = {p: (p / "openvino_model.bin").stat().st_mtime_ns for p in built}
    again = OpenVinoEmbedder("all-MiniLM-L6-v2", DEFAULT_MODEL_CACHE)
    assert {p: (p / "openvino_model.bin").stat().st_mtime_ns for p in built} == stamps
    assert np.allclose(again.encode(["the same model"]), embedder.encode(["the same model"]), atol=1e-5)
    assert not [p for p in DEFAULT_MODEL_CACHE.iterdir() if p.name.startswith(".")], "no staging folder left"


def test_calibration_is_english_prose_from_pythons_own_docs() -> None:
    texts = calibration_texts()
    assert len(texts) == 300 and texts == calibration_texts()
    assert all(len(t) > 200 and "\n" not in t for t in texts)


def test_a_model_the_int8_runtime_cannot_reproduce_runs_on_pytorch(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A CLS-pooled copy of the model: mean pooling would give wrong vectors, so PyTorch runs it."""
    model = tmp_path / "cls-pooled"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2"), model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    if "pooling_mode" in config:
        config["pooling_mode"] = "cls"
    pooling.write_text(json.dumps(config))
    loaded = load_embedder(str(model), model_cache=tmp_path / "cache")
    assert isinstance(loaded, SentenceTransformerEmbedder)
    assert "PyTorch instead of OpenVINO" in caplog.text
    assert not list((tmp_path / "cache").glob("*/meta.json"))
