"""structlog set-up, done once by the CLI: console renderer on a TTY, JSON lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from eir.metrics import LOG_SUPPRESSED

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


_KEEP = {"imei": 8, "imeisv": 8, "pei": 8, "tac": 8, "imsi": 5, "supi": 5, "imsis": 5, "msisdn": 0, "gpsi": 0}
"""Identity fields masked by ``log.mask_identities`` and the digits each keeps: an IMEI its TAC (the
model, what a lab needs), an IMSI its MCC+MNC (the network)."""


def mask_digits(value: str, keep: int) -> str:
    """``35394206000002`` → ``35394206******``: the first ``keep`` digits of the digit run stay, the
    other digits become ``*`` (a prefix such as ``imei-`` or ``imsi-`` is kept as it is)."""
    head, sep, tail = value.rpartition("-")
    digits = tail if sep else value
    kept = 0
    out = []
    for ch in digits:
        if ch.isdigit():
            out.append(ch if kept < keep else "*")
            kept += 1
        else:
            out.append(ch)
    return (head + sep if sep else "") + "".join(out)


def _mask_value(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return mask_digits(value, keep)
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v, keep) for v in value]
    return value


def mask_payload(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with the identity fields (and those inside nested dicts) masked."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        keep = _KEEP.get(k)
        if keep is not None:
            out[k] = _mask_value(v, keep)
        elif isinstance(v, dict):
            out[k] = mask_payload(v)
        else:
            out[k] = v
    return out


_KEEP_KEYS = frozenset(_KEEP)


def _mask_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # in place and only the identity keys present: structlog hands each line its own dict
    for k in _KEEP_KEYS.intersection(event_dict):
        event_dict[k] = _mask_value(event_dict[k], _KEEP[k])
    return event_dict


def _drop_none(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No ``key=None`` clutter: a field that has no value is left out of the line."""
    for k in [k for k, v in event_dict.items() if v is None]:
        del event_dict[k]
    return event_dict


def setup_logging(
    level: str = "info", fmt: str = "auto", stream: Any = None, *, mask_identities: bool = False
) -> None:
    """Configure structlog (and the stdlib root logger, for libraries) once at start-up."""
    stream = stream or sys.stderr
    lvl = _LEVELS.get(level.lower(), logging.INFO)
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _drop_none,
            *([_mask_processor] if mask_identities else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(lvl, logging.WARNING), stream=stream, format="%(levelname)s %(name)s %(message)s"
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("eir").bind(**bound)


class RateLimitedLog:
    """Bounded warnings for input a peer controls (protocol errors, refusals): per ``kind``, the first
    ``burst`` lines of each ``interval`` seconds are logged, the rest only counted, and when the
    interval ends one ``log_suppressed`` line says how many of that kind were left out. Metrics keep
    counting every occurrence; this bounds only the log (a fuzzing peer wrote 101 MB of warnings).

    ``kind`` must come from a fixed set (an event name and an error label, never a peer or a value):
    it is a label of ``eir_log_suppressed``. The summary is written by a timer on the running event
    loop, or at the next warning of that kind when there is no loop (tests pass ``clock``).
    """

    def __init__(self, burst: int = 10, interval: float = 60.0, clock: Any = None) -> None:
        self.burst = max(0, burst)
        self.interval = max(0.001, interval)
        self._clock = clock
        self._windows: dict[str, list[Any]] = {}
        """kind → [window start, lines seen in it, lines suppressed, the logger of the last one]."""

    def _now(self) -> float:
        return float(self._clock()) if self._clock is not None else time.monotonic()

    def warning(self, log: Any, kind: str, event: str, /, **fields: Any) -> None:
        now = self._now()
        w = self._windows.get(kind)
        if w is None or now - w[0] >= self.interval:
            if w is not None:
                self._summary(kind)
            w = self._windows[kind] = [now, 0, 0, log]
        w[1] += 1
        w[3] = log
        if w[1] <= self.burst:
            log.warning(event, **fields)
            return
        w[2] += 1
        LOG_SUPPRESSED.labels(kind).inc()
        if w[2] == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.call_later(max(0.0, w[0] + self.interval - now), self._summary, kind)

    def _summary(self, kind: str) -> None:
        w = self._windows.get(kind)
        if w is None or not w[2]:
            return
        w[3].warning("log_suppressed", kind=kind, suppressed=w[2], interval=self.interval)
        w[2] = 0  # the window lasts until the next warning of this kind opens a new one

    def flush(self) -> None:
        """Write the pending summaries now (at shutdown)."""
        for kind in list(self._windows):
            self._summary(kind)
