"""`recstream reliability`: run every reliability scenario against real processes and report the figures.

The integration tests assert on the same scenario functions; this command runs longer versions and
writes RELIABILITY.md, so the published numbers are measured, never typed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from models.datasets.synthetic import generate_catalog, generate_events
from streams.broker import EmbeddedBroker, free_port
from streams.erasure import erase_user
from streams.markdown_sections import publish_report
from streams.measure import machine
from streams.producing import publish_events
from streams.reliability.backpressure import remapped, run_backpressure
from streams.reliability.checks import export_states, isolated_env, wait_until_applied
from streams.reliability.crashes import run_broker_pause, run_crash_replay
from streams.reliability.hostile import draw_probes, run_hostile
from streams.reliability.scaleout import run_scale_out
from streams.stack import LocalStack

FULL = {"kills": 5, "crash_users": 400, "pause_s": 20.0, "hostile": 10_000, "overload_rate": 5_000.0,
        "overload_s": 60.0, "erasures": 5, "scale_users": 600}
QUICK = {"kills": 2, "crash_users": 100, "pause_s": 10.0, "hostile": 2_000, "overload_rate": 4_000.0,
         "overload_s": 10.0, "erasures": 3, "scale_users": 200}


def run_all(plan: dict[str, Any], root: Path, progress: Any) -> dict[str, Any]:
    catalog = generate_catalog()
    out: dict[str, Any] = {"machine": machine(), "plan": plan}
    with EmbeddedBroker(free_port(), log_file=root / "broker.log") as broker:
        progress(f"crash safety: {plan['kills']} kill -9 during {plan['crash_users'] * 50} events")
        with LocalStack(root / "crash", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            events = generate_events(catalog, n_users=plan["crash_users"], events_per_user=50)
            out["crash"] = asdict(run_crash_replay(stack, catalog, events, plan["kills"], 800.0, root))
        progress(f"broker paused for {plan['pause_s']:.0f}s")
        with LocalStack(root / "pause", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            events = generate_events(catalog, n_users=100, events_per_user=50, seed=11)
            out["pause"] = asdict(run_broker_pause(broker, stack, catalog, events, plan["pause_s"], 400.0, root))
        progress(f"{plan['hostile']}+ hostile messages")
        with LocalStack(root / "hostile", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            _, worker = stack.start_worker_with_catalog(catalog, "hostile")
            probes = draw_probes(plan["hostile"], [f"user-{n}" for n in range(50)], [i.item_id for i in catalog],
                                 int(time.time() * 1000))
            out["hostile"] = asdict(run_hostile(stack.settings(), worker, probes, root))
        progress(f"backpressure: {plan['overload_rate']:.0f} events/s for {plan['overload_s']:.0f}s")
        with LocalStack(root / "overload", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            n = int(plan["overload_rate"] * plan["overload_s"])
            base = generate_events(catalog, n_users=400, events_per_user=50, seed=12)
            events = list(remapped(base, copies=-(-n // len(base))))[:n]
            publisher, worker = stack.start_worker_with_catalog(catalog, "overload")
            report = run_backpressure(stack.settings(), publisher, worker, events, plan["overload_rate"], root)
            out["backpressure"] = {**asdict(report), "overload": report.overload,
                                   "samples": [asdict(s) for s in report.samples]}
        progress(f"erasing {plan['erasures']} users")
        with LocalStack(root / "erase", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            out["erase"] = _erasures(stack, catalog, plan["erasures"], root)
        progress(f"scale-out: a second worker joins, then the first leaves, during {plan['scale_users'] * 50} events")
        with LocalStack(root / "scale", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            events = generate_events(catalog, n_users=plan["scale_users"], events_per_user=50, seed=14)
            report = run_scale_out(stack, catalog, events, 250.0, root, stack.settings().events_partitions)
            out["scale_out"] = {**asdict(report), "checked": dict(report.checked)}
    return out


def _erasures(stack: LocalStack, catalog: Any, n: int, root: Path) -> dict[str, Any]:
    settings = stack.settings()
    publisher, worker = stack.start_worker_with_catalog(catalog, "eraser")
    events = generate_events(catalog, n_users=n + 5, events_per_user=10, seed=13)
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()
    wait_until_applied(worker.env, root / "before-erase.jsonl", {e.user_id: e.event_id for e in events}, timeout=120)
    gone = sorted({e.user_id for e in events})[:n]
    seconds = [erase_user(settings, user, wait_s=10.0).confirmed_after_s or 0.0 for user in gone]
    left = export_states(worker.env, root / "after-erase.jsonl")
    return {"erased": len(gone), "confirm_s": [round(s, 3) for s in seconds], "still_in_state": len(set(gone) & set(left))}


def _split(owners: dict[Any, str]) -> str:
    by_worker: dict[str, list[str]] = {}
    for partition, worker in sorted(owners.items(), key=lambda kv: int(kv[0])):
        by_worker.setdefault(worker, []).append(str(partition))
    return " / ".join(f"{w}: {','.join(ps)}" for w, ps in sorted(by_worker.items()))


def markdown(r: dict[str, Any], command: str) -> str:
    c, p, h, b, e, s = r["crash"], r["pause"], r["hostile"], r["backpressure"], r["erase"], r["scale_out"]
    recovery = c["recovery_s"]
    return "\n".join([
        f"Command: `{command}`  ",
        f"Machine: {r['machine']}  ",
        "One worker, 4 partitions, generated catalog and events; every figure below is counted by the command.",
        "",
        "| scenario | what was done | result |",
        "|---|---|---|",
        f"| crash safety | {c['kills']} × kill -9 at random moments during a replay of {c['events']} events, restarting each time "
        f"| lost **{c['lost']}**, applied twice **{c['twice']}**, users differing from a run without crashes: "
        f"{len(c['differing_users'])} |",
        f"| recovery | time from each kill -9 to the next published list | {', '.join(f'{s:.1f}' for s in recovery)} s "
        f"(median {statistics.median(recovery):.1f} s) |",
        f"| broker pause | broker frozen (SIGSTOP) {p['pause_s']:.0f} s during {p['events']} events "
        f"| lost **{p['lost']}**, applied twice **{p['twice']}**, worker survived: {'yes' if p['worker_survived'] else 'NO'} |",
        f"| hostile input | {h['hostile_tried']} hostile messages of {sum(1 for k in h['by_kind'] if not k.startswith('valid:'))} "
        f"kinds, interleaved with {h['valid_sent']} valid ones | dead-lettered {h['dead_lettered']}, missing "
        f"{h['missing_dead_letters']}, wrong reason {len(h['reason_mismatches'])}, altered originals {h['bytes_mismatches']}; "
        f"valid lost **{h['valid_lost']}**, twice **{h['valid_twice']}**; worker deaths **{h['worker_deaths']}** |",
        f"| backpressure | {b['offered']} events offered at {b['offered_per_s']:.0f}/s for {b['offer_seconds']:.0f} s "
        f"({b['overload']:.1f}× the {b['applied_per_s_during_offer']:.0f}/s applied meanwhile) | lag peaked at "
        f"{b['max_lag']:.0f} and drained {b['drain_seconds']:.0f} s after the offer; RSS {b['rss_mb_start']:.0f} MB at start, "
        f"{b['rss_mb_at_peak_lag']:.0f} MB at peak lag, {b['rss_mb_max']:.0f} MB max, {b['rss_mb_end']:.0f} MB after "
        f"draining; lost **{b['lost']}**, twice **{b['twice']}** |",
        f"| erase | `recstream users erase` for {e['erased']} users | confirmed (tombstone read back) after "
        f"{', '.join(f'{x:.2f}' for x in e['confirm_s'])} s; users still in state: {e['still_in_state']} |",
        f"| scale-out | a second worker joins during a replay of {s['events']} events, then the first leaves "
        f"| partitions split {_split(s['shared'])} after {s['join_s']:.1f} s; all to the second {s['leave_s']:.1f} s after "
        f"the first stopped; lost **{s['lost']}**, twice **{s['twice']}**; lists from a worker not owning the user's "
        f"partition: **{len(s['wrong_owner'])}** of {sum(s['checked'].values())} checked |",
        "",
        "Hostile messages by reason: "
        + ", ".join(f"{k} {v}" for k, v in sorted(h["by_reason"].items())) + ".",
    ])


@click.command("reliability")
@click.option("--quick", is_flag=True, help="Smaller versions of every scenario (a few minutes).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write all figures here.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None, help="Update this Markdown file.")
@click.option("--keep", "keep_dir", type=click.Path(path_type=Path), default=None,
              help="Run in this folder and keep it (broker and worker logs, exports), to look into a finding.")
def reliability_command(quick: bool, json_out: Path | None, write_to: Path | None, keep_dir: Path | None) -> None:
    """Kill workers, freeze the broker, send hostile input, overload, erase and scale out; count what was lost."""
    plan = QUICK if quick else FULL

    def progress(msg: str) -> None:
        click.echo(f"… {msg}", err=True)

    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        result = run_all(plan, keep_dir, progress)
    else:
        with tempfile.TemporaryDirectory(prefix="recstream-reliability-") as tmp:
            result = run_all(plan, Path(tmp), progress)
    body = markdown(result, "recstream reliability " + " ".join(sys.argv[2:]))
    publish_report(result, body, json_out, write_to, name="reliability", heading="Reliability (issue 4)", title="Reliability")
