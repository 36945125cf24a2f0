"""Fine-tuning the item encoder on behaviour: items people consume close together end up close in text space.

The base encoder knows that "Alien" and "Aliens" are about aliens, not that the people who watch
one watch the other. Pairs of items that users consumed within a few steps of each other (the
signal co-visitation learns from) teach it that: each pair's two texts are pulled together while
the other items of the same batch are pushed apart (sentence-transformers'
MultipleNegativesRankingLoss, in-batch negatives). New items have no behaviour, only text, so
this is how behaviour reaches them.

Everything here is synchronous and in-process; `streams/lab/encoder_train.py` is the command.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import ENCODER_INFO_FILE
from schemas.records import Event, EventType

# Events that say the user wanted the item: the ones co-visitation counts strongly.
POSITIVE = frozenset({EventType.CLICK, EventType.PURCHASE})


@dataclass(frozen=True)
class PairOptions:
    """Which co-consumed pairs become training examples."""

    window: int = 5  # an item pairs with the user's previous `window` positive items
    min_count: int = 2  # a pair seen by fewer users is noise
    max_per_item: int = 20  # so a few blockbusters do not fill the training set
    max_pairs: int = 20_000


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 2e-5
    warmup: float = 0.1  # share of the steps with a linearly rising learning rate
    scale: float = 20.0  # MultipleNegativesRankingLoss's similarity scale
    # Weight of a term that keeps each text's vector near the base model's (squared distance): the
    # pairs move toward each other without pulling the whole catalog together. 0: none.
    anchor: float = 0.0
    seed: int = 0
    threads: int = 2


@dataclass
class TrainResult:
    pairs: int
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def co_consumed(events: Iterable[Event], window: int, until_ts: int | None = None) -> Counter[tuple[str, str]]:
    """How many times two items were consumed within `window` positive events of one user (unordered)."""
    recent: dict[str, deque[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for event in events:
        if until_ts is not None and event.ts >= until_ts:
            break
        if event.type not in POSITIVE or event.item_id is None:
            continue
        history = recent.setdefault(event.user_id, deque(maxlen=window))
        for other in set(history):
            if other != event.item_id:
                counts[(other, event.item_id) if other < event.item_id else (event.item_id, other)] += 1
        history.append(event.item_id)
    return counts


def select_pairs(counts: Counter[tuple[str, str]], texts: Mapping[str, str], options: PairOptions
                 ) -> list[tuple[str, str]]:
    """The strongest pairs whose items both have text, at most `max_per_item` for any one item."""
    used: Counter[str] = Counter()
    chosen: list[tuple[str, str]] = []
    for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < options.min_count or len(chosen) >= options.max_pairs:
            break
        if a not in texts or b not in texts or used[a] >= options.max_per_item or used[b] >= options.max_per_item:
            continue
        used[a] += 1
        used[b] += 1
        chosen.append((a, b))
    return chosen


def batches_without_repeats(pairs: Sequence[tuple[str, str]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches in which no item appears twice: a repeated item would be its own negative."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pending = order
    while pending:
        batch: list[int] = []
        items: set[str] = set()
        deferred: list[int] = []
        for i in pending:
            a, b = pairs[i]
            if len(batch) < batch_size and a not in items and b not in items:
                batch.append(i)
                items.update((a, b))
            else:
                deferred.append(i)
        batches.append(batch)
        pending = deferred
    return batches


def fine_tune(
    base: Path, pairs: Sequence[tuple[str, str]], texts: Mapping[str, str], options: TrainOptions,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[Any, TrainResult]:
    """Fine-tune the sentence-transformers model in `base` on `pairs`; returns the model and its loss curve.

    `on_step(step, steps, loss)` is called after every step (a progress bar knows the total from the first)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import cos_sim

    if not pairs:
        raise ValueError("no training pairs: the data before the cut-off has no item consumed twice by nearby users")
    torch.manual_seed(options.seed)
    torch.set_num_threads(max(1, options.threads))
    rng = random.Random(options.seed)
    model = SentenceTransformer(str(base), device="cpu")
    reference = _base_vectors(model, {t for pair in pairs for t in pair}, texts) if options.anchor > 0 else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    plan = [batch for _ in range(options.epochs) for batch in batches_without_repeats(pairs, options.batch_size, rng)]
    plan = [batch for batch in plan if len(batch) > 1]  # a batch of one has no negative
    warm = max(1, int(len(plan) * options.warmup))
    steps = len(plan)

    def rate(step: int) -> float:  # linear warm-up, then linear decay to zero
        return (step + 1) / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    result = TrainResult(pairs=len(pairs), steps=len(plan), seconds=0.0)
    started = time.perf_counter()
    model.train()
    for step, batch in enumerate(plan):
        left = [pairs[i][0] for i in batch]
        right = [pairs[i][1] for i in batch]
        a = model(model.tokenize([texts[i] for i in left]))["sentence_embedding"]
        b = model(model.tokenize([texts[i] for i in right]))["sentence_embedding"]
        # MultipleNegativesRankingLoss: each left text must pick its own right text among the batch's.
        loss = torch.nn.functional.cross_entropy(cos_sim(a, b) * options.scale, torch.arange(len(batch)))
        if options.anchor > 0:
            kept = torch.cat([a, b]) - torch.stack([reference[i] for i in left + right])
            loss = loss + options.anchor * kept.pow(2).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        result.losses.append(round(value, 5))
        if on_step is not None:
            on_step(step, steps, value)
    model.eval()
    result.seconds = round(time.perf_counter() - started, 1)
    return model, result


