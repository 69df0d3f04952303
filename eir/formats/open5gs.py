"""Open5GS eird records, as JSON lines from ``mongoexport`` (``{"pei": …, "supi": …, "status": …}``),
for users migrating from Open5GS's EIR.

``pei`` is ``imei-<15 digits>``, ``imeisv-<16 digits>`` or bare digits; ``supi`` (``imsi-<digits>``,
optional) is kept as the entry's IMSI; ``status`` is white/grey/black, also spelled
``whitelisted``/``greylisted``/``blacklisted`` or ``whitelist``…  Other keys (``_id``) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from eir.lists import parse_identity
from eir.model import Status

if TYPE_CHECKING:
    from eir.lists import ParsedList

__all__ = ["parse_open5gs"]

TAG = "open5gs-eir"
_STATUS = {
    "white": Status.WHITE,
    "grey": Status.GREY,
    "gray": Status.GREY,
    "black": Status.BLACK,
}


def _status(v: Any) -> Status:
    s = str(v).strip().lower()
    for suffix in ("listed", "list"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    st = _STATUS.get(s)
    if st is None:
        raise ValueError(f"status must be white, grey or black (…listed), not {v!r}")
    return st


def parse_open5gs(
    f: IO[str], name: str, out: ParsedList, *, progress: Callable[[], None] | None = None
) -> None:
    seen = out.seen
    nrows = 0
    for line, text in enumerate(f, 1):
        if not text.strip():
            continue
        nrows += 1
        if progress is not None and nrows % 65536 == 0:
            progress()
        try:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"not JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(doc, dict) or "pei" not in doc:
                raise ValueError("not an Open5GS EIR record (no pei)")
            pei = str(doc["pei"]).strip()
            for prefix in ("imeisv-", "imei-"):
                if pei.startswith(prefix):
                    pei = pei[len(prefix) :]
                    break
            status = _status(doc.get("status", ""))
            supi = str(doc.get("supi") or "").strip()
            if supi.startswith("imsi-"):
                supi = supi[5:]
            if supi and not (supi.isdigit() and supi.isascii() and 5 <= len(supi) <= 15):
                raise ValueError(f"supi is not an IMSI: {doc.get('supi')!r}")
            ent = parse_identity(pei, status)
            if ent.key in seen:
                out.duplicates += 1
                continue
            seen[ent.key] = line
            out.rows_.rows.append((ent.kind, ent.key, ent.last, status, supi or None, TAG))
        except ValueError as err:
            out.bad_row(line, str(err), [text.rstrip("\n")])
    out.rows = nrows
    out.slice_tag = TAG
