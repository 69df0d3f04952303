"""``eir admin …`` and ``eir faults …``: commands that talk to a running ``eir serve`` through its
admin API (README "Admin API") instead of opening the store.

The server is ``--server URL`` (``http://HOST:PORT``, the ``/api/v1`` prefix is added), else the
first ``admin.listen`` address of the configuration found (a wildcard host becomes loopback). The
token is ``EIR_ADMIN_TOKEN`` (or ``admin.token`` of that configuration); it is sent as
``Authorization: Bearer``, never printed.

Exit codes (eir/cli.py): 0 ok, 1 the server refused or could not be reached (its ProblemDetails
``detail`` on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from eir.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    help_command,
    imei_text,
    imsi_text,
    int_range,
    software_version,
)

__all__ = ["AdminClient", "AdminError", "register"]

API = "/api/v1"
TIMEOUT = 30.0


class AdminError(Exception):
    """The server refused (status, ProblemDetails detail) or could not be reached (status 0)."""

    def __init__(self, status: int, detail: str, body: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.body = body


class AdminClient:
    """A small blocking client of the admin API (stdlib ``http.client``)."""

    def __init__(self, server: str, token: str | None, timeout: float = TIMEOUT) -> None:
        url = server if "://" in server else f"http://{server}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{server!r}: expected http://HOST:PORT")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.base = parts.path.rstrip("/")
        if not self.base.endswith(API):
            self.base += API
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        *,
        raw: bytes | Any = None,
        content_type: str = "application/json",
        length: int | None = None,
    ) -> tuple[int, str, bytes]:
        """(status, content type, body). ``body`` is sent as JSON; ``raw`` as given (bytes or a
        binary file, streamed, with ``length``). Raises :class:`AdminError` on an error answer."""
        target = self.base + path
        if params:
            q = {
                k: ("true" if v is True else "false" if v is False else v)
                for k, v in params.items()
                if v is not None
            }
            if q:
                target += "?" + urlencode(q)
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data: Any = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        elif raw is not None:
            data = raw
            headers["content-type"] = content_type
            if length is not None:
                headers["content-length"] = str(length)
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("content-type", "") or ""
        except OSError as e:
            raise AdminError(
                0,
                f"cannot reach the admin API at {self.scheme}://{self.host}:{self.port} ({e.strerror or e})",
            ) from None
        except http.client.HTTPException as e:
            raise AdminError(0, f"bad answer from the admin API ({type(e).__name__})") from None
        finally:
            conn.close()
        if resp.status >= 400:
            detail = f"HTTP {resp.status}"
            parsed: Any = None
            if "json" in ctype:
                try:
                    parsed = json.loads(payload)
                    detail = f"{resp.status} {parsed.get('title', '')}: {parsed.get('detail', '')}"
                except ValueError:
                    pass
            raise AdminError(resp.status, detail, parsed)
        return resp.status, ctype, payload

    def json(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        _s, _c, payload = self.request(method, path, params, body)
        return json.loads(payload) if payload else None


# --- the commands -------------------------------------------------------------------------------------


def _remote(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        metavar="URL",
        help="the running EIR's admin API, http://HOST:PORT (default: admin.listen of the config found)",
    )
    p.add_argument("--config", "-c", default=None, metavar="PATH", help="config file naming admin.listen")
    p.add_argument("-q", "--quiet", action="store_true", help="do not say which server is used")


def register(sub: Any) -> None:
    admin = sub.add_parser("admin", help="talk to a running EIR through its admin API (--server URL)")
    a = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    admin.set_defaults(func=help_command(admin))

    p = a.add_parser("check", help="one check with its explanation, by the running EIR")
    p.add_argument("imei", type=imei_text, help="14, 15 or 16 digits")
    p.add_argument("--imsi", type=imsi_text)
    p.add_argument("--sv", type=software_version, help="2-digit software version")
    p.add_argument("--origin", help="who asks (clone detection by origin)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    _remote(p)
    p.set_defaults(func=_cmd(_check))

    lists = a.add_parser("lists", help="change the running EIR's lists (each change a new version)")
    ls = lists.add_subparsers(dest="lists_command", metavar="ACTION")
    lists.set_defaults(func=help_command(lists))
    p = ls.add_parser("add", help="add or change one entry (IMEI, IMEISV, TAC or FIRST-LAST)")
    p.add_argument("imei")
    p.add_argument("--status", required=True, choices=["white", "grey", "black"])
    p.add_argument("--reason")
    p.add_argument("--imsi", type=imsi_text, help="the IMSI the entry is listed with (informational)")
    _remote(p)
    p.set_defaults(func=_cmd(_add))
    p = ls.add_parser("remove", help="remove one entry")
    p.add_argument("imei")
    _remote(p)
    p.set_defaults(func=_cmd(_remove))
    p = ls.add_parser("import", help="send a CSV file; prints the validation report")
    p.add_argument("path", help="CSV file (- for stdin)")
    p.add_argument("--dry-run", action="store_true", help="validate only")
    p.add_argument("--kind", choices=["equipment", "pairing", "lock"], default="equipment")
    p.add_argument("--delta", action="store_true", help="apply on top of the active version")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows even if some are bad")
    _remote(p)
    p.set_defaults(func=_cmd(_import))
    p = ls.add_parser("versions", help="the versions kept (the active one marked *)")
    _remote(p)
    p.set_defaults(func=_cmd(_versions))
    p = ls.add_parser("rollback", help="make an older version active again")
    p.add_argument("version", type=int_range(1))
    _remote(p)
    p.set_defaults(func=_cmd(_rollback))

    _register_faults(a)

    p = a.add_parser("peers", help="Diameter peers, M3UA associations, N5g-eir clients")
    _remote(p)
    p.set_defaults(func=_cmd(_peers))
    p = a.add_parser("sightings", help="IMSIs and origins an IMEI was seen with; clone suspicion")
    p.add_argument("imei", type=imei_text)
    _remote(p)
    p.set_defaults(func=_cmd(_sightings))
    p = a.add_parser("config", help="the running EIR's effective configuration (secrets redacted)")
    _remote(p)
    p.set_defaults(func=_cmd(_config))

    # `eir faults …`: the same commands at the top level (faults live in the running process)
    _register_faults(sub)


def _register_faults(sub: Any) -> None:
    faults = sub.add_parser("faults", help="fault injection in the running EIR: set, clear, list")
    f = faults.add_subparsers(dest="faults_command", metavar="ACTION")
    faults.set_defaults(func=help_command(faults))
    from eir.faults import FAULT_KINDS, INTERFACES

    p = f.add_parser("set", help="add a fault rule (prints it with its id)")
    p.add_argument("--kind", required=True, choices=FAULT_KINDS)
    p.add_argument("--id", help="a name for the rule (default: f1, f2 …)")
    p.add_argument("--interface", action="append", choices=INTERFACES, help="s13, map or n5g (repeatable)")
    p.add_argument("--imei", help="IMEI glob (35693803*) or LOW-HIGH")
    p.add_argument("--peer", help="peer glob: Origin-Host, pc:OPC, gt:GT or address")
    p.add_argument("--probability", type=float)
    p.add_argument("--count", type=int_range(1), help="inject this many times, then the rule goes")
    p.add_argument("--delay-ms", type=float)
    p.add_argument("--result-code", type=int)
    p.add_argument("--map-error", type=int)
    p.add_argument("--http-status", type=int)
    _remote(p)
    p.set_defaults(func=_cmd(_fault_set))
    p = f.add_parser("clear", help="remove one rule (by id) or all of them")
    p.add_argument("id", nargs="?", help="the rule's id; none: every rule")
    _remote(p)
    p.set_defaults(func=_cmd(_fault_clear))
    p = f.add_parser("list", help="the rules in force, with how often each fired")
    p.add_argument("--json", action="store_true")
    _remote(p)
    p.set_defaults(func=_cmd(_fault_list))


def _client(args: argparse.Namespace) -> AdminClient | None:
    token = os.environ.get("EIR_ADMIN_TOKEN") or None
    server = args.server
    if server is None or token is None:
        from eir.config import ConfigError, find_config, load_config, parse_hostport

        try:
            path = find_config(args.config)
            cfg = load_config(path)
        except ConfigError as e:
            if server is None:
                print(f"eir: configuration error: {e}", file=sys.stderr)
                return None
            cfg = None
        if cfg is not None:
            token = token or cfg.admin.token
            if server is None:
                if not cfg.admin.listen:
                    print("eir: admin.listen is empty; give --server URL", file=sys.stderr)
                    return None
                host, port = parse_hostport(cfg.admin.listen[0])
                host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
                server = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
                if not args.quiet:
                    where = str(path) if path is not None else "none found (built-in defaults)"
                    print(f"eir: config {where}, admin API {server}", file=sys.stderr)
    try:
        return AdminClient(server, token)
    except ValueError as e:
        print(f"eir: --server: {e}", file=sys.stderr)
        return None


def _cmd(body: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        client = _client(args)
        if client is None:
            return EXIT_CONFIG
        try:
            return int(body(client, args))
        except AdminError as e:
            print(f"eir: {e.detail}", file=sys.stderr)
            report = e.body if isinstance(e.body, dict) else None
            if report and report.get("errors"):
                for row in report["errors"][:50]:
                    print(f"line {row['line']}: {row['reason']}: {row['text']}", file=sys.stderr)
            return EXIT_FAILURE

    return run


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _check(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.json("GET", "/check", {"imei": args.imei, "imsi": args.imsi, "sv": args.sv, "origin": args.origin})
    if args.json:
        print(json.dumps(r))
    else:
        from eir.policy import Step

        for s in r["steps"][:-1]:
            print(f"  {Step(rule=s['rule'], outcome=s['outcome'], detail=s['detail'])}")
        detail = f"  ({r['detail']})" if r["detail"] else ""
        print(f"{r['status']}  {r['reason']}{detail}")
    return EXIT_FAILURE if r["status"] == "failure" else EXIT_OK


def _key(text: str) -> str:
    return quote(text.replace(" ", ""), safe="-")


def _add(c: AdminClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"status": args.status}
    if args.reason:
        body["reason"] = args.reason
    if args.imsi:
        body["imsi"] = args.imsi
    r = c.json("PUT", f"/lists/entries/{_key(args.imei)}", body=body)
    print(f"version {r['version']} is active: {args.imei} {args.status}")
    return EXIT_OK


def _remove(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.json("DELETE", f"/lists/entries/{_key(args.imei)}")
    print(f"version {r['version']} is active: {args.imei} removed")
    return EXIT_OK


def _import(c: AdminClient, args: argparse.Namespace) -> int:
    params = {"format": "eir", "dry_run": args.dry_run, "kind": args.kind, "skip_bad": args.skip_bad}
    if args.delta:
        params["delta"] = True
    if args.path == "-":
        data: Any = sys.stdin.buffer.read()
        length = len(data)
    else:
        try:
            length = os.path.getsize(args.path)
            data = open(args.path, "rb")  # noqa: SIM115 - closed below, streamed by http.client
        except OSError as e:
            print(f"eir: {args.path}: cannot read ({e.strerror})", file=sys.stderr)
            return EXIT_FAILURE
    try:
        _s, _c, payload = c.request(
            "POST", "/lists/import", params, raw=data, content_type="text/csv", length=length
        )
    finally:
        if hasattr(data, "close"):
            data.close()
    r = json.loads(payload)
    for row in r["errors"][:50]:
        print(f"line {row['line']}: {row['reason']}: {row['text']}", file=sys.stderr)
    if r["dry_run"]:
        print(
            f"{args.path}: {'valid' if r['valid'] else 'NOT valid'}: {r['summary']}; "
            "dry run, nothing imported"
        )
        return EXIT_OK if r["valid"] else EXIT_FAILURE
    print(f"imported version {r['version']}: {r['summary']}")
    return EXIT_OK


def _versions(c: AdminClient, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    vs = c.json("GET", "/lists/versions")["versions"]
    if not vs:
        print("no list versions yet")
        return EXIT_OK
    print(f"  {'id':>5}  {'created (UTC)':<19}  {'entries':>10}  {'pairings':>8}  source")
    for v in vs:
        created = datetime.fromtimestamp(v["created"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{'*' if v['active'] else ' '} {v['id']:>5}  {created:<19}  {v['entries']:>10}  "
            f"{v['pairings']:>8}  "
            f"{v['source']}"
        )
    return EXIT_OK


def _rollback(c: AdminClient, args: argparse.Namespace) -> int:
    v = c.json("POST", "/lists/rollback", body={"version": args.version})
    print(
        f"version {v['id']} is active ({v['entries']} entries, {v['pairings']} pairing/lock rows, "
        f"{v['source']})"
    )
    return EXIT_OK


def _fault_set(c: AdminClient, args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {"kind": args.kind}
    for name in (
        "id",
        "imei",
        "peer",
        "probability",
        "count",
        "delay_ms",
        "result_code",
        "map_error",
        "http_status",
    ):
        v = getattr(args, name)
        if v is not None:
            spec[name] = v
    if args.interface:
        spec["interfaces"] = args.interface
    r = c.json("POST", "/faults", body=spec)
    print(json.dumps(r))
    return EXIT_OK


def _fault_clear(c: AdminClient, args: argparse.Namespace) -> int:
    if args.id:
        c.request("DELETE", f"/faults/{quote(args.id, safe='')}")
        print(f"fault rule {args.id} cleared")
    else:
        r = c.json("DELETE", "/faults")
        print(f"{r['cleared']} fault rules cleared")
    return EXIT_OK


def _fault_list(c: AdminClient, args: argparse.Namespace) -> int:
    rules = c.json("GET", "/faults")["faults"]
    if args.json:
        print(json.dumps(rules))
        return EXIT_OK
    if not rules:
        print("no fault rules")
    for r in rules:
        where = ",".join(r["interfaces"]) or "all"
        print(
            f"{r['id']:<8} {r['kind']:<12} interfaces={where} imei={r['imei'] or '*'} "
            f"peer={r['peer'] or '*'} "
            f"p={r['probability']:g} count={r['count']} injected={r['injected']}"
        )
    return EXIT_OK


def _peers(c: AdminClient, args: argparse.Namespace) -> int:
    _print(c.json("GET", "/peers"))
    return EXIT_OK


def _sightings(c: AdminClient, args: argparse.Namespace) -> int:
    _print(c.json("GET", f"/sightings/{args.imei}"))
    return EXIT_OK


def _config(c: AdminClient, args: argparse.Namespace) -> int:
    _print(c.json("GET", "/config"))
    return EXIT_OK
