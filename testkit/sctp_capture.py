"""What a capture of S13 and M3UA over SCTP must show, read by tshark (an independent decoder).

Used by ``tests/system/test_sctp_wire.py`` and by ``make test-sctp``, which reads the capture the test
wrote inside the VM with the host's tshark (tshark starts in ~1 s here, in a minute under the VM's
emulated CPU): ``python -m testkit.sctp_capture DIR`` (``DIR/sctp.pcapng`` and ``DIR/ports.json``).

Per DATA chunk: Diameter has PPID 46 (RFC 6733 §2.1.1) and travels on stream 0; M3UA has PPID 3
(RFC 4666 §1.4.7.1), management (MGMT, ASPSM, ASPTM) on stream 0 and DATA never on stream 0 (§1.4.7),
both ways. Each chunk carries one message (as many messages as chunks in every packet). The MSC's
ABORT is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

Chunk = tuple[int, int, str, int]
"""(PPID, stream, Diameter command code or M3UA message class, source port)"""


def _rows(pcap: Path, display_filter: str, *fields: str) -> list[list[list[str]]]:
    args = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a"]
    for f in fields:
        args += ["-e", f]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise AssertionError(f"tshark failed: {res.stderr}")
    return [[v.split(",") if v else [] for v in line.split("\t")] for line in res.stdout.splitlines() if line]


def chunks(pcap: Path, port: int, message_field: str, length_field: str) -> list[Chunk]:
    """One entry per DATA chunk to or from ``port``. Fails unless every chunk holds exactly one
    message: tshark decodes only the first message of a chunk, so the chunk's payload length (chunk
    length - 16) must be that message's own length field."""
    out: list[Chunk] = []
    rows = _rows(
        pcap,
        f"sctp.data_payload_proto_id && sctp.port == {port}",
        "sctp.chunk_type",
        "sctp.chunk_length",
        "sctp.data_payload_proto_id",
        "sctp.data_sid",
        message_field,
        length_field,
        "sctp.srcport",
    )
    for types, lengths, ppids, sids, messages, msg_lengths, (src,) in rows:
        payloads = [int(n) - 16 for t, n in zip(types, lengths, strict=True) if t == "0"]
        if not len(payloads) == len(ppids) == len(sids) == len(messages) == len(msg_lengths):
            raise AssertionError(f"undecoded DATA chunk: {types} {ppids} {messages}")
        if payloads != [int(n) for n in msg_lengths]:
            raise AssertionError(
                f"not one message per SCTP message: chunk payloads {payloads}, first messages {msg_lengths}"
            )
        out += [(int(p), int(s, 0), m, int(src)) for p, s, m in zip(ppids, sids, messages, strict=True)]
    return out


def check(
    pcap: Path, diameter_port: int, m3ua_port: int, ecrs: int | None = None, m3ua_data: int | None = None
) -> str:
    """Raise AssertionError unless the capture shows the above; else a summary of what it holds.

    ``ecrs`` / ``m3ua_data``: how many ECR+ECA and M3UA DATA messages were exchanged, at most (a
    capture under the VM's emulated CPU may drop a packet, so fewer is tolerated: one message per
    chunk is proved by the lengths, :func:`chunks`)."""
    diameter = chunks(pcap, diameter_port, "diameter.cmd.code", "diameter.length")
    m3ua = chunks(pcap, m3ua_port, "m3ua.message_class", "m3ua.message_length")
    summary = (
        f"diameter chunks (ppid, stream, command): {dict(Counter(c[:3] for c in diameter))}\n"
        f"m3ua chunks (ppid, stream, class): {dict(Counter(c[:3] for c in m3ua))}"
    )
    assert diameter, "no Diameter DATA chunk"
    assert {c[0] for c in diameter} == {46}, summary
    assert {c[1] for c in diameter} == {0}, summary
    assert {c[2] for c in diameter} >= {"257", "324", "282"}, summary  # CER/CEA, ECR/ECA, DPR/DPA
    if ecrs is not None:
        assert 0 < sum(c[2] == "324" for c in diameter) <= ecrs, f"{ecrs} ECR/ECA expected: {summary}"
    if m3ua_data is not None:
        assert 0 < sum(c[2] == "1" for c in m3ua) <= m3ua_data, f"{m3ua_data} M3UA DATA expected: {summary}"
    assert m3ua, "no M3UA DATA chunk"
    assert {c[0] for c in m3ua} == {3}, summary
    streams: dict[str, set[int]] = {}
    for _ppid, sid, cls, _src in m3ua:
        streams.setdefault(cls, set()).add(sid)
    assert streams.get("1") and 0 not in streams["1"], summary  # Transfer (DATA) off stream 0
    assert all(s == {0} for cls, s in streams.items() if cls != "1"), summary
    assert {"3", "4"} <= streams.keys(), summary  # ASPSM and ASPTM were seen
    data_from = {src == m3ua_port for _p, _s, cls, src in m3ua if cls == "1"}
    assert data_from == {True, False}, "DATA both ways (MSC → EIR and EIR → MSC)"
    aborts = _rows(pcap, "sctp.chunk_type == 6", "sctp.dstport")
    assert [[str(m3ua_port)]] in aborts, f"no ABORT toward the M3UA port: {aborts}"
    return summary + f"\nABORT chunks: {len(aborts)}"


def main(argv: list[str]) -> int:
    directory = Path(argv[1])
    ports = json.loads((directory / "ports.json").read_text())
    try:
        print(
            check(
                directory / "sctp.pcapng",
                ports["diameter"],
                ports["m3ua"],
                ports.get("ecrs"),
                ports.get("m3ua_data"),
            )
        )
    except AssertionError as e:
        print(f"sctp capture check FAILED: {e}", file=sys.stderr)
        return 1
    print("sctp capture check: PPIDs 46/3, streams and ABORT as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
