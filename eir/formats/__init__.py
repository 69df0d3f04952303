"""External list formats: the files national reference databases and other EIRs exchange.

One small module per family — :mod:`eir.formats.dirbs` (DIRBS-Core lists),
:mod:`eir.formats.gsma` (GSMA TAC database, PyHSS TAC CSV), :mod:`eir.formats.open5gs` (Open5GS
eird records) — each filling the same :class:`eir.lists.ParsedList` (equipment entries, pairings,
removals) or :class:`eir.lists.ParsedReference` (a reference table: TAC → device, registered
IMEIs) with the same validation report (bad rows with line numbers, duplicates, what was
normalised). :func:`detect` recognises a file by its header; ``eir`` is the project's own CSV
(:func:`eir.lists.parse_csv`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from eir.formats._common import Normalised, format_tagged, parse_tagged
from eir.formats.dirbs import DELTA_NAME

__all__ = [
    "FORMATS",
    "LIST_FORMATS",
    "REFERENCE_FORMATS",
    "Normalised",
    "detect",
    "detect_header",
    "format_tagged",
    "parse_tagged",
]

LIST_FORMATS = (
    "eir",
    "dirbs-blacklist",
    "dirbs-blacklist-delta",
    "dirbs-exceptions",
    "dirbs-notifications",
    "dirbs-stolen",
    "dirbs-barred",
    "dirbs-barred-tac",
    "open5gs-eir",
)
"""Formats whose rows become list entries or pairings (a new list version)."""
REFERENCE_FORMATS = {
    "dirbs-registration": "registration",
    "dirbs-golden": "golden",
    "gsma-tac": "tac",
    "pyhss-tac": "tac",
}
"""Formats that fill a reference table (format → table)."""
FORMATS = (*LIST_FORMATS, *REFERENCE_FORMATS)


def detect_header(first_line: str, filename: str = "") -> str | None:
    """The format a file's first (non-comment) line gives away, or None."""
    t = first_line.strip().lstrip("\ufeff")
    if t.startswith("{"):
        return "open5gs-eir" if '"pei"' in t else None
    if "|" in t:
        cols = [c.strip().lower() for c in t.split("|")]
        return "gsma-tac" if cols and cols[0] == "tac" and "marketing name" in cols else None
    cols = [c.strip().strip('"').lower() for c in t.split(",")]
    s = set(cols)
    if {"imei", "reporting_date"} <= s:  # before eir: a stolen list has a status column too
        return "dirbs-stolen"
    if {"imei", "status"} <= s:
        return "eir"
    if {"imei", "block_date", "reasons"} <= s:
        if "imsi" in s:
            return "dirbs-notifications"
        if "change_type" in s or DELTA_NAME.search(os.path.basename(filename)):
            return "dirbs-blacklist-delta"
        return "dirbs-blacklist"
    if "approved_imei" in s:
        return "dirbs-registration"
    if cols == ["golden_imei"]:
        return "dirbs-golden"
    if cols == ["imei"]:
        return "dirbs-barred"
    if cols == ["tac"]:
        return "dirbs-barred-tac"
    if cols[:1] == ["imei"] and s <= {"imei", "imsi", "msisdn"} and "imsi" in s:
        return "dirbs-exceptions"
    if cols[:3] == ["tac", "name", "model"]:
        return "pyhss-tac"
    if {"imsi", "imei"} <= s:
        return "eir"  # a pairing or lock list (--kind)
    return None


def detect(source: str | Path | IO[str]) -> str | None:
    """The format of a file (path) by its first non-blank, non-comment line; None when unknown.
    A stream is peeked only if it can seek back."""
    if isinstance(source, str | Path):
        try:
            with open(source, encoding="utf-8-sig", errors="replace") as f:
                for line in f:
                    if line.strip() and not line.lstrip().startswith("#"):
                        return detect_header(line, str(source))
        except OSError:
            return None
        return None
    if not source.seekable():
        return None
    pos = source.tell()
    try:
        for line in source:
            if line.strip() and not line.lstrip().startswith("#"):
                return detect_header(line, getattr(source, "name", ""))
        return None
    finally:
        source.seek(pos)
