"""``eir replay CAPTURE``: replay the S13 and MAP checks of a capture against an EIR, compare verdicts.

The capture (pcap or pcapng, read with dpkt) goes through :mod:`protocols.capture`: link layer, IP,
TCP reassembly / SCTP chunks, Diameter and M3UA found by header on any port, each
ME-Identity-Check-Request and checkIMEI Begin paired with its recorded answer. The requests are sent
again over this tool's own sessions — a simulated MME (CER/CEA first, our Origin-Host/Realm, new
hop-by-hop/end-to-end ids, Destination-Host dropped, every other AVP as recorded) and a simulated MSC
(ASP up and active first, our point codes and GTs, a new OTID, the TCAP Begin as recorded: vendor
forms stay vendor forms) — and each answer's *normalised verdict*
(:func:`protocols.capture.s13_verdict`, :func:`~protocols.capture.map_verdict`) is compared with the
recorded one's. ``--map FILE`` (YAML: ``expected: [acceptable, …]``) widens what counts as a match.

Exit codes: 0 every replayed request matched (or had no recorded answer), 1 at least one differed,
2 usage error or unusable input (missing, empty, truncated or corrupt capture, nothing to replay,
target unreachable) — always one line on stderr, never a traceback.

``--show`` (no target needed) prints the exchanges found, like a very small tshark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import mmap
import os
import struct
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.capture import (
    SUPPORTED_LINKTYPES,
    CaptureDecoder,
    CapturedMessage,
    CaptureStats,
    Exchange,
    ExchangeFinder,
    map_verdict,
    rewrite_diameter_request,
    rewrite_otid,
    s13_verdict,
)
from protocols.capture.exchanges import PLUMBING
from protocols.capture.pcapng import PcapngError, pcapng_linktypes, read_pcapng

__all__ = [
    "ReplayError",
    "ReplayReport",
    "Result",
    "load_exchanges",
    "read_frames",
    "register",
    "replay",
]

EXIT_MATCHED, EXIT_DIFFERED, EXIT_USAGE = 0, 1, 2

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class ReplayError(Exception):
    """Unusable input or target: the message is the one line the user sees."""


# --- reading -----------------------------------------------------------------------------------------


def _check_file(path: Path) -> str:
    """``pcap`` or ``pcapng`` after walking every record / block header (memory-mapped: a capture
    of gigabytes is not read into memory): a truncated or corrupt file is refused here with a precise
    message (dpkt would hand back a short last packet)."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ReplayError(f"{path}: empty file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _walk(path, data)
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReplayError(f"{path}: is a directory") from None
    except (OSError, ValueError) as e:
        raise ReplayError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def _walk(path: Path, data: Any) -> str:
    magic = data[:4]
    if magic in _PCAP_MAGIC:
        endian = _PCAP_MAGIC[magic]
        if len(data) < 24:
            raise ReplayError(f"{path}: truncated pcap header")
        pos, n = 24, 0
        while pos < len(data):
            if len(data) - pos < 16:
                raise ReplayError(f"{path}: truncated after {n} packets (partial record header)")
            caplen, _origlen = struct.unpack_from(endian + "II", data, pos + 8)
            if caplen > 0x4000000:
                raise ReplayError(f"{path}: corrupt record {n + 1} (captured length {caplen})")
            if len(data) - pos - 16 < caplen:
                raise ReplayError(f"{path}: truncated in the middle of packet {n + 1}")
            pos += 16 + caplen
            n += 1
        return "pcap"
    if magic == _PCAPNG_MAGIC:
        if len(data) < 12:
            raise ReplayError(f"{path}: truncated pcapng header")
        bom = data[8:12]
        if bom == b"\x4d\x3c\x2b\x1a":
            endian = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            endian = ">"
        else:
            raise ReplayError(f"{path}: corrupt pcapng section header")
        pos, n = 0, 0
        while pos < len(data):
            if len(data) - pos < 12:
                raise ReplayError(f"{path}: truncated after {n} blocks")
            if data[pos : pos + 4] == _PCAPNG_MAGIC:  # a new section may change the byte order
                endian = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(endian + "I", data, pos + 4)[0]
            if blen < 12 or blen % 4:
                raise ReplayError(f"{path}: corrupt block {n + 1} (length {blen})")
            if len(data) - pos < blen:
                raise ReplayError(f"{path}: truncated in the middle of block {n + 1}")
            if struct.unpack_from(endian + "I", data, pos + blen - 4)[0] != blen:
                raise ReplayError(f"{path}: corrupt block {n + 1} (trailing length differs)")
            pos += blen
            n += 1
        return "pcapng"
    raise ReplayError(f"{path}: not a pcap or pcapng file")


