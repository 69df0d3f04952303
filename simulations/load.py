"""The load generator shared by the simulated MME, MSC and AMF (issue 7, part 5).

Three ways to drive an EIR:

* **closed loop** (``--count N --window W``): W requests outstanding per connection, the next one sent
  when an answer comes back. It measures throughput; its latencies hide the waits a slow answer
  causes (a request that could not be sent is never timed — *coordinated omission*).
* **paced closed loop** (``--rate R --window W``): at most R a second, but never more than W
  outstanding per connection; latency from the moment a request is actually sent (the classic
  benchmark figure, coordinated omission included).
* **open loop** (``--rate R --duration S``, no ``--window``): request *i* is due at ``t0 + i/R``
  whatever happened to the earlier ones, and its latency is measured from that intended time, so a
  stall in the EIR (or in this client) shows up in every request that should have gone out during it
  — no coordinated omission (Gil Tene, "How NOT to measure latency"; wrk2's ``-R``).

Latencies go to an HDR histogram (the ``hdrhistogram`` package, 1 µs .. 100 s at 3 significant
digits), which gives p50/p90/p99/p99.9 without keeping every sample. Requests still unanswered when
the run ends are counted as ``timeout`` and recorded with the latency they had reached, never dropped.

A simulated element plugs in through :class:`LoadSender`: ``send(intended_times)`` sends one request
per time, and its answers call :meth:`LoadRun.answered`. The scheduler (:func:`drive`) is the same
for every interface.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from hdrh.histogram import HdrHistogram

__all__ = [
    "Latencies",
    "LoadMode",
    "LoadRun",
    "LoadSender",
    "LoadSummary",
    "Progress",
    "add_load_options",
    "drive",
    "load_args",
    "load_plan",
    "peer_names",
    "plan_from_args",
    "progress_from_args",
    "read_imei_file",
    "report",
]

LoadMode = Literal["closed", "paced", "open"]

_LOWEST_US = 1
_HIGHEST_US = 100_000_000  # 100 s: a request later than this is a lost one anyway
_CLOCK = time.perf_counter
_TICK = 0.001  # seconds: the scheduler's shortest sleep (see _schedule)


class Latencies:
    """An HDR histogram of latencies in microseconds (seconds in, milliseconds out)."""

    def __init__(self) -> None:
        self._h = HdrHistogram(_LOWEST_US, _HIGHEST_US, 3)

    def record(self, seconds: float) -> None:
        us = int(seconds * 1_000_000)
        self._h.record_value(min(max(us, _LOWEST_US), _HIGHEST_US))

    def extend(self, seconds: Iterable[float]) -> None:
        for s in seconds:
            self.record(s)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, q: float) -> float:
        """The latency at percentile ``q`` (0..100), in milliseconds; 0 when empty."""
        return self._h.get_value_at_percentile(q) / 1000 if self.count else 0.0

    def max_ms(self) -> float:
        return self._h.get_max_value() / 1000 if self.count else 0.0

    def mean_ms(self) -> float:
        return float(self._h.get_mean_value()) / 1000 if self.count else 0.0


@dataclass(slots=True)
class LoadSummary:
    """What a load run reports (``--json`` prints it as is)."""

    count: int
    window: int
    seconds: float
    rate: float
    """Answers per second over the whole run (first send to last answer)."""
    p50_ms: float
    p99_ms: float
    verdicts: dict[str, int] = field(default_factory=dict)
    p90_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    mode: str = "closed"
    target_rate: float | None = None
    peers: int = 1
    sent: int = 0
    answered: int = 0
    lost: int = 0
    """Requests without an answer when the run ended (counted as ``timeout`` in ``verdicts``)."""
    send_rate: float = 0.0
    """Requests sent per second while sending (open loop: did the generator hold the rate?)."""
    max_send_lag_ms: float = 0.0
    """Open loop: the most a batch of requests went out after its intended time (the client's own
    lateness; it is inside every latency figure, as it should be)."""
    cpu_seconds: float = 0.0
    """CPU time of this process (user + system) during the run."""
    error: str | None = None
    """Why the run ended early (a connection lost), else None."""

    @classmethod
    def measure(
        cls, *, count: int, window: int, seconds: float, latencies: Iterable[float], verdicts: dict[str, int]
    ) -> LoadSummary:
        """From a list of latencies (seconds) — for callers that time requests themselves."""
        lat = Latencies()
        lat.extend(latencies)
        return cls.of(lat, count=count, window=window, seconds=seconds, verdicts=verdicts)

    @classmethod
    def of(
        cls, lat: Latencies, *, count: int, window: int, seconds: float, verdicts: dict[str, int], **kw: Any
    ) -> LoadSummary:
        kw.setdefault("answered", lat.count)
        kw.setdefault("sent", count)
        return cls(
            count=count,
            window=window,
            seconds=seconds,
            rate=kw["answered"] / seconds if seconds else 0.0,
            p50_ms=lat.percentile_ms(50),
            p99_ms=lat.percentile_ms(99),
            verdicts=dict(verdicts),
            p90_ms=lat.percentile_ms(90),
            p999_ms=lat.percentile_ms(99.9),
            max_ms=lat.max_ms(),
            mean_ms=lat.mean_ms(),
            **kw,
        )

    def line(self, unit: str) -> str:
        """One human line, as ``eir sim …`` prints a load run."""
        if self.mode == "open":
            how = f"open loop at {self.target_rate:g}/s"
        elif self.mode == "paced":
            how = f"window {self.window}, at most {self.target_rate:g}/s"
        else:
            how = f"window {self.window}"
        peers = f", {self.peers} peers" if self.peers > 1 else ""
        lost = f", {self.lost} lost" if self.lost else ""
        return (
            f"{self.count} {unit} ({how}{peers}) in {self.seconds:.2f} s: {self.rate:.0f}/s, "
            f"p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"p99.9 {self.p999_ms:.2f} ms{lost}; verdicts {self.verdicts}"
        )


class LoadRun:
    """The state every connection of one run shares: what remains to send (closed loop), what was
    answered, the histogram, the verdicts. Senders call :meth:`answered` for each answer and, in a
    closed loop, :meth:`take` before sending the next request."""

    def __init__(self, mode: LoadMode, *, total: int | None, window: int) -> None:
        self.mode: LoadMode = mode
        self.total = total
        """Requests the run sends; None while an open loop is still scheduling."""
        self.window = window
        self.sent = 0
        self.answered_count = 0
        self.lost = 0
        self.latencies = Latencies()
        self.verdicts: Counter[str] = Counter()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None

    def take(self, n: int) -> int:
        """Closed loop: how many of ``n`` more requests may be sent (and counts them as sent)."""
        if self.mode != "closed" or self.total is None:
            return 0
        k = max(0, min(n, self.total - self.sent))
        self.sent += k
        return k

    def answered(self, latency: float, verdict: str) -> None:
        self.latencies.record(latency)
        self.verdicts[verdict] += 1
        self.answered_count += 1
        if self.total is not None and self.answered_count + self.lost >= self.total:
            self._finish()

    def check_done(self) -> None:
        if self.total is not None and self.answered_count + self.lost >= self.total:
            self._finish()

    def fail(self, exc: BaseException) -> None:
        """A connection was lost: the run ends (what was answered is still reported)."""
        self.error = exc
        if not self.done.done():
            self.done.set_result(None)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class LoadSender(Protocol):
    """One connection of a load run (one MME peer, one MSC ASP, one AMF HTTP/2 connection)."""

    def attach(self, run: LoadRun) -> None:
        """Route answers to ``run`` from now on."""

    def send(self, intended: Sequence[float]) -> None:
        """Send one request per element, timed from that moment (``time.perf_counter`` clock)."""

    def outstanding(self) -> list[float]:
        """The intended times of the requests not answered yet."""

    def in_flight(self) -> int:
        """How many requests are not answered yet."""

    def detach(self) -> None:
        """Stop routing answers to the run (late answers are then ignored)."""


class Progress:
    """A one-line live display on a terminal (stderr), refreshed once a second; silent otherwise."""

    def __init__(
        self,
        unit: str,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        run: LoadRun | None = None,
    ) -> None:
        self.run = run
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._task: asyncio.Task[None] | None = None
        self._t0 = _CLOCK()

    def start(self) -> None:
        if self.enabled:
            self._t0 = _CLOCK()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        last_n, last_t = 0, self._t0
        while True:
            await asyncio.sleep(1.0)
            now = _CLOCK()
            r = self.run
            if r is None:
                continue
            n = r.answered_count
            rate = (n - last_n) / (now - last_t) if now > last_t else 0.0
            last_n, last_t = n, now
            self.stream.write(
                f"\r{now - self._t0:6.1f} s  sent {r.sent}  answered {n}  {rate:8.0f} {self.unit}/s  "
                f"p50 {r.latencies.percentile_ms(50):.2f} ms  p99 {r.latencies.percentile_ms(99):.2f} ms   "
            )
            self.stream.flush()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.stream.write("\r\x1b[K")
            self.stream.flush()


@dataclass(frozen=True, slots=True)
class LoadPlan:
    mode: LoadMode
    count: int
    """Requests in all (open/paced: rate times duration)."""
    window: int
    rate: float | None
    peers: int
    timeout: float
    """Seconds to wait for the last answers once everything is sent."""


def load_plan(
    *,
    count: int | None,
    window: int | None,
    rate: float | None,
    duration: float | None,
    peers: int = 1,
    timeout: float = 5.0,
) -> LoadPlan:
    """The run the options describe; ValueError (a usage error) for a combination that means nothing."""
    if duration is not None and rate is None:
        raise ValueError("--duration needs --rate (requests per second)")
    if rate is not None:
        if duration is not None and count is not None and count > 1:
            raise ValueError("give --duration or --count with --rate, not both")
        if duration is None and (count is None or count <= 1):
            raise ValueError("--rate needs --duration S (or --count N)")
        n = count if (count is not None and count > 1) else math.ceil(rate * (duration or 0.0))
        mode: LoadMode = "paced" if window is not None else "open"
        return LoadPlan(mode, max(1, n), window or 0, rate, peers, timeout)
    return LoadPlan("closed", count or 1, window or 1, None, peers, timeout)


async def drive(
    senders: Sequence[LoadSender], plan: LoadPlan, *, progress: Progress | None = None, unit: str = "req"
) -> LoadSummary:
    """Run ``plan`` over ``senders`` (one per connection) and summarise it."""
    run = LoadRun(plan.mode, total=plan.count if plan.mode == "closed" else None, window=plan.window)
    if progress is not None:
        progress.run = run
    for s in senders:
        s.attach(run)
    cpu0 = time.process_time()
    t0 = _CLOCK()
    max_lag = 0.0
    send_seconds = 0.0
    try:
        if progress is not None:
            progress.start()
        if plan.mode == "closed":
            for s in senders:
                k = run.take(plan.window)
                if k:
                    now = _CLOCK()
                    s.send([now] * k)
        else:
            assert plan.rate is not None
            max_lag = await _schedule(senders, plan, run, t0)
            send_seconds = _CLOCK() - t0
            run.total = run.sent
            run.check_done()
        # Everything is sent (closed: the senders refill from their answers). Wait for the answers.
        last_answer_deadline = plan.timeout if plan.mode != "closed" else max(plan.timeout, plan.count / 100)
        waited = 0.0
        while not run.done.done():
            before = run.answered_count
            try:
                await asyncio.wait_for(asyncio.shield(run.done), last_answer_deadline)
            except TimeoutError:
                if run.answered_count == before or waited > 10 * last_answer_deadline:
                    break  # nothing moved for a whole timeout: what remains is lost
                waited += last_answer_deadline
    finally:
        if progress is not None:
            progress.stop()
        end = _CLOCK()
        for s in senders:
            for intended in s.outstanding():
                run.lost += 1
                run.verdicts["timeout"] += 1
                run.latencies.record(end - intended)
            s.detach()
    seconds = end - t0
    sent = run.sent
    return LoadSummary.of(
        run.latencies,
        count=sent,
        window=plan.window,
        seconds=seconds,
        verdicts=dict(run.verdicts),
        mode=plan.mode,
        target_rate=plan.rate,
        peers=len(senders),
        sent=sent,
        answered=run.answered_count,
        lost=run.lost,
        send_rate=(sent / send_seconds) if send_seconds else (sent / seconds if seconds else 0.0),
        max_send_lag_ms=max_lag * 1000,
        cpu_seconds=time.process_time() - cpu0,
        error=None if run.error is None else (str(run.error) or type(run.error).__name__),
    )


async def _schedule(senders: Sequence[LoadSender], plan: LoadPlan, run: LoadRun, t0: float) -> float:
    """Send request *i* at ``t0 + i/rate`` (open: timed from then; paced: from when a window slot lets
    it go). Returns the largest lateness of a batch."""
    assert plan.rate is not None
    step = 1.0 / plan.rate
    total = plan.count
    n_peers = len(senders)
    sent = 0
    max_lag = 0.0
    while sent < total:
        if run.error is not None:
            break
        now = _CLOCK()
        due = min(total, int((now - t0) * plan.rate) + 1)
        if due > sent:
            max_lag = max(max_lag, now - (t0 + sent * step))
            if plan.mode == "open":
                times = [t0 + i * step for i in range(sent, due)]
                for k, s in enumerate(senders):
                    part = times[k::n_peers]
                    if part:
                        s.send(part)
                sent = due
            else:
                # paced: as many as the windows allow, timed from now (coordinated omission, by design)
                free = [max(0, plan.window - s.in_flight()) for s in senders]
                want = due - sent
                moved = 0
                for s, f in zip(senders, free, strict=True):
                    k = min(f, want - moved)
                    if k:
                        s.send([now] * k)
                        moved += k
                sent += moved
                if not moved:
                    run.sent = sent
                    await asyncio.sleep(_TICK)  # every window is full: wait for answers
                    continue
            run.sent = sent
        if sent >= total:
            break
        # Sleep until the next request is due, but at least one tick: the event loop's timers have
        # millisecond resolution (libuv), and a shorter sleep returns at once — a busy loop that
        # would take the CPU the answers need. Requests are never sent before they are due.
        delay = t0 + sent * step - _CLOCK()
        await asyncio.sleep(max(delay, _TICK))
    return max_lag


def read_imei_file(path: str | Path) -> list[str]:
    """IMEIs to cycle through, one a line (or the first column of a CSV such as a list file: a header
    line and ``#`` comments are skipped). ValueError names the line of a bad one."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        field0 = line.split(",", 1)[0].strip().replace("-", "")
        if not field0 or field0.startswith("#") or (n == 1 and not field0.isdigit()):
            continue
        if not (field0.isascii() and field0.isdigit() and 14 <= len(field0) <= 16):
            raise ValueError(f"{path}:{n}: {field0!r} is not an IMEI (14 to 16 digits)")
        out.append(field0)
    if not out:
        raise ValueError(f"{path}: no IMEI in it")
    return out


def add_load_options(
    p: argparse.ArgumentParser, *, unit: str, rate: bool = True, imei_file: bool = True
) -> None:
    """``--count``, ``--window``, ``--rate``, ``--duration``, ``--peers``, ``--imei-file``,
    ``--progress``: the same on every ``eir sim`` element."""
    from eir.cli import int_range, positive_float

    p.add_argument("--count", type=int_range(1), default=None, help=f"{unit}s to send (a load run when > 1)")
    p.add_argument(
        "--window",
        type=int_range(1),
        default=None,
        help="closed loop: requests outstanding per connection (default 1; with --rate: paced closed loop)",
    )
    if rate:
        p.add_argument(
            "--rate",
            type=positive_float,
            default=None,
            help="requests per second; without --window an open loop timed from each intended send time",
        )
    p.add_argument(
        "--duration", type=positive_float, default=None, help="seconds to send at --rate (instead of --count)"
    )
    p.add_argument("--peers", type=int_range(1, 64), default=1, help="connections to open (load runs)")
    if imei_file:
        p.add_argument(
            "--imei-file",
            default=None,
            metavar="PATH",
            help="IMEIs to cycle through, one a line (or a list CSV's first column), instead of --imei alone",
        )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a live progress line on stderr (default: when stderr is a terminal)",
    )


