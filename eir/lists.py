"""Equipment, pairing and lock lists as CSV files: parse, validate, import, export.

Equipment files (header ``imei,status[,imsi][,reason][,op]``, columns in any order):

* ``imei``: an IMEI (14 digits, or 15 with a valid Luhn check digit — TS 23.003 Annex B — or the
  spare digit 0 that networks send, §6.2.1), an IMEISV
  (16 digits), a TAC (8 digits: the 10^6 IMEIs of a model) or a range ``first-last`` of two IMEIs.
* ``status``: ``white`` | ``grey`` (``gray``) | ``black``; also ``pairing`` | ``lock`` with ``imsi``
  set, so that one file (``eir lists export``) can carry every list of a version.
* ``imsi``: optional (5-15 digits); informational on equipment rows.
* ``op``: ``add`` | ``remove`` — a delta file as a national CEIR sends them; a file with an ``op``
  column is always imported as a delta. On ``remove`` rows ``status`` may be empty.

Pairing and lock files (header ``imsi,imei[,reason][,op]``) need ``--kind pairing`` or ``--kind lock``.

The whole file is validated first: every bad row is reported with its line number and reason and
nothing is imported if there is one (unless ``skip_bad``). A key listed twice with the same status
is counted as a duplicate and kept once; with different statuses it is a bad row.

What an import replaces: a delta changes only what it names. A full equipment file replaces the
equipment list, and the pairing/lock lists only when the file holds such rows; a full pairing (lock)
file replaces the pairing (lock) list and leaves the rest.
"""

from __future__ import annotations

import csv
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eir.formats._common import Normalised, parse_tagged
from eir.model import Status
from eir.store.base import (
    EntryKind,
    EntryRows,
    IdentityStore,
    ListEntry,
    ListVersion,
    Pairing,
    PairingKind,
    ReferenceTable,
)
from protocols.imei import check_digit_ok, luhn_check_digit

__all__ = [
    "BadRow",
    "ListFileError",
    "ParsedList",
    "ParsedReference",
    "export_csv",
    "find_absent_removals",
    "import_files",
    "import_parsed",
    "import_reference",
    "import_text",
    "parse_csv",
    "parse_file",
    "report_dict",
]

EQUIPMENT_COLUMNS: tuple[str, ...] = ("imei", "status", "imsi", "reason", "op")
PAIRING_COLUMNS: tuple[str, ...] = ("imsi", "imei", "reason", "op")
MAX_REASON = 500

_STATUS = {"white": Status.WHITE, "grey": Status.GREY, "gray": Status.GREY, "black": Status.BLACK}
_PAIR_STATUS = {"pairing": PairingKind.PAIRING, "lock": PairingKind.LOCK}


