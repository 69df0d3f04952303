"""Bounded logs (issue 10): RateLimitedLog lets the first N warnings of a kind through per interval,
counts the rest in eir_log_suppressed and writes one summary line; the start-up warning for a
listener beyond loopback without an allow-list; the source and name allow-list helpers."""

from __future__ import annotations

import asyncio
from typing import Any

from eir.logging import RateLimitedLog
from eir.metrics import LOG_SUPPRESSED
from eir.servers._trust import ConnectionLimiter, name_matcher, networks, source_allowed, warn_if_exposed


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


def test_first_n_per_interval_then_one_summary() -> None:
    now = [0.0]
    limited = RateLimitedLog(burst=3, interval=60.0, clock=lambda: now[0])
    log = Log()
    before = LOG_SUPPRESSED.labels("t:a")._value.get()
    for i in range(1000):
        limited.warning(log, "t:a", "bad_frame", n=i)
    limited.warning(log, "t:b", "other")  # another kind has its own budget
    assert [e for e, _ in log.lines] == ["bad_frame"] * 3 + ["other"]
    assert LOG_SUPPRESSED.labels("t:a")._value.get() == before + 997
    now[0] = 61.0  # the interval is over: the next warning writes the summary and opens a new window
    limited.warning(log, "t:a", "bad_frame", n=1000)
    assert log.lines[4] == ("log_suppressed", {"kind": "t:a", "suppressed": 997, "interval": 60.0})
    assert log.lines[5] == ("bad_frame", {"n": 1000})
    limited.flush()  # nothing suppressed in the new window: no line
    assert len(log.lines) == 6


async def test_the_summary_comes_from_a_timer_on_the_loop() -> None:
    limited = RateLimitedLog(burst=1, interval=0.01)
    log = Log()
    for _ in range(5):
        limited.warning(log, "t:timer", "bad")
    for _ in range(200):
        if len(log.lines) == 2:
            break
        await asyncio.sleep(0.01)
    assert log.lines == [
        ("bad", {}),
        ("log_suppressed", {"kind": "t:timer", "suppressed": 4, "interval": 0.01}),
    ]


def test_warning_when_listening_beyond_loopback() -> None:
    log = Log()
    warn_if_exposed(log, "diameter", ["127.0.0.1:3868", "[::1]:3868", "localhost:1"], ("allow_sources",))
    assert log.lines == []
    warn_if_exposed(log, "diameter", ["127.0.0.1:3868", "0.0.0.0:3868"], ("allow_sources", "allow_hosts"))
    assert len(log.lines) == 1
    event, kw = log.lines[0]
    assert event == "listening_without_allow_list" and kw["addresses"] == ["0.0.0.0:3868"]
    assert "allow_sources / allow_hosts" in kw["detail"]


def test_allow_list_helpers() -> None:
    nets = networks(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert source_allowed((), None) and source_allowed((), "198.51.100.1")
    assert source_allowed(nets, "10.1.2.3") and source_allowed(nets, "192.0.2.7")
    assert source_allowed(nets, "2001:db8::1")
    assert not source_allowed(nets, "192.0.2.8") and not source_allowed(nets, None)
    match = name_matcher(["mme*.epc.lab", "hss.lab"])
    assert match is not None and match("MME7.epc.lab") and match("hss.lab") and not match("mme7.lab")
    assert name_matcher([]) is None


def test_connection_limiter_counts_and_releases() -> None:
    log = Log()
    lim = ConnectionLimiter("t", max_total=3, max_per_source=2, limited=RateLimitedLog(), log=log)
    assert lim.admit("a") and lim.admit("a") and not lim.admit("a")
    assert lim.admit("b") and not lim.admit("c")
    assert [kw["reason"] for _, kw in log.lines] == ["connection_limit_per_source", "connection_limit"]
    lim.release("a")
    assert lim.admit("c") and lim.per_source == {"a": 1, "b": 1, "c": 1}
