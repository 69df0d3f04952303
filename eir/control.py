"""Control messages between the workers of ``eir serve --workers N``: what the admin API changes
in one process (it runs in worker 0 only) reaches every worker.

Each worker binds a Unix datagram socket ``control-<i>.sock`` in the workers' directory (the one
worker 0 makes for the metrics sockets, :data:`eir.servers.metrics_http.WORKER_DIR_ENV`). Worker 0
sends one JSON datagram to every other worker's socket after:

* a fault rule set, removed or cleared — ``{"op": "faults", "rules": [...]}``: the whole rule set,
  replacing the worker's (idempotent; a rule's ``count`` is then counted by each worker);
* a clone suspicion cleared — ``{"op": "sightings_clear", "imei": "..."}``: the worker drops that
  IMEI's sightings from memory (the store's part is done once, by worker 0);
* a duplicate_mk1 flag cleared — ``{"op": "duplicate_clear", "imei": "..."}``: the worker drops the
  flag and the IMEI's pairs not yet written behind (eir/duplicates.py; the store's part is done
  once, by worker 0), so it stops answering "flagged" at once and does not write pre-clear history
  back.

A worker that starts (or is started again after dying) sends ``{"op": "hello"}`` to worker 0, which
answers with the fault rules in force. Messages are small (at most :data:`MAX_MESSAGE` octets; the
registry caps the rule set below that, eir/faults.py ``RULES_MAX_OCTETS``) and sent without
blocking. A message a worker's socket refuses (its queue is full: EAGAIN) is owed to that worker:
the channel retries every :data:`RETRY_INTERVAL` s, for at most :data:`RETRY_ROUNDS` rounds, the
*latest* fault rule set (a newer state replaces an older one owed) and the clears owed (at most
:data:`MAX_OWED` per worker), in order, then gives up with a ``control_given_up`` warning and
``eir_control_undelivered_total``. A worker that is not there (restarting: no socket, or nobody
reading it) is owed nothing: it gets the faults again with its hello (and reads the store's flags
and sightings when it starts). A bad datagram is logged and dropped.

The admin API's ``GET /peers`` asks too (:meth:`ControlChannel.gather_peers`): worker 0 sends
``{"op": "peers", "id": n}`` to every other worker, each answers ``{"op": "peers_answer", "id": n,
"worker": i, "peers": {"s13": [...], "map": [...], "n5g": [...]}}`` (cut to fit one datagram, then
``"truncated": true``), and worker 0 waits for them at most :data:`PEERS_WAIT` seconds; a worker
that did not answer in time is named in the result instead. At most :data:`MAX_ASKING` such
requests wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eir.faults import REGISTRY, FaultRegistry, FaultSpecError
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import CONTROL_UNDELIVERED

__all__ = ["MAX_MESSAGE", "PEERS_WAIT", "ControlChannel", "PeersGathered", "local_peers", "open_channel"]

MAX_MESSAGE = 65536
RETRY_INTERVAL = 0.02
"""Seconds between two attempts to deliver what a worker is owed."""
RETRY_ROUNDS = 250
"""Attempts (5 s at :data:`RETRY_INTERVAL`) before what a worker is owed is given up."""
MAX_OWED = 1024
"""Clears owed to one worker at most (the oldest go first, counted)."""
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


@dataclass(slots=True)
class _Owed:
    """What one worker's socket refused and is retried (module docstring)."""

    faults: bool = False
    """The latest fault rule set (read from the registry when sent)."""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_OWED))
    rounds: int = 0


