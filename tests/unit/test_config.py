"""Config loading: file → EIR_* environment → overrides, and errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eir.config import Config, ConfigError, load_config, parse_hostport

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_with_documented_defaults() -> None:
    cfg = load_config(ROOT / "config" / "eir.yaml", environ={})
    assert cfg.diameter.listen == ["127.0.0.1:3868"]
    assert cfg.diameter.origin_host == "eir.localdomain"
    assert cfg.diameter.origin_realm == "localdomain"
    assert cfg.m3ua.listen == ["127.0.0.1:2905"]
    assert cfg.m3ua.ssn == 9
    assert cfg.metrics.listen == "127.0.0.1:9464"
    # relative paths in config/eir.yaml name paths from the project root, wherever the command runs
    assert cfg.store.url == f"sqlite:///{ROOT / 'data' / 'eir.db'}"
    assert cfg.data_dir == str(ROOT / "data")
    assert cfg.lists.import_on_start == [str(ROOT / "config" / "lists" / "demo.csv")]


def test_no_file_gives_dataclass_defaults() -> None:
    assert load_config(None, environ={}) == Config()


def test_environment_overrides_nested_keys_and_lists() -> None:
    cfg = load_config(
        None,
        environ={
            "EIR_DIAMETER_ORIGIN_HOST": "eir.lab",
            "EIR_DIAMETER_LISTEN": "127.0.0.1:3868, [::1]:3868",
            "EIR_POLICY_CLONE_MAX_IMSIS": "5",
            "EIR_POLICY_UNKNOWN_EQUIPMENT": "unknown",
            "EIR_M3UA_MAP_VERSIONS": "2,3",
            "EIR_MQTT_ENABLED": "yes",
            "EIR_STORE_OBSERVATIONS_URL": "redis://127.0.0.1:6379/0",
        },
    )
    assert cfg.diameter.origin_host == "eir.lab"
    assert cfg.diameter.listen == ["127.0.0.1:3868", "[::1]:3868"]
    assert cfg.policy.clone.max_imsis == 5
    assert cfg.policy.unknown_equipment == "unknown"
    assert cfg.m3ua.map_versions == [2, 3]
    assert cfg.mqtt.enabled is True
    assert cfg.store.observations_url == "redis://127.0.0.1:6379/0"


def test_environment_beats_file_and_overrides_beat_environment(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("diameter:\n  origin_host: from-file\n  origin_realm: file.realm\n")
    cfg = load_config(f, environ={"EIR_DIAMETER_ORIGIN_HOST": "from-env"})
    assert (cfg.diameter.origin_host, cfg.diameter.origin_realm) == ("from-env", "file.realm")
    cfg = load_config(
        f,
        environ={"EIR_DIAMETER_ORIGIN_HOST": "from-env"},
        overrides={"diameter": {"origin_host": "from-cli"}},
    )
    assert cfg.diameter.origin_host == "from-cli"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("diameter:\n  listen: [nohost]\n", "diameter.listen[0]: expected HOST:PORT"),
        ("diameter:\n  lisen: []\n", "diameter.lisen: unknown key"),
        ("diameter:\n  watchdog_interval: 2\n", "diameter.watchdog_interval"),
        ("policy:\n  unknown_equipment: purple\n", "policy.unknown_equipment: must be one of"),
        ("m3ua:\n  ssn: many\n", "m3ua.ssn: expected an integer"),
        ("m3ua:\n  map_versions: [4]\n", "m3ua.map_versions"),
        ("store:\n  url: mysql://x\n", "store.url: unsupported scheme"),
        ("policy:\n  reserved_tacs: ['123']\n", "policy.reserved_tacs[0]"),
        ("mqtt:\n  enabled: maybe\n", "mqtt.enabled: expected true or false"),
        ("- a list\n", "top level must be a mapping"),
        ("diameter: [1\n", "not valid YAML"),
        ("admin:\n  max_fault_rules: 0\n", "admin.max_fault_rules: must be from 1 to 1000"),
        (
            "admin:\n  max_fault_rules: 2\nfaults: [{kind: delay}, {kind: close}, {kind: no_answer}]\n",
            "faults: at most 2 fault rules at once",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(f, environ={})


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="EIR_DIAMETER_NOPE: names no configuration key"):
        load_config(None, environ={"EIR_DIAMETER_NOPE": "1"})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:3868", ("127.0.0.1", 3868)),
        ("[::1]:2905", ("::1", 2905)),
        ("eir.lab:0", ("eir.lab", 0)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


def test_store_options_reach_every_backend(tmp_path: Path) -> None:
    from eir.store import create_store, store_options

    cfg = load_config(
        None,
        environ={},
        overrides={
            "store": {
                "keep_versions": 2,
                "connect_timeout": 0.5,
                "command_timeout": 1.5,
                "poll_interval": 0.1,
            }
        },
    )
    opts = store_options(cfg.store)
    sqlite = create_store(f"sqlite:///{tmp_path / 'e.db'}", str(tmp_path), **opts)
    assert (sqlite.keep_versions, sqlite.poll_interval) == (2, 0.1)  # type: ignore[attr-defined]
    assert create_store("memory://", **opts).keep_versions == 2  # type: ignore[attr-defined]
    for url in ("postgresql://127.0.0.1:1/x", "redis://127.0.0.1:1/0"):
        s = create_store(url, **opts)  # constructors connect nothing
        assert (s.keep_versions, s.connect_timeout, s.command_timeout) == (2, 0.5, 1.5)  # type: ignore[attr-defined]


def test_store_timeouts_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"store\.connect_timeout"):
        load_config(None, environ={}, overrides={"store": {"connect_timeout": 0}})


def test_poll_interval_in_the_url_wins_and_the_checker_leaves_it(tmp_path: Path) -> None:
    """``store.poll_interval`` is a store option; a ``?poll_interval=`` in the URL is more specific
    and wins. The checker used to overwrite it with the config value (hasattr/setattr)."""
    from eir.checker import build_checker
    from eir.events import NullEvents
    from eir.store import create_store, store_options

    cfg = load_config(None, environ={}, overrides={"store": {"poll_interval": 3.0}})
    url = f"sqlite:///{tmp_path / 'e.db'}?poll_interval=0.2"
    store = create_store(url, str(tmp_path), **store_options(cfg.store))
    build_checker(cfg, store, NullEvents())
    assert store.poll_interval == 0.2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("mqtt:\n  qos: 2\n", "mqtt.qos: must be 0 or 1"),
        ("mqtt:\n  url: http://broker:1883\n", "mqtt.url: use mqtt://"),
        ("mqtt:\n  tls_ca: /ca.pem\n", "TLS needs an mqtts://"),
        ("mqtt:\n  url: mqtts://b:8883\n  tls_cert: /c.pem\n", "mqtt.tls_cert / mqtt.tls_key"),
        ("mqtt:\n  lists_topic: eir/#\n", "mqtt.lists_topic: a topic name without wildcards"),
        ("mqtt:\n  buffer_size: 0\n", "mqtt.buffer_size"),
        ("metrics:\n  username: prom\n", "metrics.username / metrics.password"),
        ("metrics:\n  tls_cert: /c.pem\n", "metrics.tls_cert / metrics.tls_key"),
    ],
)
def test_mqtt_and_metrics_mistakes_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(f, environ={})


def test_secrets_come_from_the_environment() -> None:
    cfg = load_config(None, environ={"EIR_MQTT_PASSWORD": "s3cret", "EIR_METRICS_TOKEN": "t0k"})
    assert (cfg.mqtt.password, cfg.metrics.token) == ("s3cret", "t0k")
