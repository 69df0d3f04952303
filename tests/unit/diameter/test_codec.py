"""Codec: every data type round-trips (and python-diameter agrees), golden bytes, strict errors."""

from __future__ import annotations

import ipaddress
import struct
from datetime import UTC, datetime

import pytest
from diameter.message.avp import Avp as PdAvp

from protocols.diameter import dictionary as d
from protocols.diameter.codec import (
    Avp,
    AvpType,
    Message,
    decode_avps,
    decode_message,
    decode_value,
    encode_avp,
    encode_message,
    encode_value,
)
from protocols.diameter.errors import LocalProtocolError, RemoteProtocolError
from protocols.diameter.s13 import EcaBuilder

from .helpers import ecr, ecr_message, pd

T = AvpType

ROUND_TRIPS = [
    (T.OCTET_STRING, b"\x00\xffabc"),
    (T.OCTET_STRING, b""),
    (T.INTEGER32, -(2**31)),
    (T.INTEGER32, 2**31 - 1),
    (T.INTEGER64, -(2**63)),
    (T.UNSIGNED32, 0xFFFFFFFF),
    (T.UNSIGNED64, 2**64 - 1),
    (T.FLOAT32, 1.5),
    (T.FLOAT64, -2.25e100),
    (T.ADDRESS, ipaddress.IPv4Address("192.0.2.1")),
    (T.ADDRESS, ipaddress.IPv6Address("2001:db8::1")),
    (T.ADDRESS, (8, b"\x01\x02\x03")),  # E.164 family: carried raw
    (T.TIME, datetime(2026, 11, 30, 4, 0, tzinfo=UTC)),
    (T.TIME, datetime(2040, 2, 7, 6, 28, 16, tzinfo=UTC)),  # after the 2036 NTP wrap
    (T.UTF8_STRING, "Grüße ✓"),
    (T.DIAMETER_IDENTITY, "eir.localdomain"),
    (T.DIAMETER_URI, "aaa://eir.localdomain:3868;transport=tcp"),
    (T.ENUMERATED, 2),
]


@pytest.mark.parametrize(("avp_type", "value"), ROUND_TRIPS, ids=lambda v: str(v)[:24])
def test_value_round_trip(avp_type: AvpType, value: object) -> None:
    wire = encode_avp(9999, encode_value(avp_type, value), flags=0)
    (avp,) = decode_avps(wire, 0, len(wire))
    assert len(wire) % 4 == 0
    assert avp.value(avp_type) == value


def test_grouped_round_trip_and_nesting() -> None:
    inner = [d.VENDOR_ID.make(10415), d.EXPERIMENTAL_RESULT_CODE.make(5422)]
    wire = d.EXPERIMENTAL_RESULT.encode(inner)
    (avp,) = decode_avps(wire, 0, len(wire))
    children = avp.value(T.GROUPED)
    assert children == inner


# Independent decoding of each type by python-diameter, through a real AVP of that type.
PD_CASES = [
    (d.AUTHORIZATION_LIFETIME, -5, -5),
    (d.ACCOUNTING_SUB_SESSION_ID, 2**63 + 1, 2**63 + 1),
    (d.RESULT_CODE, 5422, 5422),
    (d.AUTH_SESSION_STATE, 1, 1),
    (d.HOST_IP_ADDRESS, "2001:db8::7", (2, "2001:db8::7")),
    (d.HOST_IP_ADDRESS, "192.0.2.9", (1, "192.0.2.9")),
    (d.SESSION_ID, "mme;1;ä", "mme;1;ä"),
    (d.ORIGIN_HOST, "eir.localdomain", b"eir.localdomain"),
    (d.REDIRECT_HOST, "aaa://x.example:3868", "aaa://x.example:3868"),
    (d.PROXY_STATE, b"\x01\x02", b"\x01\x02"),
    (d.IMEI, "35123456789012", "35123456789012"),
    (d.EQUIPMENT_STATUS, 1, 1),
]


@pytest.mark.parametrize(("defn", "value", "expected"), PD_CASES, ids=lambda v: getattr(v, "name", None))
def test_python_diameter_decodes_our_avps(defn: d.AvpDef, value: object, expected: object) -> None:
    wire = defn.encode(value)
    a = PdAvp.from_bytes(wire)
    assert (a.code, a.vendor_id, a.is_mandatory) == (defn.code, defn.vendor_id, defn.mandatory)
    assert a.is_vendor == bool(defn.vendor_id)
    assert a.value == expected


