"""The ECR fast path: :func:`decode_ecr_fast` and its per-connection :class:`EcrMemo`.

A private module of :mod:`protocols.diameter` (the TCAP side keeps its own fast path in
``protocols/sigtran/_tcap_fast.py`` the same way). ``DiameterPeer`` tries it first for every ECR on
an open connection; when it declines (returns None) the strict decoder,
:func:`protocols.diameter.s13.decode_ecr_raw`, decodes the message once and gives the precise error.
``tests/unit/diameter/test_ecr_fast.py`` checks that the two never disagree.
"""

from __future__ import annotations

import struct
from typing import Final

from .dictionary import VENDOR_3GPP
from .errors import RemoteProtocolError
from .events import EquipmentCheckRequested
from .s13 import _AVP, _U32, _check_vsai, _new_ecr

__all__ = ["EcrMemo", "decode_ecr_fast"]

_VSAI_OK: set[bytes] = set()
"""Vendor-Specific-Application-Id payloads :func:`_check_vsai` accepted: every ECR of an MME
carries the same one, so it is checked once, not per request."""
_AVP_V: Final = struct.Struct(">III")


class EcrMemo:
    """What :func:`decode_ecr_fast` remembers between ECRs of one connection: the bytes of the
    constant AVP run after the Session-Id and the values read from it (Origin-Host,
    Origin-Realm, Destination-Realm, Destination-Host — None when not in the run — and whether
    it holds Auth-Session-State)."""

    __slots__ = ("run", "values")

    def __init__(self) -> None:
        self.run = b""
        self.values: tuple[str | None, str | None, str | None, str | None, bool] = (
            None,
            None,
            None,
            None,
            False,
        )


