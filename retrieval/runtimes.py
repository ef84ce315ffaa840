"""Which runtime embeds, and when the model is loaded: OpenVINO int8 by default (PyTorch for a model it cannot
reproduce), loaded once on first use."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Literal

from retrieval.embedding import DEFAULT_MODEL, DEFAULT_MODEL_CACHE, Embedder, SentenceTransformerEmbedder
from retrieval.openvino_embedding import OpenVinoEmbedder, UnsupportedModel

# openvino-int8: about twice PyTorch's speed on a CPU, same model (see openvino_embedding.py); torch: as trained.
Runtime = Literal["openvino-int8", "torch"]
DEFAULT_RUNTIME: Runtime = "openvino-int8"
log = logging.getLogger("toolshed.retrieval")


def load_embedder(model: str = DEFAULT_MODEL, *, runtime: Runtime = DEFAULT_RUNTIME,
                  model_cache: Path = DEFAULT_MODEL_CACHE) -> Embedder:
    """The model on the runtime asked for; PyTorch for a model the int8 runtime cannot reproduce."""
    if runtime == "openvino-int8":
        try:
            return OpenVinoEmbedder(model, model_cache)
        except UnsupportedModel as problem:
            log.warning("embedding with PyTorch instead of OpenVINO int8: %s", problem)
    return SentenceTransformerEmbedder(model)


class LazyEmbedder:
    """An embedding model loaded on first use (a few seconds; the int8 model's first build takes ~30 s), once, by
    whichever thread asks first."""

    def __init__(self, model: str, runtime: Runtime, model_cache: Path, loaded: Embedder | None = None) -> None:
        self._model, self._runtime, self._model_cache = model, runtime, model_cache
        self._embedder = loaded
        self._lock = threading.Lock()

    def get(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = load_embedder(self._model, runtime=self._runtime, model_cache=self._model_cache)
            return self._embedder

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    @property
    def name(self) -> str:
        """The loaded model's name, or the configured one before it is loaded."""
        return self._embedder.name if self._embedder is not None else self._model
