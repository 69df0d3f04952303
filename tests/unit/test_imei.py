"""IMEI digits: Luhn, the spare-digit rule, TBCD (TS 23.003 §6, TS 29.002 §17.7.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.imei import (
    BadIdentity,
    Identity,
    IdentityForm,
    PeiKind,
    check_digit_ok,
    from_label,
    luhn_check_digit,
    parse_identity,
    parse_pei,
    tbcd_decode,
    tbcd_encode,
)


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


# --- the one normaliser ------------------------------------------------------------------------------

_IMEI14 = "35394206000002"
_CD = str(luhn_check_digit(_IMEI14))


@pytest.mark.parametrize(
    ("digits", "sv", "expected"),
    [
        (_IMEI14, None, Identity(_IMEI14, None, IdentityForm.IMEI14)),
        (_IMEI14 + _CD, None, Identity(_IMEI14, None, IdentityForm.IMEI_CD)),
        (_IMEI14 + "0", None, Identity(_IMEI14, None, IdentityForm.IMEI_SPARE)),  # MAP's spare digit
        (_IMEI14 + "07", None, Identity(_IMEI14, _IMEI14 + "07", IdentityForm.IMEISV)),
        (_IMEI14, "07", Identity(_IMEI14, _IMEI14 + "07", IdentityForm.IMEISV)),  # S13 Software-Version
        (_IMEI14 + _CD, "07", Identity(_IMEI14, _IMEI14 + "07", IdentityForm.IMEISV)),
    ],
)
def test_parse_identity_forms(digits: str, sv: str | None, expected: Identity) -> None:
    assert parse_identity(digits, sv) == expected


def test_a_zero_15th_digit_is_valid_whether_spare_or_check_digit() -> None:
    imei = next(
        f"{n:014d}" for n in range(35394206000000, 35394206000100) if luhn_check_digit(f"{n:014d}") == 0
    )
    assert parse_identity(imei + "0") == Identity(imei, None, IdentityForm.IMEI_SPARE)
    assert parse_identity(_IMEI14 + "0") == Identity(_IMEI14, None, IdentityForm.IMEI_SPARE)


@pytest.mark.parametrize(
    ("digits", "sv", "why"),
    [
        ("1234", None, "not an IMEI: 4 characters"),
        ("3539420600000a", None, "not an IMEI"),
        ("٣٥٣٩٤٢٠٦٠٠٠٠٠٢", None, "not an IMEI"),  # non-ASCII digits
        (_IMEI14 + str((int(_CD) + 1) % 10 or 1), None, "bad check digit"),
        (_IMEI14, "7", "bad software version '7'"),
        (_IMEI14, "ab", "bad software version"),
    ],
)
def test_parse_identity_refuses(digits: str, sv: str | None, why: str) -> None:
    got = parse_identity(digits, sv)
    assert isinstance(got, BadIdentity) and why in got.detail


def test_parse_identity_without_luhn_takes_any_15th_digit() -> None:
    bad = _IMEI14 + str((int(_CD) + 1) % 10 or 1)
    assert parse_identity(bad, check_luhn=False) == Identity(_IMEI14, None, IdentityForm.IMEI_BAD_CD)


@pytest.mark.parametrize(
    ("pei", "expected"),
    [
        ("imei-353942060000023", (PeiKind.IMEI, "353942060000023")),
        ("imeisv-3539420600000207", (PeiKind.IMEISV, "3539420600000207")),
        ("IMEI-353942060000023", (PeiKind.IMEI, "353942060000023")),
        ("mac-00-11-22-33-44-55", (PeiKind.MAC, "00-11-22-33-44-55")),
        ("eui-0011223344556677", (PeiKind.EUI64, "0011223344556677")),
        ("353942060000023", (PeiKind.BARE, "353942060000023")),
        ("foo-1", (PeiKind.OTHER, "foo-1")),
        ("", (PeiKind.OTHER, "")),
    ],
)
def test_parse_pei(pei: str, expected: tuple[PeiKind, str]) -> None:
    assert parse_pei(pei) == expected


@pytest.mark.parametrize("label", ["35-394206-000002-3", "35 394206 000002 3", " 353942060000023 "])
def test_from_label(label: str) -> None:
    assert from_label(label) == "353942060000023"
