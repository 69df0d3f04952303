"""The n5g: NRF and OAuth2 keys: defaults, environment overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from eir.config import ConfigError, N5gConfig, load_config
from eir.nrf import advertised, instance_id


def test_defaults_are_off() -> None:
    n = load_config(None, environ={}).n5g
    assert (n.nrf, n.nrf_advertise, n.nf_instance_id, n.nrf_ca, n.oauth2_key, n.oauth2_issuer) == (None,) * 6
    assert (n.nrf_heartbeat, n.nrf_retry_max, n.oauth2_audience) == (10, 30.0, [])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EIR_N5G_NRF": "ftp://nrf"}, "n5g.nrf:"),
        ({"EIR_N5G_NRF": "http://"}, "n5g.nrf:"),
        ({"EIR_N5G_NF_INSTANCE_ID": "not-a-uuid"}, "n5g.nf_instance_id:"),
        ({"EIR_N5G_NRF_HEARTBEAT": "0"}, "n5g.nrf_heartbeat:"),
        ({"EIR_N5G_NRF_RETRY_MAX": "0"}, "n5g.nrf_retry_max:"),
        ({"EIR_N5G_OAUTH2_KEY": "/nonexistent/key.pem"}, "n5g.oauth2_key:"),
        ({"EIR_N5G_NRF_CA": "/nonexistent/ca.pem"}, "n5g.nrf_ca:"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ=env)


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("secret\n")
    with pytest.raises(ConfigError, match=r"n5g.oauth2_key: .*at least 32 bytes"):
        load_config(None, environ={"EIR_N5G_OAUTH2_KEY": str(key)})


def test_advertised_address_and_stable_instance_id() -> None:
    cfg = N5gConfig()
    assert advertised(cfg, ("127.0.0.1", 8000)) == ("127.0.0.1", 8000)
    assert advertised(N5gConfig(nrf_advertise="eir.lab"), ("0.0.0.0", 8000)) == ("eir.lab", 8000)
    assert advertised(N5gConfig(nrf_advertise="192.0.2.1:9000"), ("0.0.0.0", 8000)) == ("192.0.2.1", 9000)
    host, _ = advertised(cfg, ("0.0.0.0", 8000))
    assert host != "0.0.0.0"  # a wildcard is never advertised
    a = instance_id(cfg, "192.0.2.1", 8000)
    assert a == instance_id(cfg, "192.0.2.1", 8000) != instance_id(cfg, "192.0.2.1", 8001)
    given = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert instance_id(N5gConfig(nf_instance_id=given.upper()), "x", 1) == given