def plan_from_args(args: argparse.Namespace) -> LoadPlan | None:
    """The load plan of ``eir sim …`` options, None for a single request. ValueError: usage error."""
    rate = getattr(args, "rate", None)
    if (args.count or 1) <= 1 and rate is None and args.duration is None:
        if args.peers > 1:
            raise ValueError("--peers is for load runs (--count > 1 or --rate)")
        return None
    return load_plan(
        count=args.count,
        window=args.window,
        rate=rate,
        duration=args.duration,
        peers=args.peers,
        timeout=args.timeout,
    )


def progress_from_args(args: argparse.Namespace, unit: str) -> Progress | None:
    if args.progress is False or (args.progress is None and not sys.stderr.isatty()):
        return None
    return Progress(unit, enabled=True)


def peer_names(base: str, n: int) -> list[str]:
    """Origin-Hosts for ``n`` connections: ``base`` for one, ``mme-1.sim…``, ``mme-2.sim…`` for more."""
    if n == 1:
        return [base]
    first, dot, rest = base.partition(".")
    return [f"{first}-{i}{dot}{rest}" for i in range(1, n + 1)]


def load_args(args: argparse.Namespace, prog: str) -> bool:
    """Check the load options of ``eir sim …`` and set ``args.plan`` (None: a single request) and
    ``args.imeis`` (from ``--imei-file``). False after printing a usage error."""
    from eir.cli import usage_error

    try:
        args.plan = plan_from_args(args)
        path = getattr(args, "imei_file", None)
        args.imeis = read_imei_file(path) if path else None
    except ValueError as e:
        usage_error(prog, str(e))
        return False
    if args.imeis and args.plan is None:
        usage_error(prog, "--imei-file is for load runs (--count > 1 or --rate)")
        return False
    return True


def report(s: LoadSummary, unit: str, as_json: bool) -> int:
    """Print a load run's summary (one line, or JSON); the exit code: 1 when requests were lost."""
    if as_json:
        print(json.dumps(asdict(s)))
    else:
        print(s.line(unit))
    return 1 if s.lost or s.error else 0
