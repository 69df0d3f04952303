"""A simulated MME on S13: CER, ME-Identity-Check requests with a window of outstanding requests,
DWA answers to the EIR's watchdog, DPR at the end. Built on :mod:`protocols.diameter`.

Library::

    mme = await SimulatedMme.connect("127.0.0.1", 3868)
    r = await mme.check("35123456789012", software_version="01", imsi="001010123456789")
    r.verdict                                   # "white" | "grey" | "black" | "unknown" | "error 5004" …
    s = await mme.load("35123456789012", count=10000, window=128)   # rate, p50/p99
    await mme.close()                           # DPR / DPA

CLI: ``eir sim mme --connect HOST:PORT --imei IMEI [--imsi] [--sv] [--count N --window W | --rate R
--duration S] [--peers N] [--imei-file F] [--sctp]`` (load runs: :mod:`simulations.load`).

``load`` is a pipeline that does not go through the core per message: one ECR is encoded once and
its hop-by-hop / end-to-end identifiers and Session-Id suffix are patched in place, and answers are
matched by reading the 20-byte header only (the verdict of each answer is decoded only when
``tally`` is set), so that the client is not what a benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import ssl
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from netio.sctp import SCTP_PPID_DIAMETER, diameter_framer, sctp_create_connection
from protocols.diameter import (
    CapabilitiesExchanged,
    ConnectionClosed,
    DiameterPeer,
    EquipmentCheckAnswered,
    PeerState,
    RemoteProtocolError,
    ResultCode,
    Role,
    build_ecr,
    encode_message,
)
from protocols.diameter.codec import decode_message
from protocols.diameter.s13 import decode_eca
from simulations.load import LoadRun, LoadSummary, drive, load_plan

__all__ = ["CheckResult", "LoadSummary", "SimulatedMme", "register", "verdict_of"]

_HDR = struct.Struct(">IIIII")


def verdict_of(ans: EquipmentCheckAnswered) -> str:
    """white/grey/black for 2001 + Equipment-Status, ``unknown`` for 5422, else ``error <code>``."""
    if ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.equipment_status is not None:
        names = {0: "white", 1: "black", 2: "grey"}
        return names.get(ans.equipment_status, f"status {ans.equipment_status}")
    if ans.experimental_result_code == ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN:
        return "unknown"
    code = ans.result_code if ans.result_code is not None else ans.experimental_result_code
    return f"error {code}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    imei: str
    verdict: str
    result_code: int | None
    experimental_result_code: int | None
    equipment_status: int | None
    latency: float
    session_id: str | None


class _MmeProtocol(asyncio.Protocol):
    def __init__(self, core: DiameterPeer) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.open = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.waiters: dict[int, asyncio.Future[EquipmentCheckAnswered]] = {}
        self.timer: asyncio.TimerHandle | None = None
        # raw pipeline state (load)
        self.raw: _Pipeline | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self.transport = transport  # type: ignore[assignment]
        with contextlib.suppress(OSError, AttributeError):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core.start(self.loop.time())
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.raw is not None:
            data = self.raw.feed(data)
            if not data:
                self.flush()
                return
        try:
            events = self.core.receive_data(data, self.loop.time())
        except RemoteProtocolError as e:
            self.close_reason = f"protocol error: {e}"
            events = []
            if self.transport is not None:
                self.transport.close()
        self.handle(events)
        self.flush()

    def eof_received(self) -> bool | None:
        with contextlib.suppress(RemoteProtocolError):
            self.handle(self.core.receive_data(b"", self.loop.time()))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        err = ConnectionError(self.close_reason or "connection closed")
        for f in self.waiters.values():
            if not f.done():
                f.set_exception(err)
        self.waiters.clear()
        if self.raw is not None:
            self.raw.fail(err)
        if not self.open.is_set():
            self.open.set()
        self.closed.set()

    def handle(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, EquipmentCheckAnswered):
                f = self.waiters.pop(ev.hop_by_hop, None)
                if f is not None and not f.done():
                    f.set_result(ev)
            elif isinstance(ev, CapabilitiesExchanged):
                self.open.set()
            elif isinstance(ev, ConnectionClosed):
                self.close_reason = ev.reason + (f" ({ev.result_code})" if ev.result_code else "")
                self.flush()
                if self.transport is not None:
                    self.transport.close()
                self.open.set()

    def flush(self) -> None:
        data = self.core.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        at = self.core.get_timer()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if at is not None:
            self.timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.handle(self.core.handle_timer(self.loop.time()))
        self.flush()


class _Pipeline:
    """Pre-encoded ECRs for a load run (a :class:`simulations.load.LoadSender`): answers matched by
    hop-by-hop from the header; in a closed loop each answer lets the next request go."""

    def __init__(self, proto: _MmeProtocol, template: bytes, first_id: int, tally: bool) -> None:
        self.proto = proto
        self.template = bytearray(template)
        self.next_id = first_id
        self.first_id = first_id
        self.buf = bytearray()
        self.start_times: dict[int, float] = {}
        self.tally = tally
        self.run: LoadRun | None = None
        self.population: tuple[int, int, int, int] | None = None
        self.imei_at = self.imsi_at = -1
        self.imei_fmt = self.imsi_fmt = b""
        self.imei_len = self.imsi_len = 0
        # the Session-Id value ends with 10 digits we rewrite per request (its AVP starts at 20)
        sid_len = struct.unpack_from(">I", template, 24)[0] & 0xFFFFFF
        self.sid_end = 20 + sid_len
        self.mix: list[tuple[bytearray, int, bytes]] | None = None

    def vary(self, imei: str, imsi: str | None, n_imeis: int, n_imsis: int) -> None:
        """Rewrite the IMEI (and IMSI) digits of every request (``SimulatedMme.load``'s population)."""
        t = bytes(self.template)
        self.imei_at = t.find(imei.encode())
        self.imsi_at = t.find(imsi.encode()) if imsi else -1
        if self.imei_at < 0 or (imsi and self.imsi_at < 0):
            raise ValueError("IMEI/IMSI not found in the ECR template")
        self.imei_len, self.imsi_len = len(imei), len(imsi or "")
        self.imei_fmt, self.imsi_fmt = b"%%0%dd" % len(imei), b"%%0%dd" % len(imsi or "")
        self.population = (int(imei), max(1, n_imeis), int(imsi or 0), max(1, n_imsis))

    def cycle(self, imeis: list[str], templates: dict[int, tuple[bytes, int]]) -> None:
        """Request *i* carries ``imeis[i % len]``: one template per IMEI length (14, 15, 16 digits),
        the digits patched in place."""
        by_len = {n: bytearray(t) for n, (t, _at) in templates.items()}
        self.mix = [(by_len[len(i)], templates[len(i)][1], i.encode()) for i in imeis]

    def _one(self, intended: float) -> bytes:
        i = self.next_id
        self.next_id = (i + 1) & 0xFFFFFFFF
        t = self.template
        if self.mix is not None:
            t, at, digits = self.mix[(i - self.first_id) % len(self.mix)]
            t[at : at + len(digits)] = digits
        struct.pack_into(">II", t, 12, i, i)
        t[self.sid_end - 10 : self.sid_end] = b"%010d" % (i % 10_000_000_000)
        if self.population is not None:
            imei0, n_imeis, imsi0, n_imsis = self.population
            k = (i * 2654435761) & 0xFFFFFFFFFFFF  # Knuth's multiplicative hash: spread, repeatable
            a, b = self.imei_at, self.imsi_at
            t[a : a + self.imei_len] = self.imei_fmt % (imei0 + k % n_imeis)
            if b >= 0:
                t[b : b + self.imsi_len] = self.imsi_fmt % (imsi0 + (k >> 20) % n_imsis)
        self.start_times[i] = intended
        return bytes(t)

    # --- LoadSender ---
    def attach(self, run: LoadRun) -> None:
        self.run = run
        self.proto.raw = self

    def send(self, intended: Sequence[float]) -> None:
        tr = self.proto.transport
        if tr is None or tr.is_closing():
            raise ConnectionError(self.proto.close_reason or "not connected")
        tr.write(b"".join([self._one(t) for t in intended]))

    def outstanding(self) -> list[float]:
        return list(self.start_times.values())

    def in_flight(self) -> int:
        return len(self.start_times)

    def detach(self) -> None:
        self.run = None
        if self.proto.raw is self:
            self.proto.raw = None
        self.start_times.clear()

    def feed(self, data: bytes) -> bytes:
        """Consume ECAs; return bytes meant for the core (DWR, DPA, errors…)."""
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        other = []
        more = 0
        now = time.perf_counter()
        st = self.start_times
        run = self.run
        while n - pos >= 20:
            w0, w1, _app, hbh, _e2e = _HDR.unpack_from(buf, pos)
            length = w0 & 0xFFFFFF
            if length < 20 or n - pos < length:
                if length < 20:  # let the core judge broken framing
                    other.append(bytes(buf[pos:]))
                    pos = n
                break
            if w1 & 0xFFFFFF == 324 and not (w1 >> 24) & 0x80 and hbh in st:
                latency = now - st.pop(hbh)
                verdict = "answered"
                if self.tally:
                    try:
                        verdict = verdict_of(decode_eca(decode_message(bytes(buf[pos : pos + length]))))
                    except RemoteProtocolError:
                        verdict = "malformed"
                if run is not None:
                    more += 1
                    run.answered(latency, verdict)
            else:
                other.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        if more and run is not None and run.mode == "closed":
            k = run.take(more)
            if k:
                self.send([now] * k)
        return b"".join(other)

    def fail(self, exc: BaseException) -> None:
        if self.run is not None:
            self.run.fail(exc)


class SimulatedMme:
    """An S13 client (the MME side of TS 29.272 §5.3)."""

    def __init__(self, proto: _MmeProtocol, origin_host: str, destination_realm: str) -> None:
        self._proto = proto
        self.origin_host = origin_host
        self.destination_realm = destination_realm
        self._session_seq = itertools.count(1)
        self._session_hi = int.from_bytes(os.urandom(4), "big")

    @property
    def core(self) -> DiameterPeer:
        return self._proto.core

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        origin_host: str = "mme.sim.localdomain",
        origin_realm: str = "sim.localdomain",
        destination_realm: str = "localdomain",
        watchdog_interval: float = 30.0,
        timeout: float = 5.0,
        sctp: bool = False,
        tls: ssl.SSLContext | None = None,
        tls_server_name: str | None = None,
    ) -> SimulatedMme:
        """Open TCP (or SCTP: PPID 46, one Diameter message per SCTP message), exchange capabilities;
        raises ConnectionError when CEA is not a success. ``tls``: TLS/TCP from the first octet
        (RFC 6733 §13, the EIR's ``diameter.tls_listen``), the certificate checked against
        ``tls_server_name`` (default: the host)."""
        loop = asyncio.get_running_loop()
        core = DiameterPeer(
            role=Role.INITIATOR,
            origin_host=origin_host,
            origin_realm=origin_realm,
            host_ip_addresses=("::1",) if ":" in host else ("127.0.0.1",),
            product_name="eir-emulator sim mme",
            watchdog_interval=watchdog_interval,
            identifier_seed=int.from_bytes(os.urandom(4), "big"),
            destination_realm=destination_realm,
        )
        proto: _MmeProtocol
        if sctp:
            _, p = await asyncio.wait_for(
                sctp_create_connection(
                    lambda: _MmeProtocol(core), host, port, SCTP_PPID_DIAMETER, framer=diameter_framer
                ),
                timeout,
            )
            proto = p  # type: ignore[assignment]
        else:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _MmeProtocol(core),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=(tls_server_name or host) if tls is not None else None,
                ),
                timeout,
            )
        try:
            await asyncio.wait_for(proto.open.wait(), timeout)
        except TimeoutError:
            if proto.transport is not None:
                proto.transport.close()
            raise
        if core.state is not PeerState.OPEN:
            raise ConnectionError(f"capabilities exchange failed: {proto.close_reason}")
        return cls(proto, origin_host, destination_realm)

    def _session_id(self) -> str:
        return f"{self.origin_host};{self._session_hi};{next(self._session_seq)}"

    async def check(
        self,
        imei: str,
        *,
        software_version: str | None = None,
        imsi: str | None = None,
        timeout: float = 5.0,
    ) -> CheckResult:
        """One ECR; waits for its ECA."""
        p = self._proto
        loop = p.loop
        start = time.perf_counter()
        hbh = self.core.send_ecr(
            loop.time(),
            session_id=self._session_id(),
            imei=imei,
            software_version=software_version,
            imsi=imsi,
        )
        fut: asyncio.Future[EquipmentCheckAnswered] = loop.create_future()
        p.waiters[hbh] = fut
        p.flush()
        try:
            ans = await asyncio.wait_for(fut, timeout)
        finally:
            p.waiters.pop(hbh, None)
        return CheckResult(
            imei=imei,
            verdict=verdict_of(ans),
            result_code=ans.result_code,
            experimental_result_code=ans.experimental_result_code,
            equipment_status=ans.equipment_status,
            latency=time.perf_counter() - start,
            session_id=ans.session_id,
        )

    def intercept(self, pipeline: Any) -> None:
        """Hand every byte received to ``pipeline.feed(data) -> bytes`` first (what it returns goes on
        to the core: DWR, DPA …), and ``pipeline.fail(exc)`` when the connection is lost; None stops.
        ``eir replay`` pipelines recorded requests this way."""
        self._proto.raw = pipeline

    def write(self, data: bytes) -> None:
        """Write bytes as they are, now (a pipeline's requests)."""
        tr = self._proto.transport
        if tr is None or tr.is_closing():
            raise ConnectionError(self._proto.close_reason or "not connected")
        tr.write(data)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of the EIR's error handling)."""
        tr = self._proto.transport
        if tr is None:
            raise ConnectionError("not connected")
        tr.write(data)

    async def load(
        self,
        imei: str,
        *,
        count: int,
        window: int = 1,
        software_version: str | None = None,
        imsi: str | None = None,
        tally: bool = True,
        timeout: float = 60.0,
        population: tuple[int, int] | None = None,
    ) -> LoadSummary:
        """``count`` ECRs with ``window`` outstanding; rate and latency percentiles.

        ``population=(imeis, imsis)``: each request carries an IMEI drawn from ``imeis`` consecutive
        ones starting at ``imei`` and, when ``imsi`` is given, an IMSI from ``imsis`` starting there,
        spread by a multiplicative hash of the request number — a fresh IMEI/IMSI pair for most
        requests, as a population of subscribers gives."""
        if count <= 0:
            return LoadSummary(0, window, 0.0, 0.0, 0.0, 0.0)
        pipe = self.sender(imei, software_version=software_version, imsi=imsi, tally=tally)
        if population is not None:
            pipe.vary(imei, imsi, *population)
        return await drive(
            [pipe], load_plan(count=count, window=window, rate=None, duration=None, timeout=timeout)
        )

    def sender(
        self,
        imei: str,
        *,
        software_version: str | None = None,
        imsi: str | None = None,
        tally: bool = True,
        imeis: list[str] | None = None,
    ) -> _Pipeline:
        """A :class:`simulations.load.LoadSender` over this connection (:func:`simulations.load.drive`
        runs it): the ECR for ``imei`` encoded once, or with ``imeis`` one request per IMEI in turn."""
        p = self._proto
        if p.raw is not None:
            raise RuntimeError("a load is already running")
        # The identifiers of the pipeline live far from the core's own (DWR/DPR) sequence.
        first = (self.core._hbh + 0x40000000) & 0xFFFFFFFF
        session = f"{self.origin_host};{self._session_hi};{0:010d}"

        def encode(digits: str) -> bytes:
            return encode_message(
                build_ecr(
                    session_id=session,
                    origin_host=self.origin_host,
                    origin_realm=self.core.origin_realm,
                    destination_realm=self.destination_realm,
                    imei=digits,
                    software_version=software_version,
                    imsi=imsi,
                    hop_by_hop=first,
                    end_to_end=first,
                )
            )

        pipe = _Pipeline(p, encode(imei), first, tally)
        if imeis:
            templates: dict[int, tuple[bytes, int]] = {}
            for digits in imeis:
                if len(digits) not in templates:
                    t = encode(digits)
                    templates[len(digits)] = (t, t.find(digits.encode(), pipe.sid_end))
            pipe.cycle(imeis, templates)
        return pipe

    async def close(self, timeout: float = 5.0) -> None:
        """DPR, wait for DPA (or the EIR closing), then close."""
        p = self._proto
        if p.closed.is_set():
            return
        if self.core.state is PeerState.OPEN:
            p.handle(self.core.close(p.loop.time()))
            p.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.closed.wait(), timeout)
        if not p.closed.is_set() and p.transport is not None:
            p.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.closed.wait(), timeout)

    @property
    def closed(self) -> bool:
        return self._proto.closed.is_set()

    @property
    def close_reason(self) -> str | None:
        return self._proto.close_reason


