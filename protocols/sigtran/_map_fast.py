"""The EIR stack's per-association fast path: a checkIMEI Begin in M3UA DATA of a shape seen before.

A private module of :mod:`protocols.sigtran` (the Diameter side keeps its ECR memo in
``protocols/diameter/_s13_fast.py`` the same way). An MSC sends the same DATA(UDT(Begin)) again and
again but for four fields: the SLS, the OTID, the invoke id and the IMEI. When the general path
(:meth:`.stack.EirSigtranStack` → M3UA → SCCP → ``match_check_imei_begin`` →
``decode_check_imei_arg``) has read one such message, :func:`learn` keeps its bytes with those
four fields cut out (a :class:`BeginShape`) and what the general path read from the rest. A later
message of the same length whose bytes equal the shape's outside the four fields
(:meth:`BeginMemo.match`: five ``startswith`` at fixed offsets) is read by four slices.

Why this gives what the general path gives: every layer's decoding depends on the association's
state and settings (checked by the stack before using the memo: ASP-ACTIVE, not on stream 0) and on
the message's bytes. M3UA and SCCP read nothing from the four fields but the SLS value; TCAP reads
the OTID (any 1-4 octets, length fixed by the shape) and the invoke id (any octet) as values only;
MAP reads the IMEI's 8 octets (length fixed) as TBCD digits, which :meth:`BeginMemo.match` checks
as ``_tbcd_digits`` does (a message whose IMEI is not decimal goes down the general path, which
rejects it). The dialogue bookkeeping is shared code (:meth:`.TcapEirCore.receive_canonical_begin`);
a Begin it declines (OTID pending, no dialogue free, version not served) takes the general path.
``tests/unit/sigtran/test_map_fast.py`` checks it the way ``_tcap_fast`` and ``_s13_fast`` are
checked: a stack with the memo and one without, fed the same mutated messages in the same random
chunks, give equal events, bytes, counters and dialogues.

The vendor forms that carry an IMSI (Huawei v2/v3, Ericsson EnhancedCheckIMEI-Arg; see
:mod:`.map_checkimei`) are how a real MSC sends the IMSI with checkIMEI — the standard
CheckIMEI-Arg of TS 29.002 (v3) has no IMSI, only an extensionContainer — so a population load
(an IMSI per request) is made of them. A shape of such a form has a fifth variable field, the
IMSI element's digits; :func:`_imsi_field` finds it and checks with the general decoder itself that
other digits there change the argument's IMSI and nothing else. The invoke is opened by
:meth:`.TcapEirCore.receive_variant_begin` (the variant counted and reported as the general path
does); an IMSI digit that is not decimal (a deviation for the general path) leaves the fast path.

The answer side: the DATA(UDT(End)) to a Begin of a shape differs between answers only in the SLS
and the TCAP End; :meth:`BeginShape.answer_template` builds it once per End length and routing
context *with the general encoders* (``SccpEndpoint.answer``, ``encode_data``), then splits it at
those two fields, so the patched answer is the general answer by construction.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Any

from ..imei import tbcd_decode
from ._ber import BerError, read_tlv
from .map_checkimei import CheckImeiArg, MapParameterError, decode_check_imei_arg

__all__ = ["BeginMemo", "BeginShape", "learn"]

_TLV = struct.Struct("!HH")
_PROTOCOL_DATA = 0x0210
_MAX_SHAPES = 16
"""Shapes kept per association (one per MSC GT, MAP version and OTID length behind an STP); the
memo is simply emptied when a 17th is learnt."""


class BeginShape:
    """One learnt DATA(UDT/XUDT(Begin(checkIMEI))) with its variable fields cut out, and the values
    the general path read from the rest."""

    __slots__ = (
        "ac_version",
        "answers",
        "c0",
        "c1",
        "c2",
        "c3",
        "c4",
        "c5",
        "iid_at",
        "imei_at",
        "imsi_at",
        "imsi_len",
        "length",
        "origin",
        "otid_at",
        "otid_end",
        "p1",
        "p2",
        "p3",
        "p4",
        "p5",
        "peer",
        "request",
        "requested_bmuef",
        "requested_equipment_status",
        "route_fields",
        "routes",
        "sls_at",
        "variant",
        "variant_detail",
    )

    def __init__(
        self,
        raw: bytes,
        sls_at: int,
        otid_at: int,
        otid_end: int,
        iid_at: int,
        imei_at: int,
        imsi_at: int = -1,
        imsi_len: int = 0,
    ) -> None:
        self.length = len(raw)
        self.sls_at = sls_at
        self.otid_at = otid_at
        self.otid_end = otid_end
        self.iid_at = iid_at
        self.imei_at = imei_at
        if imsi_at < 0:  # the standard form: nothing variable after the IMEI
            imsi_at = self.length
        self.imsi_at = imsi_at
        self.imsi_len = imsi_len
        # The constant runs between the variable fields, and where each starts.
        self.c0 = raw[:sls_at]
        self.p1, self.c1 = sls_at + 1, raw[sls_at + 1 : otid_at]
        self.p2, self.c2 = otid_end, raw[otid_end:iid_at]
        self.p3, self.c3 = iid_at + 1, raw[iid_at + 1 : imei_at]
        self.p4, self.c4 = imei_at + 8, raw[imei_at + 8 : imsi_at]
        self.p5, self.c5 = imsi_at + imsi_len, raw[imsi_at + imsi_len :]
        self.variant: CheckImeiArg | None = None
        """A vendor form's argument as the general path read it (IMSI, MSISDN, vendor,
        deviations); a message of the shape differs only in the IMEI and the IMSI digits."""
        self.variant_detail = ""
        """The ``MapVendorVariantAccepted`` detail the general path reports for the variant."""
        self.ac_version: int | None = None
        self.requested_equipment_status = True
        self.requested_bmuef = False
        self.origin = ""
        self.peer: Hashable | None = None
        self.request: Any = None
        """The SCCP request (``sccp.Unitdata`` without its user data), shared by the routes."""
        self.route_fields: tuple[int, int, int, int | None] = (0, 0, 0, None)
        """OPC, DPC, NI, routing context as received."""
        self.routes: list[Any] = [None] * 256
        """The stack's ``Route`` per SLS value, made on first use."""
        self.answers: dict[tuple[int, int | None], tuple[bytes, bytes, bytes]] = {}
        """(End length, routing context sent) → the answer DATA around the SLS and the End."""

    def answer_template(
        self, tcap_len: int, rc: int | None, encode: Callable[[int, bytes], bytes]
    ) -> tuple[bytes, bytes, bytes]:
        """The answer DATA for an End of ``tcap_len`` octets, as (before the SLS, between the SLS and
        the End, after the End). ``encode(sls, tcap)`` is the general encoder; it is called twice,
        with every octet of the two fields different, and the output split where the two differ."""
        key = (tcap_len, rc)
        got = self.answers.get(key)
        if got is None:
            a = encode(0, b"\x00" * tcap_len)
            b = encode(255, b"\xff" * tcap_len)
            diff = [i for i in range(len(a)) if a[i] != b[i]]
            if (
                len(a) != len(b)
                or len(diff) != 1 + tcap_len
                or diff[1:] != list(range(diff[1], diff[1] + tcap_len))
            ):
                raise RuntimeError("the answer encoding depends on more than the SLS and the End")
            sls, start = diff[0], diff[1]
            got = (a[:sls], a[sls + 1 : start], a[start + tcap_len :])
            if len(self.answers) >= 16:
                self.answers.clear()
            self.answers[key] = got
        return got


