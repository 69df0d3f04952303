"""Diameter message codec (RFC 6733 §3 header, §4 AVPs, §4.2-4.3 data formats).

Decoding is strict — every length, padding and reserved bit is checked — because it is also the
EIR's first line of defence against bad input: each fault raises :class:`RemoteProtocolError`
carrying the RFC 6733 §7.1 Result-Code and the Failed-AVP content (§7.5) the answer must carry.
It is also on the hot path, so it works with ``struct.unpack_from`` on one buffer and builds a flat
list of :class:`Avp` per message; typed values are decoded on access.

Wire layout (RFC 6733 §3)::

    version(1) | message length(3) | flags(1) R P E T r r r r | command code(3)
    Application-Id(4) | Hop-by-Hop Identifier(4) | End-to-End Identifier(4) | AVPs…

AVP (§4.1)::

    code(4) | flags(1) V M P r r r r r | length(3) | [Vendor-ID(4)] | data | padding to 4
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Final

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "AVP_FLAG_MANDATORY",
    "AVP_FLAG_PROTECTED",
    "AVP_FLAG_VENDOR",
    "FLAG_ERROR",
    "FLAG_PROXIABLE",
    "FLAG_REQUEST",
    "FLAG_RETRANSMIT",
    "HEADER_LENGTH",
    "AddressValue",
    "Avp",
    "AvpType",
    "Message",
    "decode_address",
    "decode_avps",
    "decode_header",
    "decode_message",
    "decode_time",
    "decode_value",
    "encode_address",
    "encode_avp",
    "encode_message",
    "encode_time",
    "encode_value",
    "scan_echo_avps",
]

HEADER_LENGTH: Final = 20
FLAG_REQUEST: Final = 0x80
FLAG_PROXIABLE: Final = 0x40
FLAG_ERROR: Final = 0x20
FLAG_RETRANSMIT: Final = 0x10
_HDR_RESERVED: Final = 0x0F

AVP_FLAG_VENDOR: Final = 0x80
AVP_FLAG_MANDATORY: Final = 0x40
AVP_FLAG_PROTECTED: Final = 0x20
_AVP_RESERVED: Final = 0x1F

# Result codes used by the codec itself (the full set is dictionary.ResultCode).
_INVALID_HDR_BITS: Final = 3008
_INVALID_AVP_BITS: Final = 3009
_INVALID_AVP_VALUE: Final = 5004
_UNSUPPORTED_VERSION: Final = 5011
_INVALID_AVP_LENGTH: Final = 5014
_INVALID_MESSAGE_LENGTH: Final = 5015

_HEADER: Final = struct.Struct(">IIIII")
_AVP_HDR: Final = struct.Struct(">II")
_AVP_HDR_V: Final = struct.Struct(">III")
_U32: Final = struct.Struct(">I")

NTP_UNIX_OFFSET: Final = 2208988800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch; Diameter Time is NTP (§4.3.1)."""


class AvpType(IntEnum):
    """Basic (§4.2) and derived (§4.3.1) AVP data formats."""

    OCTET_STRING = 1
    INTEGER32 = 2
    INTEGER64 = 3
    UNSIGNED32 = 4
    UNSIGNED64 = 5
    FLOAT32 = 6
    FLOAT64 = 7
    GROUPED = 8
    ADDRESS = 9
    TIME = 10
    UTF8_STRING = 11
    DIAMETER_IDENTITY = 12
    DIAMETER_URI = 13
    ENUMERATED = 14


_FIXED: Final[dict[AvpType, tuple[int, struct.Struct]]] = {
    AvpType.INTEGER32: (4, struct.Struct(">i")),
    AvpType.ENUMERATED: (4, struct.Struct(">i")),
    AvpType.UNSIGNED32: (4, struct.Struct(">I")),
    AvpType.TIME: (4, struct.Struct(">I")),
    AvpType.INTEGER64: (8, struct.Struct(">q")),
    AvpType.UNSIGNED64: (8, struct.Struct(">Q")),
    AvpType.FLOAT32: (4, struct.Struct(">f")),
    AvpType.FLOAT64: (8, struct.Struct(">d")),
}

MIN_PAYLOAD: Final[dict[AvpType, int]] = {t: n for t, (n, _) in _FIXED.items()} | {AvpType.ADDRESS: 6}
"""Minimum payload length per type, for the zero-filled Failed-AVP of §7.5."""

AddressValue = ipaddress.IPv4Address | ipaddress.IPv6Address | tuple[int, bytes]
"""Address (§4.3.1): IPv4/IPv6 for address families 1 and 2, else (family, raw bytes)."""


