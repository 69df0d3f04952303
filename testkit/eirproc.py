"""Run ``eir serve`` in a subprocess on free loopback ports, for system and interop tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def eir_command() -> list[str]:
    script = Path(sys.executable).parent / "eir"
    return [str(script)] if script.exists() else [sys.executable, "-m", "eir.cli"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an ``eir`` subprocess: the developer's own EIR_* settings must not reach
    the instance under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EIR_")}
    env.update(extra or {})
    return env


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def test_config(tmp: Path) -> dict[str, Any]:
    """Defaults for a test instance: every port 0, a private SQLite store, JSON logs at debug."""
    return {
        "data_dir": str(tmp / "data"),
        "log": {"level": "debug", "format": "json"},
        "diameter": {"listen": ["127.0.0.1:0"], "transports": ["tcp"]},
        "m3ua": {"listen": ["127.0.0.1:0"], "transports": ["tcp"]},
        "n5g": {"listen": ["127.0.0.1:0"]},
        "metrics": {"listen": "127.0.0.1:0"},
        "admin": {"listen": ["127.0.0.1:0"]},
        "store": {"url": f"sqlite:///{tmp / 'data' / 'eir.db'}", "poll_interval": 0.2},
        "shutdown_grace": 2.0,
    }


def wait_ready(
    proc: subprocess.Popen[bytes], ready_path: Path, timeout: float, log: Callable[[], str] = str
) -> dict[str, Any]:
    """Wait until an ``eir serve --ready-file ready_path`` is listening; its bound addresses
    (``{"diameter": [[host, port, transport], …], "m3ua": …, "metrics": [host, port]}``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_path.exists():
            ready: dict[str, Any] = json.loads(ready_path.read_text())
            return ready
        if proc.poll() is not None:
            raise RuntimeError(f"eir serve exited with {proc.returncode}:\n{log()}")
        time.sleep(0.05)
    raise TimeoutError(f"eir serve not ready after {timeout}s:\n{log()}")


def first_address(ready: Mapping[str, Any], interface: str, transport: str = "tcp") -> str:
    """``HOST:PORT`` of the first ``transport`` listener of ``interface`` in a ready file's content."""
    for host, port, tr in ready.get(interface, []):
        if tr == transport:
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise LookupError(f"{interface} has no {transport} listener: {ready}")


class EirProcess:
    """One ``eir serve`` subprocess. Addresses come from its ``--ready-file``."""

    def __init__(
        self, tmp: Path, config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.config = deep_merge(test_config(tmp), config or {})
        self.config_path = tmp / "eir.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.ready_path = tmp / "ready.json"
        self.log_path = tmp / "eir.log"
        self.env = clean_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> EirProcess:
        self.ready_path.unlink(missing_ok=True)
        logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *eir_command(),
                "serve",
                "--config",
                str(self.config_path),
                "--ready-file",
                str(self.ready_path),
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.tmp,
        )
        logf.close()
        try:
            self.ready = wait_ready(self.proc, self.ready_path, timeout, self.log)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    # --- addresses ---------------------------------------------------------------------------
    def _first(self, name: str) -> tuple[str, int]:
        addrs = self.ready.get(name)
        if not addrs:
            raise LookupError(f"{name} is not listening in this instance")
        return addrs[0][0], int(addrs[0][1])

    @property
    def diameter(self) -> tuple[str, int]:
        return self._first("diameter")

    @property
    def m3ua(self) -> tuple[str, int]:
        return self._first("m3ua")

    @property
    def n5g(self) -> tuple[str, int]:
        return self._first("n5g")

    @property
    def n5g_url(self) -> str:
        """The apiRoot of the N5g-eir interface (``http://HOST:PORT``)."""
        h, p = self.n5g
        return f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}"

    @property
    def admin_url(self) -> str:
        """The admin API's base URL (``http://HOST:PORT/api/v1``)."""
        h, p = self._first("admin")
        return f"http://[{h}]:{p}/api/v1" if ":" in h else f"http://{h}:{p}/api/v1"

    @property
    def metrics(self) -> tuple[str, int]:
        h, p = self.ready["metrics"]
        return h, int(p)

    # --- helpers -----------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``eir <args> --config <this config>`` (e.g. ``cli("lists", "import", path)``)."""
        res = subprocess.run(
            [*eir_command(), *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            cwd=self.tmp,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"eir {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (structlog) as dicts."""
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def metrics_text(self) -> str:
        import urllib.request

        h, p = self.metrics
        with urllib.request.urlopen(f"http://{h}:{p}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def wait_for_log(self, event: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.log_events():
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            time.sleep(0.05)
        raise TimeoutError(f"no log event {event!r} {fields} within {timeout}s:\n{self.log()[-4000:]}")
