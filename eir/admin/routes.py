"""The admin API's endpoints (README "Admin API", the OpenAPI document ``eir/admin/openapi.json``).

One :class:`AdminApi` per process holds what the endpoints read and change: the config, the checker
(its policy, sightings tracker and caches), the list store, the running servers (peers, readiness)
and the fault registry (:data:`eir.faults.REGISTRY`). :meth:`AdminApi.handle` takes one request
(method, target, headers, body) and gives one :class:`~eir.admin.problems.Response`; it never
raises. It knows nothing of HTTP framing (:mod:`eir.admin.server` does that).

List changes (entries, pairings, locks, imports, rollback) are each one new list version, made by
the store atomically (``import_version(..., delta=True, removals=...)``), exactly as CLI imports
are; the checker of this process drops its cached answers at once (``lists_changed``), other
processes learn of the version through the store's notifications.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from eir.admin.auth import Role, TokenTable
from eir.admin.problems import ApiError, Response, json_response, problem
from eir.config import Config
from eir.faults import REGISTRY, FaultLimitError, FaultRegistry, FaultSpecError
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import PROTOCOL_ERRORS, REFUSED
from eir.model import CheckRequest, Interface, Status
from eir.servers._http import BodyAbortedError
from eir.sightings import imsi_of
from eir.store.base import (
    EntryKind,
    IdentityStore,
    ListEntry,
    ListVersion,
    Pairing,
    PairingKind,
    Sightings,
    StoreError,
    VersionNotFoundError,
)

__all__ = ["API_PREFIX", "OPENAPI_PATH", "AdminApi"]

API_PREFIX = "/api/v1"
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
IFACE = "admin"
MAX_PAGE = 1000
MAX_REPORTED = 1000
"""Bad rows listed in an import report (all are counted)."""
_FAULT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SECRET_KEY = re.compile(r"(^|_)(token|tokens|password|secret|key)$")
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)([^@]*)(@)", re.IGNORECASE)

Handler = Callable[["ApiRequest"], Awaitable[Response]]
T = TypeVar("T")


_INTERFACE = {"diameter": "s13", "m3ua": "map", "n5g": "n5g", "metrics": "metrics", "admin": "admin"}
"""Server name → the interface name used everywhere a person reads it (logs, metrics, CLI, this API)."""


class BodyStream(Protocol):
    """A request body read as it arrives (:class:`eir.servers._http.RequestBody`)."""

    @property
    def done(self) -> bool: ...

    async def read(self) -> bytes: ...

    async def drain(self) -> None: ...


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    params: dict[str, str]
    args: tuple[str, ...]
    body: bytes
    role: Role | None
    stream: BodyStream | None = None
    """The body as it arrives (a CSV import with a write token), instead of ``body``."""


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params: frozenset[str]
    public: bool = False
    """Answered without a token (health, readiness, the OpenAPI document)."""
    body: str = "none"
    """none | json | csv"""


def _route(
    method: str,
    path: str,
    handler: Handler,
    params: Sequence[str] = (),
    *,
    public: bool = False,
    body: str = "none",
) -> Route:
    rx = (
        "^" + re.sub(r"\{[a-z_]+\}", "([^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
    )
    return Route(method, re.compile(rx), handler, frozenset(params), public, body)


class AdminApi:
    """The endpoints of one process (module docstring)."""

    def __init__(
        self,
        config: Config,
        checker: Any,
        store: IdentityStore,
        servers: Sequence[Any] = (),
        *,
        faults: FaultRegistry = REGISTRY,
        tokens: TokenTable | None = None,
    ) -> None:
        self.config = config
        self.checker = checker
        self.store = store
        self.servers = list(servers)
        self.faults = faults
        self.tokens = tokens or TokenTable.from_config(config.admin)
        self.max_body = config.admin.max_body
        self.log = get_logger(interface=IFACE)
        self.limited = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self._errors: dict[str, Any] = {}
        self._openapi: bytes | None = None
        self.control: Any = None
        """The workers' control channel (eir/control.py) under ``--workers``: fault and sightings
        changes made here are sent to every worker. None: one process."""
        self._write_lock = asyncio.Lock()
        """List changes one at a time (each builds on the version before it)."""
        self.imports = 0
        """``POST /lists/import`` requests in progress (spooling, parsing or waiting for the lock):
        at most ``admin.max_imports_in_flight``."""
        r = _route
        self.routes: list[Route] = [
            r("GET", "/health", self.health, public=True),
            r("GET", "/ready", self.ready, public=True),
            r("GET", "/openapi.json", self.openapi, public=True),
            r("GET", "/check", self.check, ("imei", "imsi", "sv", "origin")),
            r(
                "GET",
                "/lists/entries",
                self.search_entries,
                ("prefix", "first", "last", "status", "kind", "limit", "offset"),
            ),
            r("GET", "/lists/entries/{imei}", self.get_entry),
            r("PUT", "/lists/entries/{imei}", self.put_entry, body="json"),
            r("DELETE", "/lists/entries/{imei}", self.delete_entry),
            r(
                "POST",
                "/lists/import",
                self.import_csv,
                ("format", "dry_run", "kind", "delta", "skip_bad"),
                body="csv",
            ),
            r("GET", "/lists/versions", self.versions),
            r("POST", "/lists/rollback", self.rollback, body="json"),
            r("GET", "/lists/export", self.export, ("kind",)),
            r("GET", "/lists/pairings", self.list_pairings, ("imsi", "imei", "limit", "offset")),
            r("PUT", "/lists/pairings/{imsi}/{imei}", self.put_pairing, body="json"),
            r("DELETE", "/lists/pairings/{imsi}/{imei}", self.delete_pairing),
            r("GET", "/lists/locks", self.list_locks, ("imsi", "imei", "limit", "offset")),
            r("PUT", "/lists/locks/{imsi}/{imei}", self.put_lock, body="json"),
            r("DELETE", "/lists/locks/{imsi}/{imei}", self.delete_lock),
            r("GET", "/sightings/{imei}", self.sightings),
            r("DELETE", "/sightings/{imei}", self.clear_sightings),
            r("GET", "/duplicates", self.list_duplicates, ("limit", "offset")),
            r("GET", "/duplicates/{imei}", self.get_duplicate),
            r("DELETE", "/duplicates/{imei}", self.clear_duplicate),
            r("GET", "/peers", self.peers),
            r("GET", "/faults", self.list_faults),
            r("POST", "/faults", self.add_fault, body="json"),
            r("DELETE", "/faults", self.clear_faults),
            r("DELETE", "/faults/{id}", self.delete_fault),
            r("GET", "/config", self.effective_config),
        ]

    # --- dispatch --------------------------------------------------------------------------------
    def error_counter(self, label: str) -> Any:
        c = self._errors.get(label)
        if c is None:
            c = self._errors[label] = PROTOCOL_ERRORS.labels(IFACE, label)
        return c

    def body_limit(self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]]) -> int:
        """The body limit of one request, from its head (``HttpLimits.body_limit``): a CSV import
        with a write token may send ``admin.max_import_body``; anything else ``admin.max_body``, so
        that nobody without a write token makes the server hold a large body."""
        if self.stream_body(method, target, headers):
            return self.config.admin.max_import_body
        return self.max_body

    def stream_body(self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """``HttpLimits.stream_body``: a CSV import with a write token is handed up at its head and
        its body spooled to a temporary file as it arrives (:meth:`import_csv`); every other body
        is at most ``admin.max_body`` and gathered."""
        if method == "POST" and target.startswith(API_PREFIX + "/lists/import"):
            auth = next((v for n, v in headers if n == b"authorization"), None)
            return self.tokens.role(auth) == "write"
        return False

    async def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        peer: str = "",
        stream: BodyStream | None = None,
    ) -> Response:
        """One request → one answer; never raises. ``stream``: the body arrives through it (a
        streamed import); whatever of it the endpoint did not read is read and dropped before the
        answer (so that a refusal does not stall the connection's flow control)."""
        try:
            try:
                return await self._handle(method, target, headers, body, stream)
            finally:
                if stream is not None and not stream.done:
                    await stream.drain()
        except BodyAbortedError as e:
            # over the limit (the HTTP core answers 413 itself and counts it), stalled (the core
            # answered 408) or the client went (counted by the HTTP layer): nothing changed, and
            # this answer goes nowhere (the core ignores answers to such a stream)
            label = "body_too_large" if e.reason == "too_large" else "body_aborted"
            return problem(413 if e.reason == "too_large" else 400, f"body {e.reason}", cause=label)
        except ApiError as e:
            label = e.cause or _LABELS.get(e.status, "bad_request")
            if e.status in (401, 403):
                REFUSED.labels(IFACE, label).inc()
            else:
                self.error_counter(label).inc()
            self.limited.warning(
                self.log,
                f"admin_refused:{label}",
                "admin_request_refused",
                status=e.status,
                method=method[:16],
                path=target.split("?", 1)[0][:128],
                detail=e.detail[:200],
                peer=peer,
            )
            return e.response(target.split("?", 1)[0][:256])
        except (StoreError, OSError, TimeoutError) as e:
            # the store is down or refused the change: the previous version stays active
            self.error_counter("store_unavailable").inc()
            self.limited.warning(
                self.log,
                "admin_store_error",
                "admin_store_error",
                method=method[:16],
                path=target.split("?", 1)[0][:128],
                error=f"{type(e).__name__}: {e}"[:200],
            )
            return problem(503, f"the store failed: {type(e).__name__}: {e}"[:300], cause="store_unavailable")
        except Exception as e:
            self.error_counter("internal").inc()
            self.log.exception("admin_internal_error", method=method[:16], path=target.split("?", 1)[0][:128])
            return problem(500, f"internal error ({type(e).__name__})")

    async def _handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        stream: BodyStream | None = None,
    ) -> Response:
        try:
            parts = urlsplit(target)
        except ValueError:
            raise ApiError(400, "malformed request target") from None
        path = parts.path
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, f"no such resource (the API is under {API_PREFIX}/)", cause="not_found")
        sub = path[len(API_PREFIX) :]
        want = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route in self.routes:
            m = route.pattern.match(sub)
            if m is None:
                continue
            if route.method != want:
                allowed.append(route.method)
                continue
            role = self._authorize(route, method, headers)
            if stream is not None and route.body != "csv":
                raise ApiError(400, f"{method} {sub} takes no streamed body")  # pragma: no cover
            if route.body == "none" and body:
                raise ApiError(400, f"{method} {sub} takes no request body")
            if route.body != "csv" and len(body) > self.max_body:
                raise ApiError(413, f"request body over {self.max_body} octets", cause="body_too_large")
            args = tuple(unquote(a) for a in m.groups())
            params = _query(parts.query, route.params)
            return await route.handler(ApiRequest(method, sub, params, args, body, role, stream))
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            raise ApiError(
                405,
                f"{method} not allowed on {sub}",
                cause="method_not_allowed",
                headers=[(b"allow", ", ".join(sorted(set(allowed))).encode())],
            )
        raise ApiError(404, f"no such resource: {sub[:128]}", cause="not_found")

    def _authorize(self, route: Route, method: str, headers: Sequence[tuple[bytes, bytes]]) -> Role | None:
        if route.public:
            return None
        auth = None
        for n, v in headers:
            if n == b"authorization":
                auth = v
                break
        role = self.tokens.role(auth)
        if role is None:
            raise ApiError(
                401,
                "a bearer token is required (Authorization: Bearer <token>)"
                if not auth
                else "the bearer token is not valid",
                cause="unauthorized",
                headers=[(b"www-authenticate", b'Bearer realm="eir-admin"')],
            )
        if route.method != "GET" and role != "write":
            raise ApiError(403, "this token is read-only; changes need a write token", cause="forbidden")
        return role

    # --- health ----------------------------------------------------------------------------------
    async def health(self, req: ApiRequest) -> Response:
        from eir import __version__

        return json_response(200, {"status": "ok", "version": __version__})

    async def ready(self, req: ApiRequest) -> Response:
        store_ok, store_detail, version = True, "ok", None
        try:
            version = await asyncio.wait_for(self.store.active_version(), self.config.store.connect_timeout)
        except Exception as e:
            store_ok, store_detail = False, f"{type(e).__name__}: {e}"[:200]
        listeners = {
            _INTERFACE.get(s.name, s.name): [f"{h}:{p}/{t}" for h, p, t in s.addresses()]
            for s in self.servers
            if getattr(s, "name", None)
        }
        listening = all(listeners.values())
        body = {
            "ready": store_ok and listening,
            "store": store_detail,
            "listeners": listeners,
            "list_version": version,
        }
        if body["ready"]:
            return json_response(200, body)
        why = "store unreachable" if not store_ok else "a listener is not up"
        return problem(503, why, cause="not_ready", extra=body)

    async def openapi(self, req: ApiRequest) -> Response:
        if self._openapi is None:
            self._openapi = OPENAPI_PATH.read_bytes()
        return Response(200, self._openapi)

    # --- check -------------------------------------------------------------------------------------
    async def check(self, req: ApiRequest) -> Response:
        from eir.cli import imei_text, imsi_text, software_version
        from eir.explain import explained_check, verdict_json

        p = req.params
        if "imei" not in p:
            raise ApiError(400, "query parameter imei is required", cause="missing_parameter")
        imei = _arg(imei_text, p["imei"], "imei")
        imsi = _arg(imsi_text, p["imsi"], "imsi") if "imsi" in p else None
        sv = _arg(software_version, p["sv"], "sv") if "sv" in p else None
        origin = p.get("origin") or None
        if origin is not None and len(origin) > 255:
            raise ApiError(400, "origin: at most 255 characters")
        request = CheckRequest(
            imei=imei, software_version=sv, imsi=imsi, origin=origin, interface=Interface.CLI
        )
        verdict, steps = await explained_check(self.checker, request)
        return json_response(200, verdict_json(verdict, steps))

    # --- list entries --------------------------------------------------------------------------------
    async def search_entries(self, req: ApiRequest) -> Response:
        p = req.params
        prefix = p.get("prefix", "")
        if prefix and not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 16):
            raise ApiError(400, "prefix: up to 16 digits")
        lo = _imei_bound(p, "first", "0" * 14)
        hi = _imei_bound(p, "last", "9" * 14)
        if lo > hi:
            raise ApiError(400, "first: must not be after last")
        status = _status(p["status"]) if "status" in p else None
        kind = p.get("kind")
        if kind is not None and kind not in {k.value for k in EntryKind}:
            raise ApiError(400, f"kind: one of {', '.join(k.value for k in EntryKind)}")
        limit, offset = _paging(p)
        page: list[dict[str, Any]] = []
        total = 0
        async for e in _yielding(self.store.export()):
            if not isinstance(e, ListEntry):
                continue
            if prefix and not e.key.startswith(prefix):
                continue
            if status is not None and e.status is not status:
                continue
            if kind is not None and e.kind.value != kind:
                continue
            a, b = _span(e)
            if b < lo or a > hi:
                continue
            if offset <= total < offset + limit:
                page.append(_entry(e))
            total += 1
        return json_response(200, {"entries": page, "total": total, "offset": offset, "limit": limit})

    async def get_entry(self, req: ApiRequest) -> Response:
        e = _identity(req.args[0])
        exact: ListEntry | None = None
        covered: ListEntry | None = None
        if e.kind is EntryKind.IMEI:
            look = await self.store.lookup(e.key)
            exact, covered = look.imei, look.range
        elif e.kind is EntryKind.IMEISV:
            look = await self.store.lookup(e.key[:14], e.key)
            exact, covered = look.imeisv, look.imei or look.range
        else:
            async for x in _yielding(self.store.export()):
                if isinstance(x, ListEntry) and (x.kind, x.key, x.last) == (e.kind, e.key, e.last):
                    exact = x
                    break
        if exact is None and covered is None:
            raise ApiError(404, f"{req.args[0]} is on no list", cause="not_listed")
        return json_response(
            200,
            {"entry": _entry(exact) if exact else None, "covered_by": _entry(covered) if covered else None},
        )

    async def put_entry(self, req: ApiRequest) -> Response:
        body = _json_object(req.body, {"status"}, {"reason", "imsi"})
        status = _status(body["status"])
        reason = _opt_text(body, "reason")
        imsi = _opt_imsi(body, "imsi")
        e = dataclasses.replace(_identity(req.args[0]), status=status, reason=reason, imsi=imsi)
        v = await self._change([e], [], (), f"admin: {_cell(e)} {status.value}")
        return json_response(200, {"version": v.id})

    async def delete_entry(self, req: ApiRequest) -> Response:
        from eir.lists import find_absent_removals

        e = _identity(req.args[0])
        async with self._write_lock:
            if await find_absent_removals(self.store, [e]):
                raise ApiError(404, f"{req.args[0]} is not listed", cause="not_listed")
            v = await self._change_locked([], [], [e], f"admin: remove {_cell(e)}")
        return json_response(200, {"version": v.id})

    async def _change(
        self,
        entries: Sequence[ListEntry],
        pairings: Sequence[Pairing],
        removals: Sequence[ListEntry | Pairing],
        source: str,
    ) -> ListVersion:
        async with self._write_lock:
            return await self._change_locked(entries, pairings, removals, source)

    async def _change_locked(
        self,
        entries: Sequence[ListEntry],
        pairings: Sequence[Pairing],
        removals: Sequence[ListEntry | Pairing],
        source: str,
    ) -> ListVersion:
        v = await self.store.import_version(entries, pairings, source=source, delta=True, removals=removals)
        self._changed(v, source)
        return v

    def _changed(self, v: ListVersion, source: str) -> None:
        changed = getattr(self.checker, "lists_changed", None)
        if changed is not None:
            changed(v.id)
        self.log.info("admin_lists_changed", version=v.id, source=source[:120])

    # --- import, versions, rollback, export -------------------------------------------------------------
    async def import_csv(self, req: ApiRequest) -> Response:
        from eir.formats import FORMATS

        p = req.params
        fmt = p.get("format", "eir")
        if fmt != "auto" and fmt not in FORMATS:
            raise ApiError(400, f"format: one of auto, {', '.join(FORMATS)}; got {fmt!r}")
        dry_run = _bool(p, "dry_run", False)
        skip_bad = _bool(p, "skip_bad", False)
        delta = _bool(p, "delta", None)
        kind = p.get("kind", "equipment")
        if kind not in ("equipment", "pairing", "lock"):
            raise ApiError(400, "kind: one of equipment, pairing, lock")
        limit = self.config.admin.max_imports_in_flight
        if self.imports >= limit:
            # each one spools (1 MiB in memory, up to max_import_body on disk) and parses outside
            # the write lock: bounded, and the client told when to come back
            raise ApiError(
                503,
                f"{limit} imports are in progress (admin.max_imports_in_flight); retry later",
                cause="imports_busy",
                headers=[(b"retry-after", _IMPORT_RETRY_AFTER)],
            )
        self.imports += 1
        try:
            return await self._import_csv(req, fmt, dry_run, skip_bad, delta, kind)
        finally:
            self.imports -= 1

    async def _import_csv(
        self, req: ApiRequest, fmt: str, dry_run: bool, skip_bad: bool, delta: bool | None, kind: str
    ) -> Response:
        from eir.lists import ListFileError, parse_csv

        raw, size, blank = await _spool(req) if req.stream is not None else _gathered(req.body)
        with raw:
            if blank:
                raise ApiError(400, "the CSV body is empty", cause="bad_csv")
            stream = _BodyText(raw)
            big = size > (1 << 20)
            if fmt != "eir":
                return await self._import_other(
                    stream, None if fmt == "auto" else fmt, kind, dry_run, skip_bad, big
                )

            def parse() -> Any:
                return parse_csv(stream, kind=kind, delta=delta, max_reported=MAX_REPORTED)

            try:
                parsed = await asyncio.to_thread(parse) if big else parse()
            except ListFileError as e:
                raise ApiError(400, str(e), cause="bad_csv") from None
            except UnicodeDecodeError as e:  # pragma: no cover - parse_csv reports it as ListFileError
                raise ApiError(
                    400, f"the CSV body is not UTF-8 text ({e.reason} at byte {e.start})", cause="bad_csv"
                ) from None
        return await self._import_parsed(parsed, dry_run, skip_bad)

    async def _import_parsed(self, parsed: Any, dry_run: bool, skip_bad: bool) -> Response:
        from eir.lists import ListFileError, find_absent_removals, import_parsed, removal_text

        async with self._write_lock:
            if parsed.removals:
                parsed.absent_removals = await find_absent_removals(self.store, parsed.removals)
            report: dict[str, Any] = {
                "version": None,
                "dry_run": dry_run,
                "kind": parsed.kind,
                "delta": parsed.delta,
                "valid": parsed.ok,
                "rows": parsed.rows,
                "entries": len(parsed.entries),
                "pairings": len(parsed.pairings),
                "removals": len(parsed.removals),
                "duplicates": parsed.duplicates,
                "bad_rows": parsed.bad_count,
                "errors": [{"line": b.line, "reason": b.reason, "text": b.text[:200]} for b in parsed.bad],
                "absent_removals": [removal_text(r) for r in (parsed.absent_removals or [])[:MAX_REPORTED]],
                "ignored_columns": list(parsed.ignored_columns),
                "summary": parsed.summary(),
            }
            if dry_run:
                return json_response(200, report)
            if not parsed.ok and not skip_bad:
                raise ApiError(
                    422,
                    f"{parsed.bad_count} bad rows, nothing imported ({parsed.summary()})",
                    cause="bad_rows",
                    extra=report,
                )
            try:
                v = await import_parsed(self.store, parsed, skip_bad=skip_bad, source="admin: import")
            except ListFileError as e:
                raise ApiError(422, str(e), cause="bad_rows", extra=report) from None
            self._changed(v, "admin: import")
        report["version"] = v.id
        return json_response(200, report)

    async def _import_other(
        self, text: IO[str], fmt: str | None, kind: str, dry_run: bool, skip_bad: bool, big: bool
    ) -> Response:
        """A national or vendor format (eir/formats: DIRBS, GSMA TAC, PyHSS, Open5GS), or ``auto``
        (recognised by its header): the same validation and report as ``eir lists import --format``."""
        from eir.lists import ListFileError, import_text

        async with self._write_lock:
            try:
                report = await import_text(
                    self.store,
                    text,
                    fmt=fmt,
                    kind=kind,
                    dry_run=dry_run,
                    skip_bad=skip_bad,
                    name="admin: import",
                    in_thread=big,
                )
            except ListFileError as e:
                raise ApiError(400, str(e), cause="bad_csv") from None
            except UnicodeDecodeError as e:  # the format's header, read before the parse proper
                raise ApiError(
                    400, f"the CSV body is not UTF-8 text ({e.reason} at byte {e.start})", cause="bad_csv"
                ) from None
            report["dry_run"] = dry_run
            report["valid"] = report["bad_rows"] == 0
            report["summary"] = (
                f"{report['rows']} rows ({report['format']}), {report['bad_rows']} bad, "
                f"{report['duplicates']} duplicates"
            )
            if not dry_run and report.get("version") is None and not report.get("imported"):
                raise ApiError(422, "bad rows, nothing imported", cause="bad_rows", extra=report)
            if not dry_run and report.get("version") is not None:
                changed = getattr(self.checker, "lists_changed", None)
                if changed is not None:
                    changed(report["version"])
                self.log.info("admin_lists_changed", version=report["version"], source="admin: import")
        return json_response(200, report)

    async def versions(self, req: ApiRequest) -> Response:
        return json_response(200, {"versions": [_version(v) for v in await self.store.versions()]})

    async def rollback(self, req: ApiRequest) -> Response:
        body = _json_object(req.body, {"version"}, set())
        vid = body["version"]
        if isinstance(vid, float) and vid.is_integer():
            vid = int(vid)  # JSON has one number type: 5.0 is the integer 5
        if isinstance(vid, bool) or not isinstance(vid, int) or vid < 1:
            raise ApiError(400, "version: a positive integer")
        async with self._write_lock:
            try:
                v = await self.store.rollback(vid)
            except VersionNotFoundError as e:
                raise ApiError(404, str(e), cause="unknown_version") from None
            self._changed(v, f"admin: rollback to {vid}")
        return json_response(200, _version(v))

    async def export(self, req: ApiRequest) -> Response:
        from eir.lists import export_csv

        kind = req.params.get("kind", "all")
        if kind not in ("all", "equipment", "pairing", "lock"):
            raise ApiError(400, "kind: one of all, equipment, pairing, lock")
        out = io.StringIO()
        await export_csv(_yielding(self.store.export()), out, kind=kind)
        return Response(200, out.getvalue().encode(), b"text/csv; charset=utf-8")

    # --- pairings and locks ----------------------------------------------------------------------------
    async def list_pairings(self, req: ApiRequest) -> Response:
        return await self._list_pairs(req, PairingKind.PAIRING)

    async def list_locks(self, req: ApiRequest) -> Response:
        return await self._list_pairs(req, PairingKind.LOCK)

    async def put_pairing(self, req: ApiRequest) -> Response:
        return await self._put_pair(req, PairingKind.PAIRING)

    async def put_lock(self, req: ApiRequest) -> Response:
        return await self._put_pair(req, PairingKind.LOCK)

    async def delete_pairing(self, req: ApiRequest) -> Response:
        return await self._delete_pair(req, PairingKind.PAIRING)

    async def delete_lock(self, req: ApiRequest) -> Response:
        return await self._delete_pair(req, PairingKind.LOCK)

    async def _list_pairs(self, req: ApiRequest, kind: PairingKind) -> Response:
        p = req.params
        imsi = _imsi_arg(p["imsi"]) if "imsi" in p else None
        imei = _imei14_arg(p["imei"]) if "imei" in p else None
        limit, offset = _paging(p)
        rows = [
            x
            for x in await self.store.pairings()
            if x.kind is kind and (imsi is None or x.imsi == imsi) and (imei is None or x.imei == imei)
        ]
        rows.sort(key=lambda x: (x.imsi, x.imei))
        page = [_pair(x) for x in rows[offset : offset + limit]]
        return json_response(200, {"pairings": page, "total": len(rows), "offset": offset, "limit": limit})

    async def _put_pair(self, req: ApiRequest, kind: PairingKind) -> Response:
        body = _json_object(req.body, set(), {"reason"})
        pair = Pairing(
            kind=kind,
            imsi=_imsi_arg(req.args[0]),
            imei=_imei14_arg(req.args[1]),
            reason=_opt_text(body, "reason"),
        )
        v = await self._change([], [pair], (), f"admin: {kind.value} {pair.imsi},{pair.imei}")
        return json_response(200, {"version": v.id})

    async def _delete_pair(self, req: ApiRequest, kind: PairingKind) -> Response:
        imsi, imei = _imsi_arg(req.args[0]), _imei14_arg(req.args[1])
        pair = Pairing(kind=kind, imsi=imsi, imei=imei)
        async with self._write_lock:
            listed = any((x.kind, x.imsi, x.imei) == (kind, imsi, imei) for x in await self.store.pairings())
            if not listed:
                raise ApiError(404, f"no {kind.value} {imsi},{imei}", cause="not_listed")
            v = await self._change_locked([], [], [pair], f"admin: remove {kind.value} {imsi},{imei}")
        return json_response(200, {"version": v.id})

    # --- sightings ----------------------------------------------------------------------------------------
    async def sightings(self, req: ApiRequest) -> Response:
        imei = _imei14_arg(req.args[0], allow_sv=True)
        checker = self.checker
        policy = checker.policy
        window = float(policy.clone_window)
        now = time.time()
        tracker = getattr(checker, "sightings", None)
        imsis: dict[str, tuple[float, str]] = {}
        origins: dict[str, tuple[float, str]] = {}
        if tracker is not None:
            mem_i, mem_o = tracker.seen(imei)
            for table, values in ((imsis, mem_i), (origins, mem_o)):
                for value, ts in values.items():
                    table[value] = (ts, "memory")
        stored_error = None
        try:
            rows = await checker.observations.read_sightings(now - window, imei=imei, limit=1000)
        except Exception as e:
            rows = []
            stored_error = f"{type(e).__name__}: {e}"[:200]
        for _imei, kind, value, ts in rows:
            if kind == "c":  # an operator's clear (eir/sightings.py): a marker, not a sighting
                continue
            table = origins if kind == "o" else imsis  # the other kinds are IMSIs (eir/sightings.py)
            value = imsi_of(kind, value)
            old = table.get(value)
            if old is None:
                table[value] = (ts, "store")
            else:
                table[value] = (max(old[0], ts), "both" if old[1] != "store" else "store")
        cutoff = now - window
        n_i = sum(1 for ts, _ in imsis.values() if ts >= cutoff)
        n_o = sum(1 for ts, _ in origins.values() if ts >= cutoff)
        reason = (
            policy.clone_reason(Sightings(distinct_imsis=n_i, distinct_origins=n_o))
            if policy.clone_enabled
            else None
        )
        return json_response(
            200,
            {
                "imei": imei,
                "window": window,
                "clone_enabled": bool(policy.clone_enabled),
                "clone_max_imsis": policy.clone_max_imsis,
                "imsis": _seen(imsis, "imsi", cutoff),
                "origins": _seen(origins, "origin", cutoff),
                "distinct_imsis": n_i,
                "distinct_origins": n_o,
                "clone_suspected": reason is not None,
                "clone_reason": reason,
                "store_error": stored_error,
            },
        )

    # --- duplicate_mk1 flags (eir/duplicates.py) ---------------------------------------------------
    def _dup_store(self) -> IdentityStore:
        """The store of the flags: the observations store (where the classifier keeps them)."""
        return getattr(self.checker, "observations", None) or self.store

    async def list_duplicates(self, req: ApiRequest) -> Response:
        limit, offset = _paging(req.params)
        flags, total = await self._dup_store().duplicates_page(limit, offset)  # paged by the store
        page = [{"imei": i, "flagged": ts} for i, ts in flags]
        return json_response(200, {"duplicates": page, "total": total, "offset": offset, "limit": limit})

    async def get_duplicate(self, req: ApiRequest) -> Response:
        """One flag with what duplicate_mk1 saw of the IMEI on the day it was flagged (the history
        the store still holds: it is pruned once both windows have passed)."""
        from eir.duplicates import DAY, duplicate_inputs

        imei = _imei14_arg(req.args[0], allow_sv=True)
        obs = self._dup_store()
        ts = await obs.duplicate_flag(imei)
        if ts is None:
            raise ApiError(404, f"{imei} is not flagged as duplicated", cause="not_flagged")
        history = await obs.daily_history(imei)
        cfg = self.config.policy.duplicate
        inputs = duplicate_inputs(history, today=int(ts // DAY), cfg=cfg)
        return json_response(
            200,
            {
                "imei": imei,
                "flagged": ts,
                "rule_enabled": cfg.enabled,
                "verdict": cfg.verdict,
                "inputs": inputs,
            },
        )

    async def clear_duplicate(self, req: ApiRequest) -> Response:
        """An operator clears a duplicate_mk1 flag: the flag and the IMEI's history go (this
        process's memory at once, the other workers' over the control channel; other instances
        sharing the store at their next classification), so only new observations can flag it again."""
        imei = _imei14_arg(req.args[0], allow_sv=True)
        tracker = getattr(self.checker, "duplicates", None)
        if await self._dup_store().duplicate_flag(imei) is None:  # nothing changes: not even its history
            raise ApiError(404, f"{imei} is not flagged as duplicated", cause="not_flagged")
        if tracker is not None:
            was, rows = await tracker.clear(imei)
        else:
            was, rows = await self._dup_store().clear_duplicate(imei)
        if not was:
            raise ApiError(404, f"{imei} is not flagged as duplicated", cause="not_flagged")
        self.log.info("admin_duplicate_cleared", imei=imei, history_rows=rows)
        if self.control is not None:  # the other workers' flags and pairs not yet written
            self.control.duplicate_cleared(imei)
        return json_response(200, {"imei": imei, "cleared": True, "history_rows": rows})

    # --- peers, faults, config ------------------------------------------------------------------------------
    async def peers(self, req: ApiRequest) -> Response:
        """Every worker's peers, each entry naming its worker: this process's (worker 0), and under
        ``--workers`` the others' through the control channel (a bounded wait: a worker that does
        not answer in time is named in ``incomplete_workers``, as is one whose list was cut)."""
        from eir.control import INTERFACES, local_peers

        mine = local_peers(self.servers)
        out: dict[str, Any] = {k: [{**e, "worker": 0} for e in mine[k]] for k in INTERFACES}
        incomplete: set[int] = set()
        if self.control is not None:
            got = await self.control.gather_peers()
            for w, peers in sorted(got.answers.items()):
                for k in INTERFACES:
                    out[k] += [{**e, "worker": w} for e in peers[k]]
            incomplete = got.missing | got.truncated
        out["incomplete_workers"] = sorted(incomplete)
        return json_response(200, out)

    async def list_faults(self, req: ApiRequest) -> Response:
        return json_response(200, {"faults": [r.to_dict() for r in self.faults.rules()]})

    async def add_fault(self, req: ApiRequest) -> Response:
        spec = _json_value(req.body)
        if not isinstance(spec, dict):
            raise ApiError(400, "the body is a JSON object (a fault rule)")
        if "injected" in spec:
            raise ApiError(400, "unknown field(s): injected (read-only)")
        for name in ("imei", "peer"):
            if spec.get(name) is not None and not isinstance(spec[name], str):
                raise ApiError(400, f"{name}: a string", cause="bad_fault")
        for name in ("result_code", "map_error", "http_status", "count"):
            v = spec.get(name)
            if isinstance(v, float) and v.is_integer():
                spec[name] = int(v)
            elif v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ApiError(400, f"{name}: an integer", cause="bad_fault")
        rid = spec.get("id")
        if rid is not None and (not isinstance(rid, str) or (rid and not _FAULT_ID.fullmatch(rid))):
            raise ApiError(400, "id: 1 to 64 of A-Z a-z 0-9 . _ : -", cause="bad_fault")
        if "id" in spec and any(r.id == spec["id"] for r in self.faults.rules()):
            raise ApiError(409, f"a fault rule with id {spec['id']!r} exists", cause="conflict")
        try:
            rule = self.faults.add(spec)
        except FaultLimitError as e:  # the set must fit one control datagram (eir/control.py)
            raise ApiError(400, str(e), cause="too_many_faults") from None
        except FaultSpecError as e:
            raise ApiError(400, str(e), cause="bad_fault") from None
        self.log.info("admin_fault_set", id=rule.id, kind=rule.kind)
        if self.control is not None:
            self.control.faults_changed()
        return json_response(201, rule.to_dict())

    async def clear_sightings(self, req: ApiRequest) -> Response:
        """An operator clears a clone suspicion: ``checker.clear_sightings`` (eir/checker.py) — this
        process's memory, the store, and a clear marker other instances apply."""
        imei = _imei14_arg(req.args[0], allow_sv=True)
        n = await self.checker.clear_sightings(imei)
        self.log.info("admin_sightings_cleared", imei=imei, rows=n)
        if self.control is not None:
            self.control.sightings_cleared(imei)
        return json_response(200, {"imei": imei, "cleared": n})

    async def delete_fault(self, req: ApiRequest) -> Response:
        if not self.faults.remove(req.args[0]):
            raise ApiError(404, f"no fault rule {req.args[0]!r}", cause="not_found")
        self.log.info("admin_fault_cleared", id=req.args[0][:64])
        if self.control is not None:
            self.control.faults_changed()
        return Response(204)

    async def clear_faults(self, req: ApiRequest) -> Response:
        n = self.faults.clear()
        self.log.info("admin_faults_cleared", cleared=n)
        if self.control is not None:
            self.control.faults_changed()
        return json_response(200, {"cleared": n})

    async def effective_config(self, req: ApiRequest) -> Response:
        return json_response(200, redact(dataclasses.asdict(self.config)))


# --- helpers ------------------------------------------------------------------------------------------

_IMPORT_RETRY_AFTER = b"1"
"""Seconds (Retry-After, RFC 9110 §10.2.3) after which a refused import may be sent again."""

_LABELS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "bad_rows",
}


class _BodyText(io.TextIOWrapper):
    """The import body as UTF-8 text (a byte-order mark skipped), named ``body`` in reports."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(raw, encoding="utf-8-sig", newline="")

    @property
    def name(self) -> str:
        return "body"


_SPOOL_MEMORY = 1 << 20
"""Octets of a streamed import body kept in memory before the spool moves to a temporary file."""


async def _spool(req: ApiRequest) -> tuple[IO[bytes], int, bool]:
    """Read a streamed body to its end into a spool (memory up to :data:`_SPOOL_MEMORY`, then a
    temporary file under ``$TMPDIR``, deleted on close): (the spool at its start, size, blank)."""
    stream = req.stream
    assert stream is not None
    f = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY, prefix="eir-import-")  # noqa: SIM115 - closed by the caller
    size = 0
    blank = True
    try:
        while chunk := await stream.read():
            f.write(chunk)
            size += len(chunk)
            if blank and chunk.strip():
                blank = False
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f, size, blank


def _gathered(body: bytes) -> tuple[IO[bytes], int, bool]:
    return io.BytesIO(body), len(body), not body.strip()


async def _yielding(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, giving the event loop a turn every few thousand: a scan of a million-entry list
    (search, export) must not hold up the checks the same loop answers."""
    n = 0
    async for x in items:
        yield x
        n += 1
        if n % 2000 == 0:
            await asyncio.sleep(0)


def redact(value: Any, key: str = "") -> Any:
    """Config as JSON with secrets replaced: tokens, passwords, keys, and passwords inside URLs."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if _SECRET_KEY.search(key) and value not in (None, "", []):
        return "***"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***\3", value)
    return value


def _query(query: str, allowed: frozenset[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed query string") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        if k not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiError(
                400, f"unknown query parameter {k[:64]!r} (known: {known})", cause="unknown_parameter"
            )
        if k in out:
            raise ApiError(400, f"query parameter {k!r} given twice")
        out[k] = v
    return out


def _arg(parse: Callable[[str], str], value: str, name: str) -> str:
    import argparse

    try:
        return parse(value)
    except argparse.ArgumentTypeError as e:
        raise ApiError(400, f"{name}: {e}", cause=f"bad_{name}") from None


def _identity(text: str) -> ListEntry:
    from eir.lists import parse_identity

    try:
        return parse_identity(text, Status.WHITE)
    except ValueError as e:
        raise ApiError(400, f"{e}", cause="bad_imei") from None


def _imei14_arg(text: str, *, allow_sv: bool = False) -> str:
    e = _identity(text)
    if e.kind is EntryKind.IMEI:
        return e.key
    if allow_sv and e.kind is EntryKind.IMEISV:
        return e.key[:14]
    raise ApiError(400, f"{text[:40]!r}: expected an IMEI (14 or 15 digits)", cause="bad_imei")


def _imsi_arg(text: str) -> str:
    if not (text.isascii() and text.isdigit() and 5 <= len(text) <= 15):
        raise ApiError(400, f"{text[:40]!r} is not an IMSI (5 to 15 digits)", cause="bad_imsi")
    return text


def _imei_bound(p: dict[str, str], name: str, default: str) -> int:
    v = p.get(name)
    if v is None:
        return int(default)
    return int(_imei14_arg(v))


def _span(e: ListEntry) -> tuple[int, int]:
    if e.kind is EntryKind.RANGE and e.last is not None:
        return int(e.key), int(e.last)
    if e.kind is EntryKind.TAC:
        return int(e.key + "000000"), int(e.key + "999999")
    if e.kind is EntryKind.IMEISV:
        return int(e.key[:14]), int(e.key[:14])
    return int(e.key), int(e.key)


def _paging(p: dict[str, str]) -> tuple[int, int]:
    def num(name: str, default: int, lo: int, hi: int) -> int:
        v = p.get(name)
        if v is None:
            return default
        if not (v.isascii() and v.isdigit()) or not lo <= int(v) <= hi:
            raise ApiError(400, f"{name}: an integer from {lo} to {hi}")
        return int(v)

    return num("limit", 100, 1, MAX_PAGE), num("offset", 0, 0, 1 << 40)


def _status(v: Any) -> Status:
    m = {"white": Status.WHITE, "grey": Status.GREY, "gray": Status.GREY, "black": Status.BLACK}
    if not isinstance(v, str) or v.lower() not in m:
        raise ApiError(400, "status: one of white, grey, black")
    return m[v.lower()]


def _bool(p: dict[str, str], name: str, default: bool | None) -> Any:
    v = p.get(name)
    if v is None:
        return default
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name}: true or false")


def _json_value(body: bytes) -> Any:
    if not body:
        raise ApiError(400, "a JSON request body is required")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not JSON ({e})"[:200], cause="bad_json") from None


def _json_object(body: bytes, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not body and not required:
        return {}
    value = _json_value(body)
    if not isinstance(value, dict):
        raise ApiError(400, "the body is a JSON object")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise ApiError(
            400, f"unknown field(s): {', '.join(u[:40] for u in unknown[:10])}", cause="unknown_field"
        )
    missing = sorted(required - set(value))
    if missing:
        raise ApiError(400, f"missing field(s): {', '.join(missing)}")
    return value


def _opt_text(body: dict[str, Any], name: str) -> str | None:
    from eir.lists import MAX_REASON

    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > MAX_REASON:
        raise ApiError(400, f"{name}: a string of at most {MAX_REASON} characters")
    return v or None


def _opt_imsi(body: dict[str, Any], name: str) -> str | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ApiError(400, f"{name}: an IMSI string (5 to 15 digits)", cause="bad_imsi")
    return _imsi_arg(v)


def _cell(e: ListEntry) -> str:
    return f"{e.key}-{e.last}" if e.kind is EntryKind.RANGE else e.key


def _entry(e: ListEntry) -> dict[str, Any]:
    return {
        "kind": e.kind.value,
        "key": e.key,
        "last": e.last,
        "status": e.status.value,
        "imsi": e.imsi,
        "reason": e.reason,
    }


def _pair(p: Pairing) -> dict[str, Any]:
    return {"kind": p.kind.value, "imsi": p.imsi, "imei": p.imei, "reason": p.reason}


def _version(v: ListVersion) -> dict[str, Any]:
    return {
        "id": v.id,
        "created": v.created,
        "source": v.source,
        "entries": v.entries,
        "pairings": v.pairings,
        "active": v.active,
    }


def _seen(table: dict[str, tuple[float, str]], name: str, cutoff: float) -> list[dict[str, Any]]:
    rows = sorted(table.items(), key=lambda kv: -kv[1][0])
    return [{name: v, "last_seen": ts, "source": src, "in_window": ts >= cutoff} for v, (ts, src) in rows]
