"""Control messages between the workers of ``eir serve --workers N``: what the admin API changes
in one process (it runs in worker 0 only) reaches every worker.

Each worker binds a Unix datagram socket ``control-<i>.sock`` in the workers' directory (the one
worker 0 makes for the metrics sockets, :data:`eir.servers.metrics_http.WORKER_DIR_ENV`). Worker 0
sends one JSON datagram to every other worker's socket after:

* a fault rule set, removed or cleared — ``{"op": "faults", "rules": [...]}``: the whole rule set,
  replacing the worker's (idempotent; a rule's ``count`` is then counted by each worker);
* a clone suspicion cleared — ``{"op": "sightings_clear", "imei": "..."}``: the worker drops that
  IMEI's sightings from memory (the store's part is done once, by worker 0).

A worker that starts (or is started again after dying) sends ``{"op": "hello"}`` to worker 0, which
answers with the fault rules in force. Messages are small (at most :data:`MAX_MESSAGE` octets; the
rule set is bounded by that) and sent without blocking: a worker that is not there (restarting)
misses the message, logged, and gets the faults again with its hello. A bad datagram is logged
and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eir.faults import REGISTRY, FaultRegistry, FaultSpecError
from eir.logging import RateLimitedLog, get_logger

__all__ = ["MAX_MESSAGE", "ControlChannel", "open_channel"]

MAX_MESSAGE = 65536
_log = get_logger(component="control")
_limited = RateLimitedLog()


class ControlChannel:
    """One worker's end (module docstring)."""

    def __init__(
        self,
        directory: Path,
        worker: int,
        *,
        faults: FaultRegistry = REGISTRY,
        forget_sightings: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = directory
        self.worker = worker
        self.faults = faults
        self.forget_sightings = forget_sightings
        self.path = directory / f"control-{worker}.sock"
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.bind(str(self.path))
        self.sock = s
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(s.fileno(), self._readable)
        if self.worker:
            self._send(self.dir / "control-0.sock", {"op": "hello", "worker": self.worker})

    def close(self) -> None:
        s = self.sock
        if s is None:
            return
        if self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(s.fileno())
        s.close()
        self.sock = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    # -- sending (worker 0) --------------------------------------------------------------------
    def faults_changed(self) -> None:
        """Worker 0: the admin API changed the fault rules."""
        self.broadcast({"op": "faults", "rules": [_spec(r.to_dict()) for r in self.faults.rules()]})

    def sightings_cleared(self, imei: str) -> None:
        self.broadcast({"op": "sightings_clear", "imei": imei})

    def broadcast(self, msg: dict[str, Any]) -> int:
        """Send ``msg`` to every other worker's socket; returns how many took it."""
        n = 0
        for path in sorted(self.dir.glob("control-*.sock")):
            if path != self.path and self._send(path, msg):
                n += 1
        return n

    def _send(self, path: Path, msg: dict[str, Any]) -> bool:
        s = self.sock
        data = json.dumps(msg, separators=(",", ":")).encode()
        if s is None or len(data) > MAX_MESSAGE:
            _log.warning("control_not_sent", to=path.name, op=msg.get("op"), size=len(data))
            return False
        try:
            s.sendto(data, str(path))
        except OSError as e:  # not there (restarting) or its queue is full: it asks again on start
            _limited.warning(_log, "control_send", "control_not_sent", to=path.name, error=str(e))
            return False
        return True

    # -- receiving ---------------------------------------------------------------------------------
    def _readable(self) -> None:
        s = self.sock
        if s is None:
            return
        for _ in range(64):  # a bounded batch per readiness event
            try:
                data = s.recv(MAX_MESSAGE + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                _log.warning("control_recv_failed", error=str(e))
                return
            self.handle(data)

    def handle(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            op = msg["op"]
            if op == "faults":
                self.faults.load(msg["rules"])
                _log.info("control_faults_applied", rules=len(msg["rules"]))
            elif op == "sightings_clear":
                imei = str(msg["imei"])[:16]
                if self.forget_sightings is not None:
                    self.forget_sightings(imei)
                _log.info("control_sightings_cleared", imei=imei)
            elif op == "hello" and self.worker == 0:
                self.faults_changed()
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError, FaultSpecError) as e:
            _limited.warning(_log, "control_bad", "control_bad_message", error=str(e)[:200], size=len(data))


def _spec(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    d.pop("injected", None)
    return d


def open_channel(worker: int, workers: int, **kw: Any) -> ControlChannel | None:
    """The control channel of this worker under ``--workers N`` (N > 1), else None."""
    from eir.servers.metrics_http import WORKER_DIR_ENV

    wdir = os.environ.get(WORKER_DIR_ENV)
    if workers <= 1 or not wdir:
        return None
    ch = ControlChannel(Path(wdir), worker, **kw)
    ch.open()
    return ch
