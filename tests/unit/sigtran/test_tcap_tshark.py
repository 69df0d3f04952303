"""Wireshark (tshark) as a second independent decoder of every standard message we build.

The TCAP octets are written to a pcap with DLT 147 (USER0) mapped to the ``tcap`` dissector through
the ``user_dlts`` preference. Standard messages must decode with zero expert infos (no "malformed",
no BER errors). M3UA/SCCP framing is checked by the M3UA/SCCP tests; this is TCAP + MAP only.

A v1 Begin has no application-context-name, so tshark (without the SCCP SSN) cannot pick MAP for
its components: for those only the TCAP fields are asserted.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from protocols.sigtran import EquipmentStatus, MapError, TcapEirCore, encode_check_imei_begin
from protocols.sigtran.tcap import Invoke

pytestmark = [
    pytest.mark.interop,
    pytest.mark.peer("tshark", "Wireshark's TCAP/MAP dissectors check our encoder independently"),
]

USER_DLT = 'uat:user_dlts:"User 0 (DLT=147)","tcap","0","","0",""'
FIELDS = [
    "tcap.otid",
    "tcap.dtid",
    "tcap.application_context_name",
    "tcap.result",
    "tcap.dialogue_service_user",
    "tcap.dialogue_service_provider",
    "tcap.abort_source",
    "tcap.p_abortCause",
    "gsm_old.derivable",
    "gsm_old.invokeProblem",
    "gsm_old.localValue",
    "gsm_map.tbcd_digits",
    "gsm_map.ms.equipmentStatus",
    "_ws.expert",
    "_ws.malformed",
]


def tshark_fields(tmp_path: Path, frames: list[bytes]) -> list[dict[str, str]]:
    pcap = tmp_path / "tcap.pcap"
    with pcap.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147))
        for i, data in enumerate(frames):
            f.write(struct.pack("<IIII", i, 0, len(data), len(data)) + data)
    args = ["tshark", "-n", "-o", USER_DLT, "-r", str(pcap), "-T", "fields", "-E", "occurrence=a"]
    for name in FIELDS:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert len(rows) == len(frames)
    return rows


def test_standard_messages_decode_cleanly(tmp_path: Path) -> None:
    core = TcapEirCore(supported_versions=(1, 2, 3))
    frames: list[bytes] = []
    expect: list[dict[str, str]] = []
    imei = "358091016853550"
    for version in (1, 2, 3):
        for status in EquipmentStatus:
            begin = encode_check_imei_begin(
                otid=0x0A000000 + version * 16 + status,
                version=version,
                invoke_id=1,
                imei=imei,
                requested_bmuef=version == 3,
            )
            (ev,) = core.receive_tcap(begin, 0.0).invokes
            end = core.answer(ev, status, b"\x80\x02\x07\x80")
            assert end is not None
            acn = "" if version == 1 else f"0.4.0.0.1.0.13.{version}"
            tid = f"{0x0A000000 + version * 16 + status:08x}"
            frames += [begin, end]
            if version == 1:
                expect += [{"tcap.otid": tid}, {"tcap.dtid": tid}]
            else:
                expect += [
                    {
                        "tcap.otid": tid,
                        "tcap.application_context_name": acn,
                        "gsm_old.localValue": "43",
                        "gsm_map.tbcd_digits": imei,
                    },
                    {
                        "tcap.dtid": tid,
                        "tcap.application_context_name": acn,
                        "tcap.result": "0",
                        "gsm_old.localValue": "43",
                        "gsm_map.ms.equipmentStatus": str(int(status)),
                    },
                ]
    # ReturnError (v3), Reject (unknown operation), U-Abort with AARE, P-Abort, ABRT on expiry.
    (ev,) = core.receive_tcap(
        encode_check_imei_begin(otid=0x0B, version=3, invoke_id=2, imei=imei), 0.0
    ).invokes
    err = core.answer_error(ev, MapError.UNKNOWN_EQUIPMENT)
    assert err is not None
    frames.append(err)
    expect.append({"tcap.dtid": "0000000b", "gsm_old.localValue": "7"})
    from protocols.sigtran.tcap import Aarq, MessageType, TcapMessage, encode_tcap

    unknown_op = encode_tcap(
        TcapMessage(
            type=MessageType.BEGIN,
            otid=b"\x0c",
            dialogue=Aarq(acn=(0, 4, 0, 0, 1, 0, 13, 2)),
            components=(Invoke(invoke_id=3, opcode=99),),
        )
    )
    rej = core.receive_tcap(unknown_op, 0.0).reply
    assert rej is not None
    frames.append(rej)
    expect.append({"tcap.dtid": "0c", "gsm_old.derivable": "3", "gsm_old.invokeProblem": "1"})
    v2only = TcapEirCore(supported_versions=(2,))
    u_abort = v2only.receive_tcap(
        encode_check_imei_begin(otid=0x0D, version=3, invoke_id=1, imei=imei), 0.0
    ).reply
    assert u_abort is not None
    frames.append(u_abort)
    expect.append(
        {
            "tcap.dtid": "0000000d",
            "tcap.application_context_name": "0.4.0.0.1.0.13.2",
            "tcap.result": "1",
            "tcap.dialogue_service_user": "2",
        }
    )
    p_abort = core.receive_tcap(bytes.fromhex("6506480101490102"), 0.0).reply
    assert p_abort is not None
    frames.append(p_abort)
    expect.append({"tcap.dtid": "01", "tcap.p_abortCause": "1"})
    expiring = TcapEirCore(dialogue_timeout=1.0)
    expiring.receive_tcap(encode_check_imei_begin(otid=0x0E, version=2, invoke_id=1, imei=imei), 0.0)
    ((_key, abrt),) = expiring.handle_timer(5.0)
    frames.append(abrt)
    expect.append({"tcap.dtid": "0000000e", "tcap.abort_source": "0"})

    rows = tshark_fields(tmp_path, frames)
    for i, (row, want) in enumerate(zip(rows, expect, strict=True)):
        assert row["_ws.expert"] == "" and row["_ws.malformed"] == "", (i, row)
        for name, value in want.items():
            assert row[name] == value, (i, name, row)
