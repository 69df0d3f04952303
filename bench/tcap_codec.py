"""TCAP + MAP checkIMEI codec throughput: the EIR core (fast path and general path) against pycrate.

One "pair" is what the EIR does per request: decode a Begin (``TcapEirCore.receive_tcap``) and
encode the End (``TcapEirCore.answer``). The pycrate line does the same with the reference codec
(``TCAP_MAPv2v3`` from_ber + to_ber). CPU-bound, single thread, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from protocols.sigtran import (
    EquipmentStatus,
    TcapEirCore,
    decode_check_imei_reply,
    encode_check_imei_begin,
)
from testkit.tcap_ref import ref_decode, ref_end, ref_result

IMEI = "358091016853550"


def _rate(n: int, fn: Callable[[int], None]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def _core_pairs(n: int, version: int, vendor: str | None = None) -> float:
    core = TcapEirCore()
    imsi = "724340300385763" if vendor else None
    begins = [
        encode_check_imei_begin(otid=i, version=version, invoke_id=1, imei=IMEI, imsi=imsi, vendor=vendor)
        for i in range(n)
    ]

    def one(i: int) -> None:
        (ev,) = core.receive_tcap(begins[i], 0.0).invokes
        core.answer(ev, EquipmentStatus.WHITE_LISTED)

    return _rate(n, one)


def _pycrate_pairs(n: int) -> float:
    begin = encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI)

    def one(i: int) -> None:
        ref_decode(begin)
        ref_end(dtid=b"\x00\x00\x00\x01", version=3, components=[ref_result(1, 3, 0)])

    return _rate(n, one)


def _client_pairs(n: int) -> float:
    core = TcapEirCore()
    (ev,) = core.receive_tcap(encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI), 0.0).invokes
    end = core.answer(ev, EquipmentStatus.GREY_LISTED)
    assert end is not None

    def one(i: int) -> None:
        encode_check_imei_begin(otid=i, version=3, invoke_id=1, imei=IMEI)
        decode_check_imei_reply(end)

    return _rate(n, one)


def run(quick: bool) -> dict[str, object]:
    n = 5_000 if quick else 50_000
    out: dict[str, object] = {
        "eir_pairs_per_s_v3": round(_core_pairs(n, 3)),
        "eir_pairs_per_s_v2": round(_core_pairs(n, 2)),
        "eir_pairs_per_s_v1": round(_core_pairs(n, 1)),
        "eir_pairs_per_s_v3_huawei_general_path": round(_core_pairs(n, 3, "huawei")),
        "msc_encode_begin_decode_end_per_s": round(_client_pairs(n)),
        "pycrate_reference_pairs_per_s": round(_pycrate_pairs(max(n // 10, 500))),
    }
    for k, v in out.items():
        print(f"{k:45s} {v:>10}")
    return out


if __name__ == "__main__":
    run(quick=False)
