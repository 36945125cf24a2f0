"""Item index: recall against exact search and single-thread queries/s at the worker's k, on synthetic 384-d items.

Real text embeddings cluster (by topic, genre); uniform random vectors would be an unrealistically
hard case for any graph index, so the items are drawn around cluster centres.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.index import ItemIndex


def clustered_unit_vectors(n: int, dim: int, clusters: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, clusters, size=n)] + rng.normal(scale=spread, size=(n, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Indices of the k most cosine-similar items per query (rows are unit vectors)."""
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], chunk):
        sims = queries[start : start + chunk] @ items.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start : start + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def run(
    n: int = 100_000, dim: int = 384, n_queries: int = 5_000, k: int = 50,
    ef_values: Sequence[int] = (50, 64, 96, 128, 192), seed: int = 0, repeats: int = 3, progress: Any = None,
) -> dict[str, Any]:
    """Build the project's ItemIndex (its default M and ef_construction) and sweep ef_search, querying
    `k` neighbours as the worker does (`CoreParams.content_candidates`).

    recall@10 is the share of the exact 10 nearest found among the first 10 returned; recall@k the
    same over all k. Queries/s is the median of `repeats` timings of `ItemIndex.query` alone (what the
    worker calls, labels turned into item ids included); recall is scored outside the timed part.
    """
    rng = np.random.default_rng(seed)
    data = clustered_unit_vectors(n + n_queries, dim, clusters=max(10, n // 100), spread=0.06, rng=rng)
    items, queries = data[:n], data[n:]
    index = ItemIndex(dim, capacity=n)
    started = time.perf_counter()
    ids = [f"i{j}" for j in range(n)]
    for start in range(0, n, 10_000):
        index.add_new(ids[start : start + 10_000], items[start : start + 10_000])
        if progress:
            progress(min(10_000, n - start))
    build_s = time.perf_counter() - started
    truth = exact_top_k(items, queries, k).tolist()
    index.set_threads(1)
    sweep = []
    for ef in ef_values:
        index.ef_search = ef
        timings = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = _query_in_batches(index, queries, k)
            timings.append(time.perf_counter() - t0)
        found = [[int(item_id[1:]) for item_id, _ in row] for row in rows]
        recall_10 = float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))
        recall_k = float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))
        qps = sorted(n_queries / t for t in timings)
        sweep.append({"ef_search": ef, "k": k, "recall_at_10": round(recall_10, 4), "recall_at_k": round(recall_k, 4),
                      "queries_per_s": round(statistics.median(qps), 1),
                      "queries_per_s_range": [round(qps[0], 1), round(qps[-1], 1)]})
    return {"items": n, "dim": dim, "queries": n_queries, "k": k, "repeats": repeats, "build_s": round(build_s, 1),
            "sweep": sweep}


def _query_in_batches(index: ItemIndex, queries: np.ndarray, k: int, batch: int = 100) -> list[list[tuple[str, float]]]:
    """Batches of 100, as the worker queries: one call per batch of users."""
    out: list[list[tuple[str, float]]] = []
    for start in range(0, queries.shape[0], batch):
        out.extend(index.query(queries[start : start + batch], k))
    return out
