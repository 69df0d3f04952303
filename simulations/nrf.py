"""A minimal NRF (3GPP TS 29.510) for tests and labs: NFManagement register (PUT), heartbeat
(PATCH, JSON Patch), deregister (DELETE), read (GET) of ``/nnrf-nfm/v1/nf-instances/{id}``, and
NFDiscovery ``GET /nnrf-disc/v1/nf-instances?target-nf-type=…&requester-nf-type=…``. It serves
HTTP/2 with prior knowledge and HTTP/1.1 on one port through the EIR's own HTTP server layer
(:mod:`eir.servers._http`).

Library::

    nrf = await SimulatedNrf.start("127.0.0.1", 0, heartbeat=2)
    nrf.url                         # http://127.0.0.1:PORT (the apiRoot to give the EIR and the AMF)
    await nrf.wait_for(lambda: nrf.count("PATCH") >= 1)   # bounded by a timeout
    nrf.profiles                    # nfInstanceId → NFProfile as registered
    nrf.log                         # [(method, nfInstanceId, status)] in arrival order
    await nrf.restart()             # same port, every registration forgotten (an NRF restart)
    await nrf.stop()

CLI: ``eir sim nrf [--listen HOST:PORT] [--heartbeat S]`` runs until interrupted and prints a line
per registration event.

What it checks: the nfInstanceId in the path must be a UUID equal to the body's; the body must be
a JSON object with nfType and nfStatus (else 400 ProblemDetails); a PATCH body must be a JSON
array of operations (``replace``/``add``/``remove`` on top-level members are applied). The
heartBeatTimer it returns is its own (``--heartbeat``), as TS 29.510 §5.2.2.2.2 lets an NRF decide.
Discovery returns REGISTERED instances of the target type whose ``allowedNfTypes`` (when given)
include the requester. Profiles are not expired when heartbeats stop (``heartbeats`` records
their times for tests that care).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from eir.model import Checker
from eir.servers._http import HttpConnection, HttpServer
from protocols.http import HttpLimits, RequestReceived

__all__ = ["NrfDirectory", "SimulatedNrf", "register"]

NFM = "/nnrf-nfm/v1/nf-instances"
DISC = "/nnrf-disc/v1/nf-instances"
_JSON = b"application/json"
_PROBLEM = b"application/problem+json"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: bytes | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _problem(status: int, title: str, detail: str, cause: str | None = None) -> Reply:
    pd: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if cause:
        pd["cause"] = cause
    return Reply(status, json.dumps(pd).encode(), _PROBLEM)


def _json(status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Reply:
    return Reply(status, json.dumps(obj, separators=(",", ":")).encode(), _JSON, headers or [])


class NrfDirectory:
    """What the NRF holds and how it answers, without I/O: ``handle(method, target, body, now,
    authority)`` → :class:`Reply`."""

    def __init__(self, heartbeat: int = 10) -> None:
        self.heartbeat = heartbeat
        self.profiles: dict[str, dict[str, Any]] = {}
        self.heartbeats: dict[str, list[float]] = {}
        self.log: list[tuple[str, str, int]] = []

    def handle(self, method: str, target: str, body: bytes, now: float, authority: str = "") -> Reply:
        path, _, query = target.partition("?")
        if path == DISC:
            if method != "GET":
                return _problem(405, "Method Not Allowed", "only GET")
            return self._discover(query)
        if path.startswith(NFM + "/"):
            nf_id = path[len(NFM) + 1 :]
            r = self._instance(method, nf_id, body, now, authority)
            self.log.append((method, nf_id, r.status))
            return r
        if path == NFM and method == "GET":
            return _json(200, {"_links": {"items": [{"href": f"{NFM}/{i}"} for i in self.profiles]}})
        return _problem(404, "Not Found", f"no resource {path[:100]}", "RESOURCE_URI_STRUCTURE_NOT_FOUND")

    def _instance(self, method: str, nf_id: str, body: bytes, now: float, authority: str) -> Reply:
        try:
            uuid.UUID(nf_id)
        except ValueError:
            return _problem(400, "Bad Request", "nfInstanceID is not a UUID", "INVALID_QUERY_PARAM")
        known = self.profiles.get(nf_id)
        if method == "PUT":
            try:
                p = json.loads(body)
            except ValueError:
                return _problem(400, "Bad Request", "the body is not JSON", "INVALID_MSG_FORMAT")
            if not isinstance(p, dict) or not all(k in p for k in ("nfInstanceId", "nfType", "nfStatus")):
                return _problem(
                    400,
                    "Bad Request",
                    "NFProfile needs nfInstanceId, nfType, nfStatus",
                    "MANDATORY_IE_MISSING",
                )
            if p["nfInstanceId"] != nf_id:
                return _problem(400, "Bad Request", "nfInstanceId differs from the URI", "INVALID_MSG_FORMAT")
            p["heartBeatTimer"] = self.heartbeat
            self.profiles[nf_id] = p
            self.heartbeats[nf_id] = [now]
            if known is not None:
                return _json(200, p)
            location = f"http://{authority}{NFM}/{nf_id}" if authority else f"{NFM}/{nf_id}"
            return _json(201, p, [(b"location", location.encode())])
        if known is None:
            return _problem(404, "Not Found", "no such NF instance", "RESOURCE_NOT_FOUND")
        if method == "GET":
            return _json(200, known)
        if method == "DELETE":
            del self.profiles[nf_id]
            self.heartbeats.pop(nf_id, None)
            return Reply(204)
        if method == "PATCH":
            try:
                ops = json.loads(body)
                if not isinstance(ops, list) or not ops:
                    raise ValueError
                for op in ops:
                    name = str(op["path"]).lstrip("/")
                    if "/" in name or op["op"] not in ("replace", "add", "remove"):
                        raise ValueError
                    if op["op"] == "remove":
                        known.pop(name, None)
                    else:
                        known[name] = op["value"]
            except (ValueError, KeyError, TypeError):
                return _problem(400, "Bad Request", "not a JSON Patch this NRF applies", "INVALID_MSG_FORMAT")
            self.heartbeats.setdefault(nf_id, []).append(now)
            return Reply(204)
        return _problem(405, "Method Not Allowed", "PUT, PATCH, GET or DELETE")

    def _discover(self, query: str) -> Reply:
        q = parse_qs(query)
        target = q.get("target-nf-type", [None])[0]
        requester = q.get("requester-nf-type", [None])[0]
        if not target or not requester:
            missing = "target-nf-type" if not target else "requester-nf-type"
            return _problem(400, "Bad Request", f"{missing} is mandatory", "MANDATORY_QUERY_PARAM_MISSING")
        found = [
            p
            for p in self.profiles.values()
            if p.get("nfType") == target
            and p.get("nfStatus") == "REGISTERED"
            and (not p.get("allowedNfTypes") or requester in p["allowedNfTypes"])
        ]
        return _json(200, {"validityPeriod": 60, "nfInstances": found})


class _NrfConnection(HttpConnection):
    server: _NrfServer

    def on_request(self, ev: RequestReceived) -> None:
        srv = self.server
        r = srv.directory.handle(ev.method, ev.target, ev.body, time.monotonic(), ev.authority)
        fields = list(r.headers)
        if r.content_type is not None:
            fields.insert(0, (b"content-type", r.content_type))
        self.respond(ev, r.status, fields, r.body)
        if srv.on_change is not None and r.status < 300 and ev.method in ("PUT", "PATCH", "DELETE"):
            srv.on_change(ev.method, ev.target, r.status)


class _NrfServer(HttpServer):
    def __init__(
        self, host: str, port: int, directory: NrfDirectory, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(
            "nrf",
            "nrf",
            [] if ssl_context else [addr],
            _NrfConnection,
            cast(Checker, None),  # answers come from the directory, never from a checker
            limits=HttpLimits(max_body=1 << 20),
            max_in_flight=64,
            reuse_port=False,
            debug=False,
            tls_listen=[addr] if ssl_context else [],
            ssl_context=ssl_context,
        )
        self.directory = directory
        self.on_change: Callable[[str, str, int], None] | None = None


class SimulatedNrf:
    """A running NRF (module docstring)."""

    def __init__(self, host: str, heartbeat: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.port = 0
        self.directory = NrfDirectory(heartbeat)
        self._server: _NrfServer | None = None
        self._changed = asyncio.Condition()

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        heartbeat: int = 10,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SimulatedNrf:
        """``ssl_context``: serve HTTPS only (ALPN h2, http/1.1), e.g.
        :func:`eir.servers._http.server_tls_context`."""
        nrf = cls(host, heartbeat, ssl_context)
        await nrf._listen(port)
        return nrf

    async def _listen(self, port: int) -> None:
        self._server = _NrfServer(self.host, port, self.directory, self.ssl_context)
        self._server.on_change = self._notify
        await self._server.listen()
        self.port = self._server.addresses()[0][1]

    def _notify(self, _method: str, _target: str, _status: int) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(wake())

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}"

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        return self.directory.profiles

    @property
    def log(self) -> list[tuple[str, str, int]]:
        return self.directory.log

    def count(self, method: str, status: int | None = None) -> int:
        return sum(1 for m, _i, s in self.log if m == method and (status is None or s == status))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Until ``predicate()`` holds after a change (TimeoutError after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.shutdown(grace)
            self._server = None

    async def restart(self) -> None:
        """Stop, forget every registration, listen again on the same port."""
        port = self.port
        await self.stop(0.2)
        hb = self.directory.heartbeat
        self.directory.profiles.clear()
        self.directory.heartbeats.clear()
        self.directory.log.append(("RESTART", "", 0))
        self.directory.heartbeat = hb
        await self._listen(port)


# --- CLI --------------------------------------------------------------------------------------------


def register(sim_subparsers: Any) -> None:
    from eir.cli import int_range

    p = sim_subparsers.add_parser(
        "nrf", help="a minimal NRF (TS 29.510 register, heartbeat, deregister, discovery) for labs and tests"
    )
    p.add_argument(
        "--listen", default="127.0.0.1:7777", help="HOST:PORT to serve on (HTTP/2 h2c and HTTP/1.1)"
    )
    p.add_argument(
        "--heartbeat", type=int_range(1), default=10, help="heartBeatTimer the NRF gives registrants, seconds"
    )
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from eir.config import ConfigError, parse_hostport

    try:
        host, port = parse_hostport(args.listen, "--listen")
    except ConfigError as e:
        print(f"eir sim nrf: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(host, port, args.heartbeat))
    except OSError as e:
        print(f"eir sim nrf: {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


async def _run(host: str, port: int, heartbeat: int) -> None:
    nrf = await SimulatedNrf.start(host, port, heartbeat=heartbeat)
    print(f"NRF listening on {nrf.url} (heartBeatTimer {heartbeat} s)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    assert nrf._server is not None
    names = {"PUT": "registered", "PATCH": "heartbeat", "DELETE": "deregistered"}

    def show(method: str, target: str, status: int) -> None:
        nf_id = urlsplit(target).path.rsplit("/", 1)[-1]
        nf_type = nrf.profiles.get(nf_id, {}).get("nfType")  # (gone after a DELETE)
        words = [names.get(method, method), nf_id, *([nf_type] if nf_type else []), f"[{status}]"]
        print(" ".join(words), flush=True)

    def changed(method: str, target: str, status: int) -> None:
        show(method, target, status)
        nrf._notify(method, target, status)

    nrf._server.on_change = changed
    await stop.wait()
    await nrf.stop()
