"""The m3ua: / diameter: keys of issue 10's limits, addressing, screening and TLS: defaults, the
environment overrides, and the load-time errors that name the key."""

from __future__ import annotations

import re

import pytest

from eir.config import ConfigError, load_config


def test_defaults_turn_the_limits_on() -> None:
    cfg = load_config(None, environ={})
    m = cfg.m3ua
    assert (m.beat_interval, m.setup_timeout, m.idle_timeout, m.write_timeout) == (30, 30, 600, 30)
    assert m.accept_point_codes == m.network_indicators == m.screen_opcs == []
    assert cfg.diameter.write_timeout == 30 and cfg.diameter.tls_listen == []


def test_environment_sets_lists() -> None:
    cfg = load_config(
        None,
        environ={
            "EIR_M3UA_SCREEN_OPCS": "1,5",
            "EIR_M3UA_SCREEN_CALLING_GT_PREFIXES": "4917,4918",
            "EIR_M3UA_ACCEPT_GLOBAL_TITLES": "4917000000*",
            "EIR_M3UA_NETWORK_INDICATORS": "0,2",
        },
    )
    m = cfg.m3ua
    assert m.screen_opcs == [1, 5] and m.network_indicators == [0, 2]
    assert m.screen_calling_gt_prefixes == ["4917", "4918"] and m.accept_global_titles == ["4917000000*"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"m3ua": {"network_indicators": [4]}}, "m3ua.network_indicators[0]"),
        ({"m3ua": {"screen_opcs": [1 << 24]}}, "m3ua.screen_opcs[0]"),
        ({"m3ua": {"accept_point_codes": [-1]}}, "m3ua.accept_point_codes[0]"),
        ({"m3ua": {"accept_global_titles": ["49*17"]}}, "m3ua.accept_global_titles[0]"),
        ({"m3ua": {"screen_calling_gt_prefixes": ["4917*"]}}, "m3ua.screen_calling_gt_prefixes[0]"),
        ({"m3ua": {"setup_timeout": -1}}, "m3ua.setup_timeout"),
        ({"m3ua": {"write_buffer_limit": 10}}, "m3ua.write_buffer_limit"),
        ({"diameter": {"write_timeout": -2}}, "diameter.write_timeout"),
        ({"diameter": {"tls_listen": ["127.0.0.1:5658"]}}, "diameter.tls_listen"),
        ({"diameter": {"tls_listen": ["nohost"], "tls_cert": "c", "tls_key": "k"}}, "diameter.tls_listen[0]"),
    ],
)
def test_bad_values_name_their_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(key)):
        load_config(None, environ={}, overrides=overrides)


def test_any_called_gt() -> None:
    assert load_config(None, environ={}, overrides={"m3ua": {"accept_global_titles": ["*"]}})