def read_frames(path: str | Path) -> Iterator[tuple[int, float, bytes]]:
    """(link type, timestamp, frame) of every packet; raises :class:`ReplayError` on bad input.

    pcap is read with dpkt; pcapng with :func:`protocols.capture.pcapng.read_pcapng`, which gives
    each interface's packets that interface's link type (dpkt's reader applies the first one to all)."""
    import dpkt

    p = Path(path)
    kind = _check_file(p)
    if kind == "pcapng":
        yield from _read_pcapng(p)
        return
    with p.open("rb", buffering=1 << 20) as f:
        try:
            reader: Any = dpkt.pcap.Reader(f)
        except (ValueError, dpkt.Error, struct.error) as e:
            raise ReplayError(f"{p}: corrupt {kind} header ({e})") from None
        linktype = int(reader.datalink())
        if linktype not in SUPPORTED_LINKTYPES:
            raise ReplayError(f"{p}: link type {linktype} is not supported")
        try:
            for ts, frame in reader:
                yield linktype, float(ts), bytes(frame)
        except (ValueError, dpkt.Error, struct.error) as e:
            raise ReplayError(f"{p}: corrupt {kind} ({e})") from None


def _read_pcapng(p: Path) -> Iterator[tuple[int, float, bytes]]:
    """Frames on an interface of an unsupported link type reach the decoder (it counts them as not
    IP); a file where no interface has a supported one is refused."""
    try:
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            types = pcapng_linktypes(data)
            if not types:
                raise ReplayError(f"{p}: no interface description block")
            if not SUPPORTED_LINKTYPES.intersection(types):
                listed = ", ".join(str(t) for t in sorted(set(types)))
                raise ReplayError(f"{p}: link type {listed} is not supported")
            try:
                yield from read_pcapng(data)
            except (PcapngError, struct.error) as e:
                raise ReplayError(f"{p}: corrupt pcapng ({e})") from None
    except OSError as e:
        raise ReplayError(f"{p}: cannot read ({e.strerror or e})") from None


@dataclass(slots=True)
class Loaded:
    exchanges: list[Exchange]
    stats: CaptureStats
    messages: int
    not_replayed: dict[str, int] = field(default_factory=dict)
    """Diameter requests that are not S13 ECRs, per kind (CER, DWR, "S6a command 316" …)."""


def not_replayed_line(counts: dict[str, int]) -> str:
    """``N not replayed: 2 CER, 40 DWR (session plumbing); 3 S6a command 316`` — or "" for none."""
    if not counts:
        return ""
    plumbing = [f"{counts[k]} {k}" for k in PLUMBING.values() if k in counts]
    other = [
        f"{n} {k}"
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if k not in PLUMBING.values()
    ]
    parts = []
    if plumbing:
        parts.append(", ".join(plumbing) + " (session plumbing)")
    if other:
        parts.append(", ".join(other))
    total = sum(counts.values())
    return f"{total} Diameter request{'s' if total != 1 else ''} not replayed: " + "; ".join(parts)


