"""What every external list format shares: DIRBS IMEI normalisation, the tag that list metadata is
kept under in an entry's ``reason``, and a CSV row loop with line numbers.

List metadata (DIRBS block date, reasons, the MSISDN of a notification, …) travels in the entry's
``reason`` text as ``<tag>;key=value;key=value`` — e.g.
``dirbs-blacklist;block_date=20260131;reasons=LOCAL STOLEN|DUPLICATE``. The tag names the list the
entry came from, so that a later full import of the same list replaces exactly those entries and
leaves the other lists alone; the policy reads ``block_date`` (notifications turn black on it) and
``--explain`` shows the rest. Every store keeps the reason as it is, so nothing per backend was
needed for it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO

__all__ = [
    "TAG_SEP",
    "Normalised",
    "dirbs_date",
    "format_tagged",
    "imei_dirbs",
    "parse_tagged",
    "rows_of",
]

TAG_SEP = ";"
MAX_META = 400
"""Characters kept of one metadata value (reasons can be long joined lists); the whole reason is
bounded by eir.lists.MAX_REASON."""


@dataclass(slots=True)
class Normalised:
    """What DIRBS-style normalisation did to a file's IMEIs, for the import report."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, what: str, line: int, text: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        ex = self.examples.setdefault(what, [])
        if len(ex) < 5:
            ex.append(f"line {line}: {text[:40]}")

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        return "; ".join(
            f"{n} {what} (e.g. {', '.join(self.examples.get(what, []))})" for what, n in self.counts.items()
        )

    def to_dict(self) -> dict[str, object]:
        return {w: {"rows": n, "examples": self.examples.get(w, [])} for w, n in self.counts.items()}


_HEXISH = frozenset("0123456789ABCDEFabcdef*#")


def imei_dirbs(cell: str, line: int, norm: Normalised) -> str | None:
    """A DIRBS IMEI cell → the 14-digit key, or None when no network IMEI can match it.

    DIRBS accepts 1-16 characters of hex digits, ``*`` and ``#`` and keys every IMEI on its first
    14 characters, upper-cased (DIRBS-Core etc/schema/*.csvs: "we strip check digit/software
    version"); there is no Luhn check. The interfaces only ever carry decimal digits, so a key with
    a hex digit, ``*`` or ``#``, or shorter than 14, is counted and skipped, never an error: the
    national list is what it is. ValueError for what DIRBS itself rejects."""
    t = cell.strip()
    n = len(t)
    if t.isdigit() and t.isascii():
        if n == 14:
            return t
        if n in (15, 16):
            norm.note("truncated to 14 digits", line, t)
            return t[:14]
    if not t or n > 16 or not set(t) <= _HEXISH:
        raise ValueError(f"not a DIRBS IMEI (1-16 hex digits, * or #): {t!r}")
    if n < 14:
        norm.note("skipped: shorter than 14 characters", line, t)
        return None
    norm.note("skipped: hex digit, * or # in the first 14 (no network IMEI matches)", line, t)
    return None


def dirbs_date(text: str, what: str) -> str:
    """``YYYYMMDD`` (DIRBS's date format; also accepted: ``YYYY-MM-DD``) → ``YYYYMMDD``."""
    t = text.strip().replace("-", "")
    if len(t) != 8 or not t.isdigit():
        raise ValueError(f"{what} is not a date YYYYMMDD: {text!r}")
    try:
        date(int(t[:4]), int(t[4:6]), int(t[6:]))
    except ValueError:
        raise ValueError(f"{what} is not a valid date: {text!r}") from None
    return t


def _clean(v: str) -> str:
    return v.replace(TAG_SEP, ",").replace("\n", " ").strip()[:MAX_META]


def format_tagged(tag: str, **meta: str | None) -> str:
    """``tag;k=v;…`` (empty values left out)."""
    parts = [tag]
    for k, v in meta.items():
        if v:
            parts.append(f"{k}={_clean(v)}")
    return TAG_SEP.join(parts)


def parse_tagged(reason: str | None) -> tuple[str, dict[str, str]] | None:
    """The (tag, metadata) of a tagged reason, or None for a plain one."""
    if not reason or not reason.startswith(("dirbs-", "open5gs")):
        return None
    tag, *rest = reason.split(TAG_SEP)
    meta: dict[str, str] = {}
    for part in rest:
        k, eq, v = part.partition("=")
        if eq:
            meta[k] = v
    return tag, meta


def rows_of(f: IO[str], delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of every non-blank, non-comment row (the header included)."""
    reader = csv.reader(f, delimiter=delimiter)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].lstrip().startswith("#"):
            continue
        yield reader.line_num, row
