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
answers with the fault rules in force.

The admin API's ``GET /peers`` asks too (:meth:`ControlChannel.gather_peers`): worker 0 sends
``{"op": "peers", "id": n}`` to every other worker, each answers ``{"op": "peers_answer", "id": n,
"worker": i, "peers": {"s13": [...], "map": [...], "n5g": [...]}}`` (cut to fit one datagram, then
``"truncated": true``), and worker 0 waits for them at most :data:`PEERS_WAIT` seconds; a worker
that did not answer in time is named in the result instead. At most :data:`MAX_ASKING` such
requests wait at once. Messages are small (at most :data:`MAX_MESSAGE` octets; the
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from eir.faults import REGISTRY, FaultRegistry, FaultSpecError
from eir.logging import RateLimitedLog, get_logger

__all__ = ["MAX_MESSAGE", "PEERS_WAIT", "ControlChannel", "PeersGathered", "local_peers", "open_channel"]

MAX_MESSAGE = 65536
PEERS_WAIT = 1.0
"""Seconds worker 0 waits for the other workers' peers (``GET /peers``)."""
MAX_ASKING = 8
"""Peers requests waiting for answers at once; more are answered with worker 0's peers alone."""
INTERFACES = ("s13", "map", "n5g")
_SERVER_INTERFACE = {"diameter": "s13", "m3ua": "map", "n5g": "n5g"}

PeersByInterface = dict[str, list[dict[str, Any]]]


def local_peers(servers: Iterable[Any]) -> PeersByInterface:
    """This process's peers by interface (the servers' ``peers()``), each entry without its worker."""
    out: PeersByInterface = {k: [] for k in INTERFACES}
    for s in servers:
        name = _SERVER_INTERFACE.get(getattr(s, "name", ""), "")
        if name in out and hasattr(s, "peers"):
            out[name] = list(s.peers())
    return out


def fit_peers(peers: PeersByInterface, budget: int) -> tuple[PeersByInterface, bool]:
    """``peers`` cut (the longest list halved, at most 32 times) until its JSON is at most
    ``budget`` octets; True if anything was cut."""
    cut = False
    for _ in range(32):
        if len(json.dumps(peers, separators=(",", ":"))) <= budget:
            break
        k = max(peers, key=lambda n: len(peers[n]))
        peers = {**peers, k: peers[k][: len(peers[k]) // 2]}
        cut = True
    return peers, cut


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
        self.peers: Callable[[], PeersByInterface] | None = None
        """This worker's peers (set once its servers run): what it answers to a peers request."""
        self._asking: dict[int, PeersGathered] = {}
        self._next_id = 0

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

    async def gather_peers(self, timeout: float = PEERS_WAIT) -> PeersGathered:
        """Worker 0: every other worker's peers, waiting at most ``timeout`` (module docstring)."""
        others = {
            int(p.stem.rsplit("-", 1)[1]): p
            for p in self.dir.glob("control-*.sock")
            if p != self.path and p.stem.rsplit("-", 1)[1].isdigit()
        }
        g = PeersGathered(set(others))
        if self.loop is None or not others or len(self._asking) >= MAX_ASKING:
            return g
        self._next_id += 1
        rid = self._next_id
        g.done = self.loop.create_future()
        self._asking[rid] = g
        try:
            for w, path in sorted(others.items()):
                if not self._send(path, {"op": "peers", "id": rid}):
                    g.expected.discard(w)
                    g.missing.add(w)
            if g.expected - set(g.answers):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(g.done), timeout)
        finally:
            del self._asking[rid]
        g.missing |= g.expected - set(g.answers)
        return g

    def _answer_peers(self, msg: dict[str, Any]) -> None:
        peers = self.peers() if self.peers is not None else {k: [] for k in INTERFACES}
        answer: dict[str, Any] = {"op": "peers_answer", "id": int(msg["id"]), "worker": self.worker}
        answer["peers"], answer["truncated"] = fit_peers(peers, MAX_MESSAGE - 256)
        self._send(self.dir / "control-0.sock", answer)

    def _peers_answered(self, msg: dict[str, Any]) -> None:
        g = self._asking.get(int(msg["id"]))
        w = int(msg["worker"])
        if g is None or w not in g.expected:
            return  # too late (the request gave up waiting) or not asked
        peers = msg["peers"]
        if not isinstance(peers, dict):
            raise TypeError("peers: not an object")
        g.answers[w] = {k: [e for e in peers.get(k, []) if isinstance(e, dict)] for k in INTERFACES}
        if msg.get("truncated"):
            g.truncated.add(w)
        if g.done is not None and not g.done.done() and not (g.expected - set(g.answers)):
            g.done.set_result(None)

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
            elif op == "peers" and self.worker != 0:
                self._answer_peers(msg)
            elif op == "peers_answer" and self.worker == 0:
                self._peers_answered(msg)
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError, FaultSpecError) as e:
            _limited.warning(_log, "control_bad", "control_bad_message", error=str(e)[:200], size=len(data))


class PeersGathered:
    """What :meth:`ControlChannel.gather_peers` got: ``answers`` (worker → its peers by interface),
    the workers that did not answer in time (``missing``), those whose list was cut (``truncated``)."""

    def __init__(self, expected: set[int]) -> None:
        self.expected = expected
        self.answers: dict[int, PeersByInterface] = {}
        self.missing: set[int] = set()
        self.truncated: set[int] = set()
        self.done: asyncio.Future[None] | None = None


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
