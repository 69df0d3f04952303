"""A simulated AMF asking the 5G-EIR (N5g-eir EquipmentIdentityCheck, TS 29.511) over HTTP/2 with
prior knowledge, as the Open5GS AMF's libcurl client does, or over TLS (``https://``, ALPN h2).
Built on python-hyper's sans-IO ``h2`` (client side) and :mod:`protocols.sbi` (request target,
reading answers).

Library::

    amf = await SimulatedAmf.connect("http://127.0.0.1:8000")
    r = await amf.check("imei-490154203237518", supi="imsi-001010000000001")
    r.verdict      # "white" | "grey" | "black" | "unknown" | "error 400 MANDATORY_QUERY_PARAM_INCORRECT" …
    r.action       # what an AMF does with it: "accept", "reject: 5GMM cause #6 ILLEGAL_ME" …
    s = await amf.load("imei-490154203237518", count=10000, window=64)   # rate, p50/p99
    await amf.close()

Through an NRF (TS 29.510 NFDiscovery, as the Open5GS AMF finds its 5G-EIR)::

    amf = await SimulatedAmf.discover("http://127.0.0.1:7777")   # the first 5G_EIR with n5g-eir-eic

With OAuth2 (``token=``), every request carries ``Authorization: Bearer <token>``.

CLI: ``eir sim amf --connect URL | --nrf URL --pei PEI [--supi] [--gpsi] [--token JWT]
[--count N --window W | --rate R --duration S] [--peers N] [--imei-file F]`` (load runs:
:mod:`simulations.load`).

The AMF's decision follows Open5GS's rules (its ``unknown_action`` / ``failure_action`` settings,
allow or reject): BLACKLISTED → reject with 5GMM cause #6 ILLEGAL_ME (TS 24.501 §9.11.3.2),
WHITELISTED / GREYLISTED → accept, 404 ERROR_EQUIPMENT_UNKNOWN → ``unknown_action``, anything else
(an error answer, a timeout) → ``failure_action``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from protocols.sbi import (
    EirAnswer,
    EquipmentStatus,
    build_target,
    discovery_target,
    read_answer,
    read_search_result,
)
from simulations.load import LoadRun, LoadSummary, drive, load_plan

__all__ = ["AmfResult", "SimulatedAmf", "amf_action", "find_eir", "register", "verdict_of"]

Action = Literal["allow", "reject"]
ILLEGAL_ME = "reject: 5GMM cause #6 ILLEGAL_ME"


def verdict_of(a: EirAnswer | None) -> str:
    if a is None:
        return "timeout"
    if a.status is not None:
        return {
            EquipmentStatus.WHITELISTED: "white",
            EquipmentStatus.GREYLISTED: "grey",
            EquipmentStatus.BLACKLISTED: "black",
        }[a.status]
    if a.unknown:
        return "unknown"
    return f"error {a.http_status}" + (f" {a.cause}" if a.cause else "")


def amf_action(
    a: EirAnswer | None, unknown_action: Action = "allow", failure_action: Action = "allow"
) -> str:
    """What an AMF does with the answer (module docstring)."""
    if a is not None and a.status is EquipmentStatus.BLACKLISTED:
        return ILLEGAL_ME
    if a is not None and a.status is not None:
        return "accept"
    if a is not None and a.unknown:
        return "accept (unknown_action: allow)" if unknown_action == "allow" else "reject (unknown_action)"
    return "accept (failure_action: allow)" if failure_action == "allow" else "reject (failure_action)"


@dataclass(slots=True)
class AmfResult:
    pei: str
    verdict: str
    action: str
    http_status: int | None
    cause: str | None
    latency: float


class _Client(asyncio.Protocol):
    def __init__(self, authority: str, token: str | None = None, scheme: str = "http") -> None:
        self.authority = authority.encode()
        self.scheme = scheme.encode()
        self.extra: list[tuple[bytes, bytes]] = (
            [(b"authorization", b"Bearer " + token.encode())] if token else []
        )
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.heads: dict[int, int] = {}
        self.bodies: dict[int, bytearray] = {}
        self.closed = asyncio.Event()
        self.settings = asyncio.Event()
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.c.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.c.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    _flush_pending = False

    def flush_soon(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_pending = False
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.c.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.error = f"HTTP/2 error from the EIR: {e}"
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                self.heads[ev.stream_id] = int(dict(ev.headers).get(b":status", b"0"))
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                fut = self.waiting.pop(ev.stream_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(
                        (self.heads.pop(ev.stream_id, 0), bytes(self.bodies.pop(ev.stream_id, b"")))
                    )
            elif isinstance(ev, h2.events.StreamReset):
                fut = self.waiting.pop(ev.stream_id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(ConnectionError(f"stream reset by the EIR ({ev.error_code})"))
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings.set()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.error = f"GOAWAY from the EIR (error {ev.error_code})"
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(self.error or "connection closed"))
        self.waiting.clear()
        self.closed.set()

    def get(self, target: str) -> asyncio.Future[tuple[int, bytes]]:
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", self.scheme),
                (b":authority", self.authority),
                (b":path", target.encode()),
                (b"accept", b"application/json,application/problem+json"),
                (b"user-agent", b"AMF"),
                *self.extra,
            ],
            end_stream=True,
        )
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.waiting[sid] = fut
        return fut


class _AmfSender:
    """GetEquipmentStatus requests for a load run, one stream each; writes go out once per event-loop
    turn."""

    def __init__(self, p: _Client, targets: list[str]) -> None:
        self.p = p
        self.targets = targets
        self.n = 0
        self.starts: dict[int, float] = {}
        self.run: LoadRun | None = None
        self._ids = itertools.count()

    def attach(self, run: LoadRun) -> None:
        self.run = run

    def send(self, intended: Sequence[float]) -> None:
        p = self.p
        if p.closed.is_set():
            raise ConnectionError(p.error or "connection closed")
        for t in intended:
            target = self.targets[self.n % len(self.targets)]
            self.n += 1
            key = next(self._ids)
            try:
                fut = p.get(target)
            except h2.exceptions.TooManyStreamsError:
                # the EIR's SETTINGS_MAX_CONCURRENT_STREAMS is reached: a refused request, counted
                if self.run is not None:
                    self.run.answered(time.perf_counter() - t, "error too many streams")
                continue
            self.starts[key] = t
            fut.add_done_callback(functools.partial(self._done, key))
        p.flush_soon()

    def _done(self, key: int, fut: asyncio.Future[tuple[int, bytes]]) -> None:
        t0 = self.starts.pop(key, None)
        run = self.run
        if t0 is None or run is None:
            return
        now = time.perf_counter()
        exc = fut.exception()
        if exc is not None:
            verdict = "error connection"
        else:
            status, body = fut.result()
            verdict = verdict_of(read_answer(status, body))
        run.answered(now - t0, verdict)
        if run.mode == "closed" and run.take(1):
            self.send([now])

    def outstanding(self) -> list[float]:
        return list(self.starts.values())

    def in_flight(self) -> int:
        return len(self.starts)

    def detach(self) -> None:
        self.run = None
        self.starts.clear()


async def find_eir(nrf: str, *, timeout: float = 5.0) -> list[str]:
    """The apiRoots of the 5G-EIRs an NRF knows (NFDiscovery ``target-nf-type=5G_EIR&
    requester-nf-type=AMF``, over HTTP/2 with prior knowledge, httpx); ConnectionError when the NRF
    names none or answers an error."""
    import httpx

    base = nrf if "://" in nrf else f"http://{nrf}"
    async with httpx.AsyncClient(http1=False, http2=True, timeout=timeout) as client:
        try:
            r = await client.get(base.rstrip("/") + discovery_target("5G_EIR", "AMF"))
        except httpx.HTTPError as e:
            raise ConnectionError(f"NRF {base}: {type(e).__name__}: {e}") from None
    if r.status_code != 200:
        raise ConnectionError(f"NRF {base}: discovery answered {r.status_code} {r.text[:200]}")
    try:
        found = read_search_result(r.content)
    except ValueError as e:
        raise ConnectionError(f"NRF {base}: {e}") from None
    if not found:
        raise ConnectionError(f"NRF {base}: no 5G-EIR with service n5g-eir-eic is registered")
    return [f.api_root for f in found]


class SimulatedAmf:
    """One HTTP/2 connection to the 5G-EIR (module docstring)."""

    def __init__(
        self, proto: _Client, api_root_path: str, unknown_action: Action, failure_action: Action
    ) -> None:
        self._p = proto
        self.api_root_path = api_root_path
        self.unknown_action: Action = unknown_action
        self.failure_action: Action = failure_action

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        timeout: float = 5.0,
        unknown_action: Action = "allow",
        failure_action: Action = "allow",
        token: str | None = None,
        cafile: str | None = None,
    ) -> SimulatedAmf:
        """``http://``: HTTP/2 with prior knowledge; ``https://``: TLS with ALPN h2, the EIR's
        certificate checked against ``cafile`` (else the system's CAs)."""
        u = urlsplit(url if "://" in url else f"http://{url}")
        if u.scheme not in ("http", "https"):
            raise ValueError(f"{url}: http:// (h2c prior knowledge) or https:// (TLS, ALPN h2)")
        host = u.hostname or "127.0.0.1"
        port = u.port or (443 if u.scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        authority = u.netloc
        ctx = None
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.set_alpn_protocols(["h2"])
        t, proto = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Client(authority, token, u.scheme),
                host,
                port,
                ssl=ctx,
                server_hostname=host if ctx else None,
            ),
            timeout,
        )
        if ctx is not None:
            tls = t.get_extra_info("ssl_object")
            alpn = tls.selected_alpn_protocol() if tls is not None else None
            if alpn != "h2":
                t.close()
                raise ConnectionError(f"{url}: the EIR did not agree to HTTP/2 over TLS (ALPN {alpn!r})")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proto.settings.wait(), timeout)
        return cls(proto, u.path, unknown_action, failure_action)

    @classmethod
    async def discover(
        cls,
        nrf: str,
        *,
        timeout: float = 5.0,
        unknown_action: Action = "allow",
        failure_action: Action = "allow",
        token: str | None = None,
        cafile: str | None = None,
    ) -> SimulatedAmf:
        """Connect to the 5G-EIR the NRF names first (:func:`find_eir`)."""
        roots = await find_eir(nrf, timeout=timeout)
        return await cls.connect(
            roots[0],
            timeout=timeout,
            unknown_action=unknown_action,
            failure_action=failure_action,
            token=token,
            cafile=cafile,
        )

    async def ask(
        self, pei: str, *, supi: str | None = None, gpsi: str | None = None, timeout: float = 5.0
    ) -> EirAnswer | None:
        """The answer to one GetEquipmentStatus, or None on timeout."""
        fut = self._p.get(build_target(pei, supi, gpsi, api_root_path=self.api_root_path))
        self._p.flush()
        try:
            status, body = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        return read_answer(status, body)

    async def check(
        self, pei: str, *, supi: str | None = None, gpsi: str | None = None, timeout: float = 5.0
    ) -> AmfResult:
        started = time.perf_counter()
        a = await self.ask(pei, supi=supi, gpsi=gpsi, timeout=timeout)
        return AmfResult(
            pei=pei,
            verdict=verdict_of(a),
            action=amf_action(a, self.unknown_action, self.failure_action),
            http_status=a.http_status if a is not None else None,
            cause=a.cause if a is not None else None,
            latency=time.perf_counter() - started,
        )

    async def load(
        self,
        pei: str,
        *,
        count: int,
        window: int,
        supi: str | None = None,
        rate: float | None = None,
        timeout: float = 300.0,
    ) -> LoadSummary:
        """``count`` requests with ``window`` streams outstanding at once, at most ``rate`` a second
        when given (a paced closed loop; ``timeout``: seconds without an answer before giving up)."""
        plan = load_plan(count=count, window=window, rate=rate, duration=None, timeout=timeout)
        return await drive([self.sender(pei, supi=supi)], plan)

    def sender(self, pei: str, *, supi: str | None = None, peis: list[str] | None = None) -> _AmfSender:
        """A :class:`simulations.load.LoadSender` over this connection (:func:`simulations.load.drive`):
        one GET per request, ``pei`` or the ``peis`` in turn."""
        targets = [build_target(x, supi, api_root_path=self.api_root_path) for x in (peis or [pei])]
        return _AmfSender(self._p, targets)

    async def close(self) -> None:
        p = self._p
        if p.transport is not None and not p.transport.is_closing():
            with contextlib.suppress(h2.exceptions.ProtocolError):
                p.c.close_connection()
                p.flush()
            p.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(p.closed.wait(), 2.0)


