"""List updates that arrive over MQTT from a central EIR / CEIR (``mqtt.lists_in``).

A message on ``mqtt.lists_topic`` is one update, in one of three shapes:

* JSON rows, a delta: ``{"id": "u-17", "rows": [{"op": "add", "imei": "35394206000002",
  "status": "black", "reason": "stolen"}, {"op": "remove", "imei": "35209900176148"}]}``
  (``op`` defaults to ``add``; ``kind`` ``equipment`` | ``pairing`` | ``lock`` at the top, pairing
  rows give ``imsi`` and ``imei``);
* JSON with a whole file: ``{"id": "u-18", "csv": "imei,status\\n…", "delta": false}`` (``delta``
  defaults to what the file says: an ``op`` column makes it a delta);
* the bytes of a CSV file itself (what ``eir lists import`` reads): a full replacement unless it
  has an ``op`` column.

A file (raw, or in ``csv`` with an optional ``"format"``) may be in any format of ``eir lists import
--format`` — DIRBS lists, GSMA / PyHSS TAC tables, Open5GS eird JSON lines — named by ``format`` or
recognised by its header, and is imported as that command does (eir/formats).

Each is turned into the CSV text ``eir lists import`` reads and validated by the same parser
(:func:`eir.lists.parse_csv`), then applied as one new list version by :func:`eir.lists.import_parsed`
(deltas through ``store.import_version(delta=True, removals=…)``). Nothing is applied when a row is
bad. The acknowledgement goes to ``<prefix>/lists/ack``: ``{"id", "ok": true, "version", "rows",
"summary"}`` or ``{"id", "ok": false, "error", "errors": [{"line", "reason", "text"}]}``.

QoS 1 means an update may arrive twice (a reconnect before the PUBACK): an ``id`` applied recently
is not applied again; its acknowledgement is sent again, flagged ``duplicate``.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import io
import json
from typing import Any

from eir.lists import ListFileError, ParsedList, import_parsed, parse_csv
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import LIST_ENTRIES, LIST_UPDATES
from eir.store.base import IdentityStore

ACK_TOPIC = "lists/ack"
MAX_REPORTED = 100
"""Bad rows listed in a rejection (all are counted)."""

_EQUIPMENT_FIELDS = ("op", "imei", "status", "imsi", "reason")
_PAIRING_FIELDS = ("op", "imsi", "imei", "reason")


INLINE_PARSE = 65536
"""Updates longer than this (characters) are parsed in a thread, so that checks keep flowing."""


def _parse(text: str, kind: str, delta: bool | None) -> ParsedList:
    return parse_csv(io.StringIO(text), kind=kind, delta=delta, max_reported=MAX_REPORTED)


_FORMAT_MARK = "\x00format="
"""Prefix update_to_csv puts before a file whose format the message named (never in a real file)."""


def _first_line_format(text: str) -> str | None:
    from eir.formats import detect_header

    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return detect_header(line)
    return None


class UpdateError(ValueError):
    """The message is not an update at all (not JSON nor CSV, wrong shape, too large)."""


def update_to_csv(payload: bytes, max_bytes: int) -> tuple[str, str, str, bool | None]:
    """``(id, kind, csv_text, delta)`` from one message; raises :class:`UpdateError`."""
    if len(payload) > max_bytes:
        raise UpdateError(
            f"update of {len(payload)} bytes is larger than mqtt.max_update_bytes ({max_bytes})"
        )
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UpdateError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    if not text.lstrip().startswith("{") or _first_line_format(text) == "open5gs-eir":
        if not text.strip():
            raise UpdateError("empty message")
        return "", "equipment", text, None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UpdateError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(doc, dict):
        raise UpdateError("a JSON update must be an object")
    uid = doc.get("id", "")
    if not isinstance(uid, str | int) or isinstance(uid, bool) or len(str(uid)) > 200:
        raise UpdateError("id: a string (at most 200 characters)")
    kind = doc.get("kind", "equipment")
    if kind not in ("equipment", "pairing", "lock"):
        raise UpdateError(f"kind: equipment, pairing or lock; got {kind!r}")
    delta = doc.get("delta")
    if delta is not None and not isinstance(delta, bool):
        raise UpdateError("delta: true or false")
    unknown = sorted(set(doc) - {"id", "kind", "delta", "rows", "csv", "format"})
    if unknown:
        raise UpdateError(f"unknown field {', '.join(unknown)} (id, kind, delta, rows, csv, format)")
    if ("rows" in doc) == ("csv" in doc):
        raise UpdateError("give either rows (a list of row objects) or csv (the text of a list file)")
    if "csv" in doc:
        if not isinstance(doc["csv"], str):
            raise UpdateError("csv: the text of a list file")
        fmt = doc.get("format")
        if fmt is not None:
            from eir.formats import FORMATS

            if fmt not in FORMATS:
                raise UpdateError(f"format: one of {', '.join(FORMATS)}")
            if fmt != "eir":
                return str(uid), kind, _FORMAT_MARK + fmt + "\n" + doc["csv"], delta
        return str(uid), kind, doc["csv"], delta
    if "format" in doc:
        raise UpdateError("format: only with csv (rows are always the eir columns)")
    rows = doc["rows"]
    if not isinstance(rows, list) or not rows:
        raise UpdateError("rows: a non-empty list of row objects")
    fields = _EQUIPMENT_FIELDS if kind == "equipment" else _PAIRING_FIELDS
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(fields)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UpdateError(f'rows[{i}]: an object such as {{"op": "add", "imei": …}}')
        extra = sorted(set(row) - set(fields))
        if extra:
            raise UpdateError(f"rows[{i}]: unknown field {', '.join(extra)} ({', '.join(fields)})")
        cells = []
        for f in fields:
            v = row.get(f, "add" if f == "op" else "")
            if not isinstance(v, str | int) or isinstance(v, bool):
                raise UpdateError(f"rows[{i}].{f}: a string")
            cells.append(str(v))
        w.writerow(cells)
    return str(uid), kind, out.getvalue(), True if delta is None else delta


class ListUpdates:
    """Applies list updates to a store, one at a time (the MQTT task awaits each)."""

    def __init__(
        self,
        store: IdentityStore,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        remember: int = 256,
        limited: RateLimitedLog | None = None,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._done: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._remember = remember
        self._log = get_logger(component="mqtt_lists")
        self._limited = limited or RateLimitedLog()
        """Whoever can publish on the topic controls how many rejections there are: bounded log."""
        for result in ("applied", "rejected", "duplicate"):
            LIST_UPDATES.labels(result)

    async def handle(self, payload: bytes) -> tuple[str, dict[str, Any]]:
        """Apply one message; the acknowledgement's (topic under the prefix, body)."""
        return ACK_TOPIC, await self.apply(payload)

    async def apply(self, payload: bytes) -> dict[str, Any]:
        try:
            uid, kind, text, delta = update_to_csv(payload, self.max_bytes)
        except UpdateError as e:
            return self._rejected("", str(e), [])
        if uid and uid in self._done:
            LIST_UPDATES.labels("duplicate").inc()
            return {**self._done[uid], "duplicate": True}
        fmt: str | None = None
        if text.startswith(_FORMAT_MARK):
            fmt, _, text = text[len(_FORMAT_MARK) :].partition("\n")
        elif kind == "equipment":
            fmt = _first_line_format(text)
        if fmt not in (None, "eir"):
            return await self._apply_other(uid, text, fmt)
        try:
            if len(text) > INLINE_PARSE:  # a whole national list: parsed off the event loop's thread
                parsed = await asyncio.to_thread(_parse, text, kind, delta)
            else:
                parsed = _parse(text, kind, delta)
        except ListFileError as e:
            return self._rejected(uid, str(e).replace("<stream>: ", ""), [])
        if not parsed.ok:
            errors = [{"line": b.line, "reason": b.reason, "text": b.text[:200]} for b in parsed.bad]
            return self._rejected(
                uid, f"{parsed.bad_count} bad rows, nothing applied", errors, parsed.bad_count
            )
        try:
            version = await import_parsed(self.store, parsed, source=f"mqtt:{uid}" if uid else "mqtt")
        except Exception as e:  # the store refused or is down: the previous version stays
            return self._rejected(uid, f"not applied: {type(e).__name__}: {e}", [])
        LIST_UPDATES.labels("applied").inc()
        LIST_ENTRIES.labels("equipment").set(version.entries)
        LIST_ENTRIES.labels("pairing").set(version.pairings)
        ack: dict[str, Any] = {
            "id": uid,
            "ok": True,
            "version": version.id,
            "rows": parsed.rows,
            "entries": version.entries,
            "delta": parsed.delta,
            "summary": parsed.summary(),
        }
        self._log.info(
            "list_update_applied", id=uid or None, version=version.id, rows=parsed.rows, delta=parsed.delta
        )
        if uid:
            self._done[uid] = ack
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
        return ack

    async def _apply_other(self, uid: str, text: str, fmt: str | None) -> dict[str, Any]:
        """A national or vendor format (DIRBS, GSMA TAC, PyHSS, Open5GS; eir/formats), named by the
        message's ``format`` or recognised by its header: validated and imported as ``eir lists
        import --format`` does (a reference table, or a new list version)."""
        from eir.lists import import_text

        source = f"mqtt:{uid}" if uid else "mqtt"
        try:
            report = await import_text(self.store, text, fmt=fmt, name=source)
        except ListFileError as e:
            return self._rejected(uid, str(e), [])
        except Exception as e:  # the store refused or is down: the previous version stays
            return self._rejected(uid, f"not applied: {type(e).__name__}: {e}", [])
        if not report.get("imported"):
            errors = list(report.get("errors", []))[:MAX_REPORTED]
            bad = int(report.get("bad_rows", 0))
            return self._rejected(uid, f"{bad} bad rows, nothing applied", errors, bad)
        LIST_UPDATES.labels("applied").inc()
        ack: dict[str, Any] = {
            "id": uid,
            "ok": True,
            "version": report.get("version"),
            "rows": report.get("rows"),
            "format": report.get("format"),
            "summary": f"{report.get('rows')} rows ({report.get('format')})",
        }
        if report.get("table"):
            ack["table"] = report["table"]
        self._log.info("list_update_applied", id=uid or None, version=ack["version"], format=ack["format"])
        if uid:
            self._done[uid] = ack
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
        return ack

    def _rejected(self, uid: str, error: str, errors: list[dict[str, Any]], bad: int = 0) -> dict[str, Any]:
        LIST_UPDATES.labels("rejected").inc()
        self._limited.warning(
            self._log,
            "list_update_rejected",
            "list_update_rejected",
            id=uid or None,
            error=error[:300],
            bad_rows=bad or None,
        )
        return {"id": uid, "ok": False, "error": error, "bad_rows": bad, "errors": errors}