@dataclass(slots=True)
class Avp:
    """One AVP as on the wire; ``data`` is the payload without header or padding.

    Grouped AVPs keep their raw payload; :meth:`children` decodes it (strictly) on demand.
    """

    code: int
    flags: int
    vendor_id: int
    data: bytes

    @property
    def mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    def children(self) -> list[Avp]:
        """Decode a Grouped payload (§4.4). A malformed group is reported against this AVP."""
        try:
            return decode_avps(self.data, 0, len(self.data))
        except RemoteProtocolError as e:
            raise RemoteProtocolError(
                f"grouped AVP {self.code}: {e}", result_code=e.result_code, failed_avp=self.encode()
            ) from None

    def encode(self) -> bytes:
        return encode_avp(self.code, self.data, flags=self.flags, vendor_id=self.vendor_id)

    def value(self, avp_type: AvpType) -> object:
        """The payload decoded as ``avp_type`` (strict: wrong sizes give 5014, bad values 5004)."""
        return decode_value(self, avp_type)


@dataclass(slots=True)
class Message:
    """A Diameter message: header fields and the top-level AVPs in wire order."""

    command_code: int
    application_id: int
    flags: int = 0
    hop_by_hop: int = 0
    end_to_end: int = 0
    avps: list[Avp] = field(default_factory=list)
    version: int = 1

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    def find(self, code: int, vendor_id: int = 0) -> Avp | None:
        """The first top-level AVP with this code and vendor, or None."""
        for a in self.avps:
            if a.code == code and a.vendor_id == vendor_id:
                return a
        return None

    def find_all(self, code: int, vendor_id: int = 0) -> list[Avp]:
        return [a for a in self.avps if a.code == code and a.vendor_id == vendor_id]


# --- decoding ------------------------------------------------------------------------------------


