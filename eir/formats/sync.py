"""``eir lists sync --from URL``: follow a central list over HTTP.

One GET per run with ``If-None-Match`` / ``If-Modified-Since`` from the last successful import of
that URL (kept in ``<data_dir>/lists-sync.json``): 304 → nothing to do; 200 → the body is saved
under the URL's file name (so that a DIRBS delta's name still says blocked/unblocked/changed),
validated and imported like ``eir lists import`` (any format, recognised by its header unless
given), and only then are the validators remembered — a failed import is fetched again next time.
Bounded: a time-out per request and a cap on the body size.
"""

from __future__ import annotations

import json
import os
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Fetched", "SyncError", "fetch", "remember"]

MAX_BODY = 2 * 1024**3
"""Bytes a list download may have (a national list of tens of millions of IMEIs fits)."""


class SyncError(Exception):
    """The URL could not be fetched (network, HTTP status, size)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    """200 (``path`` holds the body) or 304 (not modified)."""
    path: Path | None
    etag: str | None
    last_modified: str | None


def _state_path(data_dir: str) -> Path:
    return Path(data_dir) / "lists-sync.json"


def _load(data_dir: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_state_path(data_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fetch(url: str, data_dir: str, *, timeout: float = 30.0) -> Fetched:
    """GET ``url`` conditionally; the body of a 200 goes to a file under ``data_dir``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SyncError(f"{url}: only http:// and https:// URLs")
    seen = _load(data_dir).get(url, {})
    req = urllib.request.Request(url, headers={"User-Agent": "eir-emulator lists sync"})
    if seen.get("etag"):
        req.add_header("If-None-Match", seen["etag"])
    if seen.get("last_modified"):
        req.add_header("If-Modified-Since", seen["last_modified"])
    name = posixpath.basename(parts.path) or "list.csv"
    target = Path(data_dir) / "sync" / name
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            size = 0
            with tmp.open("wb") as out:
                while chunk := resp.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise SyncError(f"{url}: larger than {MAX_BODY} bytes")
                    out.write(chunk)
            os.replace(tmp, target)
            return Fetched(200, target, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return Fetched(304, None, seen.get("etag"), seen.get("last_modified"))
        raise SyncError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise SyncError(f"{url}: {reason}") from None


def remember(url: str, data_dir: str, got: Fetched) -> None:
    """Keep the validators of a body that was imported (written atomically)."""
    state = _load(data_dir)
    state[url] = {k: v for k, v in (("etag", got.etag), ("last_modified", got.last_modified)) if v}
    path = _state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)
