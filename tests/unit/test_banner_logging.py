"""The start-up banner's content (eir/banner.py) and the log set-up a person reads (eir/logging.py):
no ``key=None``, identities masked with ``log.mask_identities``."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from eir import __version__, banner
from eir.config import Config, StoreConfig
from eir.logging import get_logger, mask_digits, mask_payload, setup_logging


def _fields(config: Any, **kw: Any) -> dict[str, Any]:
    return banner.fields(
        config,
        config_path=kw.get("config_path", "/etc/eir/eir.yaml"),
        lists=banner.ListInfo(7, 1200, 3),
        listeners=[
            ("s13", "127.0.0.1", 3868, "tcp"),
            ("map", "::1", 2905, "sctp"),
            ("n5g", "0.0.0.0", 8000, "tcp"),
        ],
        metrics_url="https://127.0.0.1:9464/metrics",
        mqtt_broker=kw.get("mqtt"),
    )


def test_fields_name_everything_and_mask_the_store_password() -> None:
    cfg = Config(store=StoreConfig(url="postgresql://eir:hunter2@db.lab:5432/eir"))
    f = _fields(cfg, mqtt="mqtts://broker.lab:8883")
    assert f["version"] == __version__ and f["config"] == "/etc/eir/eir.yaml"
    assert f["store"] == "postgresql://eir:***@db.lab:5432/eir"
    assert "hunter2" not in json.dumps(f)
    assert (f["list_version"], f["list_entries"], f["list_pairings"]) == (7, 1200, 3)
    assert f["listeners"] == [
        {"interface": "s13", "address": "127.0.0.1:3868", "transport": "tcp"},
        {"interface": "map", "address": "[::1]:2905", "transport": "sctp"},
        {"interface": "n5g", "address": "0.0.0.0:8000", "transport": "tcp"},
    ]
    assert f["metrics"] == "https://127.0.0.1:9464/metrics" and f["mqtt"] == "mqtts://broker.lab:8883"
    assert f["admin"] == "http://127.0.0.1:9465/api/v1", "admin.listen's default"
    assert "workers" not in f


def test_admin_url_when_the_config_has_admin_listen() -> None:
    cfg: Any = SimpleNamespace(**{k: getattr(Config(), k) for k in Config.__slots__})  # type: ignore[attr-defined]
    cfg.admin = SimpleNamespace(enabled=True, listen=["127.0.0.1:9465"], token="secret-token")
    f = _fields(cfg)
    assert f["admin"] == "http://127.0.0.1:9465/api/v1"
    assert "secret-token" not in json.dumps(f)
    assert banner.admin_url(cfg, [["::1", 40001, "tcp"]]) == "http://[::1]:40001/api/v1", "the bound port"
    cfg.admin.enabled = False
    assert "admin" not in _fields(cfg)


def test_block_on_a_terminal_and_one_structured_line_otherwise() -> None:
    f = _fields(Config())
    block = banner.render(f)
    lines = block.splitlines()
    assert lines[0] == f"eir-emulator {__version__} ready"
    assert any(ln.split() == ["s13", "127.0.0.1:3868", "(tcp)"] for ln in lines)
    assert any(ln.split() == ["map", "[::1]:2905", "(sctp)"] for ln in lines)
    assert any("version 7, 1200 entries" in ln for ln in lines)
    out = io.StringIO()
    setup_logging("info", "json", out)
    try:
        banner.announce(get_logger(), f, out, tty=False)
        (line,) = out.getvalue().splitlines()
        ev = json.loads(line)
        assert ev["event"] == "eir_ready" and ev["listeners"] == f["listeners"] and ev["store"] == f["store"]
        tty = io.StringIO()
        banner.announce(get_logger(), f, tty, tty=True)
        assert tty.getvalue() == block
    finally:
        structlog.reset_defaults()


@pytest.mark.parametrize(
    ("value", "keep", "masked"),
    [
        ("35394206000002", 8, "35394206******"),
        ("353942060000037", 8, "35394206*******"),
        ("imei-353942060000037", 8, "imei-35394206*******"),
        ("imsi-001010123456789", 5, "imsi-00101**********"),
        ("001010123456789", 5, "00101**********"),
        ("", 5, ""),
    ],
)
def test_mask_digits(value: str, keep: int, masked: str) -> None:
    assert mask_digits(value, keep) == masked


def test_mask_payload_masks_identity_fields_only() -> None:
    got = mask_payload(
        {
            "imei": "35394206000002",
            "imsis": ["001010123456789"],
            "origin": "mme.lab",
            "n": 3,
            "msisdn": "491700000001",
            "nested": {"imsi": "001010123456789"},
        }
    )
    assert got == {
        "imei": "35394206******",
        "imsis": ["00101**********"],
        "origin": "mme.lab",
        "n": 3,
        "msisdn": "************",
        "nested": {"imsi": "00101**********"},
    }


def _log_line(mask: bool, **fields: Any) -> dict[str, Any]:
    out = io.StringIO()
    setup_logging("debug", "json", out, mask_identities=mask)
    try:
        get_logger(interface="s13").debug("check", **fields)
    finally:
        structlog.reset_defaults()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_log_lines_have_no_none_fields_and_mask_when_asked() -> None:
    plain = _log_line(False, imei="35394206000002", imsi=None, sv="05", reason=None)
    assert plain["imei"] == "35394206000002" and "imsi" not in plain and "reason" not in plain
    masked = _log_line(True, imei="35394206000002", imsi="001010123456789", origin="mme.lab")
    assert masked["imei"] == "35394206******" and masked["imsi"] == "00101**********"
    assert masked["origin"] == "mme.lab" and masked["interface"] == "s13"