# --- CLI ---------------------------------------------------------------------------------------------


def register(sim_subparsers: Any) -> None:
    from eir.cli import add_config_options, host_port, imsi_text, positive_float, software_version
    from simulations.load import add_load_options

    p = sim_subparsers.add_parser("mme", help="simulated MME sending S13 ME-Identity-Check requests")
    p.add_argument(
        "--connect",
        type=host_port,
        default=None,
        help="EIR Diameter address HOST:PORT ([v6]:port); default: the config's first diameter.listen",
    )
    add_config_options(p, "eir config file (for the default --connect)")
    p.add_argument("--imei", required=True, help="IMEI AVP: 14-16 digits (dashes and spaces dropped)")
    p.add_argument(
        "--allow-bad-imei",
        action="store_true",
        help="send a malformed --imei as given (to see the EIR answer 5004) instead of refusing it",
    )
    p.add_argument("--imsi", type=imsi_text, default=None, help="User-Name")
    p.add_argument("--sv", type=software_version, default=None, help="Software-Version (2 digits)")
    add_load_options(p, unit="ECR")
    p.add_argument("--origin-host", default="mme.sim.localdomain")
    p.add_argument("--origin-realm", default="sim.localdomain")
    p.add_argument("--destination-realm", default="localdomain")
    p.add_argument("--timeout", type=positive_float, default=5.0, help="seconds per request")
    p.add_argument("--sctp", action="store_true", help="SCTP instead of TCP")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from eir.cli import EXIT_CONFIG, default_address, sim_imei

    imei = sim_imei("eir sim mme", args.imei, args.allow_bad_imei)
    if imei is None:
        return EXIT_CONFIG
    args.imei = imei
    from simulations.load import load_args

    if not load_args(args, "eir sim mme"):
        return EXIT_CONFIG
    address = default_address(args, "diameter.listen", "127.0.0.1:3868")
    if address is None:
        return EXIT_CONFIG
    args.connect = address
    try:
        return asyncio.run(_run(args))
    except TimeoutError as e:
        print(
            f"eir sim mme: {args.connect}: {str(e) or f'no answer within {args.timeout:g} s'}",
            file=sys.stderr,
        )
        return 1
    except (OSError, ConnectionError) as e:
        print(f"eir sim mme: {args.connect}: {str(e) or type(e).__name__}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    from eir.config import parse_hostport
    from simulations.load import peer_names, progress_from_args, report

    host, port = parse_hostport(args.connect)
    mmes: list[SimulatedMme] = []
    try:
        for name in peer_names(args.origin_host, args.plan.peers if args.plan else 1):
            mmes.append(
                await SimulatedMme.connect(
                    host,
                    port,
                    origin_host=name,
                    origin_realm=args.origin_realm,
                    destination_realm=args.destination_realm,
                    timeout=args.timeout,
                    sctp=args.sctp,
                )
            )
        mme = mmes[0]
        if args.plan is None:
            r = await mme.check(args.imei, software_version=args.sv, imsi=args.imsi, timeout=args.timeout)
            if args.json:
                print(json.dumps(asdict(r)))
            else:
                print(f"{r.imei}: {r.verdict} [{r.latency * 1000:.2f} ms]")
            return 0
        senders = [
            m.sender(args.imei, software_version=args.sv, imsi=args.imsi, imeis=args.imeis) for m in mmes
        ]
        s = await drive(senders, args.plan, progress=progress_from_args(args, "ECR"))
        return report(s, "ECR", args.json)
    finally:
        for m in mmes:
            await m.close()
