"""IMEI digits shared by every interface and the list importer (3GPP TS 23.003 §6).

An IMEI is 14 digits (TAC 8 + SNR 6) plus a Luhn check digit (CD) that is *computed*, never sent on
the air interface; an IMEISV is the 14 digits plus a 2-digit software version (SVN). Networks carry:

* MAP (TS 29.002 §17.7.8): ``IMEI ::= TBCD-STRING (SIZE (8))`` — 15 digits (the 14 + a *spare* digit,
  sent as 0) and a filler, or 16 digits (IMEISV).
* S13 (TS 29.272 §7.3.4): the IMEI AVP with 14 or 15 digits, Software-Version AVP with 2 digits.

So a 15th digit is either the Luhn CD (as people write IMEIs, and as some MMEs send them) or the
spare digit 0 (as the network sends them: every real MAP trace in shared/traces ends in 0 without a
valid CD). :func:`check_digit_ok` is the one rule for both, used by the policy and the importer.

:func:`parse_identity` is the one normaliser every interface goes through (by way of the policy):
whatever form the wire carried — 14 digits, 15 with a CD or the spare digit, 16 (IMEISV), or 14/15
digits with a separate Software-Version — it yields the 14-digit IMEI the lists are keyed on and the
IMEISV when there is one, or says precisely what is wrong. Adapters pass the digits as received.
:func:`parse_pei` adds the TS 29.571 §5.3.2 PEI forms (``imei-…``, ``imeisv-…``) for N5g-eir, and
:func:`from_label` the way people write IMEIs on labels (``35-394206-000002-3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BadIdentity",
    "Identity",
    "IdentityForm",
    "PeiKind",
    "bad_check_digit_detail",
    "check_digit_ok",
    "from_label",
    "luhn_check_digit",
    "parse_identity",
    "parse_pei",
    "tbcd_decode",
    "tbcd_encode",
]

_DOUBLED = str.maketrans("0123456789", "0246813579")  # digit d -> digit sum of 2d


def luhn_check_digit(digits: str) -> int:
    """Luhn check digit over the first 14 IMEI digits (TS 23.003 Annex B).

    Sums bytes with C-level loops: twice as fast as a digit loop, which matters when importing
    hundreds of thousands of rows a second."""
    d = digits[:14]
    total = sum(d[0::2].encode()) + sum(d[1::2].translate(_DOUBLED).encode()) - 48 * 14
    return (10 - total % 10) % 10


def check_digit_ok(digits15: str) -> bool:
    """Whether the 15th digit of a 15-digit IMEI is acceptable: the spare digit 0, or the CD."""
    last = digits15[14]
    return last == "0" or ord(last) - 48 == luhn_check_digit(digits15)


_NIBBLE_SWAP = bytes(((b & 0x0F) << 4) | (b >> 4) for b in range(256))


def tbcd_encode(digits: str) -> bytes:
    """TBCD-STRING (TS 29.002 §17.7.8): two decimal digits per octet, low nibble first, an odd count
    padded with the filler 0xF."""
    if len(digits) % 2:
        digits += "f"
    return bytes.fromhex(digits).translate(_NIBBLE_SWAP)


def tbcd_decode(data: bytes) -> str:
    """TBCD digits up to the first filler nibble; ``*``, ``#``, ``a``-``c`` come back as hex letters
    (``a``-``e``), which callers that need decimal digits reject with ``str.isdigit``."""
    s = data.translate(_NIBBLE_SWAP).hex()
    cut = s.find("f")
    return s if cut < 0 else s[:cut]


class IdentityForm(StrEnum):
    """How the equipment identity arrived (for logs and ``--explain``)."""

    IMEI14 = "imei14"
    """14 digits: TAC + SNR, no check digit."""
    IMEI_CD = "imei+cd"
    """15 digits whose 15th is the Luhn check digit."""
    IMEI_SPARE = "imei+0"
    """15 digits whose 15th is 0: the spare digit (MAP, TS 29.002 §17.7.8) — or a check digit that
    happens to be 0; both are valid, and telling them apart would cost a Luhn sum per MAP check."""
    IMEI_BAD_CD = "imei+bad-cd"
    """15 digits whose 15th is neither (accepted only when the check digit is not checked)."""
    IMEISV = "imeisv"
    """16 digits (14 + SVN), or an IMEI with a separate 2-digit software version."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A well-formed equipment identity: the keys the lists use."""

    imei: str
    """The 14 digits (TAC 8 + SNR 6)."""
    imeisv: str | None
    """The 16-digit IMEISV when a software version came with it, else None."""
    form: IdentityForm


