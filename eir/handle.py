"""X.1255 handle look-ups as a policy input (``policy.handle``): the asyncio client of
protocols/handle.py, with a TTL cache and a bounded time-out.

A look-up never blocks a check for longer than ``timeout``: a slow, refused or malformed answer
becomes ``HandleAnswer(result="timeout"|"error")``, which the policy turns into
``policy.handle.on_failure`` (default: the rule is skipped). Found and not-found answers are cached
for ``ttl`` seconds (time from the injected clock), failures for ``ttl / 10`` so that a server
that is down is not asked on every check. Every look-up is counted (``eir_handle_lookups``) and
explained (``eir check --explain``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from eir.metrics import HANDLE_LOOKUPS
from protocols.handle import (
    MAX_RESPONSE,
    HandleProtocolError,
    HandleRecord,
    build_get,
    decode_record,
    imei_handle,
    parse_http_response,
)

__all__ = ["RESULTS", "HandleAnswer", "HandleResolver"]

RESULTS = ("found", "not_found", "timeout", "error", "cached")


@dataclass(frozen=True, slots=True, kw_only=True)
class HandleAnswer:
    handle: str
    result: str
    """found | not_found | timeout | error"""
    record: HandleRecord | None = None
    detail: str = ""
    cached: bool = False


class HandleResolver:
    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        timeout: float = 0.5,
        ttl: float = 300.0,
        max_cached: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"policy.handle.url: expected http://HOST[:PORT], got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = prefix.strip("/")
        self.timeout = timeout
        self.ttl = ttl
        self.max_cached = max_cached
        self._clock = clock
        self._cache: dict[str, tuple[float, HandleAnswer]] = {}
        self._counters = {r: HANDLE_LOOKUPS.labels(r) for r in RESULTS}

    async def resolve(self, imei14: str) -> HandleAnswer:
        handle = imei_handle(self.prefix, imei14)
        now = self._clock()
        hit = self._cache.get(handle)
        if hit is not None and hit[0] > now:
            self._counters["cached"].inc()
            a = hit[1]
            return HandleAnswer(
                handle=a.handle, result=a.result, record=a.record, detail=a.detail, cached=True
            )
        try:
            status, body = await asyncio.wait_for(self._get(handle), self.timeout)
            record = decode_record(status, body)
            answer = HandleAnswer(
                handle=handle, result="found" if record is not None else "not_found", record=record
            )
        except TimeoutError:
            answer = HandleAnswer(
                handle=handle, result="timeout", detail=f"no answer within {self.timeout:g}s"
            )
        except (OSError, HandleProtocolError) as e:
            answer = HandleAnswer(handle=handle, result="error", detail=f"{type(e).__name__}: {e}"[:200])
        self._counters[answer.result].inc()
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        ttl = self.ttl if answer.result in ("found", "not_found") else self.ttl / 10
        self._cache[handle] = (now + ttl, answer)
        return answer

    async def _get(self, handle: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(build_get(f"{self.host}:{self.port}", handle))
            data = b""
            while len(data) <= MAX_RESPONSE:  # parse_http_response refuses more
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
            return parse_http_response(data)
        finally:
            writer.close()
