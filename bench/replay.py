"""``eir replay`` speed: a capture of 100,000 ECR/ECA exchanges (synthesised: Diameter over TCP in
pcapng, 1-8 messages per segment as a pipelining MME sends them, a tenth of the IMEIs on the list).

Figures: reading + reassembling alone (pcapng → frames → TCP → Diameter messages, messages/s, target
≥ 100k), the same with request/answer pairing, and ``--speed max`` replay against ``eir serve``
(requests/s over the network phase, target ≥ 20k; and end to end with the reading).

CPU time is reported beside every rate (the wall clock is noisy on a shared machine): reading's CPU
per message, and for the replay the replayer's and ``eir serve``'s CPU per request (the smallest of
the runs: the least disturbed). ``replay_cpu_bound_requests_per_s`` is what one core would do for
the replayer alone (1 / its CPU per request).
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.diameter import IMEI, _start_eir, _stop
from protocols.capture import CaptureDecoder
from protocols.capture.pcapng import (
    TcpSynth,
    enhanced_packet_block,
    interface_description_block,
    section_header_block,
)
from protocols.diameter import build_ecr, encode_message
from protocols.diameter.codec import encode_avp, encode_raw
from simulations.replay import Options, load_exchanges, read_frames, replay


def write_capture(path: Path, n: int) -> None:
    """``n`` ECRs, each answered white; IMEIs from IMEI upwards (1 in 10 is IMEI itself)."""
    template = bytearray(
        encode_message(
            build_ecr(
                session_id="mme.bench;1;0000000000",
                origin_host="mme.bench",
                origin_realm="bench",
                destination_realm="localdomain",
                imei=IMEI,
                imsi="001010123456789",
            )
        )
    )
    at = bytes(template).find(IMEI.encode())
    eca_body = (
        encode_avp(263, b"mme.bench;1;0000000000")
        + encode_avp(268, struct.pack(">I", 2001))
        + encode_avp(264, b"eir.localdomain")
        + encode_avp(296, b"localdomain")
        + encode_avp(1445, struct.pack(">I", 0), vendor_id=10415)
    )
    syn = TcpSynth(("127.0.0.1", 3868), ("127.0.0.1", 40000))
    with path.open("wb") as f:
        f.write(section_header_block() + interface_description_block())
        f.write(b"".join(enhanced_packet_block(0.0, p) for p in syn.open()))
        i, ts = 0, 1.0
        while i < n:
            k = min(1 + i % 8, n - i)
            reqs, answers = [], []
            for j in range(i, i + k):
                struct.pack_into(">II", template, 12, j, j)
                imei = IMEI if j % 10 == 0 else f"{int(IMEI) + j:014d}"
                template[at : at + 14] = imei.encode()
                reqs.append(bytes(template))
                answers.append(encode_raw(324, 0x40, 16777252, j, j, eca_body))
            ts += 0.0001
            f.write(b"".join(enhanced_packet_block(ts, p) for p in syn.data(True, b"".join(reqs))))
            f.write(b"".join(enhanced_packet_block(ts, p) for p in syn.data(False, b"".join(answers))))
            i += k


def run(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    out: dict[str, Any] = {"exchanges": n}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as td:
        tmp = Path(td)
        cap = tmp / "ecr.pcapng"
        write_capture(cap, n)
        out["capture_mb"] = round(cap.stat().st_size / 1e6, 1)

        best, best_cpu = 0.0, float("inf")
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            dec = CaptureDecoder()
            msgs = 0
            for lt, ts, frame in read_frames(cap):
                msgs += len(dec.receive_frame(lt, ts, frame))
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            best = max(best, msgs / dt)
            best_cpu = min(best_cpu, dc / msgs)
        out["read_reassemble_messages"] = msgs
        out["read_reassemble_messages_per_s"] = round(best)
        out["read_reassemble_cpu_us_per_message"] = round(best_cpu * 1e6, 2)
        out["read_reassemble_cpu_bound_messages_per_s"] = round(1 / best_cpu)

        t0, c0 = time.perf_counter(), time.process_time()
        loaded = load_exchanges(cap)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        out["read_reassemble_pair_messages_per_s"] = round(loaded.messages / dt)
        out["read_reassemble_pair_cpu_us_per_message"] = round(dc / loaded.messages * 1e6, 2)
        assert len(loaded.exchanges) == n

        from testkit.proc import cpu_seconds

        proc, addr, _ = _start_eir(tmp / "eir")
        try:
            opts = Options(window=256, timeout=30.0)
            rates = []
            mine, theirs = float("inf"), float("inf")
            for _ in range(2):
                c0, e0 = time.process_time(), cpu_seconds(proc.pid)
                report = runner(replay(loaded.exchanges, {"s13": [addr]}, opts))
                c1, e1 = time.process_time(), cpu_seconds(proc.pid)
                rates.append(len(report.results) / report.seconds)
                mine = min(mine, (c1 - c0) / n)
                if e0 is not None and e1 is not None:
                    theirs = min(theirs, (e1 - e0) / n)
            c = report.counts()
            out["replay_speed_max_requests_per_s"] = round(max(rates))
            out["replay_cpu_us_per_request"] = round(mine * 1e6, 2)
            out["replay_cpu_bound_requests_per_s"] = round(1 / mine)
            if theirs != float("inf"):
                out["eir_serve_cpu_us_per_request"] = round(theirs * 1e6, 2)
            out["replay_matched"] = c["matched"]
            out["replay_differed"] = c["differed"]
            out["end_to_end_requests_per_s"] = round(n / (n / max(rates) + dt))
        finally:
            _stop(proc)
    out["targets"] = {"read_reassemble_messages_per_s": 100_000, "replay_speed_max_requests_per_s": 20_000}
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
