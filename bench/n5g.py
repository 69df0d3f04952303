"""N5g-eir over HTTP/2 (h2c prior knowledge): h2load (nghttp2-client) against three servers, one
after the other in the same run:

* ``eir serve`` (N5g-eir only, the real checker and SQLite store, demo lists, clone detection on),
  and the same with OAuth2 on (``n5g.oauth2_key``, HS256; every request carries one bearer JWT,
  as an AMF repeats its token until it expires),
* nghttpd (nghttp2-server, C) serving a static file with the same JSON body,
* a minimal asyncio server on the plain ``h2`` library answering every request with that body
  (no policy at all) — the stack the issue measured at ≈ 8.3k req/s.

Figures per server: req/s, p50/p99 request time (from h2load's ``--log-file``), server CPU per
request (utime+stime of the server process from /proc), and the ratios EIR / nghttpd (target
≥ 0.1) and EIR / minimal h2 (target ≥ 3).

``python -m bench.n5g --minimal-server PORTFILE`` runs the minimal server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from testkit.proc import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
PATH = "/n5g-eir-eic/v1/equipment-status"
PEI = "imei-490154203237518"  # white in the demo lists
BODY = b'{"status":"WHITELISTED"}'


# --- the minimal plain-h2 server ------------------------------------------------------------------


def _minimal_server(port_file: str) -> None:
    """asyncio + h2 with its default configuration, a constant 200 answer per request."""
    import h2.config
    import h2.connection
    import h2.events

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            self.c.initiate_connection()
            transport.write(self.c.data_to_send())

        def data_received(self, data: bytes) -> None:
            try:
                events = self.c.receive_data(data)
            except Exception:
                self.t.write(self.c.data_to_send())
                self.t.close()
                return
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    self.c.send_headers(
                        ev.stream_id,
                        [(":status", "200"), ("content-type", "application/json"), ("content-length", "24")],
                    )
                    self.c.send_data(ev.stream_id, BODY, end_stream=True)
                elif isinstance(ev, h2.events.DataReceived):
                    self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.t.write(self.c.data_to_send())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Proto, "127.0.0.1", 0)
        Path(port_file).write_text(str(srv.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


# --- measuring ------------------------------------------------------------------------------------------


def _cpu_checked(pid: int) -> float:
    cpu = cpu_seconds(pid)
    if cpu is None:
        raise RuntimeError(f"cannot read the CPU time of process {pid}")
    return cpu


def _h2load(
    url: str, n: int, pid: int, tmp: Path, name: str, headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    log = tmp / f"{name}.log"
    cpu0 = _cpu_checked(pid)
    extra = [a for h in headers for a in ("-H", h)]
    res = subprocess.run(
        ["h2load", "-c", "4", "-m", "64", "-n", str(n), *extra, "--log-file", str(log), url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    cpu = _cpu_checked(pid) - cpu0
    out = res.stdout
    done = ok = 0
    rps = 0.0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            parts = line.replace(",", "").split()
            done = int(parts[parts.index("done") - 1])
        elif line.startswith("status codes:"):
            ok = int(line.split()[2])
    durations = sorted(
        int(f[2])
        for f in (ln.split("\t") for ln in log.read_text().splitlines())
        if len(f) == 3 and f[2].isdigit()
    )
    p = (
        (lambda q: round(durations[min(len(durations) - 1, int(q * len(durations)))] / 1000, 3))
        if durations
        else None
    )
    return {
        "requests": n,
        "done": done,
        "status_2xx": ok,
        "req_per_s": round(rps),
        "p50_ms": p(0.50) if p else None,
        "p99_ms": p(0.99) if p else None,
        "server_cpu_us_per_req": round(cpu / max(done, 1) * 1e6, 2),
        "h2load_rc": res.returncode,
    }


def _wait_port(path: Path, proc: subprocess.Popen[bytes], what: str) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _eir(tmp: Path, n5g: dict[str, Any] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    tmp = tmp / ("eir-oauth2" if n5g else "eir")
    tmp.mkdir()
    conf = tmp / "eir.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp / "data"),
                "log": {"level": "info", "format": "json"},
                "diameter": {"enabled": False},
                "m3ua": {"enabled": False},
                "metrics": {"listen": "127.0.0.1:0"},
                "admin": {"listen": ["127.0.0.1:0"]},
                "n5g": {"listen": ["127.0.0.1:0"], **(n5g or {})},
                "store": {"url": f"sqlite:///{tmp / 'data' / 'eir.db'}"},
                "lists": {"import_on_start": [str(ROOT / "config" / "lists" / "demo.csv")]},
            }
        )
    )
    ready = tmp / "ready.json"
    exe = Path(sys.executable).parent / "eir"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "eir.cli"]
    log = (tmp / "eir.log").open("wb")
    proc = subprocess.Popen(
        [*cmd, "serve", "--config", str(conf), "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"eir serve did not start: {(tmp / 'eir.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, int(json.loads(ready.read_text())["n5g"][0][1])


def run(quick: bool = False) -> dict[str, Any]:
    for tool in ("h2load", "nghttpd"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return {"skipped": f"{tool} missing (Debian nghttp2-client / nghttp2-server)"}
    n = 30_000 if quick else 200_000
    out: dict[str, Any] = {"h2load": f"-c 4 -m 64 -n {n}", "path": f"{PATH}?pei={PEI}"}
    with tempfile.TemporaryDirectory(prefix="bench-n5g-") as d:
        tmp = Path(d)
        # the EIR
        proc, port = _eir(tmp)
        try:
            url = f"http://127.0.0.1:{port}{PATH}?pei={PEI}"
            check = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", url], capture_output=True, timeout=10
            ).stdout
            assert check == BODY, check
            _h2load(url, 2000, proc.pid, tmp, "warmup")
            out["eir"] = _h2load(url, n, proc.pid, tmp, "eir")
        finally:
            _stop(proc)
        # the EIR with OAuth2
        import jwt

        secret = b"bench-only shared secret, 32 bytes or more"
        (tmp / "oauth2.key").write_bytes(secret)
        proc, port = _eir(tmp, {"oauth2_key": str(tmp / "oauth2.key")})
        try:
            claims = {"iss": "nrf", "sub": "amf", "aud": "5G_EIR", "scope": "n5g-eir-eic"}
            token = jwt.encode({**claims, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")
            auth = (f"authorization: Bearer {token}",)
            url = f"http://127.0.0.1:{port}{PATH}?pei={PEI}"
            check = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", "-H", auth[0], url], capture_output=True, timeout=10
            ).stdout
            assert check == BODY, check
            _h2load(url, 2000, proc.pid, tmp, "warmup-oauth2", auth)
            out["eir_oauth2"] = _h2load(url, n, proc.pid, tmp, "eir-oauth2", auth)
        finally:
            _stop(proc)
        # nghttpd with a static file of the same body
        docroot = tmp / "www"
        f = docroot / PATH.lstrip("/")
        f.parent.mkdir(parents=True)
        f.write_bytes(BODY)
        nport_file = tmp / "nghttpd.port"
        from testkit.services import free_port

        nport = free_port()
        nghttpd = shutil.which("nghttpd") or "/usr/sbin/nghttpd"
        ng = subprocess.Popen(
            [nghttpd, "--no-tls", "-d", str(docroot), str(nport)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = subprocess.run(
                    ["curl", "-s", "--http2-prior-knowledge", f"http://127.0.0.1:{nport}{PATH}?pei={PEI}"],
                    capture_output=True,
                    timeout=5,
                )
                if r.stdout == BODY:
                    break
                time.sleep(0.1)
            nport_file.write_text(str(nport))
            url = f"http://127.0.0.1:{nport}{PATH}?pei={PEI}"
            _h2load(url, 2000, ng.pid, tmp, "warmup-ng")
            out["nghttpd"] = _h2load(url, n, ng.pid, tmp, "nghttpd")
        finally:
            _stop(ng)
        # the minimal h2 server
        pfile = tmp / "minimal.port"
        mini = subprocess.Popen([sys.executable, "-m", "bench.n5g", "--minimal-server", str(pfile)], cwd=ROOT)
        try:
            mport = _wait_port(pfile, mini, "minimal h2 server")
            url = f"http://127.0.0.1:{mport}{PATH}?pei={PEI}"
            _h2load(url, 2000, mini.pid, tmp, "warmup-min")
            out["minimal_h2"] = _h2load(url, n // 4 if not quick else n // 2, mini.pid, tmp, "minimal")
        finally:
            _stop(mini)
    e, g, m = out["eir"]["req_per_s"], out["nghttpd"]["req_per_s"], out["minimal_h2"]["req_per_s"]
    out["eir_vs_nghttpd"] = round(e / g, 3) if g else None
    out["eir_vs_minimal_h2"] = round(e / m, 2) if m else None
    out["targets"] = {"eir_vs_nghttpd": 0.1, "eir_vs_minimal_h2": 3.0}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.n5g")
    p.add_argument("--minimal-server", metavar="PORTFILE")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.minimal_server:
        _minimal_server(args.minimal_server)
        return 0
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
