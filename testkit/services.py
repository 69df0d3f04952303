"""Ephemeral real PostgreSQL, Redis and Mosquitto servers for tests (no mocks).

Both run from the installed Debian binaries on a free loopback port, in a temporary directory,
with durability off (fsync=off, safe unless the OS itself crashes; no RDB/AOF): they start in about
a second and leave nothing behind.
PostgreSQL refuses to run as root, so under root (CI) its processes run as the ``postgres`` OS user.
The newest installed PostgreSQL major is used (``EIR_TEST_PG_BIN`` overrides).

The servers are process-wide singletons (started on first use, stopped at exit), so every test
module that imports these fixtures shares one instance. Fault tests that stop a server use their
own instance (:func:`start_postgres` / :func:`start_redis`) so that other tests are undisturbed.

Fixtures:

* ``postgres_server`` (session): the shared :class:`PostgresServer`.
* ``postgres_url`` (function): a DSN to a fresh, empty database on it.
* ``redis_server`` (session): the shared :class:`RedisServer`.
* ``redis_url`` (function): a URL to an emptied database on it (FLUSHALL before the test).
* ``mosquitto`` (function): a private :class:`MosquittoServer` (tests stop and restart brokers, so
  each test has its own; one starts in ~50 ms). ``MosquittoServer(tls=True, users={…})`` adds a
  TLS listener with certificates made for the test (:func:`make_certificates`) and password auth.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testkit.peers import require_peer

T = TypeVar("T")


def _pg_bin() -> Path:
    """``EIR_TEST_PG_BIN``, else the newest Debian PostgreSQL (``/usr/lib/postgresql/<major>/bin``)."""
    if os.environ.get("EIR_TEST_PG_BIN"):
        return Path(os.environ["EIR_TEST_PG_BIN"])
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0,
    )
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 20.0
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A currently free loopback TCP port (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait(pred: object, what: str, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {START_TIMEOUT} s")


class PostgresServer:
    """A throw-away PostgreSQL cluster: ``initdb`` into a temp dir, ``postgres`` on a free port."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)")
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="eir-pg-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._dbs = itertools.count(1)
        self._as_user: dict[str, object] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self._as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        self._env = env
        subprocess.run(  # type: ignore[call-overload]
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
            **self._as_user,
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port and data directory."""
        if self.proc is not None and self.proc.poll() is None:
            return
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.tmp),
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=64MB",
                    "-c",
                    "log_min_messages=warning",
                    "-c",
                    "autovacuum=off",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                **self._as_user,
            )
        finally:
            logf.close()
        _wait(self._ready, "postgres", self.proc, self.log)

    def _ready(self) -> bool:
        r = subprocess.run(
            [
                str(PG_BIN / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-t",
                "1",
            ],
            capture_output=True,
            env=self._env,
        )
        return r.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Shut down: ``fast`` (SIGINT: clients are disconnected, transactions aborted) or
        ``immediate`` (SIGQUIT: like a crash; recovery runs on the next start)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env=self._env,
            timeout=30,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def new_database(self) -> str:
        """Create an empty database; returns its DSN."""
        name = f"t{os.getpid()}_{next(self._dbs)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(RuntimeError):
            self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class RedisServer:
    """A throw-away ``redis-server`` on a free port, persistence off."""

    def __init__(self) -> None:
        if not Path(REDIS_SERVER).exists():
            raise FileNotFoundError("redis-server not found (apt-get install redis-server)")
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="eir-redis-"))
        self.log = self.tmp / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.tmp),
                    "--protected-mode",
                    "no",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logf.close()
        _wait(lambda: self._ping(), "redis-server", self.proc, self.log)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            if not s.recv(16).startswith(b"+OK"):
                raise RuntimeError("FLUSHALL failed")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """A new private server (for tests that stop it); the caller destroys it."""
    require_peer("postgresql", "the PostgreSQL store is tested against a real server")
    srv = PostgresServer()
    srv.start()
    return srv


def start_redis() -> RedisServer:
    require_peer("redis-server", "the Redis store is tested against a real server")
    srv = RedisServer()
    srv.start()
    return srv


_shared: dict[str, PostgresServer | RedisServer] = {}


def _cleanup() -> None:
    for srv in _shared.values():
        srv.destroy()
    _shared.clear()


atexit.register(_cleanup)


def shared_postgres() -> PostgresServer:
    srv = _shared.get("pg")
    if srv is None:
        srv = _shared["pg"] = start_postgres()
    assert isinstance(srv, PostgresServer)
    srv.start()  # in case a test left it stopped
    return srv


def shared_redis() -> RedisServer:
    srv = _shared.get("redis")
    if srv is None:
        srv = _shared["redis"] = start_redis()
    assert isinstance(srv, RedisServer)
    srv.start()
    return srv


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return shared_postgres()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return shared_redis()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flushall()
    return redis_server.url


# --- Mosquitto ------------------------------------------------------------------------------------

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def make_certificates(directory: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A CA and a server certificate for ``host`` (IP SAN and ``localhost``), made with openssl:
    ``{"ca": …, "cert": …, "key": …}``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=eir-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}


class MosquittoServer:
    """A throw-away ``mosquitto`` on a free loopback port. ``persistence``: sessions and queued
    QoS 1 messages survive a restart (what a production broker does). ``tls``: the listener speaks
    TLS with a certificate made here (``self.certs["ca"]`` for clients). ``users``: password auth,
    anonymous clients refused. :meth:`stop` and :meth:`start` again keep the port."""

    def __init__(
        self, *, persistence: bool = True, tls: bool = False, users: dict[str, str] | None = None
    ) -> None:
        if not Path(MOSQUITTO).exists():
            raise FileNotFoundError("mosquitto not found (apt-get install mosquitto)")
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="eir-mosquitto-"))
        self.log = self.tmp / "mosquitto.log"
        self.tls = tls
        self.certs: dict[str, Path] = make_certificates(self.tmp / "certs") if tls else {}
        # as root, mosquitto would switch to the mosquitto user, who cannot read this private dir
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"listener {self.port} 127.0.0.1",
            f"persistence {'true' if persistence else 'false'}",
            # small PUBACKs behind Nagle wait for the client's delayed ACK: 40 ms per window
            "set_tcp_nodelay true",
        ]
        if persistence:
            lines += [f"persistence_location {self.tmp}/", "autosave_interval 1"]
        if tls:
            lines += [f"certfile {self.certs['cert']}", f"keyfile {self.certs['key']}"]
        if users:
            pw = self.tmp / "passwd"
            pw.write_text("")
            for u, p in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), u, p], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = self.tmp / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf), "-v"],
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logf.close()
        _wait(lambda: _port_open(self.port), "mosquitto", self.proc, self.log)

    def stop(self) -> None:
        """SIGTERM: the broker saves its sessions (persistence) and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def mosquitto() -> Iterator[MosquittoServer]:
    require_peer("mosquitto", "MQTT is tested against a real broker")
    srv = MosquittoServer()
    srv.start()
    yield srv
    srv.destroy()


# --- another OS process using the same server ----------------------------------------------------

_IMPORT_SCRIPT = """
import asyncio, sys
from eir.model import Status
from eir.store.base import EntryKind, ListEntry

async def main(kind, url, key, status, prefix):
    if kind == "postgres":
        from eir.store.postgres import PostgresStore
        s = PostgresStore(url)
    else:
        from eir.store.redis import RedisStore
        s = RedisStore(url, prefix=prefix or None)
    await s.open()
    try:
        v = await s.import_version([ListEntry(kind=EntryKind.IMEI, key=key, status=Status(status))], [],
                                   source="other-process")
        print(v.id)
    finally:
        await s.close()

asyncio.run(main(*sys.argv[1:6]))
"""


def import_in_other_process(kind: str, url: str, key: str, status: str, prefix: str = "") -> int:
    """Run a full import of one IMEI in a separate Python process; returns the new version id."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", _IMPORT_SCRIPT, kind, url, key, status, prefix],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise RuntimeError(f"import in other process failed: {r.stderr[-2000:]}")
    return int(r.stdout.strip().splitlines()[-1])


# --- how the servers call the checker ---------------------------------------------------------------


class _Resume:
    """Continue, inside a Task, a coroutine that was stepped once by hand and yielded ``first``."""

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        pending = self.first
        while True:
            try:
                sent = yield pending
            except BaseException as e:
                try:
                    pending = self.coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def run_eagerly(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Start a coroutine the way the servers start a check: its first step runs inline in a loop
    callback (outside any Task, like ``data_received``), the rest in a Task if it suspends."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def step() -> None:
        coro = make()
        try:
            first = coro.send(None)
        except StopIteration as stop:
            result.set_result(stop.value)
            return
        except BaseException as e:
            result.set_exception(e)
            return

        async def rest() -> None:
            try:
                result.set_result(await _Resume(coro, first))
            except BaseException as e:
                result.set_exception(e)

        tasks.add(loop.create_task(rest()))

    tasks: set[asyncio.Task[None]] = set()
    loop.call_soon(step)
    return await result
