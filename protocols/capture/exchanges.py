"""Requests paired with their recorded answers, and the normalised verdict compared on replay.

Diameter S13 (TS 29.272 §5.3 / §7.2.19-20): an ME-Identity-Check-Request (command 324, R bit) is
paired with the answer that carries the same hop-by-hop and end-to-end identifiers on the same
connection (RFC 6733 §3). Other requests are not replayed but counted per kind
(:attr:`ExchangeFinder.not_replayed`): the base protocol's session plumbing (CER, DWR, DPR) by name,
anything else by application and command ("S6a command 316", "application 4 command 272").

MAP checkIMEI (TS 29.002 §8.7.1) over TCAP (Q.773): a Begin whose components hold an Invoke of
opcode 43 is paired with the End / Abort / Continue whose DTID is the Begin's OTID (and whose
component, when it has one, the same invoke id), or with the UDTS that returned the Begin. The
Huawei and Ericsson argument forms are read by :func:`~protocols.sigtran.decode_check_imei_arg`.

The normalised verdict leaves out everything a second EIR may legitimately answer differently
(Session-Id, identifiers, Origin-Host/Realm, timestamps, TCAP transaction ids, SCCP addresses):

=================  ========================================================================
S13                ``white`` ``grey`` ``black`` (2001 + Equipment-Status 0/2/1), ``unknown``
                   (Experimental-Result 5422), ``result <code>``, ``experimental <code>``,
                   ``success without Equipment-Status``, ``undecodable``
MAP                ``white`` ``grey`` ``black``, ``error <code>`` (ReturnError, 7 unknownEquipment,
                   34 systemFailure, 35 dataMissing), ``reject``, ``u-abort`` (``u-abort ac v<N>``
                   when the AC was refused in favour of version N), ``p-abort <cause>``,
                   ``returned <cause>`` (UDTS), ``empty``, ``undecodable``
=================  ========================================================================
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..diameter.codec import decode_message
from ..diameter.errors import ProtocolError as DiameterError
from ..diameter.s13 import decode_eca
from ..sigtran import (
    CHECK_IMEI_OPCODE,
    CheckImeiOutcome,
    MapParameterError,
    decode_check_imei_arg,
    decode_check_imei_reply,
    m3ua,
    sccp,
)
from ..sigtran.errors import SigtranError
from ..sigtran.tcap import Aarq, Invoke, MessageType, decode_tcap
from .decoder import CapturedMessage
from .framing import Protocol

__all__ = [
    "Exchange",
    "ExchangeFinder",
    "find_exchanges",
    "map_verdict",
    "request_kind",
    "rewrite_diameter_request",
    "rewrite_otid",
    "s13_verdict",
]

S13_APPLICATION = 16777252
ECR_COMMAND = 324
VENDOR_3GPP = 10415

_HDR = struct.Struct(">IIIII")
_U32 = struct.Struct(">I")
_STATUS = {0: "white", 1: "black", 2: "grey"}

PLUMBING = {257: "CER", 280: "DWR", 282: "DPR"}
"""Base-protocol requests that only keep a session up (RFC 6733 §5): never replayed as checks."""
_APPLICATIONS = {
    0: "base",
    3: "base accounting",
    4: "Gy/Ro",
    16777216: "Cx",
    16777217: "Sh",
    16777236: "Rx",
    16777238: "Gx",
    16777251: "S6a",
    16777252: "S13",
    16777255: "SLg",
    16777264: "SWm",
    16777265: "SWx",
    16777272: "S6b",
    16777291: "SLh",
    16777308: "S6c",
    16777310: "S6t",
}
_BASE_COMMANDS = {258: "RAR", 271: "ACR", 274: "ASR", 275: "STR"}


def request_kind(app: int, command: int) -> str:
    """A short name for a Diameter request that is not an S13 ECR (for "N not replayed: …")."""
    if command in PLUMBING:
        return PLUMBING[command]
    if app in (0, 3) and command in _BASE_COMMANDS:
        return _BASE_COMMANDS[command]
    name = _APPLICATIONS.get(app)
    return f"{name} command {command}" if name else f"application {app} command {command}"


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One request found in a capture, with its recorded answer when there is one. (Not frozen, for
    the same reason as :class:`~protocols.capture.decoder.CapturedMessage`: treat it as read-only.)"""

    interface: str
    """``s13`` or ``map``."""
    request: CapturedMessage
    answer: CapturedMessage | None
    payload: bytes
    """What a replayer sends again: the Diameter message, or the TCAP Begin (without M3UA/SCCP)."""
    imei: str | None
    software_version: str | None = None
    imsi: str | None = None
    map_version: int | None = None
    """MAP: 1 (no dialogue portion), 2 or 3 (the AARQ's equipmentMngtContext version)."""
    vendor: str | None = None
    expected: str | None = None
    """The recorded answer's normalised verdict; None without a recorded answer."""
    ident: str = ""
    """``hbh=0x… e2e=0x…`` or ``otid=0x… invoke=N``, to find it in Wireshark."""


