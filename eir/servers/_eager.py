"""Checks started inline: both servers step the checker's coroutine by hand in ``data_received``
(what Python 3.12's eager task factory does), so a store that answers without suspending (SQLite,
memory, a warm cache) costs no Task and no event-loop turn. Only a check that really waits is
continued under a Task, through :func:`resume`."""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

from eir.model import Status, Verdict


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
