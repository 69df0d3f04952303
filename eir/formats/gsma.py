"""TAC reference tables: the GSMA TAC database and PyHSS's TAC CSV.

* ``gsma-tac``: pipe-separated, header ``TAC|Marketing Name|Internal Model Name|Manufacturer|Bands|
  Allocation Date|Country Code|Fixed Code|Manufacturer Code|Radio Interface|Brand Name|Model Name|
  Operating System|NFC|Bluetooth|WLAN|Device Type`` (the real file is licensed by the GSMA; the
  tests write sample rows).
* ``pyhss-tac``: ``tac,name,model`` (PyHSS's TAC database import), for users migrating from it.

Both become the ``tac`` reference table (TAC → device record, eir/formats/records.py): not a
black/white list, but what the ``tac_not_allocated`` rule and ``eir check --explain`` read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from eir.formats._common import rows_of
from eir.formats.records import SEP, TAC_FIELDS

if TYPE_CHECKING:
    from eir.lists import ParsedReference

__all__ = ["GSMA_COLUMNS", "parse_tac_table"]

GSMA_COLUMNS = (
    "tac",
    "marketing name",
    "internal model name",
    "manufacturer",
    "bands",
    "allocation date",
    "country code",
    "fixed code",
    "manufacturer code",
    "radio interface",
    "brand name",
    "model name",
    "operating system",
    "nfc",
    "bluetooth",
    "wlan",
    "device type",
)
PYHSS_COLUMNS = ("tac", "name", "model")
_PYHSS_AS = {"name": "brand_name", "model": "model_name"}


def parse_tac_table(
    fmt: str, f: IO[str], name: str, out: ParsedReference, *, progress: Callable[[], None] | None = None
) -> None:
    from eir.lists import ListFileError

    gsma = fmt == "gsma-tac"
    rows = rows_of(f, "|" if gsma else ",")
    first = next(rows, None)
    if first is None:
        raise ListFileError(f"{name}: empty file (a {fmt} file starts with its header)")
    line, header = first
    cols = [c.strip().lower() for c in header]
    expected = GSMA_COLUMNS if gsma else PYHSS_COLUMNS
    missing = [c for c in ("tac", *(expected[1:2])) if c not in cols]
    if missing:
        raise ListFileError(
            f"{name}: line {line}: a {fmt} file's header is {('|' if gsma else ',').join(expected)}; "
            f"missing {', '.join(missing)}"
        )
    out.ignored_columns = [c for c in cols if c not in expected]
    i_tac = cols.index("tac")
    # the record: the file's cells in TAC_FIELDS order (eir/formats/records.py); a GSMA file in
    # its standard column order is one slice and one join per row
    names = [_PYHSS_AS.get(c, c.replace(" ", "_")) for c in cols]
    where = [names.index(f) if f in names else -1 for f in TAC_FIELDS]
    standard = i_tac == 0 and where == list(range(1, len(TAC_FIELDS) + 1))
    ncols = len(cols)
    seen = out.seen
    append = out.items.append
    join = SEP.join
    nrows = 0
    t0 = time.monotonic()
    for line, row in rows:
        nrows += 1
        if progress is not None and nrows % 65536 == 0:
            progress()
        if len(row) != ncols:
            out.bad_row(line, f"{len(row)} columns, the header has {ncols}", row)
            continue
        tac = row[i_tac]
        if len(tac) != 8 or not tac.isdigit() or not tac.isascii():
            tac = tac.strip()
            if len(tac) != 8 or not tac.isdigit() or not tac.isascii():
                out.bad_row(line, f"not a TAC (8 digits): {tac!r}", row)
                continue
        if tac in seen:
            out.duplicates += 1
            continue
        seen[tac] = line
        append((tac, join(row[1:]) if standard else join([row[i] if i >= 0 else "" for i in where])))
    out.rows = nrows
    out.seconds = time.monotonic() - t0
