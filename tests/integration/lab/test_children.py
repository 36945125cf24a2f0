"""Child processes stop with their parent: the broker command on SIGTERM or kill -9, a LocalStack's broker and
worker when the process that started them is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.lab.broker import free_port, port_open

pytestmark = [pytest.mark.integration]


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def gone(pid: int) -> bool:
    """No such process, or only its exit status left for a reaper (a zombie holds no port or memory)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "kill -9"])
def test_the_broker_command_takes_its_broker_with_it(sig: int, tmp_path: Path) -> None:
    port = free_port()
    wrapper = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: port_open("127.0.0.1", port), 30), "the broker did not start"
        brokers = children_of(wrapper.pid)
        assert brokers, "the broker runs as a child of the command"
        wrapper.send_signal(sig)
        wrapper.wait(timeout=10)
        assert wait_until(lambda: not port_open("127.0.0.1", port), 5), f"port {port} still taken 5 s after the stop"
        assert wait_until(lambda: all(gone(p) for p in brokers), 5), "a broker process outlived its command"
    finally:
        for p in (children_of(wrapper.pid) if wrapper.poll() is None else []):
            os.kill(p, signal.SIGKILL)
        wrapper.kill()


STACK_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from streams.lab.stack import LocalStack
    stack = LocalStack(Path(sys.argv[1]))
    stack.start_broker()
    worker = stack.add_worker("orphan-check")
    print(json.dumps({"broker": stack.broker.pid, "port": stack.broker.port, "worker": worker.proc.pid}), flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_local_stack_leaves_no_broker_or_worker_behind(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", STACK_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    pids: dict[str, int] = {}
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        time.sleep(2)  # the worker is importing; it must go even before it is up
        parent.kill()
        parent.wait(timeout=10)
        assert wait_until(lambda: not port_open("127.0.0.1", pids["port"]), 5), "the broker's port is still taken"
        assert wait_until(lambda: gone(pids["broker"]), 5), "the broker outlived the killed stack"
        # The worker gets SIGTERM, the clean stop it expects; Faust takes a few seconds over it.
        assert wait_until(lambda: gone(pids["worker"]), 30), "the worker outlived the killed stack"
    finally:
        parent.kill()
        for name in ("broker", "worker"):
            if name in pids and not gone(pids[name]):
                os.kill(pids[name], signal.SIGKILL)