class ControlChannel:
    """One worker's end (module docstring)."""

    def __init__(
        self,
        directory: Path,
        worker: int,
        *,
        faults: FaultRegistry = REGISTRY,
        forget_sightings: Callable[[str], None] | None = None,
        forget_duplicate: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = directory
        self.worker = worker
        self.faults = faults
        self.forget_sightings = forget_sightings
        self.forget_duplicate = forget_duplicate
        self.path = directory / f"control-{worker}.sock"
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.owed: dict[Path, _Owed] = {}
        """Workers whose socket refused a message (queue full), with what they are owed."""
        self._retry: asyncio.TimerHandle | None = None
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
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
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
        for path in self._peers():
            owed = self.owed.get(path)
            if owed is not None:  # behind already: the latest set goes with the retries, in order
                owed.faults = True
            elif self._send(path, self._faults_msg()) == "full":
                self._owe(path).faults = True

    def sightings_cleared(self, imei: str) -> None:
        self._event({"op": "sightings_clear", "imei": imei})

    def duplicate_cleared(self, imei: str) -> None:
        """Worker 0: the admin API cleared ``imei``'s duplicate_mk1 flag."""
        self._event({"op": "duplicate_clear", "imei": imei})

    def broadcast(self, msg: dict[str, Any]) -> int:
        """Send ``msg`` to every other worker's socket, once; returns how many took it."""
        return sum(self._send(path, msg) == "sent" for path in self._peers())

    def _peers(self) -> list[Path]:
        return [p for p in sorted(self.dir.glob("control-*.sock")) if p != self.path]

    def _faults_msg(self) -> dict[str, Any]:
        return {"op": "faults", "rules": self.faults.specs()}

    def _event(self, msg: dict[str, Any]) -> None:
        for path in self._peers():
            owed = self.owed.get(path)
            if owed is not None:
                _queue(owed, msg, path)
            elif self._send(path, msg) == "full":
                _queue(self._owe(path), msg, path)

    def _owe(self, path: Path) -> _Owed:
        owed = self.owed[path] = _Owed()
        if self._retry is None and self.loop is not None:
            self._retry = self.loop.call_later(RETRY_INTERVAL, self._resend)
        return owed

    def _resend(self) -> None:
        """Timer: what each worker is owed, in order, until its socket refuses again (bounded)."""
        self._retry = None
        for path, owed in list(self.owed.items()):
            owed.rounds += 1
            outcome = "sent"
            if owed.faults:
                outcome = self._send(path, self._faults_msg())
                if outcome == "sent":
                    owed.faults = False
            while outcome == "sent" and owed.events:
                outcome = self._send(path, owed.events[0])
                if outcome == "sent":
                    owed.events.popleft()
            if outcome == "full" and owed.rounds < RETRY_ROUNDS:
                continue
            del self.owed[path]
            if outcome == "full" or outcome == "failed":
                lost = len(owed.events) + owed.faults
                CONTROL_UNDELIVERED.inc(lost)
                _log.warning("control_given_up", to=path.name, messages=lost, rounds=owed.rounds)
        if self.owed and self.loop is not None:
            self._retry = self.loop.call_later(RETRY_INTERVAL, self._resend)

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
                if self._send(path, {"op": "peers", "id": rid}) != "sent":
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

    def _send(self, path: Path, msg: dict[str, Any]) -> str:
        """sent; full (the socket's queue is full: try again); gone (no worker there: it asks
        again on start); failed (logged, counted by the caller)."""
        s = self.sock
        data = json.dumps(msg, separators=(",", ":")).encode()
        if s is None or len(data) > MAX_MESSAGE:
            _log.warning("control_not_sent", to=path.name, op=msg.get("op"), size=len(data))
            CONTROL_UNDELIVERED.inc()
            return "failed"
        try:
            s.sendto(data, str(path))
        except (BlockingIOError, InterruptedError):  # its queue is full: owed, retried
            _limited.warning(_log, "control_full", "control_deferred", to=path.name, op=msg.get("op"))
            return "full"
        except (FileNotFoundError, ConnectionRefusedError):  # restarting: it asks again on start
            _limited.warning(_log, "control_send", "control_not_sent", to=path.name, reason="not_there")
            return "gone"
        except OSError as e:
            _limited.warning(_log, "control_send", "control_not_sent", to=path.name, error=str(e))
            CONTROL_UNDELIVERED.inc()
            return "failed"
        return "sent"

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
                self.faults.load(msg["rules"], capped=False)  # worker 0 checked the cap
                _log.info("control_faults_applied", rules=len(msg["rules"]))
            elif op == "sightings_clear":
                imei = str(msg["imei"])[:16]
                if self.forget_sightings is not None:
                    self.forget_sightings(imei)
                _log.info("control_sightings_cleared", imei=imei)
            elif op == "duplicate_clear":
                imei = str(msg["imei"])[:16]
                if self.forget_duplicate is not None:
                    self.forget_duplicate(imei)
                _log.info("control_duplicate_cleared", imei=imei)
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


def _queue(owed: _Owed, msg: dict[str, Any], path: Path) -> None:
    if len(owed.events) == MAX_OWED:  # the deque drops the oldest: counted, logged
        CONTROL_UNDELIVERED.inc()
        _limited.warning(_log, "control_owed", "control_given_up", to=path.name, messages=1)
    owed.events.append(msg)


class PeersGathered:
    """What :meth:`ControlChannel.gather_peers` got: ``answers`` (worker → its peers by interface),
    the workers that did not answer in time (``missing``), those whose list was cut (``truncated``)."""

    def __init__(self, expected: set[int]) -> None:
        self.expected = expected
        self.answers: dict[int, PeersByInterface] = {}
        self.missing: set[int] = set()
        self.truncated: set[int] = set()
        self.done: asyncio.Future[None] | None = None


def open_channel(worker: int, workers: int, **kw: Any) -> ControlChannel | None:
    """The control channel of this worker under ``--workers N`` (N > 1), else None."""
    from eir.servers.metrics_http import WORKER_DIR_ENV

    wdir = os.environ.get(WORKER_DIR_ENV)
    if workers <= 1 or not wdir:
        return None
    ch = ControlChannel(Path(wdir), worker, **kw)
    ch.open()
    return ch
