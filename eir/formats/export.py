"""Information sharing out: lists in DIRBS formats and observations as a DIRBS operator dump.

* ``export_dirbs``: the black IMEI entries as a DIRBS blacklist (``imei,block_date,reasons``), the
  notification entries as a DIRBS notification list (``imei,imsi,msisdn,block_date,reasons,
  amnesty_granted``) or the pairings as a DIRBS exception list (``imei,imsi,msisdn``) — what
  another EIR (``eir lists import``) or a CEIR reads back. Metadata kept from a DIRBS import (block
  date, reasons, MSISDN) goes back out; for entries of our own CSV the reason becomes ``reasons``.
  Ranges and TACs have no DIRBS row form: they are left out and counted.
* ``export_observations``: what the EIR saw, as DIRBS's operator data dump ``date,imei,imsi,msisdn,
  rat`` (``write_daily``: one file per day). The EIR keeps one sighting per (IMEI, IMSI) with the
  time last seen (eir/sightings.py), for as long as the clone rule keeps them
  (``policy.clone.window``), so a pair is one row dated the day it was last seen. ``rat`` comes
  from the interface the IMSI was seen on, which the sighting's kind records: S13 → ``006``
  (E-UTRAN), MAP → ``002`` (GERAN: the EIR cannot tell a GERAN from a UTRAN MSC/SGSN), N5g-eir →
  empty (DIRBS has no NR code; the column is optional there); a pair seen on several interfaces the
  same day gets their codes ``|``-joined, as DIRBS's OperatorImportSchema_v2 allows. ``msisdn``
  is the one a MAP (Huawei forms) or N5g-eir (``msisdn-`` GPSI) request carried, kept in the
  row's value; S13 carries none.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from eir.formats._common import dirbs_date, parse_tagged
from eir.model import Status
from eir.sightings import IMSI_KINDS, MSISDN_KINDS, MSISDN_SEP
from eir.store.base import EntryKind, ListEntry, Pairing, Sighting

__all__ = ["day_bounds", "export_dirbs", "export_observations", "write_daily"]

RAT = {"e": "006", "g": "002"}
"""DIRBS operator-dump RAT codes (DIRBS-Core radio_access_technology_map) by sighting kind
(eir/sightings.py): S13 E-UTRAN, MAP GERAN. The other IMSI kinds (N5g-eir, unknown) have none."""

HEADERS = {
    "dirbs-blacklist": ["imei", "block_date", "reasons"],
    "dirbs-notifications": ["imei", "imsi", "msisdn", "block_date", "reasons", "amnesty_granted"],
    "dirbs-exceptions": ["imei", "imsi", "msisdn"],
}


async def export_dirbs(fmt: str, items: AsyncIterator[ListEntry | Pairing], out: IO[str]) -> int:
    """Write one DIRBS list from the active version; returns the rows written."""
    if fmt not in HEADERS:
        raise ValueError(f"no DIRBS export format {fmt!r} (one of {', '.join(HEADERS)})")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADERS[fmt])
    n = 0
    async for x in items:
        if isinstance(x, Pairing):
            if fmt == "dirbs-exceptions" and x.kind.value == "pairing":
                meta = (parse_tagged(x.reason) or ("", {}))[1]
                w.writerow([x.imei, x.imsi, meta.get("msisdn", "")])
                n += 1
            continue
        if x.kind not in (EntryKind.IMEI, EntryKind.IMEISV):
            continue
        tagged = parse_tagged(x.reason)
        tag, meta = tagged if tagged is not None else ("", {})
        if fmt == "dirbs-blacklist" and x.status is Status.BLACK:
            reasons = meta.get("reasons", "") if tagged is not None else (x.reason or "")
            w.writerow([x.key[:14], meta.get("block_date", ""), reasons])
            n += 1
        elif fmt == "dirbs-notifications" and tag == "dirbs-notifications":
            w.writerow(
                [
                    x.key[:14],
                    x.imsi or "",
                    meta.get("msisdn", ""),
                    meta.get("block_date", ""),
                    meta.get("reasons", ""),
                    "True" if meta.get("amnesty") == "true" else "False",
                ]
            )
            n += 1
    return n


def day_bounds(since: str | None, until: str | None, now: float) -> tuple[float, float]:
    """``--since``/``--until`` days (UTC, inclusive) → ``[start, end)`` UNIX times."""

    def day(text: str, what: str) -> float:
        d = dirbs_date(text, what)
        return datetime(int(d[:4]), int(d[4:6]), int(d[6:]), tzinfo=UTC).timestamp()

    start = day(since, "--since") if since else 0.0
    end = day(until, "--until") + 86400.0 if until else now + 86400.0
    if end <= start:
        raise ValueError("--until is before --since")
    return start, end


def export_observations(rows: Sequence[Sighting], out: IO[str], *, until: float | None = None) -> int:
    """Write ``date,imei,imsi,msisdn,rat`` rows (IMSI sightings only; origins are not IMSIs),
    sorted by date then IMEI; returns the rows written."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["date", "imei", "imsi", "msisdn", "rat"])
    days: dict[int, str] = {}
    picked: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}
    for imei, kind, value, seen in rows:
        if kind not in IMSI_KINDS or (until is not None and seen >= until):
            continue
        d = int(seen // 86400)
        text = days.get(d)
        if text is None:
            text = days[d] = datetime.fromtimestamp(d * 86400, UTC).strftime("%Y%m%d")
        imsi, _, msisdn = value.partition(MSISDN_SEP) if kind in MSISDN_KINDS else (value, "", "")
        seen_as = picked.get((text, imei, imsi))
        if seen_as is None:
            seen_as = picked[(text, imei, imsi)] = (set(), set())
        rat = RAT.get(kind)
        if rat:
            seen_as[0].add(rat)
        if msisdn:
            seen_as[1].add(msisdn)
    w.writerows(
        # a pair seen with two MSISDNs the same day (a number moved within the day): the greatest,
        # one row per pair and day as DIRBS's triplets have one msisdn
        [d, imei, imsi, max(msisdns, default=""), "|".join(sorted(rats))]
        for (d, imei, imsi), (rats, msisdns) in sorted(picked.items())
    )
    return len(picked)


def write_daily(
    rows: Sequence[Sighting], directory: str | Path, *, since: float, until: float
) -> list[tuple[str, int]]:
    """One ``<YYYYMMDD>_observations.csv`` per UTC day with sightings in ``[since, until)`` (each
    written to a temporary name and renamed); returns (file name, rows) per file."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    by_day: dict[int, list[Sighting]] = {}
    for r in rows:
        if r[1] in IMSI_KINDS and since <= r[3] < until:
            by_day.setdefault(int(r[3] // 86400), []).append(r)
    out = []
    for day in sorted(by_day):
        name = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d") + "_observations.csv"
        tmp = d / (name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            n = export_observations(by_day[day], f)
        tmp.replace(d / name)
        out.append((name, n))
    return out