# --- Diameter ------------------------------------------------------------------------------------


def _avps(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(code, vendor, value start, value end) of each AVP between ``start`` and ``end``."""
    p = start
    end = min(end, len(buf))
    while end - p >= 8:
        code, w = struct.unpack_from(">II", buf, p)
        flags, length = w >> 24, w & 0xFFFFFF
        hdr = 12 if flags & 0x80 else 8
        if length < hdr or p + length > end:
            return
        vendor = _U32.unpack_from(buf, p + 8)[0] if hdr == 12 else 0
        yield code, vendor, p + hdr, p + length
        p += (length + 3) & ~3


_VERDICT_CACHE: dict[bytes, str] = {}


def s13_verdict(answer: bytes) -> str:
    """The normalised verdict of an ME-Identity-Check-Answer (table in the module docstring).

    An EIR's answers differ mostly in their identifiers and Session-Id (the first AVP, RFC 6733
    §8.8): the verdict is memoised on the octets after it (bounded)."""
    if len(answer) >= 28 and answer[20:24] == b"\x00\x00\x01\x07":
        skip = 20 + ((_U32.unpack_from(answer, 24)[0] & 0xFFFFFF) + 3) & ~3
        key = answer[skip:] if skip < len(answer) else answer
        got = _VERDICT_CACHE.get(key)
        if got is None:
            got = _s13_verdict(answer)
            if len(_VERDICT_CACHE) >= 1024:
                _VERDICT_CACHE.clear()
            _VERDICT_CACHE[key] = got
        return got
    return _s13_verdict(answer)


def _s13_verdict(answer: bytes) -> str:
    """Read by the project's codec (:func:`protocols.diameter.s13.decode_eca`, tolerant per AVP)."""
    try:
        ans = decode_eca(decode_message(answer))
    except DiameterError:
        return "undecodable"
    rc, erc, status = ans.result_code, ans.experimental_result_code, ans.equipment_status
    if rc == 2001:
        if status is None:
            return "success without Equipment-Status"
        return _STATUS.get(status, f"status {status}")
    if rc is not None:
        return f"result {rc}"
    if erc == 5422:
        return "unknown"
    if erc is not None:
        return f"experimental {erc}"
    return "undecodable"


_AVP_HDR = struct.Struct(">II")


def _ecr_fields(req: bytes, end: int) -> tuple[str | None, str | None, str | None]:
    """IMEI, Software-Version (in Terminal-Information) and User-Name of an ECR: one flat walk
    (the hot part of reading a capture: no generator, no tuples)."""
    imei = sv = imsi = None
    end = min(end, len(req))
    unpack = _AVP_HDR.unpack_from
    p = 20
    while end - p >= 8:
        code, w = unpack(req, p)
        length = w & 0xFFFFFF
        hdr = 12 if w & 0x80000000 else 8
        if length < hdr or p + length > end:
            break
        if code == 1401 and hdr == 12:
            q, gend = p + 12, p + length
            while gend - q >= 12:
                c2, w2 = unpack(req, q)
                l2 = w2 & 0xFFFFFF
                h2 = 12 if w2 & 0x80000000 else 8
                if l2 < h2 or q + l2 > gend:
                    break
                if c2 == 1402:
                    imei = req[q + h2 : q + l2].decode("ascii", "replace")
                elif c2 == 1403:
                    sv = req[q + h2 : q + l2].decode("ascii", "replace")
                elif c2 == 1471 and imei is None:
                    imei = "MEID " + req[q + h2 : q + l2].hex()
                q += (l2 + 3) & ~3
        elif code == 1 and hdr == 8:
            imsi = req[p + 8 : p + length].decode("utf-8", "replace")
        p += (length + 3) & ~3
    return imei, sv, imsi