@dataclass(frozen=True, slots=True)
class BadIdentity:
    """Not an IMEI, and why (the policy turns it into its ``validity`` verdict)."""

    detail: str


def bad_check_digit_detail(digits15: str) -> str:
    """What is wrong with a 15th digit that is neither the check digit nor the spare 0."""
    return f"bad check digit {digits15[14]}, expected {luhn_check_digit(digits15)} (or spare digit 0)"


def parse_identity(
    digits: str, software_version: str | None = None, *, check_luhn: bool = True
) -> Identity | BadIdentity:
    """The one IMEI normaliser (module docstring). ``check_luhn=False`` accepts any 15th digit.

    On the hot path of every check: the common forms cost a length test, ``isdigit`` and a slice.
    """
    n = len(digits)
    if not 14 <= n <= 16 or not digits.isascii() or not digits.isdigit():
        return BadIdentity(f"not an IMEI: {n} characters, expected 14-16 digits")
    imei = digits[:14]
    form = IdentityForm.IMEI14
    if n == 15:
        last = digits[14]
        if last == "0":
            form = IdentityForm.IMEI_SPARE
        elif ord(last) - 48 == luhn_check_digit(imei):
            form = IdentityForm.IMEI_CD
        elif check_luhn:
            return BadIdentity(bad_check_digit_detail(digits))
        else:
            form = IdentityForm.IMEI_BAD_CD
    sv = digits[14:] if n == 16 else software_version
    if sv is not None:
        if len(sv) != 2 or not sv.isascii() or not sv.isdigit():
            return BadIdentity(f"bad software version {sv!r}, expected 2 digits")
        return Identity(imei, imei + sv, IdentityForm.IMEISV)
    return Identity(imei, None, form)


class PeiKind(StrEnum):
    """The PEI forms of TS 29.571 §5.3.2 (Pei) that N5g-eir may be asked about."""

    IMEI = "imei"
    IMEISV = "imeisv"
    MAC = "mac"
    EUI64 = "eui"
    BARE = "bare"
    """No prefix: digits as go-eir and some test tools send them."""
    OTHER = "other"


def parse_pei(pei: str) -> tuple[PeiKind, str]:
    """Split a PEI into its kind and value: ``imei-<15 digits>``, ``imeisv-<16 digits>``,
    ``mac-…``, ``eui-…``; a value of digits only is BARE. The value is not validated here (the
    caller decides what each kind means; :func:`parse_identity` checks IMEI digits)."""
    head, sep, value = pei.partition("-")
    if sep:
        kind = {"imei": PeiKind.IMEI, "imeisv": PeiKind.IMEISV, "mac": PeiKind.MAC, "eui": PeiKind.EUI64}
        k = kind.get(head.lower())
        if k is not None:
            return k, value
        return PeiKind.OTHER, pei
    if pei.isascii() and pei.isdigit():
        return PeiKind.BARE, pei
    return PeiKind.OTHER, pei


def from_label(text: str) -> str:
    """The digits of an IMEI as printed on a handset label or box: ``35-394206-000002-3`` or
    ``35 394206 000002 3`` → ``353942060000023`` (separators dropped, nothing else changed)."""
    return text.strip().replace("-", "").replace(" ", "").replace("/", "")
