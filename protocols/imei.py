"""IMEI / IMEISV / TAC handling shared by every interface (3GPP TS 23.003 §6).

An IMEI is 14 digits (TAC 8 + SNR 6) plus a Luhn check digit (CD) that is *computed*, never sent on
the air interface; an IMEISV is the 14 digits plus a 2-digit software version (SVN). Networks carry:

* MAP (TS 29.002): ``IMEI ::= TBCD-STRING (SIZE (8))`` — 15 digits (14 + spare digit 0) and a filler,
  or 16 digits (IMEISV).
* S13 (TS 29.272): IMEI AVP with 14 or 15 digits (UTF8String), Software-Version AVP with 2 digits.

Parsing accepts 14, 15 and 16 digits and keeps what was given so that the policy can judge validity
(a 15-digit IMEI whose last digit is not the Luhn check digit is malformed).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Imei",
    "ImeiError",
    "luhn_check_digit",
    "parse_imei",
    "tbcd_decode",
    "tbcd_encode",
]


class ImeiError(ValueError):
    """The digits are not an IMEI, IMEI+CD or IMEISV."""


def luhn_check_digit(digits14: str) -> int:
    """Luhn check digit over the 14 IMEI digits (TS 23.003 Annex B)."""
    total = 0
    for i, ch in enumerate(digits14):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class Imei:
    """A parsed equipment identity: always 14 IMEI digits, optionally a CD or an SVN."""

    imei: str
    """The 14 digits TAC+SNR, the key of every list."""
    check_digit: int | None = None
    """The check digit as *received* (15-digit form), not computed."""
    software_version: str | None = None
    """The 2-digit SVN (16-digit IMEISV form or a separate S13 Software-Version AVP)."""

    @property
    def tac(self) -> str:
        return self.imei[:8]

    @property
    def imeisv(self) -> str | None:
        return None if self.software_version is None else self.imei + self.software_version

    @property
    def luhn_ok(self) -> bool:
        """True when no check digit was given or the given one is right."""
        return self.check_digit is None or self.check_digit == luhn_check_digit(self.imei)

    def with_check_digit(self) -> str:
        """The 15-digit IMEI with the computed check digit (the form people write)."""
        return self.imei + str(luhn_check_digit(self.imei))


def parse_imei(digits: str, software_version: str | None = None) -> Imei:
    """Parse 14 (IMEI), 15 (IMEI+CD) or 16 (IMEISV) decimal digits.

    ``software_version`` comes from a separate field (S13 Software-Version AVP); a 16-digit IMEISV
    carries its own and the separate one is then ignored.
    """
    n = len(digits)
    if not digits.isascii() or not digits.isdigit():
        raise ImeiError(f"IMEI must be decimal digits, got {digits!r}")
    if software_version is not None and (
        len(software_version) != 2 or not software_version.isascii() or not software_version.isdigit()
    ):
        raise ImeiError(f"software version must be 2 digits, got {software_version!r}")
    if n == 14:
        return Imei(digits, None, software_version)
    if n == 15:
        return Imei(digits[:14], ord(digits[14]) - 48, software_version)
    if n == 16:
        return Imei(digits[:14], None, digits[14:])
    raise ImeiError(f"IMEI must have 14 to 16 digits, got {n}")


_TBCD_DIGITS = "0123456789*#abc"


def tbcd_encode(digits: str, filler: int = 0xF) -> bytes:
    """TBCD-STRING (TS 29.002 §17.7.8): two digits per octet, low nibble first, odd count padded."""
    out = bytearray()
    for i in range(0, len(digits), 2):
        lo = _TBCD_DIGITS.index(digits[i])
        hi = _TBCD_DIGITS.index(digits[i + 1]) if i + 1 < len(digits) else filler
        out.append(lo | (hi << 4))
    return bytes(out)


def tbcd_decode(data: bytes) -> str:
    """Decode TBCD, stopping at the first filler nibble (0xF)."""
    out: list[str] = []
    for b in data:
        lo, hi = b & 0x0F, b >> 4
        if lo == 0xF:
            break
        out.append(_TBCD_DIGITS[lo])
        if hi == 0xF:
            break
        out.append(_TBCD_DIGITS[hi])
    return "".join(out)
