"""Diameter over TLS/TCP (RFC 6733 §13) with freeDiameter 1.2 as the TLS peer, and tshark decrypting
the session with the EIR's key-log file (issue 10).

Certificates are made in the test with the openssl CLI: a lab CA, the EIR's certificate for
``eir.localdomain`` (freeDiameter checks the server certificate against its ``TLS_CA`` and the peer's
Diameter identity) and the MME's for ``mme.localdomain`` (the EIR asks for it with
``diameter.tls_peer_ca``, and the CER's Origin-Host must be one of its names). The TLS bytes go
through a loopback TCP proxy that records them (:class:`tests.interop.test_map_tshark.Tap`); the
recording is written as a pcap on port 5658 (Diameter over TLS) and tshark, given
``tls.keylog_file``, decrypts it and decodes the CER/CEA and the ECR/ECA.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testkit.freediameter.fd import Ecr, MmeProcess, build_extension
from testkit.peers import peer_program, require_peer
from tests.interop.test_map_tshark import Tap

pytestmark = [pytest.mark.interop, pytest.mark.system]

WHITE, BLACK = "35209900176148", "35394206000002"
TLS_PORT = 5658
"""The IANA port of Diameter over TLS/TCP: the pcap puts the session there, where Wireshark looks."""


def make_pki(tmp: Path) -> dict[str, Path]:
    """A CA and two leaf certificates it signed (EC P-256), plus one the CA never saw."""
    openssl = peer_program("openssl", "openssl", "the test makes its certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30, cwd=tmp)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=lab-ca",
        *ca_ext,
    )
    out: dict[str, Path] = {"ca": tmp / "ca.pem"}
    for name in ("eir.localdomain", "mme.localdomain"):
        short = name.split(".")[0]
        (tmp / f"{short}.ext").write_text(
            f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
            "keyUsage=critical,digitalSignature\n"
        )
        run("req", *ec, "-keyout", f"{short}.key", "-out", f"{short}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{short}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{short}.pem", "-days", "2", "-extfile", f"{short}.ext")  # fmt: skip
        out[short], out[f"{short}_key"] = tmp / f"{short}.pem", tmp / f"{short}.key"
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "rogue.key",
        "-out",
        "rogue.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mme.localdomain",
    )
    out["rogue"], out["rogue_key"] = tmp / "rogue.pem", tmp / "rogue.key"
    return out


def write_pcap(tap: Tap, path: Path, eir_port: int) -> None:
    """The tap's chunks as Ethernet/IPv4/TCP frames of one conversation per connection (client
    127.0.0.2, EIR 127.0.0.1), sequence numbers consistent per direction, so that tshark reassembles
    the TLS records and follows the session."""
    seq: dict[tuple[int, int], int] = {}
    eir_ip, client_ip = bytes((127, 0, 0, 1)), bytes((127, 0, 0, 2))
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        parts = [(c, d, data[i : i + 60000]) for c, d, data in tap.chunks for i in range(0, len(data), 60000)]
        for n, (conn, direction, data) in enumerate(parts):
            s = seq.setdefault((conn, direction), 1000)
            seq[(conn, direction)] = s + len(data)
            ack = seq.get((conn, 1 - direction), 1000)
            cport = 40000 + conn
            sport, dport = (cport, eir_port) if direction == 0 else (eir_port, cport)
            src, dst = (client_ip, eir_ip) if direction == 0 else (eir_ip, client_ip)
            tcp = struct.pack("!HHIIBBHHH", sport, dport, s, ack, 5 << 4, 0x18, 65535, 0, 0)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(data), n & 0xFFFF, 0, 64, 6, 0, src, dst)
            frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + data
            f.write(struct.pack("<IIII", 1_700_000_000, n, len(frame), len(frame)) + frame)


@pytest.fixture(scope="module")
def s13_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_peer("freediameter", "freeDiameter is the independent TLS peer of these tests")
    return build_extension(tmp_path_factory.mktemp("fdx"))


def tls_address(eir: Any) -> tuple[str, int]:
    (host, port, _t) = next(a for a in eir.ready["diameter"] if a[2] == "tls")
    return host, int(port)


def tls_config(pki: dict[str, Path], tmp: Path) -> dict[str, Any]:
    lists = tmp / "lists.csv"
    lists.write_text(f"imei,status\n{WHITE},white\n{BLACK},black\n")
    return {
        "lists": {"import_on_start": [str(lists)]},
        "diameter": {
            "tls_listen": ["127.0.0.1:0"],
            "tls_cert": str(pki["eir"]),
            "tls_key": str(pki["eir_key"]),
            "tls_peer_ca": str(pki["ca"]),
            "tls_keylog": str(tmp / "keylog.txt"),
        },
    }


async def test_freediameter_over_tls_decrypted_by_tshark(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    tshark = peer_program("tshark", "tshark", "Wireshark decrypts the TLS session with the key log")
    pki = make_pki(tmp_path)
    eir = await asyncio.to_thread(eir_factory, tls_config(pki, tmp_path))
    tap = Tap(tls_address(eir))
    await tap.start()
    mme = MmeProcess(
        tmp_path / "fd",
        ("127.0.0.1", tap.port),
        [Ecr(WHITE), Ecr(BLACK)],
        extension=s13_extension,
        tls=(pki["mme"], pki["mme_key"], pki["ca"]),
    )
    with mme:
        r = await asyncio.to_thread(mme.wait_until, lambda r: len(r.answers) == 2, 30)
        assert len(r.answers) == 2, r.describe()
        r = await asyncio.to_thread(mme.stop)
    assert r.errors == [] and r.parse_errors == [], r.describe()
    got = sorted((a.imei, a.result_code, a.equipment_status) for a in r.answers)
    assert got == sorted([(WHITE, 2001, 0), (BLACK, 2001, 1)])
    ev = await asyncio.to_thread(eir.wait_for_log, "diameter_peer_open", peer_host="mme.localdomain")
    assert ev["transport"] == "tls", ev

    assert tap.server is not None
    tap.server.close()
    pcap = tmp_path / "tls.pcap"
    write_pcap(tap, pcap, TLS_PORT)
    fields = ["tls.handshake.type", "diameter.cmd.code", "diameter.flags.request", "diameter.Origin-Host",
              "diameter.IMEI", "diameter.Result-Code", "diameter.Equipment-Status"]  # fmt: skip
    cmd = [tshark, "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{tmp_path / 'keylog.txt'}",
           "-d", f"tcp.port=={TLS_PORT},tls", "-d", f"tls.port=={TLS_PORT},diameter",
           # tshark 4.0's RDP multi-transport heuristic claims the CER that shares a frame with the
           # client's Finished: Diameter is what the port says
           "--disable-protocol", "rdpmt", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
           "-E", "separator=\t"]  # fmt: skip
    for f in fields:
        cmd += ["-e", f]
    res = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=120, check=True
    )
    cols: dict[str, list[str]] = {f: [] for f in fields}
    for line in res.stdout.splitlines():
        for f, v in zip(fields, line.split("\t"), strict=True):
            cols[f] += [x for x in v.split("|") if x]
    assert "1" in cols["tls.handshake.type"]  # ClientHello: TLS from the first octet (§13)
    assert cols["diameter.cmd.code"].count("257") >= 2  # CER and CEA, inside TLS
    assert cols["diameter.cmd.code"].count("324") == 4  # two ECRs, two ECAs
    assert sorted(cols["diameter.IMEI"]) == sorted([WHITE, BLACK])
    assert sorted(cols["diameter.Equipment-Status"]) == ["0", "1"]
    assert (
        "eir.localdomain" in cols["diameter.Origin-Host"]
        and "mme.localdomain" in cols["diameter.Origin-Host"]
    )


def cer_over_tls(
    address: tuple[str, int], pki: dict[str, Path], cert: str | None, origin_host: str
) -> int | str:
    """A CER from python-diameter over TLS (Python's ssl as the client, with ``cert`` or none):
    the CEA's Result-Code as python-diameter reads it, or ``"refused"`` when the TLS session ends
    without a CEA (the certificate was refused)."""
    import socket

    from diameter.message import Message
    from diameter.message.commands import CapabilitiesExchangeRequest

    cer = CapabilitiesExchangeRequest()
    cer.header.hop_by_hop_identifier = cer.header.end_to_end_identifier = 7
    cer.origin_host = origin_host.encode()
    cer.origin_realm = b"localdomain"
    cer.host_ip_address = ["127.0.0.1"]
    cer.vendor_id = 0
    cer.product_name = "python-diameter"
    cer.auth_application_id = [16777252]
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))  # checks the EIR's certificate and name
    if cert:
        ctx.load_cert_chain(pki[cert], pki[f"{cert}_key"])
    try:
        with (
            socket.create_connection(address, timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="eir.localdomain") as tls,
        ):
            tls.sendall(cer.as_bytes())
            data = b""
            while len(data) < 20 or len(data) < int.from_bytes(data[1:4], "big"):
                chunk = tls.recv(65536)
                if not chunk:
                    return "refused"
                data += chunk
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return "refused"  # TLS 1.3: the verdict on our certificate comes after our Finished
    cea = Message.from_bytes(data)
    assert type(cea).__name__ == "CapabilitiesExchangeAnswer" and cea.origin_host == b"eir.localdomain"
    return int(cea.result_code)


def test_peer_certificates_are_checked(eir_factory: Any, tmp_path: Path) -> None:
    """diameter.tls_peer_ca set: a certificate the CA signed opens the peer (CEA 2001); one another CA
    signed, or none, ends the handshake; a good certificate for another name than the CER's
    Origin-Host gets CEA 3010 DIAMETER_UNKNOWN_PEER."""
    pki = make_pki(tmp_path)
    eir = eir_factory(tls_config(pki, tmp_path))
    address = tls_address(eir)
    assert cer_over_tls(address, pki, "mme", "mme.localdomain") == 2001
    assert cer_over_tls(address, pki, "rogue", "mme.localdomain") == "refused"
    assert cer_over_tls(address, pki, None, "mme.localdomain") == "refused"
    assert cer_over_tls(address, pki, "mme", "mme2.localdomain") == 3010