def rewrite_diameter_request(
    request: bytes,
    *,
    hop_by_hop: int,
    end_to_end: int,
    origin_host: bytes | None = None,
    origin_realm: bytes | None = None,
    destination_realm: bytes | None = None,
    drop_destination_host: bool = True,
) -> bytes:
    """The recorded request with our identifiers and, when given, our Origin-Host/Realm and the
    target's Destination-Realm; Destination-Host (the recorded EIR's name) dropped. Every other AVP
    is sent as recorded (vendor AVPs included)."""
    length = _U32.unpack_from(request, 0)[0] & 0xFFFFFF
    replace = {264: origin_host, 296: origin_realm, 283: destination_realm}
    if not any(v is not None for v in replace.values()) and not drop_destination_host:
        body = request[20:length]
    else:
        # One flat walk copying runs of untouched AVPs whole (the replayer's hot path: no generator,
        # no slice per AVP). A malformed AVP ends the message there, as before.
        parts = []
        unpack = _AVP_HDR.unpack_from
        end = min(length, len(request))
        p = run = 20
        while end - p >= 8:
            code, w = unpack(request, p)
            alen = w & 0xFFFFFF
            plain = not w & 0x80000000
            if alen < (8 if plain else 12) or p + alen > end:
                break
            nxt = p + ((alen + 3) & ~3)
            if plain and (code == 293 or code in replace):
                new = None if code == 293 else replace[code]
                if new is not None or (code == 293 and drop_destination_host):
                    parts.append(request[run:p])
                    if new is not None:
                        n = 8 + len(new)
                        parts.append(struct.pack(">II", code, (w & 0xFF000000) | n) + new + b"\0" * (-n % 4))
                    run = nxt
            p = nxt
        parts.append(request[run : min(p, end)])
        body = b"".join(parts)
    w1 = _U32.unpack_from(request, 4)[0] & ~(0x10 << 24)  # a replay is not a retransmission (T bit)
    return (
        _HDR.pack((1 << 24) | (20 + len(body)), w1, _U32.unpack_from(request, 8)[0], hop_by_hop, end_to_end)
        + body
    )


# --- MAP -----------------------------------------------------------------------------------------


def map_verdict(outcome: CheckImeiOutcome | None, returned: int | None = None) -> str:
    """The normalised verdict of a TCAP reply to a checkIMEI Begin (module docstring)."""
    if returned is not None:
        return f"returned {returned}"
    if outcome is None or outcome.raw_kind == "undecodable":
        return "undecodable"
    if outcome.status is not None:
        return _STATUS.get(int(outcome.status), f"status {int(outcome.status)}")
    if outcome.error is not None:
        return f"error {outcome.error}"
    if outcome.rejected:
        return "reject"
    if outcome.aborted:
        if outcome.p_abort_cause is not None:
            return f"p-abort {outcome.p_abort_cause}"
        if outcome.abort_supported_version is not None:
            return f"u-abort ac v{outcome.abort_supported_version}"
        return "u-abort"
    return "empty"


def _tid_span(tcap: bytes, tag: int) -> tuple[int, int] | None:
    """Start and length of the OTID (0x48) / DTID (0x49) value in a TCAP message."""
    try:
        i = 1
        ln = tcap[i]
        i += 1 + (ln & 0x7F if ln & 0x80 else 0)
        while i < len(tcap):
            t, ln = tcap[i], tcap[i + 1]
            if ln & 0x80:
                return None
            if t == tag:
                return i + 2, ln
            i += 2 + ln
    except IndexError:
        return None
    return None


def rewrite_otid(begin: bytes, otid: int) -> tuple[bytes, int]:
    """The Begin with a new OTID of the recorded length (``otid`` taken modulo its range); returns
    the bytes and the OTID as an integer."""
    span = _tid_span(begin, 0x48)
    if span is None:
        raise ValueError("no originating transaction id")
    s, n = span
    value = otid % (1 << (8 * n))
    return begin[:s] + value.to_bytes(n, "big") + begin[s + n :], value


def _m3ua_tcap(data: bytes) -> tuple[bytes, sccp.Unitdata] | None:
    """The TCAP octets of an M3UA DATA carrying SCCP UDT/XUDT/UDTS/XUDTS, else None."""
    if len(data) < 8 or data[2] != 1 or data[3] != 1:
        return None
    try:
        msg = m3ua.decode_message(data)
        raw = msg.get(m3ua.Tag.PROTOCOL_DATA)
        if raw is None:
            return None
        pd = m3ua.ProtocolData.decode(raw)
        if pd.si != 3:
            return None
        ud = sccp.decode_message(pd.data)
    except (SigtranError, ValueError):
        return None
    return ud.data, ud


# --- pairing -------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _MapExchange(Exchange):
    """A checkIMEI exchange, with the invoke id its reply must carry."""

    invoke_id: int | None = None


