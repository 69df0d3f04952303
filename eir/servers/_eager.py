"""Eager start of a check: what Python 3.12's ``eager_task_factory`` does, by hand (3.11 has none).

A server calls :func:`start` in ``data_received``: the checker's coroutine takes its first step
right there, outside any Task. A store that answers without suspending (SQLite, memory, the
checker's cache of a remote store) completes the check in that step — no Task, no event-loop turn,
the answer leaves with the same write. Only a check that really waits is continued under a Task,
through :func:`resume`, which hands the Task exactly what the coroutine yielded.

The contract this puts on what a check calls: code that needs to run inside a Task (client
libraries using ``asyncio.timeout``) must not run in the first step. Stores declare it with
``IdentityStore.needs_task`` and the checker yields once before reaching them
(:mod:`eir.checker`), which moves them under the Task.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

from eir.model import Status, Verdict

__all__ = ["Started", "check_failed", "resume", "start"]


class Started:
    """A check that suspended in its first step: continue it with ``resume(coro, first)``."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Verdict], first: Any) -> None:
        self.coro = coro
        self.first = first


def start(coro: Coroutine[Any, Any, Verdict], log: Any) -> Verdict | Started:
    """Take the first step of ``coro``: its verdict if it completed, else what it waits on.

    The Checker contract says ``check`` never raises; if it does, the answer is FAILURE (logged)."""
    try:
        first = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except Exception as e:
        return check_failed(log, e)
    return Started(coro, first)


@types.coroutine
def resume(coro: Coroutine[Any, Any, Verdict], first: Any) -> Generator[Any, Any, Verdict]:
    """Continue a coroutine that was already stepped once (and yielded ``first``) under a Task.

    The Task sees exactly what the coroutine yields, so awaiting futures, ``sleep(0)`` and
    cancellation behave as if the Task had started the coroutine itself.
    """
    pending = first
    while True:
        try:
            sent = yield pending
        except BaseException as e:  # cancellation or an exception the Task throws in
            try:
                pending = coro.throw(e)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


def check_failed(log: Any, e: BaseException) -> Verdict:
    """The Checker contract says it never raises; if it does, answer FAILURE and log it."""
    log.error("check_failed", error=repr(e))
    return Verdict(status=Status.FAILURE, rule="error", detail=repr(e))