def load_exchanges(
    path: str | Path,
    *,
    diameter_ports: set[int] | None = None,
    m3ua_ports: set[int] | None = None,
    on_message: Callable[[CapturedMessage], None] | None = None,
) -> Loaded:
    """Read, reassemble and pair. The cyclic garbage collector is paused meanwhile: what is built
    (messages, exchanges, bytes) holds no reference cycles, and its collections, rescanning the
    growing lists of exchanges, were a third of the CPU time (6.6 → 4.5 µs per message)."""
    dec = CaptureDecoder(diameter_ports=diameter_ports or set(), m3ua_ports=m3ua_ports or set())
    finder = ExchangeFinder()
    n = 0
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for linktype, ts, frame in read_frames(path):
            for m in dec.receive_frame(linktype, ts, frame):
                n += 1
                finder.add(m)
                if on_message is not None:
                    on_message(m)
        for m in dec.finish():
            n += 1
            finder.add(m)
            if on_message is not None:
                on_message(m)
        return Loaded(finder.exchanges(), dec.stats, n, dict(finder.not_replayed))
    finally:
        if was_enabled:
            gc.enable()


# --- results ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    exchange: Exchange
    target: str
    got: str | None = None
    latency: float | None = None

    @property
    def expected(self) -> str | None:
        return self.exchange.expected

    def status(self, acceptable: dict[str, list[str]]) -> str:
        """``matched``, ``differed`` or ``no expectation``."""
        exp = self.exchange.expected
        if exp is None:
            return "no expectation"
        if self.got == exp or (self.got is not None and self.got in acceptable.get(exp, ())):
            return "matched"
        return "differed"