class ExchangeFinder:
    """Feed every captured message in order; :meth:`exchanges` lists the requests found, in capture
    order. Requests still unanswered are kept (bounded: the oldest beyond ``max_pending`` are
    reported unanswered)."""

    def __init__(self, max_pending: int = 1_000_000) -> None:
        self._all: list[Exchange] = []
        """Built once, as the requests come (no second object per exchange at the end)."""
        self._diameter: OrderedDict[tuple[int, int, int], Exchange] = OrderedDict()
        self._map: OrderedDict[bytes, _MapExchange] = OrderedDict()
        self.max_pending = max_pending
        self.other_diameter = 0
        self.not_replayed: dict[str, int] = {}
        """Diameter requests that are not S13 ECRs, per :func:`request_kind`."""
        self.other_m3ua = 0
        self.undecodable = 0

    def add(self, msg: CapturedMessage) -> None:
        if msg.protocol is Protocol.DIAMETER:
            self._add_diameter(msg)
        else:
            self._add_m3ua(msg)

    def _add_diameter(self, msg: CapturedMessage) -> None:
        data = msg.data
        w0, w1, app, hbh, e2e = _HDR.unpack_from(data, 0)
        if w1 & 0xFFFFFF != ECR_COMMAND:
            self.other_diameter += 1
            if w1 & 0x80000000:
                kind = request_kind(app, w1 & 0xFFFFFF)
                self.not_replayed[kind] = self.not_replayed.get(kind, 0) + 1
            return
        key = (msg.connection, hbh, e2e)
        if w1 >> 24 & 0x80:
            if key in self._diameter:  # a retransmission (T bit) of a request still pending
                return
            imei, sv, imsi = _ecr_fields(data, w0 & 0xFFFFFF)
            p = Exchange(
                interface="s13",
                request=msg,
                answer=None,
                payload=data,
                imei=imei,
                software_version=sv,
                imsi=imsi,
                ident=f"hbh=0x{hbh:08x} e2e=0x{e2e:08x}",
            )
            self._all.append(p)
            self._diameter[key] = p
            if len(self._diameter) > self.max_pending:
                self._diameter.popitem(last=False)
            return
        found = self._diameter.pop(key, None)
        if found is not None:
            p = found
            p.answer = msg
            p.expected = s13_verdict(data)

    def _add_m3ua(self, msg: CapturedMessage) -> None:
        got = _m3ua_tcap(msg.data)
        if got is None:
            self.other_m3ua += 1
            return
        tcap, ud = got
        if ud.return_cause is not None:  # UDTS: a Begin came back
            span = _tid_span(tcap, 0x48)
            if span is not None:
                p: _MapExchange | None = self._map.pop(tcap[span[0] : span[0] + span[1]], None)
                if p is not None:
                    p.answer = msg
                    p.expected = map_verdict(None, ud.return_cause)
            return
        try:
            t = decode_tcap(tcap)
        except SigtranError:
            self.undecodable += 1
            return
        if t.type is MessageType.BEGIN and t.otid is not None:
            inv = next(
                (c for c in t.components if isinstance(c, Invoke) and c.opcode == CHECK_IMEI_OPCODE), None
            )
            if inv is None:
                self.other_m3ua += 1
                return
            imei = imsi = vendor = None
            try:
                arg = decode_check_imei_arg(inv.parameter or b"")
                imei, imsi, vendor = arg.imei, arg.imsi, arg.vendor
            except MapParameterError:
                pass
            version = 1
            if isinstance(t.dialogue, Aarq) and len(t.dialogue.acn) == 8:
                version = t.dialogue.acn[7]
            sv = None
            if imei is not None and len(imei) == 16:  # an IMEISV in the IMEI field
                imei, sv = imei[:14], imei[14:]
            elif imei is not None and len(imei) == 15:  # check digit or spare digit
                imei = imei[:14]
            mp = _MapExchange(
                interface="map",
                request=msg,
                answer=None,
                payload=tcap,
                imei=imei,
                software_version=sv,
                imsi=imsi,
                map_version=version,
                vendor=vendor,
                ident=f"otid=0x{t.otid.hex()} invoke={inv.invoke_id}",
                invoke_id=inv.invoke_id,
            )
            self._all.append(mp)
            self._map[t.otid] = mp
            if len(self._map) > self.max_pending:
                self._map.popitem(last=False)
            return
        if t.dtid is None or t.dtid not in self._map:
            self.other_m3ua += 1
            return
        p = self._map.pop(t.dtid)
        outcome = decode_check_imei_reply(tcap)
        if outcome.invoke_id is not None and p.invoke_id is not None and outcome.invoke_id != p.invoke_id:
            self._map[t.dtid] = p  # a reply to another invoke of that dialogue
            return
        p.answer = msg
        p.expected = map_verdict(outcome)

    def exchanges(self) -> list[Exchange]:
        """The requests found so far, in capture order (the finder's own objects: read-only)."""
        return list(self._all)


def find_exchanges(messages: Iterable[CapturedMessage]) -> list[Exchange]:
    f = ExchangeFinder()
    for m in messages:
        f.add(m)
    return f.exchanges()
