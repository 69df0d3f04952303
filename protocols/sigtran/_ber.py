"""A small, fast BER (X.690) reader and writer for the TCAP / MAP messages this project handles.

Why hand-written: pycrate (the reference codec, used by the tests) builds a Python object tree per
message and reaches only ≈3,400 TCAP+MAP round trips/s; the EIR must answer ≥ 5,000 checkIMEI/s
end to end. TCAP (ITU-T Q.773) and the checkIMEI parameters are a handful of tags, so a flat
tag-length-value walker is enough. It accepts both definite and indefinite lengths (X.690 §8.1.3) and
multi-octet tags (§8.1.2.4); it never raises anything but :class:`BerError` (a
:class:`~.errors.RemoteProtocolError` without wire hint: the TCAP or MAP layer above decides the answer).

Tags are returned as ints: the identifier octet itself for tag numbers 0..30 (so ``0x30`` is a
SEQUENCE, ``0xa1`` a constructed [1]) and ``(first_octet << 24) | number`` for high tag numbers, which
can never collide with a single octet.
"""

from __future__ import annotations

from .errors import RemoteProtocolError

__all__ = ["BerError", "encode_integer", "encode_length", "iter_tlvs", "read_tlv", "tlv"]

MAX_DEPTH = 32
"""Nesting bound for indefinite-length walks (a hostile message cannot recurse without limit)."""


class BerError(RemoteProtocolError):
    """The octets are not well-formed BER."""


def read_tlv(buf: bytes, pos: int, end: int, depth: int = 0) -> tuple[int, int, int, int]:
    """Read one TLV at ``buf[pos:end]``; return ``(tag, value_start, value_end, next_pos)``.

    For an indefinite length the children are walked to find the end-of-contents octets
    (X.690 §8.1.5); ``value_end`` is then the position of the ``00 00``.
    """
    if pos >= end:
        raise BerError("truncated: no tag")
    first = buf[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        number = 0
        for _ in range(4):
            if pos >= end:
                raise BerError("truncated tag")
            b = buf[pos]
            pos += 1
            number = (number << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            raise BerError("tag number too long")
        tag = (first << 24) | number
    else:
        tag = first
    if pos >= end:
        raise BerError("truncated: no length")
    length = buf[pos]
    pos += 1
    if length < 0x80:
        vend = pos + length
    elif length == 0x80:
        if not first & 0x20:
            raise BerError("indefinite length on a primitive encoding")
        if depth >= MAX_DEPTH:
            raise BerError("nesting too deep")
        p = pos
        while True:
            if p + 1 < end and buf[p] == 0 and buf[p + 1] == 0:
                return tag, pos, p, p + 2
            p = read_tlv(buf, p, end, depth + 1)[3]
    else:
        n = length & 0x7F
        if n > 4 or pos + n > end:
            raise BerError("bad long-form length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
        vend = pos + length
    if vend > end:
        raise BerError("length beyond the enclosing element")
    return tag, pos, vend, vend


def iter_tlvs(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int]]:
    """All TLVs of ``buf[pos:end]`` as ``(tag, value_start, value_end)``; raises on trailing junk."""
    out: list[tuple[int, int, int]] = []
    while pos < end:
        tag, vs, ve, pos = read_tlv(buf, pos, end)
        out.append((tag, vs, ve))
    return out


def encode_length(n: int) -> bytes:
    """Definite length, short form below 128, else the minimal long form (X.690 §8.1.3.5, DER)."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One TLV with a single-octet identifier ``tag``."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def encode_integer(value: int) -> bytes:
    """Contents octets of an INTEGER: minimal two's complement (X.690 §8.3)."""
    if -0x80 <= value < 0x80:
        return (value & 0xFF).to_bytes(1, "big")
    n = (value + (value < 0)).bit_length() // 8 + 1
    return value.to_bytes(n, "big", signed=True)
