"""structlog set-up, done once by the CLI: console renderer on a TTY, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
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