@dataclass(slots=True)
class ReplayReport:
    results: list[Result] = field(default_factory=list)
    acceptable: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    not_replayed: dict[str, int] = field(default_factory=dict)
    """From :attr:`Loaded.not_replayed`: shown after the summary, never silently left out."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio.Runner.run (3.11) reprs the main task, and with it its result,
        # when it checks the SIGINT handler on the way out; the dataclass repr of 100k results (each
        # with its request's bytes) took longer than replaying them.
        return f"<ReplayReport {len(self.results)} results, {self.seconds:.3f} s>"

    def counts(self) -> dict[str, int]:
        c = {"matched": 0, "differed": 0, "no expectation": 0}
        for r in self.results:
            c[r.status(self.acceptable)] += 1
        return c

    def summary(self) -> str:
        c = self.counts()
        line = (
            f"{c['matched']} matched, {c['differed']} differed, "
            f"{c['no expectation']} unanswered (no expectation)"
        )
        other = not_replayed_line(self.not_replayed)
        return f"{line}; {other}" if other else line

    def exit_code(self) -> int:
        return EXIT_DIFFERED if self.counts()["differed"] else EXIT_MATCHED

    def line(self, r: Result) -> str:
        st = r.status(self.acceptable)
        mark = {"matched": "✓", "differed": "✗", "no expectation": "·"}[st]
        ex = r.exchange
        return (
            f"{mark} #{ex.request.index:<6} {ex.interface:<3} {ex.imei or '-':<16} "
            f"expected {r.expected or '(none)'}, got {r.got or '(nothing)'}  [{ex.ident}]"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.counts(),
            "not_replayed": dict(self.not_replayed),
            "seconds": round(self.seconds, 3),
            "results": [
                {
                    "index": r.exchange.request.index,
                    "interface": r.exchange.interface,
                    "target": r.target,
                    "imei": r.exchange.imei,
                    "software_version": r.exchange.software_version,
                    "imsi": r.exchange.imsi,
                    "map_version": r.exchange.map_version,
                    "ident": r.exchange.ident,
                    "expected": r.expected,
                    "got": r.got,
                    "status": r.status(self.acceptable),
                    "latency_ms": None if r.latency is None else round(r.latency * 1000, 3),
                }
                for r in self.results
            ],
        }

    def junit(self, name: str) -> bytes:
        c = self.counts()
        suite = ET.Element(
            "testsuite",
            name=f"eir replay {name}",
            tests=str(len(self.results)),
            failures=str(c["differed"]),
            errors="0",
            skipped=str(c["no expectation"]),
            time=f"{self.seconds:.3f}",
        )
        # Names stay the same from run to run (CI servers follow a test's history by its name): the
        # target is in it only when an interface was replayed to several.
        per_iface: dict[str, set[str]] = {}
        for r in self.results:
            per_iface.setdefault(r.exchange.interface, set()).add(r.target)
        for r in self.results:
            ex = r.exchange
            at = f" @{r.target}" if len(per_iface[ex.interface]) > 1 else ""
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"replay.{ex.interface}",
                name=f"#{ex.request.index} {ex.interface} {ex.imei or '-'} {ex.ident}{at}",
                time=f"{r.latency or 0.0:.6f}",
            )
            st = r.status(self.acceptable)
            if st == "differed":
                fail = ET.SubElement(
                    case,
                    "failure",
                    message=f"expected {r.expected}, got {r.got or 'nothing'}",
                    type="verdict",
                )
                fail.text = f"expected: {r.expected}\nactual: {r.got or 'nothing (timeout)'}\n"
            elif st == "no expectation":
                ET.SubElement(case, "skipped", message=f"no recorded answer; got {r.got or 'nothing'}")
        root = ET.Element("testsuites")
        root.append(suite)
        return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


# --- replaying ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    speed: float | None = None
    """None: as fast as the window allows; N: N times the recorded pace."""
    window: int = 256
    timeout: float = 5.0
    origin_host: str = "replay.sim.localdomain"
    origin_realm: str = "sim.localdomain"
    destination_realm: str | None = None
    opc: int = 1
    dpc: int = 2
    gt: str | None = None
    eir_gt: str = "491700000009"
    routing_context: int | None = None


class _DiameterPipe:
    """Raw answers by hop-by-hop id (the ``SimulatedMme.intercept`` shape)."""

    _HDR = struct.Struct(">IIIII")

    def __init__(self, loop: asyncio.AbstractEventLoop, first: int) -> None:
        self.buf = bytearray()
        self.first = first
        self.waiting: dict[int, tuple[int, float]] = {}
        self.answers: dict[int, tuple[str, float]] = {}
        self.slot = asyncio.Event()
        self.error: BaseException | None = None
        self.loop = loop

    def feed(self, data: bytes) -> bytes:
        buf = self.buf
        buf += data
        pos, n = 0, len(buf)
        other = []
        now = time.perf_counter()
        hdr = self._HDR
        while n - pos >= 20:
            w0, w1, _app, hbh, _e2e = hdr.unpack_from(buf, pos)
            length = w0 & 0xFFFFFF
            if length < 20:
                other.append(bytes(buf[pos:]))
                pos = n
                break
            if n - pos < length:
                break
            item = self.waiting.pop(hbh, None) if not (w1 >> 24) & 0x80 else None
            if item is not None:
                idx, t0 = item
                self.answers[idx] = (s13_verdict(bytes(buf[pos : pos + length])), now - t0)
                self.slot.set()
            else:
                other.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        return b"".join(other)

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.slot.set()


def _split_target(t: str) -> tuple[str | None, str, int]:
    iface: str | None = None
    if "=" in t:
        iface, _, t = t.partition("=")
        iface = iface.strip().lower()
        if iface not in ("s13", "map"):
            raise ReplayError(f"--target {iface}=…: the interface is s13 or map")
    v = t.strip()
    if v.startswith("["):
        host, sep, port = v[1:].partition("]:")
    else:
        host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ReplayError(f"--target {t!r}: expected [s13=|map=]HOST:PORT")
    return iface, host, int(port)


async def _pace(t0: float, ts0: float, ts: float, speed: float | None) -> None:
    if speed is None:
        return
    due = t0 + (ts - ts0) / speed
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _replay_s13(
    exchanges: list[Exchange], host: str, port: int, opts: Options, ts0: float, t0: float
) -> list[Result]:
    from simulations.mme import SimulatedMme

    target = f"{host}:{port}"
    try:
        mme = await SimulatedMme.connect(
            host,
            port,
            origin_host=opts.origin_host,
            origin_realm=opts.origin_realm,
            destination_realm=opts.destination_realm or "localdomain",
            timeout=opts.timeout,
        )
    except (OSError, TimeoutError, ConnectionError) as e:
        raise ReplayError(f"s13 target {target}: {e or type(e).__name__}") from None
    loop = asyncio.get_running_loop()
    first = 0x50000000
    pipe = _DiameterPipe(loop, first)
    oh, orr = opts.origin_host.encode(), opts.origin_realm.encode()
    dr = opts.destination_realm.encode() if opts.destination_realm else None
    mme.intercept(pipe)
    results = [Result(ex, target) for ex in exchanges]
    window = max(1, opts.window) if opts.speed is None else 1 << 30
    try:
        batch: list[bytes] = []
        for i, ex in enumerate(exchanges):
            if opts.speed is not None:
                await _pace(t0, ts0, ex.request.ts, opts.speed)
            while len(pipe.waiting) >= window and pipe.error is None:
                if batch:
                    mme.write(b"".join(batch))
                    batch.clear()
                pipe.slot.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pipe.slot.wait(), opts.timeout)
                if not pipe.slot.is_set():
                    break  # nothing came back within the timeout: those stay unanswered
            if pipe.error is not None:
                break
            hbh = (first + i) & 0xFFFFFFFF
            try:
                data = rewrite_diameter_request(
                    ex.payload,
                    hop_by_hop=hbh,
                    end_to_end=hbh,
                    origin_host=oh,
                    origin_realm=orr,
                    destination_realm=dr,
                )
            except (struct.error, ValueError):
                data = ex.payload
            pipe.waiting[hbh] = (i, time.perf_counter())
            batch.append(data)
            if opts.speed is not None or len(batch) >= 64:
                mme.write(b"".join(batch))
                batch.clear()
        if batch and pipe.error is None:
            mme.write(b"".join(batch))
        deadline = loop.time() + opts.timeout
        while pipe.waiting and pipe.error is None and loop.time() < deadline:
            pipe.slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pipe.slot.wait(), max(0.0, deadline - loop.time()))
    except ConnectionError:
        pass
    finally:
        mme.intercept(None)
        with contextlib.suppress(Exception):
            await mme.close(timeout=1.0)
    for idx, (verdict, lat) in pipe.answers.items():
        results[idx].got, results[idx].latency = verdict, lat
    for r in results:
        if r.got is None:
            r.got = "no answer" if pipe.error is None else f"no answer ({pipe.error})"
    return results


async def _replay_map(
    exchanges: list[Exchange], host: str, port: int, opts: Options, ts0: float, t0: float
) -> list[Result]:
    from simulations.msc import SimulatedMsc

    target = f"{host}:{port}"
    try:
        msc = await SimulatedMsc.connect(
            host,
            port,
            opc=opts.opc,
            dpc=opts.dpc,
            gt=opts.gt,
            eir_gt=opts.eir_gt,
            routing_context=opts.routing_context,
            timeout=opts.timeout,
        )
    except (OSError, TimeoutError, ConnectionError) as e:
        raise ReplayError(f"map target {target}: {e or type(e).__name__}") from None
    results = [Result(ex, target) for ex in exchanges]
    waiting: dict[int, tuple[int, float]] = {}
    slot = asyncio.Event()

    def on_answer(ev: Any) -> None:
        item = waiting.pop(ev.otid, None)
        if item is not None:
            idx, t_sent = item
            results[idx].got = map_verdict(ev.outcome, ev.returned)
            results[idx].latency = time.perf_counter() - t_sent
            slot.set()

    msc.on_answer(on_answer)
    window = max(1, opts.window) if opts.speed is None else 1 << 30
    loop = asyncio.get_running_loop()
    tid = 0
    try:
        for i, ex in enumerate(exchanges):
            if opts.speed is not None:
                await _pace(t0, ts0, ex.request.ts, opts.speed)
            while len(waiting) >= window and not msc.closed:
                slot.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot.wait(), opts.timeout)
                if not slot.is_set():
                    break
            if msc.closed:
                break
            try:
                for _ in range(1 << 16):  # a free OTID of the recorded length
                    tid += 1
                    begin, otid = rewrite_otid(ex.payload, tid)
                    if otid and otid not in waiting:
                        break
            except ValueError:
                results[i].got = "not replayable (no OTID)"
                continue
            waiting[otid] = (i, time.perf_counter())
            msc.send_begin(begin, otid=otid, version=ex.map_version or 2)
        deadline = loop.time() + opts.timeout
        while waiting and not msc.closed and loop.time() < deadline:
            slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.wait(), max(0.0, deadline - loop.time()))
    except ConnectionError:
        pass
    finally:
        msc.on_answer(None)
        with contextlib.suppress(Exception):
            await msc.close(timeout=1.0)
    for r in results:
        if r.got is None:
            r.got = "no answer"
    return results


async def replay(
    exchanges: list[Exchange], targets: dict[str, list[tuple[str, int]]], opts: Options
) -> ReplayReport:
    """Replay each interface's exchanges to each of its targets; both interfaces at once."""
    report = ReplayReport()
    started = time.perf_counter()
    ts0 = min((e.request.ts for e in exchanges), default=0.0)
    jobs = []
    for iface, fn in (("s13", _replay_s13), ("map", _replay_map)):
        mine = [e for e in exchanges if e.interface == iface]
        if not mine:
            continue
        for host, port in targets.get(iface, []):
            jobs.append(fn(mine, host, port, opts, ts0, started))
    outs = await asyncio.gather(*jobs, return_exceptions=True)
    for o in outs:
        if isinstance(o, BaseException):
            raise o
    report.results = sorted((r for o in outs for r in o), key=lambda r: (r.exchange.request.index, r.target))  # type: ignore[union-attr]
    report.seconds = time.perf_counter() - started
    return report


