"""What a team would deploy instead of a streaming model: models retrained at fixed points of the stream.

Each is refitted on every event seen so far when the stream passes a fixed point (every 5% of the
events for ALS, every 10% for the sequence model) and serves from its latest fit in between; the
fit runs inside `learn`, so the harness's time per event includes training, amortised. Until the
first fit they serve recent popularity, as a deployment would before its first model exists.
Users and their newest items are read at request time (ALS folds the user in from their items,
the sequence model encodes their current sequence), so a model is stale only in what it learned.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.evaluation.baselines import _Dense
from models.popularity import RecentPopularity
from schemas.records import Event

if TYPE_CHECKING:  # torch loads only when a sequence model is fitted
    import torch

    from models.evaluation.sasrec_net import SASRecNet


class FitSchedule:
    """The event counts at which to refit: every `every` of a stream of `total` events."""

    def __init__(self, total: int, every: float) -> None:
        if not 0 < every <= 1:
            raise ValueError(f"refit interval must be a fraction in (0, 1], got {every}")
        step = max(1, math.ceil(total * every))
        self.points = set(range(step, total + 1, step))

    def due(self, seen: int) -> bool:
        return seen in self.points


class _Retrained(_Dense):
    """Interaction log, fit schedule and popularity fallback shared by the retrained models."""

    def __init__(self, item_ids: Sequence[str], total_events: int, every: float, label: str, seed: int) -> None:
        super().__init__(item_ids)
        self.name = f"{label} (retrained every {every:.0%})"
        self._seed = seed
        self.schedule = FitSchedule(total_events, every)
        self.fits = 0
        self.users: dict[str, list[int]] = {}  # each user's item rows, oldest first
        self._user_rows: list[int] = []  # the log: user index and item row per event
        self._item_rows: list[int] = []
        self._user_index: dict[str, int] = {}
        self._seen = 0
        self._fallback = RecentPopularity(2_000)

    def learn(self, event: Event, seen: set[str]) -> None:
        self._seen += 1
        r = self.row.get(event.item_id or "")
        if r is not None:
            self.users.setdefault(event.user_id, []).append(r)
            self._user_rows.append(self._user_index.setdefault(event.user_id, len(self._user_index)))
            self._item_rows.append(r)
            self._fallback.observe(event.item_id or "")
        if self.schedule.due(self._seen) and self._item_rows:
            self._fit()
            self.fits += 1

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        history = self.users.get(user_id)
        if not self.fits or not history:
            return [item for item, _ in self._fallback.top(k, exclude=exclude)]
        return self._top(self._scores(history), k, exclude)

    def _fit(self) -> None:
        raise NotImplementedError

    def _scores(self, history: list[int]) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class ALSConfig:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0  # confidence of an observed interaction: 1 + alpha
    iterations: int = 15
    every: float = 0.05


class RetrainedALS(_Retrained):
    """Implicit-feedback ALS (the `implicit` library), refitted on all past events every 5% of the stream.

    A user's vector is recomputed at request time from their current items against the latest item
    factors (the fold-in `implicit` does with `recalculate_user`), so new users and new events of
    known users count at once; new items wait for the next fit.
    """

    key = "als_retrained"

    def __init__(self, item_ids: Sequence[str], total_events: int, config: ALSConfig = ALSConfig(),
                 seed: int = 0) -> None:
        super().__init__(item_ids, total_events, config.every, "ALS", seed)
        self.config = config
        self._model = None

    def _fit(self) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
        from threadpoolctl import threadpool_limits

        c = self.config
        users = len(self._user_index)
        data = np.ones(len(self._item_rows), dtype=np.float32)
        matrix = csr_matrix((data, (self._user_rows, self._item_rows)), shape=(users, len(self.ids)))
        matrix.sum_duplicates()
        matrix.data[:] = c.alpha  # implicit's confidence is 1 + value
        # implicit parallelises its own loop (one thread here); a BLAS pool underneath would only
        # contend, so it is limited to one thread and implicit's warning about it is moot.
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            model = AlternatingLeastSquares(factors=c.factors, regularization=c.regularization,
                                            iterations=c.iterations, random_state=self._seed,
                                            calculate_training_loss=False, num_threads=1)
            model.fit(matrix, show_progress=False)
        self._model = model

    def _scores(self, history: list[int]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        assert self._model is not None
        rows = np.unique(np.asarray(history, dtype=np.int64))
        user_items = csr_matrix((np.full(len(rows), self.config.alpha, dtype=np.float32),
                                 (np.zeros(len(rows), dtype=np.int64), rows)), shape=(1, len(self.ids)))
        vector = self._model.recalculate_user(0, user_items)
        return self._model.item_factors @ np.asarray(vector, dtype=np.float32).ravel()


@dataclass(frozen=True)
class SASRecConfig:
    max_len: int = 50  # the user's last items the model attends over
    dim: int = 64
    layers: int = 1
    heads: int = 1
    dropout: float = 0.2
    epochs: int = 4  # passes over all past events per refit
    batch: int = 32  # windows per step
    lr: float = 2e-2
    every: float = 0.10
    warm_start: bool = False  # continue from the previous fit's weights instead of refitting from scratch
    threads: int = 1


class RetrainedSASRec(_Retrained):
    """A SASRec-style sequential transformer, refitted on all past events every 10% of the stream.

    Causal self-attention over the user's last `max_len` items (learned positions, tied item
    embeddings), trained to predict every next item with cross-entropy over the whole catalog.
    Each refit trains a new network for `epochs` passes over every user's history, cut into
    windows of `max_len` + 1. It serves by encoding the user's current sequence, so it follows a
    user's newest items between fits.
    """

    key = "sasrec_retrained"

    def __init__(self, item_ids: Sequence[str], total_events: int, config: SASRecConfig = SASRecConfig(),
                 seed: int = 0) -> None:
        super().__init__(item_ids, total_events, config.every, "SASRec", seed)
        self.config = config
        self._net: SASRecNet | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self.losses: list[float] = []  # mean training loss of each refit's last epoch

    def _fit(self) -> None:
        import torch

        from models.evaluation.sasrec_net import SASRecNet

        c = self.config
        torch.set_num_threads(c.threads)
        if self._net is None or self._optimizer is None or not c.warm_start:
            torch.manual_seed(self._seed + self.fits)
            self._net = SASRecNet(len(self.ids), c.max_len, c.dim, c.layers, c.heads, c.dropout)
            self._optimizer = torch.optim.Adam(self._net.parameters(), lr=c.lr)
        windows = torch.from_numpy(self._windows())
        generator = torch.Generator().manual_seed(self._seed + self.fits)
        net, optimizer = self._net, self._optimizer
        net.train()
        for _ in range(c.epochs):
            total, batches = 0.0, 0
            for batch in torch.randperm(len(windows), generator=generator).split(c.batch):
                rows = windows[batch]
                inputs, targets = rows[:, :-1], rows[:, 1:]
                logits = net.logits(net(inputs))
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                         targets.reshape(-1) - 1, ignore_index=-1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
        net.eval()
        self.losses.append(total / max(batches, 1))

    def _windows(self) -> np.ndarray:
        """Every user's items (row + 1; 0 pads on the right) cut into windows of max_len + 1, newest last."""
        width = self.config.max_len + 1
        out: list[np.ndarray] = []
        for history in self.users.values():
            seq = np.asarray(history, dtype=np.int64) + 1
            for end in range(len(seq), 1, -(width - 1)):
                chunk = seq[max(0, end - width):end]
                out.append(np.pad(chunk, (0, width - len(chunk))))
        return np.stack(out) if out else np.zeros((0, width), dtype=np.int64)

    def _scores(self, history: list[int]) -> np.ndarray:
        import torch

        assert self._net is not None
        seq = torch.as_tensor(np.asarray(history[-self.config.max_len:], dtype=np.int64) + 1)[None, :]
        with torch.inference_mode():
            hidden = self._net(seq)[0, -1]
            return self._net.logits(hidden).numpy()

