"""Simulated MSC / SGSN: MAP checkIMEI over SCCP over M3UA (TCP, or SCTP where the kernel has it).

Library use (tests, benchmark)::

    msc = await SimulatedMsc.connect("127.0.0.1", 2905, role="msc")
    result = await msc.check("35809101685355", version=3)      # falls back v3 → v2 on AC refusal
    summary = await msc.load(imei, count=10000, window=128)
    await msc.close()

CLI: ``eir sim msc --connect HOST:PORT --imei IMEI [--map-version 1|2|3] [--count N --window W | --rate R
--duration S] [--peers N] [--imei-file F]`` (load runs: :mod:`simulations.load`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from netio.sctp import SCTP_PPID_M3UA, m3ua_framer, sctp_create_connection
from protocols.sigtran import EquipmentStatus, MapError, m3ua, sccp
from protocols.sigtran.stack import CheckImeiAnswered, CheckImeiClient
from simulations.load import LoadRun, LoadSummary, drive, load_plan

__all__ = ["CheckResult", "LoadSummary", "SimulatedMsc", "register"]

ROLE_SSN = {"msc": 8, "sgsn": 149}
DEFAULT_GT = {"msc": "491700000008", "sgsn": "491700000149"}

_STATUS_NAME = {
    EquipmentStatus.WHITE_LISTED: "white",
    EquipmentStatus.BLACK_LISTED: "black",
    EquipmentStatus.GREY_LISTED: "grey",
}
_ERROR_NAME = {int(e): e.name.lower() for e in MapError}


@dataclass(slots=True)
class CheckResult:
    """One checkIMEI as the simulated MSC saw it."""

    imei: str
    verdict: str
    """white / grey / black, ``error:<name>``, ``aborted``, ``rejected``, ``returned:<cause>``,
    ``timeout``."""
    version: int
    """The MAP version of the dialogue that was answered."""
    latency: float
    fallback_from: int | None = None
    detail: str | None = None


def _verdict(ev: CheckImeiAnswered) -> tuple[str, str | None]:
    if ev.returned is not None:
        try:
            cause = sccp.ReturnCause(ev.returned).name.lower()
        except ValueError:
            cause = str(ev.returned)
        return f"returned:{cause}", None
    o = ev.outcome
    assert o is not None
    if o.status is not None:
        return _STATUS_NAME.get(o.status, str(int(o.status))), None
    if o.error is not None:
        return f"error:{_ERROR_NAME.get(o.error, str(o.error))}", None
    if o.aborted:
        return "aborted", o.detail
    if o.rejected:
        return "rejected", str(o.reject_problem)
    return "empty", o.detail


class _MscProtocol(asyncio.Protocol):
    def __init__(self, client: CheckImeiClient) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.active = asyncio.Event()
        self.closed = asyncio.Event()
        self.waiters: dict[int, asyncio.Future[CheckImeiAnswered]] = {}
        self.on_answer: Any = None
        """Load mode: a callable(CheckImeiAnswered) taking every answer (no futures)."""
        self.on_lost: Any = None
        """Load mode: a callable(exception) told when the association is lost."""
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.errors: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        self.client.start(self.loop.time())
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.sctp_data_received(data, None)

    def sctp_data_received(self, data: bytes, stream: int | None) -> None:
        """One SCTP message and its stream (the core checks RFC 4666 §1.4.7); None from TCP."""
        for ev in self.client.receive_data(data, self.loop.time(), stream):
            if isinstance(ev, CheckImeiAnswered):
                if self.on_answer is not None:
                    self.on_answer(ev)
                else:
                    fut = self.waiters.pop(ev.otid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(ev)
            elif isinstance(ev, m3ua.AspStateChanged):
                if ev.new is m3ua.AspState.ACTIVE:
                    self.active.set()
                else:
                    self.active.clear()
            elif isinstance(ev, m3ua.ConnectionTerminated):
                if self.transport is not None:
                    self.transport.close()
            elif isinstance(ev, m3ua.ErrorReceived):
                self.errors.append(f"ERR 0x{ev.code:02x}")
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.connection_lost(self.loop.time())
        if self.on_lost is not None:
            self.on_lost(ConnectionError("M3UA association closed"))
        self.closed.set()
        self.active.clear()
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("M3UA association closed"))
        if self.timer is not None:
            self.timer.cancel()

    def flush(self) -> None:
        data = self.client.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        at = self.client.get_timer()
        if at != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(at, self._on_timer) if at is not None else None
            self.timer_at = at

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        for ev in self.client.handle_timer(self.loop.time()):
            if type(ev) is m3ua.ConnectionTerminated and self.transport is not None:
                self.transport.close()
        self.flush()


class _MscSender:
    """checkIMEI Begins for a load run; answers matched by OTID (the client's TCAP core encodes each
    Begin from a cached template)."""

    def __init__(
        self,
        p: _MscProtocol,
        imei: str,
        version: int,
        imsi: str | None,
        vendor: str | None,
        population: tuple[int, int] | None,
        imeis: list[str] | None,
    ) -> None:
        self.p = p
        self.imei, self.version, self.imsi, self.vendor = imei, version, imsi, vendor
        self.population = population
        self.imeis = imeis
        self.starts: dict[int, float] = {}
        self.n = 0
        self.run: LoadRun | None = None

    def attach(self, run: LoadRun) -> None:
        self.run = run
        self.p.on_answer = self._on_answer
        self.p.on_lost = run.fail

    def _next(self) -> tuple[str, str | None]:
        self.n = n = self.n + 1
        if self.imeis is not None:
            return self.imeis[(n - 1) % len(self.imeis)], self.imsi
        if self.population is None:
            return self.imei, self.imsi
        imei, imsi = self.imei, self.imsi
        k = (n * 2654435761) & 0xFFFFFFFFFFFF  # spread, repeatable (SimulatedMme.load)
        a = f"{int(imei) + k % self.population[0]:0{len(imei)}d}"
        b = f"{int(imsi) + (k >> 20) % self.population[1]:0{len(imsi)}d}" if imsi else None
        return a, b

    def send(self, intended: Sequence[float]) -> None:
        p = self.p
        if not p.active.is_set():
            raise ConnectionError("M3UA association is not active")
        client = p.client
        for t in intended:
            a, b = self._next()
            tid = client.send_check_imei(0.0, imei=a, version=self.version, imsi=b, vendor=self.vendor)
            self.starts[tid] = t
        p.flush()

    def _on_answer(self, ev: CheckImeiAnswered) -> None:
        t0 = self.starts.pop(ev.otid, None)
        run = self.run
        if t0 is None or run is None:
            return
        now = time.perf_counter()
        run.answered(now - t0, _verdict(ev)[0])
        if run.mode == "closed" and run.take(1):
            self.send([now])

    def outstanding(self) -> list[float]:
        return list(self.starts.values())

    def in_flight(self) -> int:
        return len(self.starts)

    def detach(self) -> None:
        self.run = None
        self.p.on_answer = None
        self.p.on_lost = None
        client = self.p.client
        for tid in self.starts:
            client.outstanding.pop(tid, None)
        self.starts.clear()


class SimulatedMsc:
    """An MSC (calling SSN 8) or SGSN (SSN 149) with one M3UA association to the EIR (or an STP)."""

    def __init__(self, protocol: _MscProtocol, role: str) -> None:
        self._p = protocol
        self.role = role
        self.client = protocol.client

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        role: str = "msc",
        opc: int = 1,
        dpc: int = 2,
        ni: int = 2,
        routing_context: int | None = None,
        gt: str | None = None,
        eir_gt: str = "491700000009",
        eir_ssn: int = 9,
        extended: bool = False,
        sctp: bool = False,
        timeout: float = 5.0,
    ) -> SimulatedMsc:
        """Open the association and bring the ASP up and active."""
        if role not in ROLE_SSN:
            raise ValueError(f"role must be msc or sgsn, got {role!r}")
        client = CheckImeiClient(
            m3ua_settings=m3ua.M3uaSettings(
                role=m3ua.Role.ASP,
                routing_context=routing_context,
                info_string=f"eir-emulator simulated {role}",
            ),
            opc=opc,
            dpc=dpc,
            ni=ni,
            calling=sccp.make_address(ssn=ROLE_SSN[role], gt=gt or DEFAULT_GT[role]),
            called=sccp.make_address(ssn=eir_ssn, gt=eir_gt),
            extended=extended,
        )
        loop = asyncio.get_running_loop()
        proto = _MscProtocol(client)
        if sctp:  # one M3UA message per SCTP message, DATA off stream 0 (netio.sctp)
            await sctp_create_connection(lambda: proto, host, port, SCTP_PPID_M3UA, framer=m3ua_framer)
        else:
            await loop.create_connection(lambda: proto, host, port)
        try:
            await asyncio.wait_for(proto.active.wait(), timeout)
        except TimeoutError:
            if proto.transport is not None:
                proto.transport.close()
            why = ", ".join(proto.errors) or "no answer"
            raise TimeoutError(f"ASP not active after {timeout}s ({why})") from None
        return cls(proto, role)

    @property
    def active(self) -> bool:
        return self._p.active.is_set()

    async def check(
        self,
        imei: str,
        *,
        version: int = 3,
        imsi: str | None = None,
        vendor: str | None = None,
        requested_bmuef: bool = False,
        timeout: float = 5.0,
        fallback: bool = True,
        msisdn: str | None = None,
    ) -> CheckResult:
        """One checkIMEI dialogue. On an AC-negotiation abort that names a lower equipmentMngtContext
        (TS 29.002 §12.1), the dialogue is retried with that version. An ``imsi`` or ``msisdn``
        travels in a vendor form (Huawei unless ``vendor`` says otherwise)."""
        first = version
        started = time.perf_counter()
        while True:
            ev = await self._send_wait(imei, version, imsi, vendor, requested_bmuef, timeout, msisdn)
            if ev is None:
                return CheckResult(
                    imei=imei,
                    verdict="timeout",
                    version=version,
                    latency=time.perf_counter() - started,
                    fallback_from=first if version != first else None,
                )
            o = ev.outcome
            if (
                fallback
                and o is not None
                and o.aborted
                and o.abort_supported_version
                and o.abort_supported_version < version
            ):
                version = o.abort_supported_version
                continue
            verdict, detail = _verdict(ev)
            return CheckResult(
                imei=imei,
                verdict=verdict,
                version=version,
                latency=time.perf_counter() - started,
                fallback_from=first if version != first else None,
                detail=detail,
            )

    async def _send_wait(
        self,
        imei: str,
        version: int,
        imsi: str | None,
        vendor: str | None,
        bmuef: bool,
        timeout: float,
        msisdn: str | None = None,
    ) -> CheckImeiAnswered | None:
        p = self._p
        if not p.active.is_set():
            raise ConnectionError("M3UA association is not active")
        if (imsi or msisdn) and vendor is None:
            vendor = "huawei"  # the only standard-compatible place for an IMSI is a vendor variant
        tid = self.client.send_check_imei(
            p.loop.time(),
            imei=imei,
            version=version,
            imsi=imsi,
            msisdn=msisdn,
            vendor=vendor,
            requested_bmuef=bmuef,
        )
        fut: asyncio.Future[CheckImeiAnswered] = p.loop.create_future()
        p.waiters[tid] = fut
        p.flush()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            p.waiters.pop(tid, None)
            self.client.outstanding.pop(tid, None)
            return None

    def send_begin(self, tcap_data: bytes, *, otid: int, version: int) -> None:
        """Send a TCAP Begin built elsewhere (``eir replay``: a recorded one with a fresh OTID); its
        reply comes to the :meth:`on_answer` handler (or a ``check`` waiter) matched by ``otid``."""
        p = self._p
        if not p.active.is_set():
            raise ConnectionError("M3UA association is not active")
        self.client.outstanding[otid] = (p.loop.time(), version)
        self.client.send_tcap(tcap_data)
        p.flush()

    def on_answer(self, handler: Any) -> None:
        """Every :class:`CheckImeiAnswered` goes to ``handler`` (None: back to ``check``'s waiters)."""
        self._p.on_answer = handler

    @property
    def closed(self) -> bool:
        return self._p.closed.is_set()

    async def load(
        self,
        imei: str,
        *,
        count: int,
        window: int,
        version: int = 2,
        imsi: str | None = None,
        vendor: str | None = None,
        timeout: float = 60.0,
        population: tuple[int, int] | None = None,
    ) -> LoadSummary:
        """``count`` checkIMEIs with ``window`` outstanding at once; rate and latency percentiles.

        ``population=(imeis, imsis)``: as ``SimulatedMme.load`` — each request an IMEI and an IMSI
        (carried in the vendor form, Huawei by default) drawn from consecutive ranges starting at
        ``imei`` and ``imsi``."""
        sender = self.sender(imei, version=version, imsi=imsi, vendor=vendor, population=population)
        plan = load_plan(count=count, window=window, rate=None, duration=None, timeout=timeout)
        return await drive([sender], plan)

    def sender(
        self,
        imei: str,
        *,
        version: int = 2,
        imsi: str | None = None,
        vendor: str | None = None,
        population: tuple[int, int] | None = None,
        imeis: list[str] | None = None,
    ) -> _MscSender:
        """A :class:`simulations.load.LoadSender` over this association (:func:`simulations.load.drive`)."""
        if imsi and vendor is None:
            vendor = "huawei"
        return _MscSender(self._p, imei, version, imsi, vendor, population, imeis)

    async def close(self, timeout: float = 2.0) -> None:
        """ASPDN, wait for its ACK (the core then asks to close), close."""
        p = self._p
        if p.transport is None or p.transport.is_closing():
            return
        if self.client.m3ua.state is not m3ua.AspState.DOWN:
            self.client.stop(p.loop.time())
            p.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.closed.wait(), timeout)
        if not p.closed.is_set() and p.transport is not None:
            p.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.closed.wait(), timeout)