class ListFileError(Exception):
    """The file cannot be used at all (unreadable, no or bad header, bad rows when importing)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text[:120]}"


class _Validated:
    """What ParsedList and ParsedReference share: the bad rows, kept up to ``max_reported``, all
    counted, and their report for people."""

    bad: list[BadRow]
    bad_count: int
    max_reported: int

    def bad_row(self, line: int, reason: str, row: list[str]) -> None:
        self.bad_count += 1
        if len(self.bad) < self.max_reported:
            self.bad.append(BadRow(line, reason, ",".join(row)))

    @property
    def ok(self) -> bool:
        return self.bad_count == 0

    def report(self, limit: int = 50) -> str:
        """The bad rows, one per line (first ``limit``), for people."""
        lines = [str(b) for b in self.bad[:limit]]
        if self.bad_count > limit:
            lines.append(f"... and {self.bad_count - limit} more bad rows")
        return "\n".join(lines)


@dataclass(slots=True)
class ParsedList(_Validated):
    """One validated file, ready for :func:`import_parsed`."""

    path: str
    kind: str
    """equipment | pairing | lock"""
    delta: bool
    rows_: EntryRows = field(default_factory=EntryRows)
    """The equipment entries (tuples; iterate for ListEntry objects)."""
    pairings: list[Pairing] = field(default_factory=list)
    removals: list[ListEntry | Pairing] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    rows: int = 0
    duplicates: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    pairing_kinds: set[PairingKind] = field(default_factory=set)
    """The pairing/lock lists this (full) file replaces."""
    absent_removals: list[ListEntry | Pairing] | None = None
    """The removals that name nothing on the active lists (set by :func:`find_absent_removals`;
    None: not looked up)."""
    format: str = "eir"
    slice_tag: str | None = None
    """A full import of an external list (eir/formats) replaces only the entries whose reason
    carries this tag — the entries of the same list — and leaves the other lists alone."""
    normalised: Normalised = field(default_factory=Normalised)
    seen: dict[Any, Any] = field(default_factory=dict, repr=False)
    max_reported: int = 1000

    @property
    def entries(self) -> EntryRows:
        return self.rows_

    def summary(self) -> str:
        parts = [counted(self.rows, "row"), counted(len(self.entries), "entry", "entries")]
        if self.pairings:
            parts.append(counted(len(self.pairings), "pairing/lock row"))
        if self.removals:
            absent = len(self.absent_removals or ())
            parts.append(
                counted(len(self.removals), "removal")
                + (f" ({absent} matching nothing on the active lists)" if absent else "")
            )
        if self.duplicates:
            parts.append(counted(self.duplicates, "duplicate") + " skipped")
        if self.bad_count:
            parts.append(counted(self.bad_count, "bad row"))
        if self.normalised:
            parts.append(f"normalised: {self.normalised.summary()}")
        return ", ".join(parts)


@dataclass(slots=True)
class ParsedReference(_Validated):
    """One validated reference file (eir/formats: GSMA or PyHSS TAC table, DIRBS registration
    list, DIRBS golden list), ready for :func:`import_reference`: ``items`` are ``(key, record)``
    rows of ``table`` (``tac``: 8-digit TAC; ``registration``, ``golden``: 14-digit IMEI)."""

    path: str
    format: str
    table: str
    items: list[tuple[str, str]] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    rows: int = 0
    duplicates: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    normalised: Normalised = field(default_factory=Normalised)
    seen: dict[Any, Any] = field(default_factory=dict, repr=False)
    max_reported: int = 1000
    seconds: float = 0.0
    delta: bool = False
    kind: str = "reference"

    def summary(self) -> str:
        parts = [counted(self.rows, "row"), f"{len(self.items)} {self.table} records"]
        if self.duplicates:
            parts.append(counted(self.duplicates, "duplicate") + " skipped")
        if self.bad_count:
            parts.append(counted(self.bad_count, "bad row"))
        if self.normalised:
            parts.append(f"normalised: {self.normalised.summary()}")
        return ", ".join(parts)


def report_dict(parsed: ParsedList | ParsedReference, limit: int = 1000) -> dict[str, Any]:
    """The validation report as JSON-able data (the admin API's import answer)."""
    return {
        "format": parsed.format,
        "rows": parsed.rows,
        "duplicates": parsed.duplicates,
        "bad_rows": parsed.bad_count,
        "errors": [{"line": b.line, "reason": b.reason, "text": b.text[:200]} for b in parsed.bad[:limit]],
        "normalised": parsed.normalised.to_dict(),
        "ignored_columns": list(parsed.ignored_columns),
    }


def counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


# --- identity fields -----------------------------------------------------------------------------


def _imei14(text: str) -> str:
    """14 or 15 digits (check digit verified) → the 14-digit IMEI; ValueError with a reason."""
    n = len(text)
    if n == 14 and text.isdigit():
        return text
    if n == 15 and text.isdigit():
        if not check_digit_ok(text):
            raise ValueError(
                f"bad check digit in {text}: expected {luhn_check_digit(text)} (or spare digit 0)"
            )
        return text[:14]
    raise ValueError(f"not an IMEI (14 or 15 digits): {text!r}")


def parse_identity(text: str, status: Status) -> ListEntry:
    """An ``imei`` cell → a ListEntry (IMEI, IMEISV, TAC or range); ValueError with a reason."""
    t = text.strip()
    if "-" in t:
        a, _, b = t.partition("-")
        first, last = _imei14(a.strip()), _imei14(b.strip())
        if int(last) < int(first):
            raise ValueError(f"range {t}: last is before first")
        return ListEntry(kind=EntryKind.RANGE, key=first, last=last, status=status)
    n = len(t)
    if not t.isascii() or not t.isdigit():
        raise ValueError(f"not an IMEI, IMEISV, TAC or range: {t!r}")
    if n == 14:
        return ListEntry(kind=EntryKind.IMEI, key=t, status=status)
    if n == 15:
        return ListEntry(kind=EntryKind.IMEI, key=_imei14(t), status=status)
    if n == 16:
        return ListEntry(kind=EntryKind.IMEISV, key=t, status=status)
    if n == 8:
        return ListEntry(kind=EntryKind.TAC, key=t, status=status)
    raise ValueError(f"not an IMEI (14/15 digits), IMEISV (16), TAC (8) or range: {t!r} has {n} digits")


def _imsi(text: str) -> str:
    if not (text.isascii() and text.isdigit() and 5 <= len(text) <= 15):
        raise ValueError(f"not an IMSI (5 to 15 digits): {text!r}")
    return text


# --- parsing --------------------------------------------------------------------------------------


def _open_text(source: str | Path | IO[str]) -> tuple[IO[str], int, str]:
    if isinstance(source, str | Path):
        p = Path(source)
        try:
            f: IO[str] = p.open(newline="", encoding="utf-8-sig", errors="strict")
            size = p.stat().st_size
        except OSError as e:
            raise ListFileError(f"{p}: cannot read ({e.strerror})") from None
        return f, size, str(p)
    return source, 0, getattr(source, "name", "<stream>")


def parse_csv(
    source: str | Path | IO[str],
    *,
    kind: str = "equipment",
    delta: bool | None = None,
    max_reported: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> ParsedList:
    """Read and validate a whole list file. ``delta=None``: a delta when the file has an ``op`` column.

    ``progress(bytes_read, total)`` is called now and then for a progress bar."""
    f, size, name = _open_text(source)
    # The cyclic GC would scan the growing list of row tuples again and again (a third of the time
    # on a 1M-row file); rows hold no cycles, so it is paused while reading.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        return _parse(f, size, name, kind, delta, max_reported, progress)
    except UnicodeDecodeError as e:
        raise ListFileError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ListFileError(f"{name}: not a CSV file ({e})") from None
    finally:
        if gc_was:
            gc.enable()
        if isinstance(source, str | Path):
            f.close()


def _parse(
    f: IO[str],
    size: int,
    name: str,
    kind: str,
    delta: bool | None,
    max_reported: int,
    progress: Callable[[int, int], None] | None,
) -> ParsedList:
    if kind not in ("equipment", "pairing", "lock", "auto"):
        raise ListFileError(f"unknown list kind {kind!r} (equipment, pairing, lock)")
    reader = csv.reader(f)
    header: list[str] | None = None
    lineno = 0
    for row in reader:
        lineno = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        header = [c.strip().lower() for c in row]
        break
    if header is None:
        raise ListFileError(f"{name}: empty file (expected a header such as imei,status,imsi,reason)")
    equipment_format = "status" in header
    if equipment_format:
        if kind not in ("equipment", "auto"):
            raise ListFileError(f"{name}: has a status column, so it is an equipment file, not a {kind} file")
        kind = "equipment"
        known, required = EQUIPMENT_COLUMNS, ("imei", "status")
    else:
        if "imsi" in header and "imei" in header and kind in ("equipment", "auto"):
            raise ListFileError(
                f"{name}: an imsi,imei file is a pairing or lock list: give --kind pairing or --kind lock"
            )
        if kind in ("equipment", "auto"):
            raise ListFileError(
                f"{name}: line {lineno}: header must name imei and status columns, got {','.join(header)}"
            )
        known, required = PAIRING_COLUMNS, ("imsi", "imei")
    missing = [c for c in required if c not in header]
    if missing:
        raise ListFileError(
            f"{name}: line {lineno}: header lacks {', '.join(missing)} (got {','.join(header)})"
        )
    dup = sorted({c for c in header if header.count(c) > 1 and c})
    if dup:
        raise ListFileError(f"{name}: line {lineno}: column {', '.join(dup)} given twice")
    col = {c: header.index(c) for c in known if c in header}
    if delta is None:
        delta = "op" in col
    out = ParsedList(
        path=name, kind=kind, delta=bool(delta), ignored_columns=[c for c in header if c not in known]
    )
    ncols = len(header)
    state = _RowState(out, col, None if equipment_format else _PAIR_STATUS[kind], bool(delta), max_reported)
    # The common row (equipment, no op, a 14/15-digit IMEI or 8-digit TAC, plain status) takes a
    # short path: ≥ 200k rows/s matters for national lists. Anything else goes through _slow_row.
    i_imei = col["imei"]
    i_status = col.get("status", -1)
    i_imsi = col.get("imsi", -1)
    i_reason = col.get("reason", -1)
    fast = equipment_format and "op" not in col
    seen = state.seen
    rows_append = out.rows_.rows.append
    status_of = _STATUS
    st_code = _ST_CODE
    imei_kind, tac_kind = EntryKind.IMEI, EntryKind.TAC
    next_progress = 0.0
    nrows = 0
    for row in reader:
        nrows += 1
        n = len(row)
        if fast and n == ncols:
            cell = row[i_imei]
            status = status_of.get(row[i_status])
            ln = len(cell)
            if status is not None and (ln == 14 or ln == 15 or ln == 8) and cell.isdigit() and cell.isascii():
                if ln == 15:
                    if not check_digit_ok(cell):
                        state.slow_row(reader.line_num, row)
                        continue
                    cell = cell[:14]
                kind_ = tac_kind if ln == 8 else imei_kind
                code = st_code[status]
                prev = seen.get(cell)
                if prev is not None:
                    if prev & 3 != code:
                        state.slow_row(reader.line_num, row)
                    else:
                        out.duplicates += 1
                    continue
                seen[cell] = (reader.line_num << 2) | code
                imsi = row[i_imsi] if i_imsi >= 0 else ""
                reason = row[i_reason] if i_reason >= 0 else ""
                if imsi or reason:
                    imsi, reason = imsi.strip(), reason.strip()
                    if (imsi and not (imsi.isdigit() and imsi.isascii() and 5 <= len(imsi) <= 15)) or len(
                        reason
                    ) > MAX_REASON:
                        state.slow_row(reader.line_num, row)
                        continue
                rows_append((kind_, cell, None, status, imsi or None, reason or None))
                if progress is not None and nrows % 65536 == 0:
                    now = time.monotonic()
                    if now >= next_progress:
                        next_progress = now + 0.2
                        progress(_position(f), size)
                continue
        if not row or (n == 1 and not row[0].strip()) or row[0].startswith("#"):
            nrows -= 1
            continue
        if n > ncols:
            state.bad(reader.line_num, f"{n} columns, the header has {ncols}", row)
            continue
        state.slow_row(reader.line_num, row)
    out.rows = nrows
    if progress is not None:
        progress(size, size)
    return out


def _position(f: IO[str]) -> int:
    """Bytes read so far (a text file's own tell() is disabled while it is iterated; the binary
    buffer under it is a chunk ahead, which is fine for a progress bar)."""
    buf = getattr(f, "buffer", None)
    try:
        return int(buf.tell()) if buf is not None else 0
    except (OSError, ValueError):
        return 0


_ST_CODE = {Status.WHITE: 0, Status.GREY: 1, Status.BLACK: 2}
_ST_NAME = {0: "white", 1: "grey", 2: "black", 3: "pairing/lock"}


class _RowState:
    """Everything a general (slow-path) row needs; also the shared duplicate index."""

    __slots__ = ("col", "delta", "fixed_pair", "max_reported", "out", "seen", "seen_rm")

    def __init__(
        self,
        out: ParsedList,
        col: dict[str, int],
        fixed_pair: PairingKind | None,
        delta: bool,
        max_reported: int,
    ) -> None:
        self.out = out
        self.col = col
        self.fixed_pair = fixed_pair
        self.delta = delta
        self.max_reported = max_reported
        self.seen: dict[Any, int] = {}
        """key → line << 2 | status code (3 for pairing rows)"""
        self.seen_rm: set[Any] = set()

    def bad(self, line: int, reason: str, row: list[str]) -> None:
        self.out.bad_count += 1
        if len(self.out.bad) < self.max_reported:
            self.out.bad.append(BadRow(line, reason, ",".join(row)))

    def cell(self, row: list[str], name: str) -> str:
        i = self.col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    def slow_row(self, line: int, row: list[str]) -> None:
        try:
            self._row(line, row)
        except ValueError as err:
            self.bad(line, str(err), row)

    def _row(self, line: int, row: list[str]) -> None:
        out = self.out
        op = self.cell(row, "op").lower()
        if op not in ("", "add", "remove"):
            raise ValueError(f"op must be add or remove, not {op!r}")
        remove = op == "remove"
        if remove and not self.delta:
            raise ValueError("a remove row in a full (non-delta) import")
        imsi = self.cell(row, "imsi")
        reason = self.cell(row, "reason")
        if len(reason) > MAX_REASON:
            raise ValueError(f"reason longer than {MAX_REASON} characters")
        if imsi:
            _imsi(imsi)
        cell = self.cell(row, "imei")
        if not cell:
            raise ValueError("imei is empty")
        pk = self.fixed_pair
        status: Status | None = None
        if pk is None:
            s = self.cell(row, "status").lower()
            status = _STATUS.get(s)
            if status is None:
                pk = _PAIR_STATUS.get(s)
                if pk is None and not (remove and s == ""):
                    raise ValueError(f"status must be white, grey, black, pairing or lock, not {s!r}")
        if pk is not None:
            if not imsi:
                raise ValueError(f"a {pk.value} row needs an imsi")
            p = Pairing(kind=pk, imsi=imsi, imei=_imei14(cell), reason=reason or None)
            pkey = (pk, imsi, p.imei)
            if remove:
                if pkey not in self.seen_rm:
                    self.seen_rm.add(pkey)
                    out.removals.append(p)
            elif pkey in self.seen:
                out.duplicates += 1
            else:
                self.seen[pkey] = (line << 2) | 3
                out.pairing_kinds.add(pk)
                out.pairings.append(p)
            return
        e = parse_identity(cell, status or Status.BLACK)
        key = e.key if e.last is None else f"{e.key}-{e.last}"
        if remove:
            if key not in self.seen_rm:
                self.seen_rm.add(key)
                out.removals.append(e)
            return
        assert status is not None
        code = _ST_CODE[status]
        prev = self.seen.get(key)
        if prev is not None:
            if prev & 3 != code:
                raise ValueError(
                    f"{key} listed again as {status.value} (line {prev >> 2} says {_ST_NAME[prev & 3]})"
                )
            out.duplicates += 1
            return
        self.seen[key] = (line << 2) | code
        out.rows_.rows.append((e.kind, e.key, e.last, status, imsi or None, reason or None))


def parse_file(
    source: str | Path | IO[str],
    *,
    fmt: str | None = None,
    kind: str = "equipment",
    delta: bool | None = None,
    max_reported: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> ParsedList | ParsedReference:
    """Read and validate a list file of any format (eir/formats); ``fmt=None``: recognised by its
    header (:func:`eir.formats.detect`), ``eir`` when nothing gives it away."""
    from eir.formats import FORMATS, REFERENCE_FORMATS, detect

    if fmt is None:
        # --kind pairing|lock names our own format (an imei,imsi pairing file looks like a DIRBS
        # exception list otherwise)
        fmt = "eir" if kind in ("pairing", "lock") else detect(source) or "eir"
    if fmt not in FORMATS:
        raise ListFileError(f"unknown list format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "eir":
        parsed = parse_csv(source, kind=kind, delta=delta, max_reported=max_reported, progress=progress)
        return parsed
    if kind not in ("equipment", "auto"):
        raise ListFileError(f"--kind {kind} is for eir files; a {fmt} file says what it lists")
    f, size, name = _open_text(source)
    tick = None
    if progress is not None:
        report = progress

        def tick() -> None:
            report(_position(f), size)

    gc_was = gc.isenabled()
    gc.disable()
    try:
        out: ParsedList | ParsedReference
        if fmt in REFERENCE_FORMATS:
            out = ParsedReference(
                path=name, format=fmt, table=REFERENCE_FORMATS[fmt], max_reported=max_reported
            )
            if fmt == "dirbs-registration":
                from eir.formats.dirbs import parse_registration

                parse_registration(f, name, out, progress=tick)
            elif fmt == "dirbs-golden":
                from eir.formats.dirbs import parse_golden

                parse_golden(f, name, out, progress=tick)
            else:
                from eir.formats.gsma import parse_tac_table

                parse_tac_table(fmt, f, name, out, progress=tick)
        else:
            is_delta = fmt == "dirbs-blacklist-delta"
            lst = ParsedList(
                path=name,
                kind="pairing" if fmt == "dirbs-exceptions" else "equipment",
                delta=is_delta,
                format=fmt,
                max_reported=max_reported,
            )
            if fmt == "open5gs-eir":
                from eir.formats.open5gs import parse_open5gs

                parse_open5gs(f, name, lst, progress=tick)
            else:
                from eir.formats.dirbs import parse_dirbs

                parse_dirbs(fmt, f, name, lst, progress=tick)
            out = lst
        out.seen.clear()
        if progress is not None:
            progress(size, size)
        return out
    except UnicodeDecodeError as e:
        raise ListFileError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ListFileError(f"{name}: not a CSV file ({e})") from None
    finally:
        if gc_was:
            gc.enable()
        if isinstance(source, str | Path):
            f.close()


# --- importing --------------------------------------------------------------------------------------


async def slice_removals(store: IdentityStore, tag: str) -> list[ListEntry | Pairing]:
    """The active entries an external list of ``tag`` put there (what its next full import
    replaces)."""
    out: list[ListEntry | Pairing] = []
    async for x in store.export():
        if isinstance(x, ListEntry) and x.reason and x.reason.startswith(tag):
            t = parse_tagged(x.reason)
            if t is not None and t[0] == tag:
                out.append(x)
    return out


async def import_reference(
    store: IdentityStore, parsed: ParsedReference, *, source: str | None = None, skip_bad: bool = False
) -> ReferenceTable:
    """Replace a reference table atomically; every server's watch drops its cached answers
    (IdentityStore.import_reference). Into a store with no list version yet, an empty one is
    made first, so that there is a version to announce."""
    if not parsed.ok and not skip_bad:
        raise ListFileError(
            f"{parsed.path}: {parsed.bad_count} bad rows, nothing imported\n{parsed.report()}"
        )
    src = source or os.path.basename(parsed.path)
    if await store.active_version() is None:
        await store.import_version([], [], source="empty (before a reference table)")
    table = await store.import_reference(parsed.table, parsed.items, source=f"{parsed.format}: {src}")
    if parsed.table == "golden":
        # earlier versions imported the golden list as white list entries, which a later blocking
        # list overwrote: the table replaces them
        old = await slice_removals(store, "dirbs-golden")
        if old:
            await store.import_version(
                [], [], source="dirbs-golden: entries moved to the golden table", delta=True, removals=old
            )
    return table


async def import_parsed(
    store: IdentityStore, parsed: ParsedList, *, source: str | None = None, skip_bad: bool = False
) -> ListVersion:
    """Swap a validated file in (see the module docstring for what it replaces)."""
    if not parsed.ok and not skip_bad:
        raise ListFileError(
            f"{parsed.path}: {parsed.bad_count} bad rows, nothing imported\n{parsed.report()}"
        )
    src = source or os.path.basename(parsed.path)
    if parsed.format != "eir":
        src = f"{parsed.format}: {src}"
    if parsed.slice_tag is not None:
        # a full external list: replaces the entries of the same list only
        removals = await slice_removals(store, parsed.slice_tag)
        return await store.import_version(
            parsed.entries, parsed.pairings, source=src, delta=True, removals=removals
        )
    if parsed.delta:
        return await store.import_version(
            parsed.entries, parsed.pairings, source=src, delta=True, removals=parsed.removals
        )
    if parsed.kind == "equipment":
        kept = [p for p in await store.pairings() if p.kind not in parsed.pairing_kinds]
        return await store.import_version(parsed.entries, [*kept, *parsed.pairings], source=src)
    pk = _PAIR_STATUS[parsed.kind]
    old = [p for p in await store.pairings() if p.kind is pk]
    return await store.import_version([], parsed.pairings, source=src, delta=True, removals=old)


async def import_text(
    store: IdentityStore,
    text: str | IO[str],
    *,
    fmt: str | None = None,
    kind: str = "equipment",
    dry_run: bool = False,
    skip_bad: bool = False,
    name: str = "upload",
    in_thread: bool = False,
) -> dict[str, Any]:
    """Validate and import a list file given as text, or as a text stream that can seek (the admin
    API's ``POST /lists/import``, spooled; other in-process callers): any format of
    :func:`parse_file`, recognised by its header when ``fmt`` is None. Returns :func:`report_dict`
    plus ``version`` (the new list version id, None on a dry run or when bad rows stopped it),
    ``table`` for a reference table and ``imported``. ``in_thread``: parse in a worker thread (a
    large file would hold the event loop). Raises ListFileError for a file that cannot be used at
    all."""
    import asyncio
    import io

    if isinstance(text, str):
        buf: IO[str] = io.StringIO(text)
        buf.name = name  # type: ignore[misc]
    else:
        buf = text
    if in_thread:
        parsed = await asyncio.to_thread(parse_file, buf, fmt=fmt, kind=kind)
    else:
        parsed = parse_file(buf, fmt=fmt, kind=kind)
    out = report_dict(parsed)
    out.update(version=None, imported=False)
    if isinstance(parsed, ParsedReference):
        out["table"] = parsed.table
    if dry_run or (not parsed.ok and not skip_bad):
        return out
    if isinstance(parsed, ParsedReference):
        await import_reference(store, parsed, skip_bad=skip_bad, source=name)
        out["version"] = await store.active_version()
    else:
        out["version"] = (await import_parsed(store, parsed, skip_bad=skip_bad, source=name)).id
    out["imported"] = True
    return out


def removal_text(r: ListEntry | Pairing) -> str:
    """How a removal row names what it removes (for reports)."""
    if isinstance(r, Pairing):
        return f"{r.kind.value} {r.imsi},{r.imei}"
    return entry_cell(r)


async def find_absent_removals(
    store: IdentityStore, removals: Iterable[ListEntry | Pairing]
) -> list[ListEntry | Pairing]:
    """The removals that match nothing on the store's active lists — a delta from a CEIR that removes
    an IMEI we never listed is worth telling the operator about (a stale delta, a typo, the wrong
    order of files). Matching is the store's (kind, key, last) for entries and (kind, imsi, imei) for
    pairings: point lookups for IMEIs, IMEISVs and pairings; one pass over the lists only when a range
    or TAC removal is not the narrowest match of its own first IMEI."""
    absent: list[ListEntry | Pairing] = []
    ranges: list[ListEntry] = []
    for r in removals:
        if isinstance(r, Pairing):
            rules = await store.imsi_rules(r.imsi, r.imei)
            found = (
                rules.pairing is not None and rules.pairing.imei == r.imei
                if r.kind is PairingKind.PAIRING
                else rules.locked and rules.lock_allows
            )
        elif r.kind is EntryKind.IMEI:
            hit = (await store.lookup(r.key)).imei
            found = hit is not None and hit.key == r.key
        elif r.kind is EntryKind.IMEISV:
            hit = (await store.lookup(r.key[:14], r.key)).imeisv
            found = hit is not None and hit.key == r.key
        else:
            first = r.key if r.kind is EntryKind.RANGE else r.key + "000000"
            hit = (await store.lookup(first)).range
            found = hit is not None and (hit.kind, hit.key, hit.last) == (r.kind, r.key, r.last)
            if not found:
                ranges.append(r)
                continue
        if not found:
            absent.append(r)
    if ranges:
        listed = {
            (x.kind, x.key, x.last)
            async for x in store.export()
            if isinstance(x, ListEntry) and x.kind in (EntryKind.RANGE, EntryKind.TAC)
        }
        absent.extend(r for r in ranges if (r.kind, r.key, r.last) not in listed)
    return absent


async def import_files(store: IdentityStore, paths: Iterable[str | Path]) -> ListVersion:
    """Import list files at start (``lists.import_on_start``); any bad row aborts before anything
    is imported. Files of our own format go in as ONE version; files of other formats (recognised
    by their headers: a DIRBS list, a TAC table …) are then applied one after another, each the way
    ``eir lists import`` applies it."""
    paths = list(paths)
    parsed_all = [(p, parse_file(p)) for p in paths]
    for p, parsed in parsed_all:
        if not parsed.ok:
            raise ListFileError(f"{p}: {parsed.bad_count} bad rows, nothing imported\n{parsed.report(10)}")
    own = [(p, x) for p, x in parsed_all if isinstance(x, ParsedList) and x.format == "eir"]
    others = [x for _, x in parsed_all if x.format != "eir"]
    merged = ParsedList(path="+".join(str(p) for p, _ in own), kind="equipment", delta=False)
    for p, parsed in own:
        if parsed.kind != "equipment" or parsed.delta:
            raise ListFileError(f"{p}: lists.import_on_start takes full equipment files (imei,status,…)")
        merged.rows_.rows.extend(parsed.rows_.rows)
        merged.pairings.extend(parsed.pairings)
        merged.pairing_kinds |= parsed.pairing_kinds
        merged.rows += parsed.rows
    names = ",".join(os.path.basename(str(p)) for p, _ in own) or "empty (before the other files)"
    version = await import_parsed(store, merged, source=names)
    for parsed in others:
        if isinstance(parsed, ParsedReference):
            await import_reference(store, parsed)
        else:
            version = await import_parsed(store, parsed)
    return version


# --- exporting ----------------------------------------------------------------------------------------


def entry_cell(e: ListEntry) -> str:
    return f"{e.key}-{e.last}" if e.kind is EntryKind.RANGE else e.key


async def export_csv(items: AsyncIterator[ListEntry | Pairing], out: IO[str], *, kind: str = "all") -> int:
    """Write ``imei,status,imsi,reason`` rows (pairing/lock rows with status pairing|lock), the format
    :func:`parse_csv` reads back. Returns the number of rows."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["imei", "status", "imsi", "reason"])
    n = 0
    buf: list[list[str]] = []
    async for x in items:
        if isinstance(x, Pairing):
            if kind not in ("all", x.kind.value):
                continue
            buf.append([x.imei, x.kind.value, x.imsi, x.reason or ""])
        else:
            if kind not in ("all", "equipment"):
                continue
            buf.append([entry_cell(x), x.status.value, x.imsi or "", x.reason or ""])
        if len(buf) >= 10_000:
            w.writerows(buf)
            n += len(buf)
            buf.clear()
    w.writerows(buf)
    return n + len(buf)


def progress_bar(label: str, stream: IO[str] | None = None) -> Callable[[int, int], None] | None:
    """A one-line progress bar on stderr when it is a terminal, else None."""
    s = stream or sys.stderr
    if not s.isatty():
        return None
    start = time.monotonic()

    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        s.write(f"\r{label} [{bar:<30}] {frac * 100:5.1f}% {time.monotonic() - start:6.1f}s")
        if done >= total:
            s.write("\n")
        s.flush()

    return show