def test_python_diameter_decodes_time() -> None:
    when = datetime(2026, 11, 30, 4, 5, 6, tzinfo=UTC)
    a = PdAvp.from_bytes(d.EVENT_TIMESTAMP.encode(when))
    assert a.value.astimezone(UTC) == when


def test_time_after_the_2036_wrap() -> None:
    """RFC 4330 §3: NTP seconds with the top bit clear are after 2036-02-07 06:28:16 UTC, i.e.
    2**32 - 2208988800 Unix seconds. (python-diameter 0.9 uses 2085974896 for that instant, one
    hour early, so it is not used as the reference here.)"""
    wrap = datetime.fromtimestamp(2**32 - 2208988800, UTC)
    assert wrap == datetime(2036, 2, 7, 6, 28, 16, tzinfo=UTC)
    assert encode_value(T.TIME, wrap) == b"\0\0\0\0"
    assert decode_value(Avp(55, 0x40, 0, b"\0\0\0\1"), T.TIME) == datetime(2036, 2, 7, 6, 28, 17, tzinfo=UTC)


def test_m_bit_rules_follow_rfc6733_table() -> None:
    for defn in (d.PRODUCT_NAME, d.FIRMWARE_REVISION, d.ERROR_MESSAGE, d.ERROR_REPORTING_HOST):
        assert defn.encode("x" if defn.avp_type is not T.UNSIGNED32 else 1)[4] & 0x40 == 0
    assert d.ORIGIN_HOST.encode("h")[4] == 0x40
    assert d.IMEI.encode("1" * 14)[4] == 0xC0  # V and M


GOLDEN_ECA = (
    "0100009c"
    "40000144"
    "01000024"
    "00000064"
    "00000064"  # v1, len 156, P, 324, S13, hbh, e2e
    "00000107"
    "40000013"
    "6d6d652e6c61623b313b3100"  # Session-Id "mme.lab;1;1" + pad
    "00000104"
    "40000020"  # Vendor-Specific-Application-Id
    "0000010a"
    "4000000c"
    "000028af"  # Vendor-Id 10415
    "00000102"
    "4000000c"
    "01000024"  # Auth-Application-Id 16777252
    "0000010c"
    "4000000c"
    "000007d1"  # Result-Code 2001
    "00000115"
    "4000000c"
    "00000001"  # Auth-Session-State NO_STATE_MAINTAINED
    "00000108"
    "40000017"
    "6569722e6c6f63616c646f6d61696e00"  # Origin-Host
    "00000128"
    "40000013"
    "6c6f63616c646f6d61696e00"  # Origin-Realm
    "000005a5"
    "c0000010"
    "000028af"
    "00000001"  # Equipment-Status BLACKLISTED (V, M, 10415)
)


def test_golden_eca_bytes() -> None:
    from protocols.diameter.s13 import decode_ecr_raw

    wire = ecr()
    req = decode_ecr_raw(wire, 0, len(wire), wire[4], 100, 100)
    out = EcaBuilder("eir.localdomain", "localdomain").answer(req, status=d.EquipmentStatus.BLACKLISTED)
    assert out.hex() == GOLDEN_ECA
    m = pd(out)
    assert type(m).__name__ == "MeIdentityCheckAnswer"
    assert (m.result_code, m.equipment_status, m.session_id) == (2001, 1, "mme.lab;1;1")
    assert m.vendor_specific_application_id.auth_application_id == 16777252


def test_ecr_encodes_in_abnf_order_and_python_diameter_reads_it() -> None:
    wire = ecr()
    msg = decode_message(wire)
    assert [a.code for a in msg.avps] == [263, 260, 277, 264, 296, 283, 1401, 1]
    assert encode_message(msg) == wire  # decode → encode is byte-identical
    m = pd(wire)
    assert type(m).__name__ == "MeIdentityCheckRequest"
    assert m.header.is_request and m.header.is_proxyable and m.header.application_id == 16777252
    assert m.terminal_information.imei == "35123456789012"
    assert m.terminal_information.software_version == "01"
    assert m.user_name == "001010123456789"
    assert m.origin_host == b"mme.lab" and m.destination_realm == b"localdomain"