def decode_header(
    buf: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[int, int, int, int, int, int]:
    """``(length, flags, command, app_id, hop_by_hop, end_to_end)`` of the header at ``offset``.

    Raises 5011 for a version other than 1 and 5015 for a length that cannot frame a message
    (< 20 or not a multiple of 4, §3): in both cases the stream framing is lost.
    """
    w0, w1, app, hbh, e2e = _HEADER.unpack_from(buf, offset)
    version = w0 >> 24
    length = w0 & 0xFFFFFF
    if version != 1:
        raise RemoteProtocolError(f"unsupported Diameter version {version}", result_code=_UNSUPPORTED_VERSION)
    if length < HEADER_LENGTH or length & 3:
        raise RemoteProtocolError(f"invalid message length {length}", result_code=_INVALID_MESSAGE_LENGTH)
    return length, w1 >> 24, w1 & 0xFFFFFF, app, hbh, e2e


def decode_avps(buf: bytes | bytearray | memoryview, start: int, end: int) -> list[Avp]:
    """Decode the AVPs in ``buf[start:end]``, checking each length and the reserved flag bits."""
    out: list[Avp] = []
    append = out.append
    pos = start
    unpack = _AVP_HDR.unpack_from
    while pos < end:
        if end - pos < 8:
            raise RemoteProtocolError(
                "truncated AVP header", result_code=_INVALID_AVP_LENGTH, failed_avp=None
            )
        code, word = unpack(buf, pos)
        flags = word >> 24
        length = word & 0xFFFFFF
        if flags & AVP_FLAG_VENDOR:
            if end - pos < 12:
                raise RemoteProtocolError("truncated AVP header", result_code=_INVALID_AVP_LENGTH)
            vendor = _U32.unpack_from(buf, pos + 8)[0]
            hdr = 12
        else:
            vendor = 0
            hdr = 8
        if length < hdr or pos + length > end:
            raise RemoteProtocolError(
                f"AVP {code} has invalid length {length}",
                result_code=_INVALID_AVP_LENGTH,
                failed_avp=encode_avp(code, b"", flags=flags & ~_AVP_RESERVED, vendor_id=vendor),
            )
        data = bytes(buf[pos + hdr : pos + length])
        if flags & _AVP_RESERVED:
            raise RemoteProtocolError(
                f"AVP {code} has reserved flag bits set ({flags:#04x})",
                result_code=_INVALID_AVP_BITS,
                failed_avp=encode_avp(code, data, flags=flags, vendor_id=vendor),
            )
        append(Avp(code, flags, vendor, data))
        pos += (length + 3) & ~3
    if pos != end:
        # The last AVP's padding runs past the enclosing length (§4.1: lengths exclude padding,
        # the enclosing message or group includes it).
        last = out[-1]
        raise RemoteProtocolError(
            f"AVP {last.code} padding exceeds the enclosing length",
            result_code=_INVALID_AVP_LENGTH,
            failed_avp=last.encode(),
        )
    return out


def scan_echo_avps(
    buf: bytes | bytearray | memoryview, start: int, end: int, found: tuple[bytes, bytes] = (b"", b"")
) -> tuple[bytes, bytes]:
    """The Session-Id (the first one) and the Proxy-Info AVPs (every one, in order) that an error
    answer repeats (RFC 6733 §6.2, §7.2), from AVPs that failed strict decoding: ``buf[start:end]``
    is walked by the AVP headers alone, as far as they frame AVPs, and ``found`` holds the ones
    already seen before ``start``. Each comes back encoded (zero padding) for the answer."""
    session, proxy = found
    pos = start
    while end - pos >= 8:
        code, word = _AVP_HDR.unpack_from(buf, pos)
        length = word & 0xFFFFFF
        if length < 8 or pos + length > end:
            break
        flags = word >> 24
        if (code == 263 or code == 284) and not flags & AVP_FLAG_VENDOR:
            avp = encode_avp(code, bytes(buf[pos + 8 : pos + length]), flags=flags)
            if code == 284:
                proxy += avp
            elif not session:
                session = avp
        pos += (length + 3) & ~3
    return session, proxy


def decode_message(buf: bytes | bytearray | memoryview, max_length: int = 1 << 24) -> Message:
    """Decode one complete message (exactly ``len(buf)`` bytes, or the header's length)."""
    if len(buf) < HEADER_LENGTH:
        raise RemoteProtocolError("truncated header", result_code=_INVALID_MESSAGE_LENGTH)
    length, flags, command, app, hbh, e2e = decode_header(buf)
    if length > len(buf) or length > max_length:
        raise RemoteProtocolError(
            f"message length {length} exceeds the data", result_code=_INVALID_MESSAGE_LENGTH
        )
    check_header_flags(flags)
    return Message(command, app, flags, hbh, e2e, decode_avps(buf, HEADER_LENGTH, length))


def check_header_flags(flags: int) -> None:
    """§3: reserved bits must be zero; the E bit is only valid in answers (3008)."""
    if flags & _HDR_RESERVED or (flags & FLAG_REQUEST and flags & FLAG_ERROR):
        raise RemoteProtocolError(f"invalid header flags {flags:#04x}", result_code=_INVALID_HDR_BITS)


def decode_time(data: bytes) -> datetime:
    """Time (§4.3.1): NTP seconds. Values with the top bit clear are after the 2036 wrap (RFC 4330)."""
    (secs,) = _U32.unpack(data)
    if secs < 0x80000000:
        secs += 1 << 32
    return datetime.fromtimestamp(secs - NTP_UNIX_OFFSET, UTC)


def encode_time(value: datetime) -> bytes:
    secs = int(value.timestamp()) + NTP_UNIX_OFFSET
    if not 0x80000000 <= secs < (1 << 32) + 0x80000000:
        raise LocalProtocolError(f"time {value.isoformat()} outside the representable range")
    return _U32.pack(secs & 0xFFFFFFFF)


def decode_address(data: bytes) -> AddressValue:
    """Address (§4.3.1): 2-byte IANA address family, then the address."""
    if len(data) < 2:
        raise ValueError("address shorter than its family")
    family = (data[0] << 8) | data[1]
    raw = data[2:]
    if family == 1:
        if len(raw) != 4:
            raise ValueError("IPv4 address is not 4 bytes")
        return ipaddress.IPv4Address(raw)
    if family == 2:
        if len(raw) != 16:
            raise ValueError("IPv6 address is not 16 bytes")
        return ipaddress.IPv6Address(raw)
    return (family, raw)


def encode_address(value: AddressValue | str) -> bytes:
    if isinstance(value, str):
        value = ipaddress.ip_address(value)
    if isinstance(value, ipaddress.IPv4Address):
        return b"\x00\x01" + value.packed
    if isinstance(value, ipaddress.IPv6Address):
        return b"\x00\x02" + value.packed
    family, raw = value
    return struct.pack(">H", family) + raw


def decode_value(avp: Avp, avp_type: AvpType) -> object:
    """Decode ``avp.data`` as ``avp_type``; faults become 5014 (size) or 5004 (value) (§7.1.5)."""
    data = avp.data
    fixed = _FIXED.get(avp_type)
    if fixed is not None:
        size, st = fixed
        if len(data) != size:
            raise RemoteProtocolError(
                f"AVP {avp.code}: {avp_type.name} must be {size} bytes, got {len(data)}",
                result_code=_INVALID_AVP_LENGTH,
                failed_avp=avp.encode(),
            )
        if avp_type is AvpType.TIME:
            return decode_time(data)
        return st.unpack(data)[0]
    try:
        if avp_type is AvpType.OCTET_STRING:
            return data
        if avp_type is AvpType.UTF8_STRING:
            return data.decode("utf-8")
        if avp_type is AvpType.DIAMETER_IDENTITY:
            text = data.decode("ascii")
            if not text or any(c in text for c in " \t\r\n"):
                raise ValueError("not an FQDN")
            return text
        if avp_type is AvpType.DIAMETER_URI:
            text = data.decode("ascii")
            if not (text.startswith("aaa://") or text.startswith("aaas://")):
                raise ValueError("DiameterURI must start with aaa:// or aaas://")
            return text
        if avp_type is AvpType.ADDRESS:
            return decode_address(data)
        if avp_type is AvpType.GROUPED:
            return avp.children()
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteProtocolError(
            f"AVP {avp.code}: invalid {avp_type.name} ({e})",
            result_code=_INVALID_AVP_VALUE,
            failed_avp=avp.encode(),
        ) from None
    raise LocalProtocolError(f"unknown AVP type {avp_type!r}")  # pragma: no cover


# --- encoding ------------------------------------------------------------------------------------


def encode_avp(code: int, data: bytes, *, flags: int = AVP_FLAG_MANDATORY, vendor_id: int = 0) -> bytes:
    """One AVP with header and padding. The V bit follows ``vendor_id`` (non-zero → V set)."""
    if vendor_id:
        flags |= AVP_FLAG_VENDOR
        length = 12 + len(data)
        head = _AVP_HDR_V.pack(code, (flags << 24) | length, vendor_id)
    else:
        flags &= ~AVP_FLAG_VENDOR
        length = 8 + len(data)
        head = _AVP_HDR.pack(code, (flags << 24) | length)
    if length > 0xFFFFFF:
        raise LocalProtocolError(f"AVP {code} too long ({length} bytes)")
    pad = -length & 3
    return head + data + b"\0" * pad if pad else head + data


def encode_value(avp_type: AvpType, value: object) -> bytes:
    """Encode a Python value as ``avp_type`` (the inverse of :func:`decode_value`)."""
    fixed = _FIXED.get(avp_type)
    try:
        if avp_type is AvpType.TIME:
            if not isinstance(value, datetime):
                raise TypeError("Time needs a datetime")
            return encode_time(value)
        if fixed is not None:
            return fixed[1].pack(value)
        if avp_type is AvpType.OCTET_STRING:
            if not isinstance(value, bytes | bytearray):
                raise TypeError("OctetString needs bytes")
            return bytes(value)
        if avp_type in (AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI):
            if isinstance(value, bytes):
                return value
            if not isinstance(value, str):
                raise TypeError(f"{avp_type.name} needs str")
            return value.encode("utf-8" if avp_type is AvpType.UTF8_STRING else "ascii")
        if avp_type is AvpType.ADDRESS:
            if not isinstance(value, str | tuple | ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise TypeError("Address needs an IP address")
            return encode_address(value)
        if avp_type is AvpType.GROUPED:
            if isinstance(value, bytes):
                return value
            if not isinstance(value, Iterable):
                raise TypeError("Grouped needs AVPs")
            return b"".join(a.encode() if isinstance(a, Avp) else bytes(a) for a in value)
    except (struct.error, TypeError, ValueError, UnicodeEncodeError) as e:
        raise LocalProtocolError(f"cannot encode {value!r} as {avp_type.name}: {e}") from None
    raise LocalProtocolError(f"unknown AVP type {avp_type!r}")  # pragma: no cover


def encode_message(msg: Message) -> bytes:
    """Header + AVPs. The length field is computed; flags are taken as given."""
    body = b"".join(a.encode() for a in msg.avps)
    return encode_raw(msg.command_code, msg.flags, msg.application_id, msg.hop_by_hop, msg.end_to_end, body)


def encode_raw(command: int, flags: int, app_id: int, hop_by_hop: int, end_to_end: int, body: bytes) -> bytes:
    """Header + an already encoded AVP block (the fast path for answers built from templates)."""
    length = HEADER_LENGTH + len(body)
    if length > 0xFFFFFF:
        raise LocalProtocolError(f"message too long ({length} bytes)")
    return _HEADER.pack((1 << 24) | length, (flags << 24) | command, app_id, hop_by_hop, end_to_end) + body


def iter_messages(buf: bytes) -> Iterator[Message]:
    """Decode a buffer holding whole messages back to back (captures, tests)."""
    pos = 0
    while pos < len(buf):
        length = decode_header(buf, pos)[0]
        yield decode_message(memoryview(buf)[pos : pos + length])
        pos += length
