"""``eir serve`` as a process: start-up failures, readiness, metrics, graceful stop, shipped config."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from testkit.eirproc import ROOT, EirProcess, clean_env, eir_command

pytestmark = pytest.mark.system


def test_config_error_exits_2_and_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("diameter:\n  listen: [nohost]\n")
    res = subprocess.run(
        [*eir_command(), "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert res.returncode == 2
    assert "diameter.listen[0]: expected HOST:PORT" in res.stderr


def test_bad_environment_override_exits_2(tmp_path: Path) -> None:
    res = subprocess.run(
        [*eir_command(), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env({"EIR_POLICY_UNKNOWN_EQUIPMENT": "purple"}),
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "policy.unknown_equipment" in res.stderr


def test_port_in_use_exits_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = EirProcess(tmp_path, {"diameter": {"listen": [f"127.0.0.1:{port}"]}})
        with pytest.raises(RuntimeError, match="exited with 3"):
            p.start()
        assert any(
            e.get("event") == "startup_failed" and "diameter" in e.get("error", "") for e in p.log_events()
        )


def test_ready_metrics_and_graceful_stop(eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory()
    assert eir.ready["pid"] == eir.proc.pid
    host, port = eir.diameter
    assert host == "127.0.0.1" and port > 0
    assert eir.m3ua[1] > 0
    text = eir.metrics_text()
    assert "eir_peers" in text and "eir_check_duration_seconds" in text
    # A client connected at shutdown must not hold the process beyond the grace period.
    with socket.create_connection(eir.diameter):
        t0 = time.monotonic()
        assert eir.stop() == 0
        assert time.monotonic() - t0 < 15
    eir.wait_for_log("stopped", timeout=1)


def _open_silent_diameter_peer(addr: tuple[str, int]) -> socket.socket:
    """A peer that completes CER/CEA and then never answers (so never a DPA)."""
    from protocols.diameter import CapabilitiesExchanged, DiameterPeer, Role

    core = DiameterPeer(
        role=Role.INITIATOR, origin_host="silent.mme", origin_realm="lab", destination_realm="localdomain"
    )
    core.start(0.0)
    sock = socket.create_connection(addr, timeout=5)
    sock.sendall(core.data_to_send())
    events: list[object] = []
    while not any(isinstance(e, CapabilitiesExchanged) for e in events):
        data = sock.recv(65536)
        assert data, "EIR closed before CEA"
        events += core.receive_data(data, 0.0)
    return sock


def test_second_signal_forces_exit(eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory({"shutdown_grace": 30})
    with _open_silent_diameter_peer(eir.diameter):  # the EIR sends DPR and waits for a DPA in vain
        eir.proc.send_signal(signal.SIGTERM)
        eir.wait_for_log("shutdown_requested")
        eir.proc.send_signal(signal.SIGTERM)
        assert eir.proc.wait(10) == 1


def test_shipped_config_imports_demo_lists(tmp_path: Path) -> None:
    """What ``make run`` does, on free ports: the demo lists are in force at once."""
    env = {
        "EIR_DATA_DIR": str(tmp_path / "data"),
        "EIR_STORE_URL": f"sqlite:///{tmp_path / 'data' / 'eir.db'}",
        "EIR_DIAMETER_LISTEN": "127.0.0.1:0",
        "EIR_M3UA_LISTEN": "127.0.0.1:0",
        "EIR_N5G_LISTEN": "127.0.0.1:0",
        "EIR_METRICS_LISTEN": "127.0.0.1:0",
        "EIR_LISTS_IMPORT_ON_START": str(ROOT / "config" / "lists" / "demo.csv"),
        "EIR_LOG_FORMAT": "json",
    }
    p = EirProcess(tmp_path, env=env)
    p.config_path.write_text((ROOT / "config" / "eir.yaml").read_text())
    p.start()
    try:
        p.wait_for_log("lists_imported")
        for imei, status in (
            ("35394206000002", "black"),
            ("35394206000001", "grey"),
            ("35209900176148", "white"),
            ("86700000123456", "black"),
            ("35691234000500", "grey"),
        ):
            out = p.cli("check", imei).stdout.lower()
            assert status in out, (imei, out)
    finally:
        assert p.stop() == 0