# --- CLI ---------------------------------------------------------------------------------------------


def register(sim_subparsers: Any) -> None:
    from eir.cli import add_config_options, digits_text, host_port, imsi_text, int_range, positive_float
    from simulations.load import add_load_options

    p = sim_subparsers.add_parser("msc", help="simulated MSC/SGSN sending MAP checkIMEI over M3UA")
    p.add_argument(
        "--connect",
        type=host_port,
        default=None,
        help="EIR (or STP) M3UA address HOST:PORT; default: the config's first m3ua.listen",
    )
    add_config_options(p, "eir config file (for the default --connect)")
    p.add_argument("--imei", required=True, help="14-16 digits (dashes and spaces dropped)")
    p.add_argument(
        "--allow-bad-imei",
        action="store_true",
        help="send a malformed --imei (a wrong check digit; MAP carries 14-16 digits) instead of refusing it",
    )
    p.add_argument(
        "--imsi", type=imsi_text, default=None, help="sent as a Huawei-style extension (see --vendor)"
    )
    p.add_argument("--vendor", choices=["huawei", "ericsson"], default=None)
    p.add_argument("--map-version", type=int, choices=[1, 2, 3], default=3)
    add_load_options(p, unit="checkIMEI")
    p.add_argument("--role", choices=["msc", "sgsn"], default="msc", help="calling SSN 8 (msc) or 149 (sgsn)")
    p.add_argument("--opc", type=int_range(0, 2**24 - 1), default=1, help="our point code")
    p.add_argument("--dpc", type=int_range(0, 2**24 - 1), default=2, help="the EIR's point code")
    p.add_argument("--routing-context", type=int_range(0, 2**32 - 1), default=None)
    p.add_argument("--gt", type=digits_text, default=None, help="our (calling) GT digits")
    p.add_argument("--eir-gt", type=digits_text, default="491700000009", help="called GT digits")
    p.add_argument("--xudt", action="store_true", help="send XUDT instead of UDT")
    p.add_argument("--sctp", action="store_true", help="SCTP instead of TCP")
    p.add_argument(
        "--timeout", type=positive_float, default=5.0, help="seconds for the association and per check"
    )
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from eir.cli import EXIT_CONFIG, default_address, sim_imei

    imei = sim_imei("eir sim msc", args.imei, args.allow_bad_imei, wire_digits=(14, 16))
    if imei is None:
        return EXIT_CONFIG
    args.imei = imei
    from simulations.load import load_args

    if not load_args(args, "eir sim msc"):
        return EXIT_CONFIG
    address = default_address(args, "m3ua.listen", "127.0.0.1:2905")
    if address is None:
        return EXIT_CONFIG
    args.connect = address
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    try:
        return int(runner(_run(args)))
    except TimeoutError as e:
        print(f"eir sim msc: {args.connect}: {str(e) or 'no answer in time'}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as e:
        print(f"eir sim msc: {args.connect}: {str(e) or type(e).__name__}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    from eir.config import parse_hostport
    from simulations.load import progress_from_args, report

    host, port = parse_hostport(args.connect)
    mscs: list[SimulatedMsc] = []
    try:
        for k in range(args.plan.peers if args.plan else 1):
            # one ASP per peer, each its own point code (--opc, --opc + 1, …)
            mscs.append(
                await SimulatedMsc.connect(
                    host,
                    port,
                    role=args.role,
                    opc=(args.opc + k) % 2**24,
                    dpc=args.dpc,
                    routing_context=args.routing_context,
                    gt=args.gt,
                    eir_gt=args.eir_gt,
                    extended=args.xudt,
                    sctp=args.sctp,
                    timeout=args.timeout,
                )
            )
        msc = mscs[0]
        if args.plan is None:
            r = await msc.check(
                args.imei, version=args.map_version, imsi=args.imsi, vendor=args.vendor, timeout=args.timeout
            )
            if args.json:
                print(json.dumps(asdict(r)))
            else:
                fb = f" (fell back from v{r.fallback_from})" if r.fallback_from else ""
                print(
                    f"{r.imei}: {r.verdict} [MAP v{r.version}{fb}, {r.latency * 1000:.2f} ms]"
                    + (f" {r.detail}" if r.detail else "")
                )
            return 0 if not r.verdict.startswith(("timeout", "aborted", "rejected", "returned")) else 1
        # one check first: it settles the version (an EIR that refuses v3 makes us fall back)
        probe = await msc.check(
            args.imei, version=args.map_version, imsi=args.imsi, vendor=args.vendor, timeout=args.timeout
        )
        version = probe.version
        senders = [
            m.sender(args.imei, version=version, imsi=args.imsi, vendor=args.vendor, imeis=args.imeis)
            for m in mscs
        ]
        unit = f"checkIMEI (MAP v{version})"
        s = await drive(senders, args.plan, progress=progress_from_args(args, "checkIMEI"))
        return report(s, unit, args.json)
    finally:
        for m in mscs:
            await m.close()