def decode_ecr_fast(
    buf: bytes | bytearray,
    pos: int,
    length: int,
    flags: int,
    hop_by_hop: int,
    end_to_end: int,
    memo: EcrMemo | None = None,
) -> EquipmentCheckRequested | None:
    """The ECR at ``buf[pos:pos+length]`` when it has the usual shape, else None.

    The usual shape is what MMEs send (TS 29.272 §7.2.19): Session-Id, Vendor-Specific-Application-Id,
    Auth-Session-State, Origin-Host/-Realm, Destination-Realm, [Destination-Host],
    Terminal-Information {IMEI, [Software-Version]}, [User-Name], in any order, every AVP well
    formed. It is accepted only when :func:`decode_ecr_raw` would accept it too, and then gives an
    equal event; anything else — another AVP (Proxy-Info, Route-Record, DRMP, an unknown one), a
    3GPP2-MEID, a doubtful length, flag or value — returns None and the caller runs
    :func:`decode_ecr_raw`, which gives the precise error (so the answers on the wire do not change).

    ``memo`` (one per connection) remembers the run of AVPs that follows the Session-Id when it
    holds only the ones an MME repeats unchanged (Vendor-Specific-Application-Id,
    Auth-Session-State, Origin-Host/-Realm, Destination-Realm/-Host): when the next ECR carries
    the same bytes there, their values are taken from the memo instead of being checked again.
    Checking an AVP depends on nothing but its bytes, so this gives the same event.
    """
    end = pos + length
    p = pos + 20
    unpack = _AVP.unpack_from
    session = imsi = origin_host = origin_realm = dest_realm = dest_host = None
    session_raw = b""
    auth_state = False
    imei = sv = None
    first = p
    # the run of constant AVPs right after the Session-Id, being learnt (see EcrMemo)
    learn = learn_end = -1
    r_oh = r_or = r_dr = r_dh = None
    r_auth = False
    try:
        while p < end:
            if end - p < 8:
                return None
            code, word = unpack(buf, p)
            alen = word & 0xFFFFFF
            de = p + alen
            if word & 0x9F000000 or alen < 8 or de > end:
                # the V bit (only Terminal-Information has it here), a reserved bit, a bad length
                if (
                    code != 1401
                    or word & 0x1F000000
                    or not word & 0x80000000
                    or alen < 12
                    or de > end
                    or _U32.unpack_from(buf, p + 8)[0] != VENDOR_3GPP
                ):
                    return None
                # Terminal-Information: IMEI and optionally Software-Version, strictly
                imei = sv = None
                q = p + 12
                while q < de:
                    if de - q < 12:
                        return None
                    mcode, mword, mvendor = _AVP_V.unpack_from(buf, q)
                    mlen = mword & 0xFFFFFF
                    mend = q + mlen
                    if mword & 0x9F000000 != 0x80000000 or mvendor != VENDOR_3GPP or mlen < 12 or mend > de:
                        return None
                    if mcode == 1402:
                        imei = buf[q + 12 : mend].decode()
                        if not (14 <= len(imei) <= 16 and imei.isascii() and imei.isdigit()):
                            return None
                    elif mcode == 1403:
                        sv = buf[q + 12 : mend].decode()
                        if not (len(sv) == 2 and sv.isascii() and sv.isdigit()):
                            return None
                    else:
                        return None
                    q += (mlen + 3) & ~3
                if q != de or imei is None:
                    return None
            elif code == 263:
                session = buf[p + 8 : de].decode()
                nxt = p + ((alen + 3) & ~3)
                session_raw = bytes(buf[p:nxt])
                if p == first and memo is not None:
                    run = memo.run
                    if run and buf.startswith(run, nxt, end):
                        # the same bytes as the run checked before: the same values
                        oh, orl, drl, dh, auth = memo.values
                        if oh is not None:
                            origin_host = oh
                        if orl is not None:
                            origin_realm = orl
                        if drl is not None:
                            dest_realm = drl
                        if dh is not None:
                            dest_host = dh
                        if auth:
                            auth_state = True
                        p = nxt + len(run)
                        continue
                    learn = learn_end = nxt
            elif code == 1:
                imsi = buf[p + 8 : de].decode()
            elif code == 277:
                if alen != 12:
                    return None
                auth_state = True
                if p == learn_end:
                    learn_end = p + 12
                    r_auth = True
            elif code == 260:
                payload = bytes(buf[p + 8 : de])
                if payload not in _VSAI_OK:
                    try:
                        _check_vsai(buf, p + 8, de, word >> 24)
                    except RemoteProtocolError:
                        return None
                    if len(_VSAI_OK) < 64:
                        _VSAI_OK.add(payload)
                if p == learn_end:
                    learn_end = p + ((alen + 3) & ~3)
            else:
                # DiameterIdentity (RFC 6733 §4.3.1), as _text checks it
                if code == 264:
                    v = origin_host = buf[p + 8 : de].decode("ascii")
                elif code == 296:
                    v = origin_realm = buf[p + 8 : de].decode("ascii")
                elif code == 283:
                    v = dest_realm = buf[p + 8 : de].decode("ascii")
                elif code == 293:
                    v = dest_host = buf[p + 8 : de].decode("ascii")
                else:
                    return None
                if not v or " " in v or not v.isprintable():
                    return None
                if p == learn_end:
                    learn_end = p + ((alen + 3) & ~3)
                    if code == 264:
                        r_oh = v
                    elif code == 296:
                        r_or = v
                    elif code == 283:
                        r_dr = v
                    else:
                        r_dh = v
            p += (alen + 3) & ~3
    except UnicodeDecodeError:
        return None
    if (
        p != end
        or session is None
        or origin_host is None
        or origin_realm is None
        or dest_realm is None
        or not auth_state
        or imei is None
    ):
        return None
    if learn_end > learn and memo is not None:
        memo.run = bytes(buf[learn:learn_end])
        memo.values = (r_oh, r_or, r_dr, r_dh, r_auth)
    return _new_ecr(
        hop_by_hop,
        end_to_end,
        flags,
        session,
        origin_host,
        origin_realm,
        dest_realm,
        dest_host,
        imei,
        sv,
        None,
        imsi,
        session_raw,
        b"",
    )
