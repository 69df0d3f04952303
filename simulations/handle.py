"""``eir sim handle``: a Handle.Net-style REST server (X.1255 identifier discovery) serving
device records from a CSV, so that a lab runs the whole chain — EIR, ``policy.handle``, handle
server — on one machine. The record layout is this project's own (protocols/handle.py).

CSV, one of:

* ``imei,status[,tac][,brand][,model][,reason]`` — one record per IMEI, handle
  ``<--prefix>/imei-<14 digits>``, values EIR.STATUS (white|grey|black), EIR.TAC, …;
* ``handle,type,value`` — any handle, one typed value per row.

Answers ``GET /api/handles/<handle>``: 200 ``{"responseCode": 1, …}`` or 404
``{"responseCode": 100, …}``; other paths 404, other methods 405. ``--delay`` holds every answer
back (to see the EIR's time-out). HTTP/1.0 and 1.1, one request per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from protocols.handle import HandleRecord, encode_record, imei_handle

__all__ = ["HandleServer", "load_records", "register"]

MAX_REQUEST = 8192


def load_records(path: str | Path, prefix: str) -> dict[str, HandleRecord]:
    """The records of a CSV file (see the module docstring); ValueError naming the line."""
    values: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in reader.fieldnames or []]
        reader.fieldnames = cols
        typed = {"handle", "type", "value"} <= set(cols)
        if not typed and not {"imei", "status"} <= set(cols):
            raise ValueError(
                f"{path}: header must be imei,status[,tac,brand,model,reason] or handle,type,value"
            )
        for row in reader:
            line = reader.line_num
            if typed:
                h, t, v = (
                    (row.get("handle", "") or "").strip(),
                    (row["type"] or "").strip(),
                    (row["value"] or "").strip(),
                )
                if not h or not t:
                    raise ValueError(f"{path}: line {line}: handle and type are required")
                values.setdefault(h, {}).setdefault(t, v)
                continue
            imei = (row["imei"] or "").strip()[:14]
            status = (row["status"] or "").strip().lower()
            if len(imei) != 14 or not imei.isdigit() or status not in ("white", "grey", "black"):
                raise ValueError(f"{path}: line {line}: need a 14-digit imei and white|grey|black")
            rec = {"EIR.STATUS": status}
            for col, t in (
                ("tac", "EIR.TAC"),
                ("brand", "EIR.BRAND"),
                ("model", "EIR.MODEL"),
                ("reason", "EIR.REASON"),
            ):
                if (row.get(col) or "").strip():
                    rec[t] = (row[col] or "").strip()
            values[imei_handle(prefix, imei)] = rec
    return {h: HandleRecord(handle=h, values=v) for h, v in values.items()}


class HandleServer:
    """The asyncio server (one request per connection)."""

    def __init__(self, records: dict[str, HandleRecord], *, delay: float = 0.0) -> None:
        self.records = records
        self.delay = delay
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            self.requests += 1
            status, body = self._answer(head)
            if self.delay:
                await asyncio.sleep(self.delay)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, bytes]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, b'{"responseCode": 2, "message": "bad request"}'
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return 405, b'{"responseCode": 2, "message": "GET only"}'
        if not target.startswith("/api/handles/"):
            return 404, b'{"responseCode": 2, "message": "no such resource"}'
        handle = unquote(target[len("/api/handles/") :])
        return encode_record(self.records.get(handle), handle)


def register(sim_subparsers: Any) -> None:
    from eir.cli import add_config_options, positive_float

    p = sim_subparsers.add_parser(
        "handle", help="a Handle REST server (X.1255) serving device records from a CSV, for policy.handle"
    )
    p.add_argument("--csv", required=True, help="imei,status[,tac,brand,model,reason] or handle,type,value")
    p.add_argument(
        "--listen", default=None, help="HOST:PORT (default: the host and port of policy.handle.url)"
    )
    p.add_argument("--prefix", default="20.500.12345", help="handle prefix for imei,status files")
    p.add_argument("--delay", type=positive_float, default=0.0, help="seconds every answer is held back")
    add_config_options(p, "eir config file (for the default --listen)")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from eir.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
    from eir.config import ConfigError, parse_hostport

    try:
        records = load_records(args.csv, args.prefix)
        if args.listen is None:
            from urllib.parse import urlsplit

            from eir.cli import load_cli_config

            url = urlsplit(load_cli_config(args).policy.handle.url)
            args.listen = f"{url.hostname or '127.0.0.1'}:{url.port or 80}"
        host, port = parse_hostport(args.listen)
    except (OSError, ValueError, ConfigError) as e:
        print(f"eir sim handle: {e}", file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        server = HandleServer(records, delay=args.delay)
        try:
            h, p = await server.start(host, port)
        except OSError as e:
            print(f"eir sim handle: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
            return EXIT_FAILURE
        print(json.dumps({"listening": f"{h}:{p}", "records": len(records)}), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()
        return EXIT_OK

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return EXIT_OK
