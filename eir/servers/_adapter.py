"""The asyncio side both interface adapters share (STYLE.md, "The asyncio adapter").

A subclass owns one sans-IO core (``_core()`` returns it, or None before it exists) and handles its
events in ``_handle``; this base flushes the core's bytes, keeps one timer armed at the core's
deadline, and applies back-pressure: reading pauses while the transport asks us to stop writing or
``max_in_flight`` checks are waiting for the store, and resumes at half that.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoreProtocol(asyncio.Protocol):
    transport: asyncio.Transport | None
    loop: asyncio.AbstractEventLoop
    tasks: set[asyncio.Task[None]]
    max_in_flight: int

    def _init_plumbing(self, max_in_flight: int) -> None:
        self.transport = None
        self.loop = asyncio.get_running_loop()
        self.tasks = set()
        self.max_in_flight = max(1, max_in_flight)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.reading_paused = False
        self.writing_paused = False
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

    # -- back-pressure ------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

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

    def _update_reading(self) -> None:
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        waiting = len(self.tasks)
        want_pause = self.writing_paused or waiting >= self.max_in_flight
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

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.timer_at = None

    def _close_transport(self) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            tr.close()
