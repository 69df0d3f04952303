"""``eir lists sync --from URL`` (the real console script) against a small HTTP server in the test:
a full DIRBS blacklist with an ETag (a second sync is a conditional GET answered 304), a changed
list, a DIRBS delta whose file name says what it does, a TAC table, and the failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.system.test_cli_lists import Cli

B1, B2, B3 = "35693803564380", "35693803564381", "35693803564382"


class Files:
    """path → (body, etag); what the handler saw."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, str]] = {}
        self.requests: list[tuple[str, str | None]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Files]]:
    files = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            files.requests.append((self.path, self.headers.get("If-None-Match")))
            if self.path not in files.files:
                self.send_error(404)
                return
            body, etag = files.files[self.path]
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sync_follows_a_central_list_with_etags(tmp_path: Path, server: tuple[str, Files]) -> None:
    base, files = server
    cli = Cli(tmp_path)
    files.files["/lists/blacklist.csv"] = (
        f"imei,block_date,reasons\n{B1},20260101,a\n{B2},20260101,b\n",
        '"v1"',
    )
    url = f"{base}/lists/blacklist.csv"
    out = cli.ok("lists", "sync", "--from", url)
    assert "imported version 1 (full dirbs-blacklist list)" in out
    assert cli.ok("check", B2).startswith("black  imei:black:")
    assert cli.ok("lists", "sync", "--from", url).strip() == f"{url}: not modified"
    assert files.requests[-1] == ("/lists/blacklist.csv", '"v1"')

    files.files["/lists/blacklist.csv"] = (f"imei,block_date,reasons\n{B1},20260101,a\n", '"v2"')
    assert "imported version 2" in cli.ok("lists", "sync", "--from", url)
    assert cli.ok("check", B2).startswith("white  default")

    # a DIRBS delta: its file name says blocked / unblocked
    delta = f"{base}/lists/20260201_blacklist_delta_1_2_blocked.csv"
    files.files["/lists/20260201_blacklist_delta_1_2_blocked.csv"] = (
        f"imei,block_date,reasons\n{B3},20260201,new\n",
        '"d1"',
    )
    assert "(delta dirbs-blacklist-delta list)" in cli.ok("lists", "sync", "--from", delta)
    assert cli.ok("check", B3).startswith("black  imei:black:")
    assert cli.ok("check", B1).startswith("black  imei:black:")

    # a reference table, from the config's lists.sync_from
    files.files["/tac.csv"] = ("tac,name,model\n35693803,Samsung,Galaxy X\n", '"t1"')
    cfg = Cli(tmp_path / "other")
    cfg.config.write_text(cfg.config.read_text() + f"lists:\n  sync_from: {base}/tac.csv\n")
    assert "imported the tac table (pyhss-tac)" in cfg.ok("lists", "sync")
    assert cfg.ok("check", "49015420323751").startswith("grey  tac_not_allocated")


def test_sync_failures_import_nothing(tmp_path: Path, server: tuple[str, Files]) -> None:
    base, files = server
    cli = Cli(tmp_path)
    r = cli("lists", "sync", "--from", f"{base}/missing.csv")
    assert r.returncode == 1 and "HTTP 404" in r.stderr
    files.files["/bad.csv"] = ("imei,block_date,reasons\nzz,20260101,a\n", '"b1"')
    r = cli("lists", "sync", "--from", f"{base}/bad.csv")
    assert r.returncode == 1 and "1 bad rows, nothing imported" in r.stderr and "line 2" in r.stderr
    # not remembered: the next sync fetches it again (no If-None-Match)
    cli("lists", "sync", "--from", f"{base}/bad.csv")
    assert files.requests[-1] == ("/bad.csv", None)
    r = cli("lists", "sync")
    assert r.returncode == 2 and "no URL" in r.stderr
    r = cli("lists", "sync", "--from", "ftp://example/x.csv")
    assert r.returncode == 1 and "only http" in r.stderr


def test_eir_serve_follows_the_central_list(server: tuple[str, Files], tmp_path: Path) -> None:
    """``lists.sync_from`` with ``sync_interval`` > 0: the running EIR fetches the list itself, and a
    change on the server reaches its checks; between changes its GETs are conditional (304)."""
    import time

    import httpx

    from testkit.eirproc import EirProcess

    url, files = server
    files.files["/national.csv"] = (f"imei,block_date,reasons\n{B1},20260101,stolen\n", '"v1"')
    eir = EirProcess(
        tmp_path / "eir",
        {"lists": {"import_on_start": [], "sync_from": url + "/national.csv", "sync_interval": 0.2}},
    ).start()
    try:

        def status(imei: str) -> str:
            r = httpx.get(eir.admin_url + "/check", params={"imei": imei}, timeout=5)
            return str(r.json()["status"])

        def wait_for(imei: str, want: str) -> None:
            for _ in range(100):  # bounded: 100 x 0.1 s
                if status(imei) == want:
                    return
                time.sleep(0.1)
            raise AssertionError(f"{imei} never became {want} (last: {status(imei)}); {eir.log()[-2000:]}")

        wait_for(B1, "black")
        for _ in range(50):  # a conditional GET has come back 304 meanwhile
            if any(etag == '"v1"' for _, etag in files.requests):
                break
            time.sleep(0.1)
        assert any(etag == '"v1"' for _, etag in files.requests)
        files.files["/national.csv"] = (f"imei,block_date,reasons\n{B2},20260101,stolen\n", '"v2"')
        wait_for(B2, "black")
        assert status(B1) != "black"  # a full DIRBS blacklist replaces the previous one
    finally:
        eir.stop()