def _base_vectors(model: Any, items: set[str], texts: Mapping[str, str]) -> dict[str, Any]:
    """The untrained model's vector of every item a pair names (what the anchor term holds them near)."""
    import torch

    ids = sorted(items)
    with torch.no_grad():
        vectors = model.encode([texts[i] for i in ids], batch_size=128, convert_to_tensor=True, show_progress_bar=False)
    return dict(zip(ids, vectors))


def blend_with_base(model: Any, base: Path, base_weight: float) -> Any:
    """Move the fine-tuned weights back toward the base model's: `base_weight` of each base weight plus
    the rest of the tuned one (weight-space ensembling, as in WiSE-FT).

    A fine-tune on a few thousand pairs of popular items pulls the whole catalog together: on
    ml-latest-small, the mean cosine of two random items went from 0.44 to 0.71. Ranking weights
    chosen for the base space then under- or over-weight content. A blend trades some of what the
    pairs taught for some of the base space's spread; on the first 30% of ml-latest-small, half and
    half did worse than the plain fine-tune (EVALUATION.md), so it is off by default."""
    if not 0.0 <= base_weight < 1.0:
        raise ValueError(f"base_weight must be in [0, 1), got {base_weight}")
    if base_weight == 0.0:
        return model
    import torch
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(base), device="cpu").state_dict()
    tuned = model.state_dict()
    with torch.no_grad():
        for name, value in tuned.items():
            if value.is_floating_point():
                value.mul_(1.0 - base_weight).add_(reference[name], alpha=base_weight)
    return model


def mean_cosine(vectors: np.ndarray) -> float:
    """The mean cosine of two different rows of `vectors` (unit rows), exactly and in one pass: the
    sum over all ordered pairs i != j of v_i . v_j is |sum of v|^2 - n."""
    n = len(vectors)
    if n < 2:
        raise ValueError("the mean cosine of two items needs at least two vectors")
    total = vectors.astype(np.float64).sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def _shifted(vectors: np.ndarray, shift: np.ndarray) -> np.ndarray:
    moved = vectors.astype(np.float64) - shift
    return moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)


