"""The embedding model run by OpenVINO with int8 weights and activations: on a CPU with VNNI about twice
PyTorch's throughput, with vectors at a cosine of ~0.995 to PyTorch's (bench/ingestion.py measures both, and the
SciFact nDCG of each).

The int8 model is built once from the model's own weights: converted to OpenVINO, then quantised by NNCF on prose
from Python's own documentation, so the result is the same on every machine and does not depend on what a user
happens to index first. It is kept in a cache folder keyed by the weights and the tool versions; later loads read
it without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedding import resolve_model, spans_tokenizer, token_spans, trained_model

log = logging.getLogger("toolshed.retrieval")
# Bumped whenever the build below changes what it produces, so older cached models are not reused.
_RECIPE = "int8-static-v1"
_CALIBRATION_TEXTS = 300
_CALIBRATION_BATCH = 8


class UnsupportedModel(Exception):
    """The model is not a mean-pooled transformer in a local folder, which is all this runtime reproduces."""


class OpenVinoEmbedder:
    def __init__(self, model: str, cache_dir: Path, *, batch_size: int = 16) -> None:
        import openvino as ov
        from transformers import AutoTokenizer

        source = Path(resolve_model(model))
        if not source.is_dir():
            raise UnsupportedModel(f"{model} is not a model folder on this machine")
        built = cache_dir / f"{source.parent.name}-{_cache_key(source, ov.__version__)}"
        if not (built / "meta.json").exists():
            _build(source, built)
        meta = json.loads((built / "meta.json").read_text())
        self.name = model
        self.dimension: int = meta["dimension"]
        self._max_length: int = meta["max_seq_length"]
        self.window: int = self._max_length - 2  # room for the [CLS]/[SEP] added around every input
        self._tokenizer = AutoTokenizer.from_pretrained(built)
        self._spans_tokenizer = spans_tokenizer(self._tokenizer)
        compiled = ov.Core().compile_model(built / "openvino_model.xml", "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
        self._inputs = {port.any_name for port in compiled.inputs}
        self._queue = ov.AsyncInferQueue(compiled)
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one encode at a time owns the queue and its callback

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return token_spans(self._spans_tokenizer, text)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)

        def pooled(request: Any, done: tuple[list[int], np.ndarray]) -> None:
            rows, mask = done
            hidden = request.get_output_tensor(0).data
            mean = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
            vectors[rows] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

        # Longest first, so each batch pads its texts to about the same length. Requests run on both streams
        # while the next batch is tokenised: ~20% more than one request at a time on both cores.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._lock:
            self._queue.set_callback(pooled)
            for start in range(0, len(order), self._batch_size):
                rows = order[start:start + self._batch_size]
                batch = self._tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                        max_length=self._max_length, return_tensors="np")
                mask = batch["attention_mask"][..., None].astype(np.float32)
                self._queue.start_async({name: batch[name] for name in self._inputs}, (rows, mask))
            self._queue.wait_all()
        return vectors


def _cache_key(source: Path, openvino_version: str) -> str:
    """The weights' names and sizes, the tool versions and the recipe: a new model or tool gets a new build."""
    digest = hashlib.sha256(f"{_RECIPE}|{openvino_version}".encode())
    for path in sorted(source.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(source)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _build(source: Path, target: Path) -> None:
    """Convert and quantise the model into `target`, built aside and renamed so a reader never sees half of it
    (two processes building at once both succeed; one folder wins)."""
    import nncf
    import openvino as ov
    import torch

    model = trained_model(str(source))
    modules: list[Any] = list(model)
    names = [type(m).__name__ for m in modules]
    # By class name: the modules' import path moved in sentence-transformers 5.
    if not (names[:2] == ["Transformer", "Pooling"] and all(n == "Normalize" for n in names[2:])
            and modules[1].get_config_dict().get("pooling_mode", "mean") == "mean"
            and modules[1].get_config_dict().get("pooling_mode_mean_tokens", True)):
        raise UnsupportedModel(f"{source} is not a mean-pooled transformer: {names}")
    log.info("building the int8 OpenVINO embedding model from %s (once; about half a minute)", source)
    tokenizer = model.tokenizer
    transformer = modules[0].auto_model.eval()
    example = tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    with torch.no_grad():
        converted = ov.convert_model(transformer, example_input=dict(example))
    inputs = {port.any_name for port in converted.inputs}
    texts = calibration_texts()
    samples: list[dict[str, Any]] = []
    for start in range(0, len(texts), _CALIBRATION_BATCH):
        batch = tokenizer(texts[start:start + _CALIBRATION_BATCH], padding=True, truncation=True,
                          max_length=model.max_seq_length, return_tensors="np")
        samples.append({name: batch[name] for name in inputs})
    quantised = nncf.quantize(converted, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(samples))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        ov.save_model(quantised, staging / "openvino_model.xml")
        tokenizer.save_pretrained(staging)
        (staging / "meta.json").write_text(json.dumps({
            "source": str(source), "recipe": _RECIPE, "dimension": model.get_sentence_embedding_dimension(),
            "max_seq_length": model.max_seq_length}))
        staging.rename(target)
    except OSError:
        if not (target / "meta.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def calibration_texts() -> list[str]:
    """English prose paragraphs from Python's own documentation (in every Python install, so the same
    everywhere): the activation ranges the int8 model is calibrated on."""
    from pydoc_data.topics import topics

    paragraphs = (" ".join(p.split()) for text in topics.values() for p in text.split("\n\n")
                  if not p.startswith(" "))
    prose = [p for p in paragraphs
             if len(p) > 200 and sum(c.isalpha() or c == " " for c in p) / len(p) > 0.9]
    return prose[:_CALIBRATION_TEXTS]
