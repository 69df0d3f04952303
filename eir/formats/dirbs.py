"""DIRBS (Device Identification, Registration and Blocking System, dirbs/DIRBS-Core) list files.

Column sets, as DIRBS-Core's ``etc/schema/*.csvs`` and its list generator
(``src/dirbs/listgen/generator.py``) define them:

======================  ==============================================  ==================================
format                  header                                          becomes
======================  ==============================================  ==================================
dirbs-blacklist         ``imei,block_date,reasons``                     black entries (block date and the
                                                                        ``|``-joined reasons kept)
dirbs-blacklist-delta   ``imei,block_date,reasons[,change_type]``       add / remove / change (file name
                                                                        ``…_blacklist_delta_<base>_<run>_
                                                                        <blocked|unblocked|changed>.csv``
                                                                        or a ``change_type`` column)
dirbs-notifications     ``imei,imsi,msisdn,block_date,reasons           grey until the block date, black
                        [,amnesty_granted]``                            from it (eir/policy.py)
dirbs-exceptions        ``imei,imsi[,msisdn]``                          pairings: they beat the blacklist
dirbs-stolen            ``imei,reporting_date,status``                  black (status empty or
                                                                        ``blacklist``; others skipped)
dirbs-registration      ``approved_imei,make,model,status,…``           the registration reference table
dirbs-barred            ``imei``                                        black
dirbs-barred-tac        ``tac``                                         black TAC entries
dirbs-golden            ``golden_imei``                                 the golden reference table: white
                                                                        above every list (eir/policy.py)
======================  ==============================================  ==================================

The golden list is a reference table, not list entries: an IMEI on it and on a blocking list
(blacklist, notifications, stolen, barred) is white whatever the order of the imports, as DIRBS
excludes golden IMEIs from its blacklist and notifications — one entry per IMEI on the lists would
keep only the last import's word.

IMEIs are normalised as DIRBS does (:func:`eir.formats._common.imei_dirbs`) and the import report
says what was. A full import of one of these lists replaces the entries that came from the same
list (their reason tag) and leaves the others: a blacklist import does not wipe the stolen list.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from eir.formats._common import dirbs_date, format_tagged, imei_dirbs, rows_of
from eir.formats.records import REGISTRATION_FIELDS, SEP
from eir.model import Status
from eir.store.base import EntryKind, ListEntry, Pairing, PairingKind

if TYPE_CHECKING:
    from eir.lists import ParsedList, ParsedReference

__all__ = ["DELTA_NAME", "HEADERS", "parse_dirbs", "parse_golden", "parse_registration"]

HEADERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # format: (required columns, optional columns)
    "dirbs-blacklist": (("imei", "block_date", "reasons"), ()),
    "dirbs-blacklist-delta": (("imei", "block_date", "reasons"), ("change_type",)),
    "dirbs-notifications": (("imei", "imsi", "msisdn", "block_date", "reasons"), ("amnesty_granted",)),
    "dirbs-exceptions": (("imei", "imsi"), ("msisdn",)),
    "dirbs-stolen": (("imei", "reporting_date"), ("status",)),
    "dirbs-registration": (
        ("approved_imei",),
        (
            "make",
            "model",
            "status",
            "model_number",
            "brand_name",
            "device_type",
            "radio_interface",
            "device_id",
        ),
    ),
    "dirbs-barred": (("imei",), ()),
    "dirbs-barred-tac": (("tac",), ()),
    "dirbs-golden": (("golden_imei",), ()),
}

DELTA_NAME = re.compile(r"_blacklist_delta_[-0-9]+_[0-9]+(?:_(blocked|unblocked|changed))?\.csv$", re.I)
"""``<date>_blacklist_delta_<base run>_<run>[_<change>].csv`` (DIRBS-Core listgen)."""

_CHANGE = {"blocked": "add", "changed": "add", "added": "add", "unblocked": "remove", "removed": "remove"}
_TRUE = {"true", "t", "yes", "y", "1"}


def _header(fmt: str, line: int, header: list[str], name: str) -> tuple[dict[str, int], list[str]]:
    from eir.lists import ListFileError

    required, optional = HEADERS[fmt]
    cols = [c.strip().lower() for c in header]
    missing = [c for c in required if c not in cols]
    if missing:
        raise ListFileError(
            f"{name}: line {line}: a {fmt} file needs the columns {','.join(required)}; "
            f"missing {', '.join(missing)} (got {','.join(cols)})"
        )
    dup = sorted({c for c in cols if cols.count(c) > 1 and c})
    if dup:
        raise ListFileError(f"{name}: line {line}: column {', '.join(dup)} given twice")
    known = (*required, *optional)
    return {c: cols.index(c) for c in known if c in cols}, [c for c in cols if c not in known]


def parse_dirbs(
    fmt: str,
    f: IO[str],
    name: str,
    out: ParsedList,
    *,
    progress: Callable[[], None] | None = None,
) -> None:
    """Fill ``out`` (a ParsedList made by eir.lists) from a DIRBS list file."""
    from eir.lists import ListFileError

    norm = out.normalised
    rows, col, ncols = _reference_rows(f, name, fmt, out)
    change_of_file: str | None = None
    if fmt == "dirbs-blacklist-delta":
        m = DELTA_NAME.search(name)
        if m is not None and m.group(1):
            change_of_file = _CHANGE[m.group(1).lower()]
        elif "change_type" not in col:
            raise ListFileError(
                f"{name}: a blacklist delta needs a change_type column or a file name ending "
                "_blocked.csv, _unblocked.csv or _changed.csv (DIRBS listgen)"
            )
    tag = "dirbs-blacklist" if fmt == "dirbs-blacklist-delta" else fmt
    seen = out.seen
    append = out.rows_.rows.append
    cache: dict[tuple[str, ...], str] = {}
    i_imei = col.get("imei", col.get("golden_imei", col.get("tac", 0)))
    nrows = 0
    for line, row in rows:
        nrows += 1
        if progress is not None and nrows % 65536 == 0:
            progress()
        if len(row) > ncols:
            out.bad_row(line, f"{len(row)} columns, the header has {ncols}", row)
            continue
        if len(row) < ncols:
            row = row + [""] * (ncols - len(row))
        try:
            if fmt == "dirbs-barred-tac":
                t = row[i_imei].strip()
                if len(t) != 8 or not t.isdigit() or not t.isascii():
                    raise ValueError(f"not a TAC (8 digits): {t!r}")
                if t in seen:
                    out.duplicates += 1
                    continue
                seen[t] = line
                append((EntryKind.TAC, t, None, Status.BLACK, None, tag))
                continue
            cell = row[i_imei]
            key = (
                cell
                if len(cell) == 14 and cell.isdigit() and cell.isascii()
                else imei_dirbs(cell, line, norm)
            )
            if fmt == "dirbs-exceptions":
                imsi = row[col["imsi"]].strip()
                if not (imsi.isdigit() and imsi.isascii() and 5 <= len(imsi) <= 15):
                    raise ValueError(f"not an IMSI (5 to 15 digits): {imsi!r}")
                if key is None:
                    continue
                pk = (key, imsi)
                if pk in seen:
                    out.duplicates += 1
                    continue
                seen[pk] = line
                msisdn = row[col["msisdn"]].strip() if "msisdn" in col else ""
                out.pairings.append(
                    Pairing(
                        kind=PairingKind.PAIRING,
                        imsi=imsi,
                        imei=key,
                        reason=format_tagged(tag, msisdn=msisdn),
                    )
                )
                out.pairing_kinds.add(PairingKind.PAIRING)
                continue
            status = Status.BLACK
            imsi_v: str | None = None
            if fmt in ("dirbs-blacklist", "dirbs-blacklist-delta"):
                bd, rs = row[col["block_date"]], row[col["reasons"]]
                ck = (bd, rs)
                reason = cache.get(ck)
                if reason is None:
                    reason = format_tagged(
                        tag, block_date=dirbs_date(bd, "block_date") if bd.strip() else None, reasons=rs
                    )
                    if len(cache) < 4096:
                        cache[ck] = reason
                if fmt == "dirbs-blacklist-delta":
                    op = change_of_file
                    if "change_type" in col:
                        ct = row[col["change_type"]].strip().lower()
                        op = _CHANGE.get(ct)
                        if op is None:
                            raise ValueError(f"change_type must be blocked, unblocked or changed, not {ct!r}")
                    if key is None:
                        continue
                    if op == "remove":
                        if ("rm", key) not in seen:
                            seen[("rm", key)] = line
                            out.removals.append(_entry(key, status, None))
                        continue
            elif fmt == "dirbs-notifications":
                imsi = row[col["imsi"]].strip()
                if imsi and not (imsi.isdigit() and imsi.isascii() and 5 <= len(imsi) <= 15):
                    raise ValueError(f"not an IMSI (5 to 15 digits): {imsi!r}")
                bd = row[col["block_date"]]
                amnesty = (
                    row[col["amnesty_granted"]].strip().lower() in _TRUE
                    if "amnesty_granted" in col
                    else False
                )
                reason = format_tagged(
                    tag,
                    block_date=dirbs_date(bd, "block_date"),
                    reasons=row[col["reasons"]],
                    msisdn=row[col["msisdn"]].strip(),
                    amnesty="true" if amnesty else None,
                )
                status = Status.GREY
                imsi_v = imsi or None
            elif fmt == "dirbs-stolen":
                rd = row[col["reporting_date"]].strip()
                st = row[col["status"]].strip().lower() if "status" in col else ""
                if st not in ("", "blacklist"):
                    norm.note(
                        f"skipped: stolen status {st!r} (only empty or blacklist blocks)", line, ",".join(row)
                    )
                    continue
                reason = cache.get((rd,)) or format_tagged(
                    tag, reporting_date=dirbs_date(rd, "reporting_date") if rd else None
                )
                cache[(rd,)] = reason
            elif fmt == "dirbs-golden":
                status, reason = Status.WHITE, tag
            else:  # dirbs-barred
                reason = tag
            if key is None:
                continue
            if key in seen:
                out.duplicates += 1
                continue
            seen[key] = line
            append((EntryKind.IMEI, key, None, status, imsi_v, reason))
        except ValueError as e:
            out.bad_row(line, str(e), row)
    out.rows = nrows
    if fmt != "dirbs-blacklist-delta":
        out.slice_tag = tag if fmt != "dirbs-exceptions" else None


def _entry(key: str, status: Status, reason: str | None) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEI, key=key, status=status, reason=reason)


def _reference_rows(
    f: IO[str], name: str, fmt: str, out: ParsedList | ParsedReference
) -> tuple[Iterator[tuple[int, list[str]]], dict[str, int], int]:
    """The skeleton the DIRBS parsers share, outside their per-row loops: the rows after the
    header, its column positions and width (its ignored columns go to ``out``)."""
    from eir.lists import ListFileError

    rows = rows_of(f)
    first = next(rows, None)
    if first is None:
        raise ListFileError(f"{name}: empty file (a {fmt} file starts with its header)")
    line, header = first
    col, ignored = _header(fmt, line, header, name)
    out.ignored_columns = ignored
    return rows, col, len(header)


def parse_registration(
    f: IO[str], name: str, out: ParsedReference, *, progress: Callable[[], None] | None = None
) -> None:
    """A DIRBS registration list → the ``registration`` reference table (IMEI → device)."""
    rows, col, ncols = _reference_rows(f, name, "dirbs-registration", out)
    norm = out.normalised
    seen = out.seen
    where = [col.get(k, -1) for k in REGISTRATION_FIELDS]
    join = SEP.join
    i_status = col.get("status")
    nrows = 0
    t0 = time.monotonic()
    for line, row in rows:
        nrows += 1
        if progress is not None and nrows % 65536 == 0:
            progress()
        if len(row) > ncols:
            out.bad_row(line, f"{len(row)} columns, the header has {ncols}", row)
            continue
        if len(row) < ncols:
            row = row + [""] * (ncols - len(row))
        try:
            key = imei_dirbs(row[col["approved_imei"]], line, norm)
        except ValueError as e:
            out.bad_row(line, str(e), row)
            continue
        st = row[i_status].strip().lower() if i_status is not None else ""
        if st not in ("", "whitelist"):
            norm.note(
                f"skipped: registration status {st!r} (only empty or whitelist registers)", line, row[0]
            )
            continue
        if key is None:
            continue
        if key in seen:
            out.duplicates += 1
            continue
        seen[key] = line
        out.items.append((key, join([row[i] if i >= 0 else "" for i in where])))
    out.rows = nrows
    out.seconds = time.monotonic() - t0


def parse_golden(
    f: IO[str], name: str, out: ParsedReference, *, progress: Callable[[], None] | None = None
) -> None:
    """A DIRBS golden list (``golden_imei``) → the ``golden`` reference table (IMEI → ``""``)."""
    rows, col, ncols = _reference_rows(f, name, "dirbs-golden", out)
    norm = out.normalised
    seen = out.seen
    i_imei = col["golden_imei"]
    nrows = 0
    t0 = time.monotonic()
    for line, row in rows:
        nrows += 1
        if progress is not None and nrows % 65536 == 0:
            progress()
        if len(row) > ncols:
            out.bad_row(line, f"{len(row)} columns, the header has {ncols}", row)
            continue
        try:
            key = imei_dirbs(row[i_imei] if len(row) > i_imei else "", line, norm)
        except ValueError as e:
            out.bad_row(line, str(e), row)
            continue
        if key is None:
            continue
        if key in seen:
            out.duplicates += 1
            continue
        seen[key] = line
        out.items.append((key, ""))
    out.rows = nrows
    out.seconds = time.monotonic() - t0