# --- CLI -----------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="replay the S13 / MAP checks of a pcap(ng) capture against an EIR and compare verdicts",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng file")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="[s13=|map=]HOST:PORT",
        help="EIR to replay to (repeatable; default 127.0.0.1:3868 for S13, 127.0.0.1:2905 for MAP)",
    )
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per request)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of lines")
    p.add_argument(
        "--speed", default="max", help="max (default), or N times the recorded pace (1 = real time)"
    )
    p.add_argument(
        "--map", dest="map_file", metavar="FILE", help="YAML: expected verdict → acceptable verdicts"
    )
    p.add_argument(
        "--show", action="store_true", help="print the exchanges found and exit (no target needed)"
    )
    p.add_argument("--diameter-port", type=int, action="append", default=[], help="Diameter on this port")
    p.add_argument("--m3ua-port", type=int, action="append", default=[], help="M3UA on this port")
    p.add_argument("--window", type=int, default=256, help="requests outstanding at once with --speed max")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for connections and answers")
    p.add_argument("--origin-host", default="replay.sim.localdomain")
    p.add_argument("--origin-realm", default="sim.localdomain")
    p.add_argument("--destination-realm", default=None, help="replace the recorded Destination-Realm")
    p.add_argument("--opc", type=int, default=1, help="our point code (MAP)")
    p.add_argument("--dpc", type=int, default=2, help="the EIR's point code (MAP)")
    p.add_argument("--gt", default=None, help="our GT digits (MAP)")
    p.add_argument("--eir-gt", default="491700000009", help="the EIR's GT digits (MAP)")
    p.add_argument("--routing-context", type=int, default=None, help="M3UA routing context (MAP)")
    p.add_argument("--quiet", "-q", action="store_true", help="only the summary (and differences)")
    p.set_defaults(func=_command)