class BeginMemo:
    """The shapes learnt on one association, by message length."""

    __slots__ = ("by_length", "count")

    def __init__(self) -> None:
        self.by_length: dict[int, list[BeginShape]] = {}
        self.count = 0

    def add(self, shape: BeginShape) -> None:
        if self.count >= _MAX_SHAPES:
            self.by_length.clear()
            self.count = 0
        self.by_length.setdefault(shape.length, []).append(shape)
        self.count += 1

    def match(self, data: bytes, off: int, length: int) -> tuple[BeginShape, str, str | None] | None:
        """The shape of the message at ``data[off:off+length]``, its IMEI digits and (vendor forms)
        its IMSI digits, or None."""
        shapes = self.by_length.get(length)
        if shapes is None:
            return None
        for s in shapes:
            if (
                data.startswith(s.c0, off)
                and data.startswith(s.c1, off + s.p1)
                and data.startswith(s.c2, off + s.p2)
                and data.startswith(s.c3, off + s.p3)
                and data.startswith(s.c4, off + s.p4)
                and data.startswith(s.c5, off + s.p5)
            ):
                at = off + s.imei_at
                imei = tbcd_decode(data[at : at + 8])
                if not imei.isdigit():  # as map_checkimei._tbcd_digits: the general path rejects it
                    return None
                if not s.imsi_len:
                    return s, imei, None
                at = off + s.imsi_at
                imsi = tbcd_decode(data[at : at + s.imsi_len])
                if not imsi.isdigit():  # as map_checkimei._safe_digits: a deviation, not this shape
                    return None
                return s, imei, imsi
        return None


