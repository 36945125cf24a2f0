"""`evaluate --ranks-out` and `--paired-with`: keep one run's per-event outcomes, judge another against them.

Two evaluations of the same events (say the base encoder and a fine-tuned one) differ by a few hits
in tens of thousands; whether that is more than noise needs the event-by-event outcomes of both,
paired by event and resampled by user (models/evaluation/paired.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from models.evaluation.paired import PairedDifference, paired_hit_difference
from models.evaluation.prequential import Report


def save_ranks(path: Path, report: Report, events: int, scored_from: int) -> None:
    """recstream's per-warm-event outcomes (rank, user, new item) and which events they came from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: numpy would add ".npz" to a name without it
        np.savez_compressed(fh, ranks=report.ranks, users=report.users.astype(str), new_item=report.new_item,
                            events=events, scored_from=scored_from)


def compare_with(path: Path, report: Report, events: int, scored_from: int, k: int) -> dict[str, Any]:
    """This run's recstream (B) against the saved run (A), over all warm events and over new-item events."""
    try:
        saved = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path} as a --ranks-out file: {exc}") from None
    same = (int(saved["events"]) == events and int(saved["scored_from"]) == scored_from
            and np.array_equal(saved["users"], report.users.astype(str))
            and np.array_equal(saved["new_item"], report.new_item))
    if not same:
        raise click.ClickException(f"{path} holds another run's events ({int(saved['events']):,} events scored from "
                                   f"{int(saved['scored_from']):,}): pair runs of the same data, fraction, "
                                   "--score-from and tie order")
    new = report.new_item
    out = {"against": str(path),
           "all": _as_dict(paired_hit_difference(saved["ranks"], report.ranks, report.users, k))}
    if new.any():
        out["new_item"] = _as_dict(paired_hit_difference(saved["ranks"][new], report.ranks[new], report.users[new], k))
    return out


def _as_dict(d: PairedDifference) -> dict[str, Any]:
    return {"events": d.events, "users": d.users, "a": round(d.a, 6), "b": round(d.b, 6), "diff": round(d.diff, 6),
            "low": round(d.low, 6), "high": round(d.high, 6), "only_a": d.only_a, "only_b": d.only_b}


def paired_lines(paired: dict[str, Any], k: int) -> list[str]:
    """What the comparison says, for the terminal and the Markdown section."""
    lines = [f"Paired with the run in {paired['against']} (A; this run is B), event by event, 95% intervals "
             "from resampling users:"]
    for key, label in (("all", "all warm events"), ("new_item", "new-item events")):
        if key in paired:
            d = paired[key]
            lines.append(f"- {label} ({d['events']:,} of {d['users']:,} users): hit@{k} {d['a']:.4f} → {d['b']:.4f}, "
                         f"B − A {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]; hit by A only {d['only_a']:,}, "
                         f"by B only {d['only_b']:,}")
    return lines