# --- strictness ----------------------------------------------------------------------------------


def _msg(body: bytes, *, flags: int = 0xC0, version: int = 1, length: int | None = None) -> bytes:
    n = 20 + len(body) if length is None else length
    return struct.pack(">IIIII", (version << 24) | n, (flags << 24) | 324, 16777252, 1, 1) + body


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (_msg(b"\0\0\1\7\x40\0\0"), 5015),  # body not a multiple of 4
        (_msg(b"\0\0\1\7\x40\0\0\4"), 5014),  # AVP length 4 < 8
        (_msg(b"\0\0\1\7\x40\0\0\x10abcd"), 5014),  # AVP length 16 beyond the message
        (_msg(b"\0\0\1\7\x40\0\0"[:4] + b"\xc0\0\0\x0c"), 5014),  # V bit: 12-byte header, no room
        (_msg(b"\0\0\1\7\x41\0\0\x0cabcd"), 3009),  # reserved AVP flag bit
        (_msg(b"", flags=0xC1), 3008),  # reserved header bit
        (_msg(b"", flags=0xA0), 3008),  # E bit on a request
        (_msg(b"", version=2), 5011),
        (_msg(b"", length=19), 5015),
        (_msg(b"\0" * 4, length=23), 5015),
    ],
)
def test_strict_decoding(wire: bytes, code: int) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        decode_message(wire)
    assert e.value.result_code == code


def test_avp_length_error_reports_header_in_failed_avp() -> None:
    with pytest.raises(RemoteProtocolError) as e:
        decode_message(_msg(b"\0\0\1\7\x40\0\0\x10abcd"))
    assert e.value.failed_avp is not None
    (fa,) = decode_avps(e.value.failed_avp, 0, len(e.value.failed_avp))
    assert fa.code == 263 and fa.data == b""


@pytest.mark.parametrize(
    ("avp", "avp_type", "code"),
    [
        (Avp(268, 0x40, 0, b"\0\0\7"), T.UNSIGNED32, 5014),
        (Avp(287, 0x40, 0, b"\0" * 4), T.UNSIGNED64, 5014),
        (Avp(1, 0x40, 0, b"\xff\xfe"), T.UTF8_STRING, 5004),
        (Avp(264, 0x40, 0, b"has space"), T.DIAMETER_IDENTITY, 5004),
        (Avp(264, 0x40, 0, "ü".encode()), T.DIAMETER_IDENTITY, 5004),
        (Avp(292, 0x40, 0, b"http://x"), T.DIAMETER_URI, 5004),
        (Avp(257, 0x40, 0, b"\0\1\1\2\3"), T.ADDRESS, 5004),
        (Avp(257, 0x40, 0, b"\0\2" + b"\0" * 4), T.ADDRESS, 5004),
        (Avp(257, 0x40, 0, b"\0"), T.ADDRESS, 5004),
        (Avp(260, 0x40, 0, b"\0\0\1\2\x40\0\0\x10"), T.GROUPED, 5014),
    ],
)
def test_invalid_values(avp: Avp, avp_type: AvpType, code: int) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        decode_value(avp, avp_type)
    assert e.value.result_code == code
    assert e.value.failed_avp is not None
    assert decode_avps(e.value.failed_avp, 0, len(e.value.failed_avp))[0].code == avp.code


@pytest.mark.parametrize(
    ("avp_type", "value"),
    [
        (T.UNSIGNED32, -1),
        (T.INTEGER32, 2**31),
        (T.OCTET_STRING, "str"),
        (T.UTF8_STRING, 5),
        (T.TIME, 5),
        (T.TIME, datetime(1950, 1, 1, tzinfo=UTC)),
        (T.ADDRESS, 5),
        (T.GROUPED, 5),
    ],
)
def test_encoding_misuse_is_a_local_error(avp_type: AvpType, value: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_value(avp_type, value)


def test_message_helpers() -> None:
    m = ecr_message()
    assert m.is_request and not m.is_error
    assert m.find(263) is not None and m.find(1401) is None and m.find(1401, 10415) is not None
    assert len(m.find_all(264)) == 1
    assert isinstance(Message(1, 2).avps, list)
