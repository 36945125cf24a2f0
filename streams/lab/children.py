"""Child processes that stop with whatever started them, and commands that stop on SIGTERM.

The embedded broker and the workers of a LocalStack (tests, bench, demo) run as child processes in
sessions of their own, so a Ctrl-C in a terminal reaches only the parent, which then stops them in
order. That left a hole: a parent stopped by SIGTERM (`kill`, a process manager, a test harness's
timeout) or killed outright never got to stop them, and orphaned brokers kept their ports.

Two things close it:
- `die_with_parent` (Linux): the child asks the kernel for a signal when its parent dies
  (`prctl(PR_SET_PDEATHSIG)`), so even a parent killed with SIGKILL takes its children with it.
  The kernel sends it when the *thread* that started the child ends: start children from the main
  thread or from a thread that lives as long as they should.
- `sigterm_stops`: a command's SIGTERM is turned into KeyboardInterrupt, so it unwinds like a
  Ctrl-C and its `with` blocks stop their children cleanly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: a forked child may only make the call, not load a library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc.prctl  # type: ignore[no-any-return]


_PRCTL = _load_prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `sig` when this process dies.

    None where the platform has no such call (then only a clean stop of the parent stops the child).
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def arrange() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call above: no signal will come now
            os.kill(os.getpid(), sig)

    return arrange


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
