"""IMEI digits: Luhn, the spare-digit rule, TBCD (TS 23.003 §6, TS 29.002 §17.7.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.imei import check_digit_ok, luhn_check_digit, tbcd_decode, tbcd_encode


def _luhn_reference(digits14: str) -> int:
    """The textbook digit loop, to check the fast implementation against."""
    total = 0
    for i, ch in enumerate(digits14):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


@pytest.mark.parametrize(
    ("imei14", "cd"),
    [
        ("49015420323751", 8),  # TS 23.003 Annex B example
        ("35209900176148", 1),
        ("00000000000000", 0),
    ],
)
def test_luhn(imei14: str, cd: int) -> None:
    assert luhn_check_digit(imei14) == cd


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_luhn_matches_the_textbook_loop(digits: str) -> None:
    assert luhn_check_digit(digits) == _luhn_reference(digits)


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("490154203237518", True),  # the right check digit
        ("490154203237510", True),  # the spare digit, as MAP sends it
        ("490154203237517", False),  # neither
        ("358091016853550", True),  # jSS7 "Real Trace" IMEI: spare digit 0, not a valid CD
    ],
)
def test_check_digit_or_spare_digit(digits: str, ok: bool) -> None:
    assert check_digit_ok(digits) is ok


def test_tbcd_known_vector_from_jss7_trace() -> None:
    # jSS7 "Real Trace" checkIMEI v2 argument: 04 08 53 08 19 10 86 35 55 f0 -> IMEI 358091016853550
    assert tbcd_decode(bytes.fromhex("53081910863555f0")) == "358091016853550"
    assert tbcd_encode("358091016853550") == bytes.fromhex("53081910863555f0")


def test_tbcd_non_decimal_digits_are_not_digits() -> None:
    assert not tbcd_decode(bytes([0x1A, 0x32])).isdigit()


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_tbcd_round_trip(digits: str) -> None:
    assert tbcd_decode(tbcd_encode(digits)) == digits
