"""IMEI parsing, Luhn and TBCD (TS 23.003 §6, TS 29.002 §17.7.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.imei import ImeiError, luhn_check_digit, parse_imei, tbcd_decode, tbcd_encode


@pytest.mark.parametrize(("imei14", "cd"), [
    ("49015420323751", 8),   # TS 23.003 Annex B example
    ("35209900176148", 1),
    ("00000000000000", 0),
])
def test_luhn(imei14: str, cd: int) -> None:
    assert luhn_check_digit(imei14) == cd


def test_parse_forms() -> None:
    a = parse_imei("49015420323751")
    assert (a.imei, a.check_digit, a.software_version, a.tac) == ("49015420323751", None, None, "49015420")
    b = parse_imei("490154203237518")
    assert b.check_digit == 8 and b.luhn_ok
    assert not parse_imei("490154203237517").luhn_ok
    c = parse_imei("4901542032375123")
    assert (c.imei, c.software_version, c.imeisv) == ("49015420323751", "23", "4901542032375123")
    d = parse_imei("49015420323751", "07")
    assert d.imeisv == "4901542032375107"


# The last one is fullwidth digits: str.isdigit() accepts them, the wire does not.
@pytest.mark.parametrize("bad", ["", "1234", "12345678901234567", "4901542032375a",
                                 "".join(chr(0xFF10 + int(c)) for c in "49015420323751")])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ImeiError):
        parse_imei(bad)


def test_parse_rejects_bad_software_version() -> None:
    with pytest.raises(ImeiError):
        parse_imei("49015420323751", "7")


def test_tbcd_known_vector_from_jss7_trace() -> None:
    # jSS7 "Real Trace" checkIMEI v2 argument: 04 08 53 08 19 10 86 35 55 f0 -> IMEI 358091016853550
    assert tbcd_decode(bytes.fromhex("5308191086355 5f0".replace(" ", ""))) == "358091016853550"
    assert tbcd_encode("358091016853550") == bytes.fromhex("53081910863555f0")


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_tbcd_round_trip(digits: str) -> None:
    assert tbcd_decode(tbcd_encode(digits)) == digits
