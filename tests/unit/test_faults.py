"""eir/faults.py: rule validation, matching (interface, IMEI forms, peer names, DWRs), counts."""

from __future__ import annotations

import random
import re

import pytest

from eir.config import ConfigError, load_config
from eir.faults import FAULT_KINDS, KIND_INTERFACES, FaultRegistry, FaultRule, FaultSpecError


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "result_code", "interfaces": ["map"]}, "interfaces: kind result_code applies to s13 only"),
        ({"kind": "dwr_silence", "imei": "35*"}, "imei: a DWR carries no IMEI"),
        ({"kind": "explode"}, "kind: expected one of"),
        ({"kind": "delay", "delay_ms": -1}, "delay_ms"),
        ({"kind": "close", "imei": "3-"}, "imei"),
        ({"kind": "close", "colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_bad_rules_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(FaultSpecError, match=re.escape(message)):
        FaultRule.from_dict(spec)


def test_every_kind_has_interfaces() -> None:
    assert set(KIND_INTERFACES) == set(FAULT_KINDS)


def test_a_kind_matches_only_its_interfaces() -> None:
    reg = FaultRegistry()
    reg.add({"kind": "result_code"})
    reg.add({"kind": "map_error"})
    reg.add({"kind": "http_status"})
    assert reg.match("s13", "35123456789012").kind == "result_code"  # type: ignore[union-attr]
    assert reg.match("map", "35123456789012").kind == "map_error"  # type: ignore[union-attr]
    assert reg.match("n5g", "35123456789012").kind == "http_status"  # type: ignore[union-attr]


def test_imei_forms_ranges_and_peers() -> None:
    r = FaultRule.from_dict({"kind": "close", "imei": "35123456789012", "peer": "mme*.lab"})
    for imei in ("35123456789012", "351234567890120", "3512345678901201"):
        assert r.matches("s13", imei, ["MME1.lab"]), imei
    assert not r.matches("s13", "35123456789013", ["mme1.lab"])
    assert not r.matches("s13", "35123456789012", ["other.lab", ""])
    rng = FaultRule.from_dict({"kind": "close", "imei": "3512345678-3512345679"})
    assert rng.matches("map", "351234567999999", ()) and not rng.matches("map", "35123456800000", ())
    gt = FaultRule.from_dict({"kind": "map_error", "peer": "gt:4917*"})
    assert gt.matches("map", "35123456789012", ["gt:491700000001", "pc:11", "127.0.0.1"])
    assert not gt.matches("map", "35123456789012", ["gt:331700000001", "pc:11"])


def test_dwr_silence_matches_dwrs_only_and_count_removes_the_rule() -> None:
    reg = FaultRegistry()
    reg.add({"kind": "dwr_silence", "peer": "mme.lab", "count": 2})
    assert reg.match("s13", "35123456789012", ["mme.lab"]) is None  # an ECR: not this rule
    assert reg.match("s13", "", ["mme.lab"], watchdog=True) is not None
    assert reg.match("s13", "", ["other.lab"], watchdog=True) is None
    assert reg.match("s13", "", ["mme.lab"], watchdog=True) is not None
    assert reg.rules() == [] and not reg.active


def test_probability_draws() -> None:
    reg = FaultRegistry(rng=random.Random(7))
    reg.add({"kind": "no_answer", "probability": 0.25})
    fired = sum(reg.match("n5g", "35123456789012") is not None for _ in range(4000))
    assert 800 < fired < 1200
    assert reg.rules()[0].injected == fired


def test_faults_in_config_are_validated_and_come_from_the_environment() -> None:
    cfg = load_config(environ={"EIR_FAULTS": '[{"kind": "delay", "delay_ms": 5}]'})
    assert cfg.faults == [{"kind": "delay", "delay_ms": 5}]
    with pytest.raises(ConfigError, match=r"faults\[0\]: kind: expected one of"):
        load_config(environ={"EIR_FAULTS": '[{"kind": "boom"}]'})
    with pytest.raises(ConfigError, match="faults: expected a JSON list"):
        load_config(environ={"EIR_FAULTS": "delay"})
    with pytest.raises(ConfigError, match=r"overload\.fair_share_above"):
        load_config(environ={"EIR_OVERLOAD_FAIR_SHARE_ABOVE": "0"})
    with pytest.raises(ConfigError, match=r"store\.call_timeout"):
        load_config(environ={"EIR_STORE_CALL_TIMEOUT": "0"})
