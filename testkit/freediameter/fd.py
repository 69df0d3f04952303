"""Drive freeDiameter 1.2 (``freeDiameterd``) as an independent S13 MME.

``s13_mme.c`` (next to this file) is a freeDiameter extension that sends ME-Identity-Check-Requests
once the EIR peer is OPEN and writes every answer, base-protocol message (CER/CEA, DWR/DWA, DPR/DPA) and
parse error to a TSV file. This module compiles it with gcc against the Debian headers, writes the
daemon and extension configuration, runs ``freeDiameterd -c`` with a bounded wait and parses the result.

freeDiameter is configured TCP-only (``No_SCTP``), client-only (``Port = 0; SecPort = 0``: it binds no
listening socket, it only connects out) and without TLS (``No_TLS`` on the peer; no certificate is
needed then — checked with 1.2.1).

Used by ``tests/interop/test_freediameter.py`` and ``bench/freediameter.py``; by hand:
``python -m testkit.freediameter.fd 127.0.0.1:3868 490154203237518 35394206000002,01,001010123456789``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "s13_mme.c"
HEADER = Path("/usr/include/freeDiameter/extension.h")

_built: dict[str, Path] = {}


class FreeDiameterError(RuntimeError):
    """freeDiameterd or the extension could not be built or run."""


def unavailable() -> str | None:
    """Why freeDiameter cannot be used here (for ``pytest.skip``), or None when it can."""
    if shutil.which("freeDiameterd") is None:
        return "freeDiameterd not installed (Debian package freediameterd)"
    if not HEADER.exists():
        return f"{HEADER} missing (Debian package libfreediameter-dev)"
    if shutil.which("gcc") is None:
        return "gcc not installed (needed to build the S13 MME extension)"
    return None


def build_extension(dest_dir: Path | None = None) -> Path:
    """Compile ``s13_mme.c`` into ``s13_mme-<hash>.fdx``; cached per process and source hash."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source).hexdigest()[:16]
    cached = _built.get(key)
    if cached is not None and cached.exists():
        return cached
    out_dir = dest_dir if dest_dir is not None else Path(tempfile.mkdtemp(prefix="s13_mme-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"s13_mme-{key}.fdx"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        res = subprocess.run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-o",
                str(tmp),
                str(SOURCE),
                "-lfdcore",
                "-lfdproto",
                "-lpthread",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise FreeDiameterError(f"gcc failed ({res.returncode}):\n{res.stderr}")
        tmp.replace(out)
    _built[key] = out
    return out


@dataclass(frozen=True, slots=True)
class Ecr:
    """One ME-Identity-Check-Request to send: IMEI (14 or 15 digits), optional SV and IMSI."""

    imei: str
    software_version: str | None = None
    imsi: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One ECA as freeDiameter parsed it. ``-1`` means the AVP was absent."""

    index: int
    imei: str
    hop_by_hop: int
    end_to_end: int
    result_code: int
    experimental_result_code: int
    equipment_status: int
    latency_us: int
    origin: str
    """Diameter identity the answer came from; ``local`` if freeDiameter made it (e.g. 3002)."""
    flags: int = 0
    """Command flags of the answer (0x20: E bit, RFC 6733 §3)."""

    failed_avp: str | None = None
    """``code/vendor`` of the first AVP in Failed-AVP (RFC 6733 §7.5), if the answer has one."""

    @property
    def error_bit(self) -> bool:
        return bool(self.flags & 0x20)


@dataclass(frozen=True, slots=True)
class BaseMessage:
    """A base-protocol message seen by freeDiameter's hooks: direction SENT/RECV, name CER…DPA."""

    direction: str
    name: str
    peer: str
    hop_by_hop: int
    end_to_end: int


@dataclass(frozen=True, slots=True)
class Summary:
    sent: int
    answered: int
    failed: int
    elapsed_us: int
    rate: float
    p50_us: int
    p99_us: int
    window: int


@dataclass(slots=True)
class RunResult:
    returncode: int | None
    timed_out: bool
    log: str
    """freeDiameterd's own log (stdout/stderr)."""
    opened: bool = False
    done: bool = False
    answers: list[Answer] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    base: list[BaseMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    parse_errors: list[str] = field(default_factory=list)
    summary: Summary | None = None

    def seen(self, direction: str, name: str) -> list[BaseMessage]:
        return [m for m in self.base if m.direction == direction and m.name == name]

    def describe(self) -> str:
        """For assertion messages: the extension's view and the tail of the daemon log."""
        lines = [
            f"rc={self.returncode} timed_out={self.timed_out} opened={self.opened} done={self.done}",
            f"errors={self.errors} parse_errors={self.parse_errors}",
            *(f"{m.direction} {m.name} hbh={m.hop_by_hop}" for m in self.base),
            *(str(a) for a in self.answers),
            "--- freeDiameterd log (tail) ---",
            self.log[-3000:],
        ]
        return "\n".join(lines)


def parse_output(text: str, result: RunResult) -> None:
    """Fill ``result`` from the extension's TSV output (format: see ``s13_mme.c``)."""
    for line in text.splitlines():
        f = line.split("\t")
        match f[0]:
            case "ANSWER":
                result.answers.append(
                    Answer(
                        index=int(f[1]),
                        imei=f[2],
                        hop_by_hop=int(f[3]),
                        end_to_end=int(f[4]),
                        result_code=int(f[5]),
                        experimental_result_code=int(f[6]),
                        equipment_status=int(f[7]),
                        latency_us=int(f[8]),
                        origin=f[9],
                        flags=int(f[10], 16),
                        failed_avp=None if f[11] == "-" else f[11],
                    )
                )
            case "TIMEOUT":
                result.timeouts.append(f[2])
            case "SENT" | "RECV":
                result.base.append(
                    BaseMessage(
                        direction=f[0], name=f[1], peer=f[2], hop_by_hop=int(f[3]), end_to_end=int(f[4])
                    )
                )
            case "OPEN":
                result.opened = True
            case "DONE":
                result.done = True
            case "ERROR":
                result.errors.append("\t".join(f[1:]))
            case "PARSE_ERROR":
                result.parse_errors.append("\t".join(f[1:]))
            case "SUMMARY":
                kv = dict(x.split("=", 1) for x in f[1:])
                result.summary = Summary(
                    sent=int(kv["sent"]),
                    answered=int(kv["answered"]),
                    failed=int(kv["failed"]),
                    elapsed_us=int(kv["elapsed_us"]),
                    rate=float(kv["rate"]),
                    p50_us=int(kv["p50_us"]),
                    p99_us=int(kv["p99_us"]),
                    window=int(kv["window"]),
                )
            case _:
                pass


_DIAMID = re.compile(r"^[A-Za-z0-9.\-]+$")


def _ident(value: str) -> str:
    if not _DIAMID.match(value):
        raise ValueError(f"not a Diameter identity: {value!r}")
    return value


def write_config(
    workdir: Path,
    eir: tuple[str, int],
    requests: Iterable[Ecr | str],
    *,
    extension: Path,
    window: int = 1,
    count: int = 0,
    tw_timer: int = 30,
    tc_timer: int = 3,
    linger: float = 0.0,
    start_delay: float = 0.0,
    answer_timeout: float = 5.0,
    open_timeout: float = 10.0,
    identity: str = "mme.localdomain",
    realm: str = "localdomain",
    peer: str = "eir.localdomain",
    dest_realm: str = "localdomain",
    dest_host: str | None = "eir.localdomain",
    relay: bool = False,
    tls: tuple[Path, Path, Path] | None = None,
    tls_prio: str | None = None,
) -> Path:
    """Write ``freeDiameter.conf``, ``s13_mme.conf`` and ``requests.csv``; returns the daemon conf.

    ``tls``: (certificate, key, CA) — the peer is then reached over TLS from the first octet
    (RFC 6733 §13, freeDiameter's default when the peer has no ``No_TLS``): freeDiameter presents
    the certificate and checks the EIR's against the CA and against the peer's Diameter identity.
    ``tls_prio``: a GnuTLS priority string (``TLS_Prio``)."""
    if tw_timer < 6:
        raise ValueError("freeDiameter requires TwTimer >= 6 (RFC 3539 §3.4.1)")
    workdir.mkdir(parents=True, exist_ok=True)
    reqs = workdir / "requests.csv"
    with reqs.open("w") as f:
        for r in requests:
            e = Ecr(r) if isinstance(r, str) else r
            # an empty IMEI: the ECR goes without Terminal-Information
            f.write(f"{e.imei},{e.software_version or ''},{e.imsi or ''}\n")
    ext_conf = workdir / "s13_mme.conf"
    lines = [
        f"requests {reqs}",
        f"output {workdir / 'results.tsv'}",
        f"peer {_ident(peer)}",
        f"dest_realm {_ident(dest_realm)}",
        f"window {window}",
        f"count {count}",
        f"start_delay_ms {int(start_delay * 1000)}",
        f"linger_ms {int(linger * 1000)}",
        f"timeout_ms {int(answer_timeout * 1000)}",
        f"open_timeout_ms {int(open_timeout * 1000)}",
    ]
    if dest_host:
        lines.append(f"dest_host {_ident(dest_host)}")
    ext_conf.write_text("\n".join(lines) + "\n")
    host, port = eir
    conf = workdir / "freeDiameter.conf"
    daemon = [
        f'Identity = "{_ident(identity)}";',
        f'Realm = "{_ident(realm)}";',
        # Client only: no listening socket (freeDiameter would bind 0.0.0.0, ignoring ListenOn).
        "Port = 0;",
        "SecPort = 0;",
        "No_SCTP;",
        # A relay advertises the Relay application (0xFFFFFFFF) in its CER besides S13, as a DRA does.
        *([] if relay else ["NoRelay;"]),
        f"TcTimer = {tc_timer};",
        f"TwTimer = {tw_timer};",
        f'LoadExtension = "{extension}" : "{ext_conf}";',
    ]
    if tls is None:
        daemon.append(f'ConnectPeer = "{_ident(peer)}" {{ ConnectTo = "{host}"; Port = {port}; No_TLS; }};')
    else:
        cert, key, ca = tls
        daemon += [f'TLS_Cred = "{cert}", "{key}";', f'TLS_CA = "{ca}";']
        if tls_prio:
            daemon.append(f'TLS_Prio = "{tls_prio}";')
        daemon.append(f'ConnectPeer = "{_ident(peer)}" {{ ConnectTo = "{host}"; Port = {port}; }};')
    conf.write_text("\n".join(daemon) + "\n")
    return conf


class MmeProcess:
    """A running ``freeDiameterd`` S13 MME; :meth:`poll` reads the extension's output so far.

    The daemon shuts down by itself after the last answer (+ ``linger``), sending DPR; :meth:`stop`
    ends it early with SIGTERM, which freeDiameter also handles gracefully (DPR/DPA).
    """

    def __init__(
        self,
        workdir: Path,
        eir: tuple[str, int],
        requests: Sequence[Ecr | str],
        *,
        extension: Path | None = None,
        **options: object,
    ) -> None:
        if (reason := unavailable()) is not None:
            raise FreeDiameterError(reason)
        self.workdir = workdir
        ext = extension if extension is not None else build_extension()
        self.conf = write_config(workdir, eir, requests, extension=ext, **options)  # type: ignore[arg-type]
        self.log_path = workdir / "freeDiameterd.log"
        self.results_path = workdir / "results.tsv"
        self.results_path.unlink(missing_ok=True)
        self._timed_out = False
        with self.log_path.open("wb") as logf:
            self.proc = subprocess.Popen(
                ["freeDiameterd", "-c", str(self.conf)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )

    def poll(self) -> RunResult:
        """What the daemon and the extension have written so far."""
        result = RunResult(
            returncode=self.proc.poll(),
            timed_out=self._timed_out,
            log=self.log_path.read_text(errors="replace"),
        )
        if self.results_path.exists():
            parse_output(self.results_path.read_text(errors="replace"), result)
        return result

    def wait_until(self, predicate: Callable[[RunResult], bool], timeout: float) -> RunResult:
        """Poll until ``predicate`` holds or the daemon exits; raise TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.poll()
            if predicate(result) or result.returncode is not None:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"freeDiameter condition not met within {timeout}s:\n{result.describe()}")
            time.sleep(0.05)

    def wait(self, timeout: float) -> RunResult:
        """Wait for the daemon to exit (SIGTERM, then SIGKILL, after ``timeout``)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self.stop()
        return self.poll()

    def stop(self, timeout: float = 20.0) -> RunResult:
        """SIGTERM (graceful: freeDiameter sends DPR and waits for DPA), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.poll()

    def __enter__(self) -> MmeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def run_mme(
    workdir: Path,
    eir: tuple[str, int],
    requests: Sequence[Ecr | str],
    *,
    extension: Path | None = None,
    timeout: float = 30.0,
    **options: object,
) -> RunResult:
    """Run freeDiameterd as an S13 MME against ``eir`` until the extension is done (bounded by ``timeout``).

    ``options`` are passed to :func:`write_config` (window, count, tw_timer, linger, dest_host, …).
    """
    with MmeProcess(workdir, eir, requests, extension=extension, **options) as mme:
        return mme.wait(timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run freeDiameter as an MME by hand: ``python -m testkit.freediameter.fd HOST:PORT IMEI…``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m testkit.freediameter.fd", description=main.__doc__)
    p.add_argument("eir", help="HOST:PORT of the EIR's Diameter listener")
    p.add_argument("imei", nargs="+", help="IMEI[,SV[,IMSI]] (an empty IMEI sends no Terminal-Information)")
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--count", type=int, default=0, help="bench mode: N ECRs cycling over the IMEIs")
    p.add_argument("--peer", default="eir.localdomain", help="the EIR's Diameter identity")
    p.add_argument("--realm", default="localdomain")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    host, _, port = args.eir.rpartition(":")
    requests = []
    for spec in args.imei:
        imei, sv, imsi = ([*spec.split(","), "", ""])[:3]
        requests.append(Ecr(imei, sv or None, imsi or None))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fd-mme-"))
    r = run_mme(
        workdir,
        (host.strip("[]"), int(port)),
        requests,
        window=args.window,
        count=args.count,
        peer=args.peer,
        dest_host=args.peer,
        dest_realm=args.realm,
        realm=args.realm,
    )
    for a in r.answers:
        print(
            f"{a.imei or '(no Terminal-Information)'}: result={a.result_code} "
            f"experimental={a.experimental_result_code} equipment_status={a.equipment_status} "
            f"failed_avp={a.failed_avp} {a.latency_us} us"
        )
    if r.summary and args.count:
        print(r.summary)
    for line in [*r.errors, *r.parse_errors, *r.timeouts]:
        print("problem:", line)
    print(f"freeDiameter log and results in {workdir}")
    return 0 if r.opened and not (r.errors or r.parse_errors or r.timeouts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
