"""What ``eir serve`` tells a person: the start-up banner (a block on a terminal, one structured
line otherwise), one log line per check at debug, the missing-SCTP notice once, and a one-shot
simulator connection kept to the lines that matter at info."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import time
from typing import Any

import pytest

from netio.sctp import sctp_available
from simulations.mme import SimulatedMme
from simulations.msc import SimulatedMsc
from testkit.eirproc import eir_command

pytestmark = pytest.mark.system

IMEI = "35394206000002"


def test_banner_line_names_every_listener_store_lists_and_metrics(eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory(lists=f"imei,status\n{IMEI},black\n")
    ev = eir.wait_for_log("eir_ready")
    assert ev["config"] == str(eir.config_path)
    assert ev["store"].startswith("sqlite:///") and ev["list_version"] >= 1 and ev["list_entries"] == 1
    got = {(x["interface"], x["address"], x["transport"]) for x in ev["listeners"]}
    want = {
        ("s13", "{}:{}".format(*eir.diameter), "tcp"),
        ("map", "{}:{}".format(*eir.m3ua), "tcp"),
        ("n5g", "{}:{}".format(*eir.n5g), "tcp"),
    }
    assert got == want
    assert ev["metrics"] == "http://{}:{}/metrics".format(*eir.metrics)
    assert ev["admin"] == eir.admin_url, "the admin API's bound address"
    assert "mqtt" not in ev
    names = [e["event"] for e in eir.log_events()]
    assert "listening" not in names, "the banner replaced the per-interface lines"
    assert eir.stop() == 0


def test_one_debug_line_per_check_and_sctp_notice_once(eir_factory) -> None:  # type: ignore[no-untyped-def]
    both = ["tcp", "sctp"]
    eir = eir_factory(
        {"diameter": {"transports": both}, "m3ua": {"transports": both}}, lists=f"imei,status\n{IMEI},black\n"
    )

    async def checks() -> None:
        mme = await SimulatedMme.connect(*eir.diameter)
        assert (await mme.check(IMEI, imsi="001010123456789")).verdict == "black"
        await mme.close()

    asyncio.run(checks())
    eir.wait_for_log("diameter_peer_closed")
    events = eir.log_events()
    checks_logged = [e for e in events if e.get("event") == "check"]
    assert len(checks_logged) == 1
    (c,) = checks_logged
    assert (c["interface"], c["imei"], c["imsi"], c["status"]) == ("s13", IMEI, "001010123456789", "black")
    assert all(v is not None for e in events for v in e.values()), "no key=None clutter"
    if sctp_available() is not None:
        assert [e["event"] for e in events].count("sctp_unavailable") == 1
    assert eir.stop() == 0


def test_a_one_shot_simulator_connection_at_info(eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory({"log": {"level": "info"}}, lists=f"imei,status\n{IMEI},black\n")
    eir.wait_for_log("eir_ready")
    before = len(eir.log_events())

    async def one_each() -> None:
        mme = await SimulatedMme.connect(*eir.diameter)
        await mme.check(IMEI)
        await mme.close()
        msc = await SimulatedMsc.connect(*eir.m3ua)
        await msc.check(IMEI)
        await msc.close()

    asyncio.run(one_each())
    eir.wait_for_log("diameter_peer_closed")
    eir.wait_for_log("m3ua_closing")
    lines = [e["event"] for e in eir.log_events()[before:]]
    assert lines == ["diameter_peer_open", "diameter_peer_closed", "m3ua_asp_state", "m3ua_closing"], lines
    assert eir.stop() == 0


def test_banner_block_on_a_terminal(tmp_path: Any, eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory({"log": {"level": "info", "format": "auto"}}, start=False)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*eir_command(), "serve", "--config", str(eir.config_path)],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=eir.env, cwd=eir.tmp,
    )  # fmt: skip
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"eir_ready" not in out and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert "eir-emulator " in text and " ready\n" in text, text
    block = text[text.index("eir-emulator ") :]
    for label in ("config", "store", "lists", "s13", "map", "n5g", "metrics", "admin"):
        assert f"\n  {label} " in block, (label, block)
    assert '"event"' not in block, "a block for a person, not JSON"