def learn(
    raw: bytes, tcap_data: bytes, fast: tuple[bytes, int | None, int, bytes], arg: CheckImeiArg
) -> BeginShape | None:
    """The shape of ``raw``, one M3UA DATA the general path delivered whose SCCP user data
    ``tcap_data`` ``match_check_imei_begin`` read as ``fast`` and whose argument
    ``decode_check_imei_arg`` read as ``arg`` — or None when the IMEI is not 8 octets at a fixed
    place (a v1/v2 bare IMEI, a v3 SEQUENCE starting with it), or the argument deviates from
    TS 29.002 other than as a known vendor form carrying at most one IMSI (:func:`_imsi_field`)."""
    if arg.deviations and arg.vendor is None:
        return None
    _otid, ac_version, _iid, param = fast
    # M3UA (RFC 4666 §3.3.1): the Protocol Data parameter; the SLS is its 12th octet.
    off, end = 8, len(raw)
    pd_at = -1
    while off + 4 <= end:
        tag, plen = _TLV.unpack_from(raw, off)
        if tag == _PROTOCOL_DATA:
            pd_at = off + 4
            break
        if plen < 4:
            return None
        off += plen + (-plen % 4)
    if pd_at < 0:
        return None
    sls_at, s = pd_at + 11, pd_at + 12
    # SCCP (Q.713 §4.10 / §4.18): the user data through its pointer.
    if raw[s] == 0x09:
        ptr_at = s + 4
    elif raw[s] == 0x11:
        ptr_at = s + 5
    else:
        return None
    tcap_at = ptr_at + raw[ptr_at] + 1
    if raw[tcap_at : tcap_at + len(tcap_data)] != tcap_data:
        return None
    # TCAP (see _tcap_fast): 62 L 48 tl OTID [AARQ] 6c L a1 L 02 01 iid 02 01 2b <argument>.
    otid_at = tcap_at + 4
    otid_end = otid_at + raw[tcap_at + 3]
    param_at = tcap_at + len(tcap_data) - len(param)
    iid_at = param_at - 4
    if raw[iid_at - 2 : iid_at] != b"\x02\x01" or raw[iid_at + 1 : param_at] != b"\x02\x01\x2b":
        return None
    if param[:2] == b"\x04\x08" and (len(param) == 10 or arg.vendor is not None):
        imei_at = param_at + 2
    elif len(param) >= 12 and param[0] == 0x30 and param[2:4] == b"\x04\x08":
        imei_at = param_at + 4
    else:
        return None
    imsi_at, imsi_len = -1, 0
    if arg.vendor is not None:
        field = _imsi_field(param, arg)
        if field is None:
            return None
        if field[1]:
            imsi_at, imsi_len = param_at + field[0], field[1]
            if imsi_at < imei_at + 8:
                return None
    if not sls_at < otid_at < otid_end <= iid_at < imei_at:
        return None
    shape = BeginShape(raw, sls_at, otid_at, otid_end, iid_at, imei_at, imsi_at, imsi_len)
    shape.ac_version = ac_version
    shape.requested_equipment_status, shape.requested_bmuef = (
        arg.requested_equipment_status,
        arg.requested_bmuef,
    )
    if arg.vendor is not None:
        shape.variant = arg
        shape.variant_detail = "; ".join(arg.deviations)
    return shape


_SAMPLE_DIGITS = 0x21
"""Octet of TBCD digits "12": what :func:`_imsi_field` writes over an IMSI to test the field."""


def _imsi_field(param: bytes, arg: CheckImeiArg) -> tuple[int, int] | None:
    """Where a vendor form's IMSI digits lie in ``param`` — (offset, length), (0, 0) when there is
    no IMSI — such that every other octet is read the same whatever those digits are; or None.

    The one IMSI element of the form (Huawei v2 ``00``/``01`` after the IMEI, Huawei v3 ``[0]``,
    Ericsson ``[PRIVATE 1]``) is found by walking the argument's elements; then the claim is
    checked with the general decoder itself: the argument with other decimal digits in that
    field must decode to ``arg`` with only the IMSI changed. A form with a second IMSI element
    (the decoder keeps the last), or an IMSI the decoder did not take, is not learnt."""
    end = len(param)
    try:
        tag, vs, ve, pos = read_tlv(param, 0, end)
        spans: list[tuple[int, int]]
        if tag == 0x04:
            spans, tags, stop = [], (0x00, 0x01), end
            p = pos
        else:
            spans, tags, stop = [], (0x80, 0xC1), ve
            p = vs
        while p < stop:
            try:
                t, s, e, p = read_tlv(param, p, stop)
            except BerError:
                if tag == 0x04:
                    break  # trailing octets: the decoder stops there too
                return None
            if t in tags and e > s:
                spans.append((s, e - s))
    except BerError:
        return None
    if arg.imsi is None:
        return (0, 0) if not spans else None
    if len(spans) != 1:
        return None
    at, n = spans[0]
    probe = param[:at] + bytes((_SAMPLE_DIGITS,)) * n + param[at + n :]
    try:
        got = decode_check_imei_arg(probe)
    except MapParameterError:
        return None
    if got != replace(arg, imsi="12" * n):
        return None
    return at, n