# --- CLI --------------------------------------------------------------------------------------------


def register(sim_subparsers: Any) -> None:
    from eir.cli import add_config_options, positive_float
    from simulations.load import add_load_options

    p = sim_subparsers.add_parser("amf", help="simulated AMF asking the 5G-EIR over N5g-eir (HTTP/2)")
    p.add_argument(
        "--connect",
        default=None,
        help="the EIR's apiRoot, http://HOST:PORT; default: the config's first n5g.listen",
    )
    p.add_argument(
        "--nrf",
        default=None,
        metavar="URL",
        help="discover the EIR through this NRF (http://HOST:PORT) instead of --connect",
    )
    p.add_argument("--token", default=None, help="OAuth2 access token (JWT) sent as Authorization: Bearer")
    p.add_argument(
        "--cacert", default=None, metavar="PEM", help="CA that signed an https:// EIR's certificate"
    )
    add_config_options(p, "eir config file (for the default --connect)")
    p.add_argument("--pei", required=True, help="imei-<15 digits>, imeisv-<16 digits>, …")
    p.add_argument("--supi", default=None, help="imsi-<digits> or nai-…")
    p.add_argument("--gpsi", default=None, help="msisdn-<digits>")
    add_load_options(p, unit="request", imei_file=True)
    p.add_argument("--unknown-action", choices=["allow", "reject"], default="allow")
    p.add_argument("--failure-action", choices=["allow", "reject"], default="allow")
    p.add_argument("--timeout", type=positive_float, default=5.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from eir.cli import EXIT_CONFIG, default_address
    from simulations.load import load_args

    if not load_args(args, "eir sim amf"):
        return EXIT_CONFIG
    if args.nrf and args.connect:
        print("eir sim amf: give --connect or --nrf, not both", file=sys.stderr)
        return 2
    if args.nrf:
        args.connect = args.nrf  # for the error messages: where it went wrong
    elif not args.connect:
        address = default_address(args, "n5g.listen", "127.0.0.1:8000")
        if address is None:
            return EXIT_CONFIG
        args.connect = f"http://{address}"
    try:
        return asyncio.run(_run(args))
    except TimeoutError as e:
        print(
            f"eir sim amf: {args.connect}: {str(e) or f'no answer within {args.timeout:g} s'}",
            file=sys.stderr,
        )
        return 1
    except (OSError, ConnectionError, ValueError) as e:
        print(f"eir sim amf: {args.connect}: {str(e) or type(e).__name__}", file=sys.stderr)
        return 1


def pei_of(imei: str) -> str:
    """An IMEI of an ``--imei-file`` as a PEI: ``imei-`` + 15 digits (the Luhn digit added to 14),
    ``imeisv-`` + 16."""
    from protocols.imei import luhn_check_digit

    if len(imei) == 16:
        return f"imeisv-{imei}"
    return f"imei-{imei if len(imei) == 15 else imei + str(luhn_check_digit(imei))}"


async def _run(args: argparse.Namespace) -> int:
    from simulations.load import progress_from_args, report

    opts: dict[str, Any] = {
        "timeout": args.timeout,
        "unknown_action": args.unknown_action,
        "failure_action": args.failure_action,
        "token": args.token,
        "cafile": args.cacert,
    }
    target = args.connect
    if args.nrf:
        roots = await find_eir(args.nrf, timeout=args.timeout)
        if not args.json:
            print(f"NRF {args.nrf}: 5G-EIR at {roots[0]}")
        target = roots[0]
    amfs: list[SimulatedAmf] = []
    try:
        for _ in range(args.plan.peers if args.plan else 1):
            amfs.append(await SimulatedAmf.connect(target, **opts))
        amf = amfs[0]
        if args.plan is None:
            r = await amf.check(args.pei, supi=args.supi, gpsi=args.gpsi, timeout=args.timeout)
            if args.json:
                print(json.dumps(asdict(r)))
            else:
                print(f"{r.pei}: {r.verdict} → AMF: {r.action} [{r.latency * 1000:.2f} ms]")
            return 0 if r.verdict != "timeout" else 1
        peis = [pei_of(i) for i in args.imeis] if args.imeis else None
        senders = [a.sender(args.pei, supi=args.supi, peis=peis) for a in amfs]
        s = await drive(senders, args.plan, progress=progress_from_args(args, "request"))
        return report(s, "GetEquipmentStatus", args.json)
    finally:
        for a in amfs:
            await a.close()