def spread_shift(vectors: np.ndarray, target: float, iterations: int = 40) -> np.ndarray:
    """The vector `alpha x mean(vectors)` whose removal (then unit length again) leaves the rows with
    mean cosine `target`; zeros when they are already at least that spread out.

    Why: ranking weighs raw content cosines with weights chosen for the base encoder's space, and a
    fine-tune on pairs pulls the whole catalog together (ml-latest-small: mean cosine 0.44 -> 0.71),
    so the same weights give content, and above all `w_fresh`, more pull than they were chosen for.
    Removing part of the common direction gives the tuned space the base one's spread back while
    keeping what the pairs taught about which items are near which. The mean cosine falls as alpha
    grows, so alpha is found by bisection on [0, 1]."""
    mean = vectors.astype(np.float64).mean(axis=0)
    if mean_cosine(vectors) <= target:
        return np.zeros_like(mean)
    low, high = 0.0, 1.0
    for _ in range(iterations):
        mid = (low + high) / 2
        if mean_cosine(_shifted(vectors, mid * mean)) > target:
            low = mid
        else:
            high = mid
    return high * mean


def match_spread(model: Any, base: Path, texts: Sequence[str], sample: int = 2_000, seed: int = 0) -> tuple[Any, dict[str, float]]:
    """Append to `model` a fixed shift and a re-normalisation (sentence-transformers' own Dense and
    Normalize modules, so the folder loads anywhere the base model does) that give the catalog's texts
    the base model's mean cosine. Both means come from the same seeded sample of `texts`.

    Returns the model and what was measured: the mean cosine of the base model, of the tuned one
    before the shift and after it, and the shift's length."""
    from sentence_transformers import SentenceTransformer

    chosen = list(texts) if len(texts) <= sample else random.Random(seed).sample(list(texts), sample)
    reference = SentenceTransformer(str(base), device="cpu")
    target = mean_cosine(reference.encode(chosen, batch_size=128, normalize_embeddings=True, show_progress_bar=False))
    tuned = model.encode(chosen, batch_size=128, normalize_embeddings=True, show_progress_bar=False)
    shift = spread_shift(tuned, target)
    append_shift(model, shift)
    after = mean_cosine(_shifted(tuned, shift))
    return model, {"base_mean_cosine": round(target, 4), "tuned_mean_cosine": round(mean_cosine(tuned), 4),
                   "matched_mean_cosine": round(after, 4), "shift_norm": round(float(np.linalg.norm(shift)), 4)}


def append_shift(model: Any, shift: np.ndarray) -> Any:
    """Append to a sentence-transformers model the removal of `shift` from every vector and a re-normalisation
    (its own Dense and Normalize modules: saved and loaded with the model like any other layer)."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    dim = len(shift)
    model.append(Dense(dim, dim, bias=True, activation_function=torch.nn.Identity(),
                       init_weight=torch.eye(dim), init_bias=torch.tensor(-shift, dtype=torch.float32)))
    model.append(Normalize())
    return model


def content_hash(folder: Path) -> str:
    """A hash of every file of a saved model but our own metadata: equal weights, equal version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ENCODER_INFO_FILE):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_tuned(model: Any, out: Path, base_name: str, info: Mapping[str, Any]) -> Path:
    """Write the model to `out/<version>` (a temp folder, then a rename) with its metadata; returns the folder.

    The version is `<base name>-ft-<12 hex digits of the weights' hash>`: equal weights give the same
    folder, and a worker can tell two encoders apart by name alone.
    """
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    version = f"{base_name}-ft-{content_hash(tmp)[:12]}"
    doc = {"version": version, "base_model": base_name, **info}
    (tmp / ENCODER_INFO_FILE).write_text(json.dumps(doc, indent=2))
    final = out / version
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def describe(result: TrainResult, pair_options: PairOptions, train_options: TrainOptions) -> dict[str, Any]:
    """What the metadata file records of a training run (with the loss curve, one value per step)."""
    return {"pairs": result.pairs, "steps": result.steps, "seconds": result.seconds,
            "pair_options": asdict(pair_options), "train_options": asdict(train_options),
            "final_loss": round(sum(result.losses[-20:]) / max(1, len(result.losses[-20:])), 5)
            if result.losses else math.nan,
            "loss_curve": result.losses}