def _acceptable(path: str | None) -> dict[str, list[str]]:
    if not path:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ReplayError(f"--map {path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ReplayError(f"--map {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ReplayError(f"--map {path}: expected a mapping of expected verdict → acceptable verdicts")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        vals = v if isinstance(v, list) else [v]
        out[str(k)] = [str(x) for x in vals]
    return out


def _targets(values: list[str], present: set[str]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {"s13": [], "map": []}
    untyped: list[tuple[str, int]] = []
    for v in values:
        iface, host, port = _split_target(v)
        if iface is None:
            untyped.append((host, port))
        else:
            out[iface].append((host, port))
    if untyped:
        if len(present) > 1:
            raise ReplayError(
                "the capture has S13 and MAP checks: give --target s13=HOST:PORT and map=HOST:PORT"
            )
        out[next(iter(present))].extend(untyped)
    if not values:
        out = {"s13": [("127.0.0.1", 3868)], "map": [("127.0.0.1", 2905)]}
    for iface in present:
        if not out[iface]:
            raise ReplayError(f"the capture has {iface} checks but no --target {iface}=HOST:PORT")
    return out


def _speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        s = float(value)
    except ValueError:
        raise ReplayError(f"--speed {value!r}: max or a positive number") from None
    if s <= 0:
        raise ReplayError(f"--speed {value!r}: max or a positive number")
    return s


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _show(loaded: Loaded) -> None:
    ts0 = min((e.request.ts for e in loaded.exchanges), default=0.0)
    for ex in loaded.exchanges:
        m = ex.request
        parts = [f"#{m.index}", f"{m.ts - ts0:.6f}", f"{m.src}:{m.sport} → {m.dst}:{m.dport}/{m.transport}"]
        if ex.interface == "s13":
            parts.append("S13 ECR")
        else:
            parts.append(f"MAP v{ex.map_version} checkIMEI" + (f" ({ex.vendor})" if ex.vendor else ""))
        parts.append(f"imei={ex.imei or '?'}")
        if ex.software_version:
            parts.append(f"sv={ex.software_version}")
        if ex.imsi:
            parts.append(f"imsi={ex.imsi}")
        parts.append(ex.ident)
        parts.append(f"→ {ex.expected}" if ex.expected is not None else "→ (no recorded answer)")
        print("  ".join(parts))
    s = loaded.stats
    answered = sum(e.expected is not None for e in loaded.exchanges)
    print(
        f"{len(loaded.exchanges)} exchanges ({answered} answered) in "
        f"{s.frames} frames, {loaded.messages} Diameter/M3UA messages"
        + (f", {s.retransmitted} retransmissions" if s.retransmitted else "")
        + (f", {s.gaps} gaps" if s.gaps else "")
        + (f", {_n(s.ip_reassembled, 'IP datagram')} reassembled" if s.ip_reassembled else "")
        + (f", {_n(s.ip_fragments_dropped, 'IP fragment')} dropped" if s.ip_fragments_dropped else "")
    )
    other = not_replayed_line(loaded.not_replayed)
    if other:
        print(other)


def _command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ReplayError as e:
        print(f"eir replay: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    speed = _speed(args.speed)
    acceptable = _acceptable(args.map_file)
    if args.window < 1 or args.timeout <= 0:
        raise ReplayError("--window must be ≥ 1 and --timeout > 0")
    loaded = load_exchanges(
        args.capture, diameter_ports=set(args.diameter_port), m3ua_ports=set(args.m3ua_port)
    )
    if not loaded.exchanges:
        raise ReplayError(
            f"{args.capture}: no S13 ME-Identity-Check or MAP checkIMEI in it "
            f"({loaded.stats.frames} frames, {loaded.messages} Diameter/M3UA messages"
            + (f"; {not_replayed_line(loaded.not_replayed)}" if loaded.not_replayed else "")
            + ")"
        )
    if args.show:
        _show(loaded)
        return EXIT_MATCHED
    present = {e.interface for e in loaded.exchanges}
    targets = _targets(args.target, present)
    opts = Options(
        speed=speed,
        window=args.window,
        timeout=args.timeout,
        origin_host=args.origin_host,
        origin_realm=args.origin_realm,
        destination_realm=args.destination_realm,
        opc=args.opc,
        dpc=args.dpc,
        gt=args.gt,
        eir_gt=args.eir_gt,
        routing_context=args.routing_context,
    )
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    report: ReplayReport = runner(replay(loaded.exchanges, targets, opts))
    report.acceptable = acceptable
    report.not_replayed = loaded.not_replayed
    if args.junit:
        try:
            Path(args.junit).write_bytes(report.junit(Path(args.capture).name))
        except OSError as e:
            raise ReplayError(f"--junit {args.junit}: {e.strerror}") from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for r in report.results:
            if not args.quiet or r.status(acceptable) == "differed":
                print(report.line(r))
        rate = len(report.results) / report.seconds if report.seconds > 0 else 0.0
        print(f"{report.summary()} [{report.seconds:.2f} s, {rate:.0f} requests/s]")
    return report.exit_code()
