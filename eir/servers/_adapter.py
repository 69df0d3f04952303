"""The asyncio side every interface adapter shares: one check-dispatch path, bytes, timer,
back-pressure (the shape of uvicorn's and aioquic's protocols).

A subclass owns one sans-IO core (``_core()`` returns it, or None before it exists), handles its
events in ``_handle``, turns each request into a :class:`~eir.model.CheckRequest` and calls
:meth:`CoreProtocol._dispatch`, and puts a verdict on the wire in ``_answer``. This base:

* runs the check — eager start (:mod:`eir.servers._eager`): answered within the same
  ``data_received`` when the store did not suspend, else continued under a Task held in
  ``tasks``; a checker that raises gives the FAILURE verdict, logged;
* records ``eir_check_duration_seconds`` for every answered check, success or failure alike;
* flushes: answers made inline leave with the caller's ``_flush`` (one write for everything one
  ``data_received`` produced); answers completed by Tasks are written once per event-loop turn
  however many completed in it (a syscall per answer was the largest single cost under load);
* keeps one timer armed at the core's deadline;
* records, when ``eir serve --pcap`` is on: ``recorder`` (class default None, so nothing is done
  when off) gets the bytes in (the subclass's ``data_received`` calls ``recorder.received``) and
  the bytes out (here, in ``_flush``); :mod:`eir.recording`;
* applies back-pressure: reading pauses while the transport asks us to stop writing or
  ``max_in_flight`` checks are waiting for the store, and resumes at half that;
* applies the global overload control (:mod:`eir.overload`): before a check starts, the process's
  and the peer's budgets of checks in flight are asked; a refused check gets the subclass's
  ``_overloaded`` answer at once (never queued) and counts in ``eir_overload_refused``, and that
  connection is not read for ``OVERLOAD_PAUSE``; a check that waits (store, delay fault) holds a
  slot until it is answered or cancelled;
* injects faults (:mod:`eir.faults`): while any rule is set, each request is matched against the
  registry; a rule that fires is counted in ``eir_faults_injected{kind}``, logged (rate-limited)
  and acted out here (delay, no answer, close) or by the subclass's ``_fault`` (the interface's
  own error, abort, ASP-DOWN).

``eir_check_requests`` and ``eir_verdicts`` are counted by the checker, once per check whatever the
interface.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from eir.faults import FAULT_KINDS, REGISTRY, FaultRule
from eir.logging import RateLimitedLog
from eir.metrics import CHECKS_IN_FLIGHT, FAULTS_INJECTED, OVERLOAD_REFUSED
from eir.model import Checker, CheckRequest, Verdict
from eir.overload import ADMISSION
from eir.servers._eager import Started, check_failed, resume, start

OVERLOAD_PAUSE = 0.05
"""Seconds a connection is not read after one of its checks was refused for overload (what it
already sent is still answered; TCP holds the rest): the flooding connections slow down, the
event loop stays free for the others."""

_LIMITED = RateLimitedLog()
"""Fault and overload warnings: bounded like every warning a peer can cause (log.rate_limit_*)."""
_INJECTED = {kind: FAULTS_INJECTED.labels(kind) for kind in FAULT_KINDS}
_REFUSED: dict[tuple[str, str], Any] = {}


def prepare(config: Any, interface: str) -> None:
    """At an interface's start: the overload budget from ``overload:``, the rate limit of the fault
    and overload warnings from ``log:``, and the series that must read 0 before the first event."""
    ADMISSION.configure_from(config.overload)
    _LIMITED.burst = max(0, config.log.rate_limit_burst)
    _LIMITED.interval = max(0.001, config.log.rate_limit_interval)
    CHECKS_IN_FLIGHT.set_function(lambda: ADMISSION.in_flight)
    for kind in FAULT_KINDS:
        FAULTS_INJECTED.labels(kind)
    for scope in ("global", "peer"):
        refused_counter(interface, scope)


def refused_counter(interface: str, scope: str) -> Any:
    c = _REFUSED.get((interface, scope))
    if c is None:
        c = _REFUSED[(interface, scope)] = OVERLOAD_REFUSED.labels(interface, scope)
    return c


class CoreProtocol(asyncio.Protocol):
    transport: asyncio.Transport | None
    loop: asyncio.AbstractEventLoop
    tasks: set[asyncio.Task[None]]
    max_in_flight: int
    checker: Checker
    check_seconds: Any
    """The ``eir_check_duration_seconds`` child of the subclass's interface."""
    log: Any
    recorder: Any = None
    """An :class:`eir.recording.ConnectionRecorder` while recording, else None (the class default)."""
    write_guard: Any = None
    """A :class:`eir.servers._trust.WriteStallGuard` (Diameter, M3UA): told when the transport stops
    and resumes taking our writes, it cuts a peer that reads nothing for ``*.write_timeout``."""

    def _init_plumbing(self, max_in_flight: int, checker: Checker) -> None:
        self.checker = checker
        self.flush_pending = False
        self.transport = None
        self.loop = asyncio.get_running_loop()
        self.tasks = set()
        self.max_in_flight = max(1, max_in_flight)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.reading_paused = False
        self.overload_paused = False
        """A check of this connection was refused for overload: reading paused for OVERLOAD_PAUSE."""
        self.writing_paused = False
        self.body_paused = False
        """A streamed request body has more waiting than the service has read (HTTP adapters)."""
        self.failed = False
        """The core raised something unexpected: it is never called again."""

    # -- to provide ---------------------------------------------------------------------------
    def _core(self) -> Any:
        """The sans-IO core (``data_to_send``, ``get_timer``, ``handle_timer``), or None."""
        raise NotImplementedError

    def _handle(self, events: list[Any]) -> None:
        raise NotImplementedError

    def _internal_error(self, data: bytes) -> None:
        raise NotImplementedError

    def _answer(self, ctx: Any, verdict: Verdict) -> None:
        """Put ``verdict`` on the wire for the request ``ctx`` (the core's event)."""
        raise NotImplementedError

    def _overloaded(self, ctx: Any) -> None:
        """Answer ``ctx`` refused by the overload control (the interface's "too busy")."""
        raise NotImplementedError

    def _peer_key(self, request: CheckRequest) -> str:
        """The peer a request is budgeted to (:mod:`eir.overload`)."""
        raise NotImplementedError

    def _fault_peers(self, request: CheckRequest, ctx: Any) -> tuple[str, ...]:
        """The names a fault rule's ``peer`` glob is matched against."""
        return (request.origin or "",)

    def _fault(self, rule: FaultRule, ctx: Any) -> bool:
        """Act out an interface-specific fault kind for ``ctx``; False: not one of this interface."""
        return False

    # -- the one check-dispatch path ----------------------------------------------------------
    def _dispatch(self, request: CheckRequest, ctx: Any) -> None:
        """Check ``request`` and answer ``ctx`` (module docstring): inline when the store did not
        suspend, else from a Task."""
        if REGISTRY.active:
            rule = REGISTRY.match(request.interface.value, request.imei, self._fault_peers(request, ctx))
            if rule is not None and self._inject(rule, request, ctx):
                return
        admission = ADMISSION
        peer: str | None = None
        if admission.in_flight:  # nothing in flight: every peer is within its budget
            peer = self._peer_key(request)
            scope = admission.refuse(peer)
            if scope is not None:
                self._refuse(request, ctx, peer, scope)
                return
        started = time.perf_counter()
        first = start(self.checker.check(request), self.log)
        if type(first) is Started:
            if peer is None:
                peer = self._peer_key(request)
            admission.acquire(peer)
            task = self.loop.create_task(self._finish(ctx, first.coro, first.first, started))
            task.add_done_callback(lambda _t: admission.release(peer))
            self._track(task)
            return
        self._answer(ctx, first)  # type: ignore[arg-type]
        self.check_seconds.observe(time.perf_counter() - started)

    def _refuse(self, request: CheckRequest, ctx: Any, peer: str, scope: str) -> None:
        iface = request.interface.value
        refused_counter(iface, scope).inc()
        _LIMITED.warning(
            self.log,
            f"overload_refused:{iface}:{scope}",
            "overload_refused",
            scope=scope,
            peer=peer[:64],
            in_flight=ADMISSION.in_flight,
            max_in_flight=ADMISSION.max_in_flight,
        )
        self._overloaded(ctx)
        if not self.overload_paused:
            # Back-pressure on the connection that pushes: refusing costs CPU too, and a flood
            # refused at full speed would still starve the other peers of the event loop.
            self.overload_paused = True
            self._update_reading()
            self.loop.call_later(OVERLOAD_PAUSE, self._overload_resume)

    def _overload_resume(self) -> None:
        self.overload_paused = False
        self._update_reading()

    def _inject(self, rule: FaultRule, request: CheckRequest, ctx: Any) -> bool:
        """Act out ``rule`` for this request. True: handled (answered, dropped, closed or delayed)."""
        kind = rule.kind
        self._fault_injected(rule, request.interface.value, imei=request.imei[:16], origin=request.origin)
        if kind == "delay":
            peer = self._peer_key(request)
            scope = ADMISSION.refuse(peer)
            if scope is not None:  # a delayed check holds a slot like one waiting for the store
                self._refuse(request, ctx, peer, scope)
                return True
            ADMISSION.acquire(peer)
            task = self.loop.create_task(self._delayed(ctx, request, rule.delay_ms / 1000.0))
            task.add_done_callback(lambda _t: ADMISSION.release(peer))
            self._track(task)
            return True
        if kind == "no_answer":
            return True
        if kind == "close":
            self._fault_close()
            return True
        return self._fault(rule, ctx)

    def _fault_injected(self, rule: FaultRule, interface: str, **fields: Any) -> None:
        """Count and log (rate-limited) one injected fault."""
        _INJECTED[rule.kind].inc()
        _LIMITED.warning(
            self.log,
            f"fault_injected:{rule.kind}",
            "fault_injected",
            kind=rule.kind,
            rule=rule.id,
            interface=interface,
            **{k: (v[:64] if isinstance(v, str) else v) for k, v in fields.items()},
        )

    def _fault_close(self) -> None:
        """The ``close`` fault: answers already made leave, then the transport is closed (no DPR,
        ASPDN or GOAWAY first) and this request is never answered."""
        self._flush()
        self._close_transport()

    async def _delayed(self, ctx: Any, request: CheckRequest, delay: float) -> None:
        """The ``delay`` fault: the check runs after ``delay`` seconds (its duration included)."""
        started = time.perf_counter()
        await asyncio.sleep(delay)
        try:
            verdict = await self.checker.check(request)
        except Exception as e:
            verdict = check_failed(self.log, e)
        if self.failed:
            return
        try:
            self._answer(ctx, verdict)
        except Exception:
            self._internal_error(b"")
            return
        self.check_seconds.observe(time.perf_counter() - started)
        self._schedule_flush()

    async def _finish(self, ctx: Any, coro: Coroutine[Any, Any, Verdict], first: Any, started: float) -> None:
        try:
            verdict = await resume(coro, first)
        except Exception as e:  # CancelledError (connection lost) is a BaseException: it propagates
            verdict = check_failed(self.log, e)
        if self.failed:
            return
        try:
            self._answer(ctx, verdict)
        except Exception:
            self._internal_error(b"")
            return
        self.check_seconds.observe(time.perf_counter() - started)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self.flush_pending = False
        if not self.failed:
            try:
                self._flush()
            except Exception:
                self._internal_error(b"")

    # -- back-pressure ------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()
        if self.write_guard is not None:
            self.write_guard.paused(self.loop)

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()
        if self.write_guard is not None:
            self.write_guard.resumed()

    def _track(self, task: asyncio.Task[None]) -> None:
        """Hold a check that waits for the store; stop reading when too many wait."""
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        if len(self.tasks) >= self.max_in_flight:
            self._update_reading()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self.reading_paused:
            self._update_reading()

    def _input_backlogged(self) -> bool:
        """The core holds more unparsed input than it may (HTTP/1.1 pipelining): stop reading."""
        return False

    def _update_reading(self) -> None:
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        waiting = len(self.tasks)
        want_pause = (
            self.writing_paused
            or waiting >= self.max_in_flight
            or self.overload_paused
            or self.body_paused
            or self._input_backlogged()
        )
        if want_pause and not self.reading_paused:
            tr.pause_reading()
            self.reading_paused = True
        elif not want_pause and self.reading_paused and waiting <= self.max_in_flight // 2:
            tr.resume_reading()
            self.reading_paused = False

    # -- bytes and the timer --------------------------------------------------------------------
    def _flush(self) -> None:
        core = self._core()
        if core is None:
            return
        data = core.data_to_send()
        tr = self.transport
        if data and tr is not None and not tr.is_closing():
            tr.write(data)
            if self.recorder is not None:
                self.recorder.sent(data)
        at = core.get_timer()
        if at is not None and self.timer_at is not None and self.timer_at <= at:
            return  # the armed timer fires first; handle_timer is safe early and re-arms
        if at != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(at, self._on_timer) if at is not None else None
            self.timer_at = at

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        if self.failed:
            return
        try:
            core = self._core()
            if core is not None:
                self._handle(core.handle_timer(self.loop.time()))
            self._flush()
        except Exception:
            self._internal_error(b"")

    def _record_open(self, protocol: str) -> None:
        """At ``connection_made``: a recorder for this connection when ``--pcap`` is on."""
        from eir import recording

        if recording.active() is not None:
            self.recorder = recording.connection(protocol, self.transport)

    def _record_close(self) -> None:
        if self.recorder is not None:
            self.recorder.closed()
            self.recorder = None

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.timer_at = None

    def _close_transport(self) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            tr.close()
