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
from streams.kafka.producing import publish_events
from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.erasure import erase_user
from streams.lab.markdown_sections import publish_report
from streams.lab.measure import machine
from streams.lab.reliability.backpressure import remapped, run_backpressure
from streams.lab.reliability.checks import export_states, isolated_env, wait_until_applied
from streams.lab.reliability.crashes import run_broker_pause, run_crash_replay
from streams.lab.reliability.hostile import draw_probes, run_hostile
from streams.lab.reliability.scaleout import run_scale_out
from streams.lab.reliability.soak import run_soak
from streams.lab.stack import LocalStack

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
        out["backpressure"] = _overload(broker.bootstrap, catalog, plan, root / "overload")
        progress(f"erasing {plan['erasures']} users")
        with LocalStack(root / "erase", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            out["erase"] = _erasures(stack, catalog, plan["erasures"], root)
        progress(f"scale-out: a second worker joins, then the first leaves, during {plan['scale_users'] * 50} events")
        with LocalStack(root / "scale", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            events = generate_events(catalog, n_users=plan["scale_users"], events_per_user=50, seed=14)
            report = run_scale_out(stack, catalog, events, 250.0, root, stack.settings().events_partitions)
            out["scale_out"] = {**asdict(report), "checked": dict(report.checked)}
    return out


def _overload(bootstrap: str, catalog: Any, plan: dict[str, Any], root: Path) -> dict[str, Any]:
    with LocalStack(root, bootstrap=bootstrap, extra_env=isolated_env()) as stack:
        n = int(plan["overload_rate"] * plan["overload_s"])
        base = generate_events(catalog, n_users=400, events_per_user=50, seed=12)
        events = list(remapped(base, copies=-(-n // len(base))))[:n]
        publisher, worker = stack.start_worker_with_catalog(catalog, "overload")
        report = run_backpressure(stack.settings(), publisher, worker, events, plan["overload_rate"], root,
                                  drain_timeout=1200.0)
        # Rebalances of the worker's own group under overload (each re-runs Faust's table recovery).
        rebalances = worker.log_path.read_text(errors="replace").count("Revoking previously assigned partitions") - 1
        return {**asdict(report), "overload": report.overload, "rebalances": max(0, rebalances),
                "samples": [asdict(s) for s in report.samples]}


def run_overloads(plan: dict[str, Any], runs: int, root: Path, progress: Any) -> dict[str, Any]:
    """The backpressure scenario `runs` times in a row, each on a fresh broker."""
    catalog = generate_catalog()
    out: dict[str, Any] = {"machine": machine(), "plan": plan, "runs": []}
    for k in range(runs):
        progress(f"overload run {k + 1} of {runs}: {plan['overload_rate']:.0f} events/s for {plan['overload_s']:.0f}s")
        with EmbeddedBroker(free_port(), log_file=root / f"broker-{k}.log") as broker:
            run = _overload(broker.bootstrap, catalog, plan, root / f"overload-{k}")
        progress(f"lost {run['lost']}, twice {run['twice']}, changelog records going back {len(run['changelog_regressions'])}")
        out["runs"].append({key: v for key, v in run.items() if key != "samples"})
    return out


def overloads_markdown(r: dict[str, Any], command: str) -> str:
    rows = [f"Command: `{command}`  ", f"Machine: {r['machine']}  ",
            "One worker, 4 partitions; each run on a fresh embedded broker.", "",
            "| run | offered | applied meanwhile | drained after the offer | rebalances | lost | twice "
            "| changelog records going back |",
            "|---|---|---|---|---|---|---|---|"]
    for k, b in enumerate(r["runs"], 1):
        rows.append(f"| {k} | {b['offered']} at {b['offered_per_s']:.0f}/s | {b['applied_per_s_during_offer']:.0f}/s "
                    f"({b['overload']:.1f}× overload) | {b['drain_seconds']:.0f} s | {b['rebalances']} | **{b['lost']}** "
                    f"| **{b['twice']}** | {len(b['changelog_regressions'])} |")
    return "\n".join(rows)


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


def run_soak_plan(events: int, minutes: float | None, rate: float | None, seed: int, root: Path,
                  progress: Any) -> dict[str, Any]:
    """The soak on its own broker; `minutes` caps the events at what the rate sends in that time."""
    with EmbeddedBroker(free_port(), log_file=root / "broker.log") as broker:
        with LocalStack(root / "soak", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            if minutes is not None and rate is not None:
                events = min(events, int(rate * 60 * minutes))
            report = run_soak(broker, stack, events, seed, root, rate=rate, progress=progress,
                              minutes=minutes)
    return {"machine": machine(), "soak": asdict(report)}


def soak_markdown(r: dict[str, Any], command: str) -> str:
    s = r["soak"]
    recovery = s["recovery_s"]
    faults = [(t, w) for t, w in s["timeline"] if not w.endswith("events sent") and not w.startswith("reference run")]
    rows = [
        f"Command: `{command}`  ",
        f"Machine: {r['machine']}  ",
        f"Two workers, 4 partitions, a wide stream (consecutive events of different users, 20 events a user), seed "
        f"{s['seed']}. "
        + (f"The two workers first applied a backlog of their own at {s['capacity_per_s']:.0f} events/s; the soak "
           f"offered {s['rate']:.0f}/s." if s["capacity_per_s"] else f"Offered at {s['rate']:.0f} events/s."),
        "",
        "| what | result |",
        "|---|---|",
        f"| events | {s['events']} in {s['seconds']:.0f} s |",
        f"| faults | {len(faults)}: " + "; ".join(f"{t:.0f} s {w}" for t, w in faults) + " |",
        f"| per event id | lost **{s['lost']}**, applied twice **{s['twice']}** |",
        f"| against a run without faults | **{len(s['differing_users'])}** of {s['users_compared']} users differ |",
        f"| hostile messages | {s['hostile_sent']} sent; not dead-lettered **{s['hostile_missing']}**, wrong reason "
        f"**{s['hostile_wrong_reason']}** |",
        f"| erase | {s['erased']} users erased mid-stream; still in state **{s['erased_still_present']}** |",
        f"| recovery after kill -9 | until the restarted worker's next list: "
        + (f"{', '.join(f'{x:.1f}' for x in recovery)} s (median {statistics.median(recovery):.1f} s)" if recovery
           else "no kill") + " |",
        f"| memory | peak RSS " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(s["rss_mb_max"].items())) + " |",
    ]
    if s["differing_users"]:
        rows += ["", "Users that differ: " + "; ".join(s["differing_users"][:10])]
    return "\n".join(rows)


@click.command("reliability")
@click.option("--quick", is_flag=True, help="Smaller versions of every scenario (a few minutes).")
@click.option("--soak", is_flag=True, help="Run the soak instead: two workers, a wide stream, every fault mixed in.")
@click.option("--events", "soak_events", type=int, default=500_000, show_default=True, help="Events the soak sends.")
@click.option("--minutes", "soak_minutes", type=float, default=None,
              help="Stop sending after this long (with --rate: fewer events if they would take longer).")
@click.option("--rate", "soak_rate", type=float, default=None,
              help="Events/s the soak offers (default: 70% of the two workers' capacity, measured first).")
@click.option("--seed", "soak_seed", type=int, default=1, show_default=True, help="Seed of the soak's events and faults.")
@click.option("--overload-runs", type=int, default=0,
              help="Run only the backpressure scenario, this many times in a row (each on a fresh broker).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write all figures here.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None, help="Update this Markdown file.")
@click.option("--keep", "keep_dir", type=click.Path(path_type=Path), default=None,
              help="Run in this folder and keep it (broker and worker logs, exports), to look into a finding.")
def reliability_command(
    quick: bool, soak: bool, soak_events: int, soak_minutes: float | None, soak_rate: float | None, soak_seed: int,
    overload_runs: int, json_out: Path | None, write_to: Path | None, keep_dir: Path | None,
) -> None:
    """Kill workers, freeze the broker, send hostile input, overload, erase and scale out; count what was lost."""
    plan = QUICK if quick else FULL

    def progress(msg: str) -> None:
        click.echo(f"… {msg}", err=True)

    def run(root: Path) -> dict[str, Any]:
        if soak:
            return run_soak_plan(soak_events, soak_minutes, soak_rate, soak_seed, root, progress)
        if overload_runs:
            return run_overloads(plan, overload_runs, root, progress)
        return run_all(plan, root, progress)

    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        result = run(keep_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="recstream-reliability-") as tmp:
            result = run(Path(tmp))
    command = "recstream reliability " + " ".join(sys.argv[2:])
    if soak:
        publish_report(result, soak_markdown(result, command), json_out, write_to, name="soak",
                       heading="Soak: every fault mixed in (issue 12)", title="Reliability")
    elif overload_runs:
        publish_report(result, overloads_markdown(result, command), json_out, write_to, name="overload-runs",
                       heading="Long overload, repeated (issue 12)", title="Reliability")
    else:
        publish_report(result, markdown(result, command), json_out, write_to, name="reliability",
                       heading="Reliability (issue 4)", title="Reliability")
