"""Python's cyclic garbage collector, kept from stalling the event loop.

A full collection (generation 2) walks every container object in the process. A worker holds about
half a million of them once torch, transformers and Faust are imported, and one full collection
took ~0.3 s here: a stall of everything on the loop, at moments nobody chooses (after enough
allocations). `gc.freeze()` moves every object alive now to a permanent generation that collections
skip; they still die by reference counting, only cycles among them are never collected (there are
none worth having in modules, the model, the catalog or the restored co-visitation).

The worker freezes before Faust starts (the imports), as it replays co-visits, and once it is
first ready (the catalog index, co-visitation and tables it restored). What it allocates after
that is collected as usual, and is small next to what was frozen.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

# Container objects allocated (net) before the youngest generation is collected; Python's default is
# 700. A batch allocates tens of thousands, nearly all freed by reference counting, so at 700 the
# collector ran dozens of times a batch, and its older generations often enough to stall the loop.
GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 10


def collect_rarely() -> None:
    """Fewer, not longer, collections: see GEN0_THRESHOLD."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


def freeze_survivors(why: str, collect: bool = True, quiet: bool = False) -> None:
    """Exempt everything alive now from later collections, after collecting what is garbage now.

    `collect=False` skips that collection, for a loop that is running: it is itself a full one (a
    tenth of a second once the co-visitation is restored). The price is that cycles already dead
    then are never collected: a few, once."""
    started = time.perf_counter()
    if collect:
        gc.collect()
    gc.freeze()
    if quiet:
        return
    # (gc.get_freeze_count() would walk every frozen object: not on a running loop.)
    log.info("objects alive now exempted from garbage collection",
             extra={"why": why, "seconds": round(time.perf_counter() - started, 3)})
