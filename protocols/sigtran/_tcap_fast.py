"""Fast path for the one message shape that makes up nearly all EIR traffic.

A checkIMEI Begin from an MSC/SGSN is almost always: OTID (1 to 4 octets), optionally the
equipmentMngtContext AARQ in its canonical encoding, one Invoke with a one-octet invoke id and
localValue 43, all with short definite lengths. :func:`match_check_imei_begin` recognises exactly
that shape by comparing octets (the dialogue portion against the three canonical AARQ encodings)
and returns ``None`` for anything else, which then takes the general decoder (:func:`.tcap.decode_tcap`).
Both paths produce the same answer. ``tests/unit/sigtran/test_tcap_codec.py`` proves it on mutated
real Begins (bit flips, truncations, insertions, length changes, elements resized or dropped, the
vendor traces): either this matcher declines, or it reads exactly what the general decoder reads,
down to the core's replies and counters.

The reply builders write the End directly (no model objects). Their octets equal
:func:`.tcap.encode_tcap` and pycrate's encoding (same test module).
"""

from __future__ import annotations

from ._ber import tlv
from .tcap import Aarq, MessageType, TcapMessage, encode_tcap

__all__ = ["error_component", "match_check_imei_begin", "result_component"]

_EQUIPMENT_MNGT = (0, 4, 0, 0, 1, 0, 13)


def _aarq_portion(version: int) -> bytes:
    full = encode_tcap(
        TcapMessage(type=MessageType.BEGIN, otid=b"\x00", dialogue=Aarq(acn=(*_EQUIPMENT_MNGT, version)))
    )
    return full[5:]  # strip "62 L 48 01 00"


_AARQ_PORTIONS: dict[bytes, int] = {_aarq_portion(v): v for v in (1, 2, 3)}
_AARQ_LEN = len(next(iter(_AARQ_PORTIONS)))


def match_check_imei_begin(data: bytes) -> tuple[bytes, int | None, int, bytes] | None:
    """``(otid, ac_version, invoke_id, parameter)`` for a canonical checkIMEI Begin, else None.

    ``ac_version`` is None when there is no dialogue portion (a MAP v1 Begin, TS 29.002 §12.1).
    """
    try:
        n = len(data)
        if data[0] != 0x62 or data[1] != n - 2 or n - 2 >= 0x80 or data[2] != 0x48:
            return None
        tl = data[3]
        if not 1 <= tl <= 4:
            return None
        p = 4 + tl
        version: int | None = None
        if data[p] == 0x6B:
            version = _AARQ_PORTIONS.get(data[p : p + _AARQ_LEN])
            if version is None:
                return None
            p += _AARQ_LEN
        if data[p] != 0x6C or data[p + 1] != n - p - 2 or data[p + 2] != 0xA1 or data[p + 3] != n - p - 4:
            return None
        if data[p + 4] != 0x02 or data[p + 5] != 0x01 or data[p + 7 : p + 10] != b"\x02\x01\x2b":
            return None
        iid = data[p + 6]
        if p + 10 >= n:
            return None
        return data[4 : 4 + tl], version, iid - 256 if iid > 127 else iid, data[p + 10 :]
    except IndexError:
        return None


_RESULT_TAILS: dict[bytes, bytes] = {}
_OCTET = [bytes((n,)) for n in range(256)]


def result_component(invoke_id: int, parameter: bytes) -> bytes:
    """ReturnResultLast { invokeId, result { opcode local 43, parameter } } (Q.773 §3.3)."""
    tail = _RESULT_TAILS.get(parameter)
    if tail is None:
        tail = tlv(0x30, b"\x02\x01\x2b" + parameter)
        if len(_RESULT_TAILS) < 64:  # the few results an EIR gives: one per status and version
            _RESULT_TAILS[parameter] = tail
    n = 3 + len(tail)
    if n < 0x80:
        return b"\xa2" + _OCTET[n] + b"\x02\x01" + _OCTET[invoke_id & 0xFF] + tail
    return tlv(0xA2, b"\x02\x01" + _OCTET[invoke_id & 0xFF] + tail)


def error_component(invoke_id: int, error_code: int) -> bytes:
    """ReturnError { invokeId, errcode local } without parameter (error codes < 128)."""
    return bytes((0xA3, 0x06, 0x02, 0x01, invoke_id & 0xFF, 0x02, 0x01, error_code))
