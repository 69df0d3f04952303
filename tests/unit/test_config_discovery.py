"""Which configuration file a command uses, how relative paths in it resolve, and that
config/eir.yaml lists every key the config dataclasses have, with its default."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

import eir.config as config_mod
from eir.config import Config, base_dir, describe_store, find_config, load_config

ROOT = Path(__file__).resolve().parents[2]


def _touch(p: Path, text: str = "{}\n") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every place a config can be, each holding one."""
    system = _touch(tmp_path / "etc" / "eir" / "eir.yaml")
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", system)
    return {
        "named": _touch(tmp_path / "named.yaml"),
        "env": _touch(tmp_path / "env.yaml"),
        "cwd": _touch(tmp_path / "proj" / "config" / "eir.yaml"),
        "xdg": _touch(tmp_path / "xdg" / "eir" / "eir.yaml"),
        "home": _touch(tmp_path / "home" / ".config" / "eir" / "eir.yaml"),
        "system": system,
    }


def test_discovery_order(places: dict[str, Path], tmp_path: Path) -> None:
    def found(explicit: str | None = None, **env: str) -> Path | None:
        return find_config(explicit, environ=env, cwd=tmp_path / "proj", home=tmp_path / "home")

    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert found(str(places["named"]), EIR_CONFIG=str(places["env"]), **xdg) == places["named"]
    assert found(EIR_CONFIG=str(places["env"]), **xdg) == places["env"]
    assert found(**xdg) == places["cwd"]
    places["cwd"].unlink()
    assert found(**xdg) == places["xdg"]
    assert found() == places["home"]  # no XDG_CONFIG_HOME: ~/.config
    assert found(XDG_CONFIG_HOME="relative/xdg") == places["home"]  # the XDG spec ignores a relative one
    places["home"].unlink()
    assert found() == places["system"]
    places["system"].unlink()
    assert found() is None


def test_a_named_file_is_returned_absolute_even_when_missing(tmp_path: Path) -> None:
    p = find_config("lab.yaml", environ={}, cwd=tmp_path)
    assert p == tmp_path / "lab.yaml"
    with pytest.raises(config_mod.ConfigError, match=r"lab\.yaml: cannot read"):
        load_config(p, environ={})


def test_base_dir_is_the_project_root_of_a_config_directory(tmp_path: Path) -> None:
    assert base_dir(tmp_path / "proj" / "config" / "eir.yaml") == tmp_path / "proj"
    assert base_dir(tmp_path / "lab" / "eir.yaml") == tmp_path / "lab"
    assert base_dir(tmp_path / "proj" / "config" / "lists" / ".." / "eir.yaml") == tmp_path / "proj"
    assert base_dir(Path("/etc/eir/eir.yaml")) == Path("/etc/eir")


def test_relative_paths_in_a_file_resolve_against_its_base(tmp_path: Path) -> None:
    f = _touch(
        tmp_path / "proj" / "config" / "eir.yaml",
        "data_dir: var\n"
        "store: {url: 'sqlite:///data/eir.db?poll_interval=2', observations_url: 'sqlite:///obs.db'}\n"
        "lists: {import_on_start: [config/lists/a.csv, /abs/b.csv]}\n",
    )
    cfg = load_config(f, environ={})
    proj = tmp_path / "proj"
    assert cfg.data_dir == str(proj / "var")
    assert cfg.store.url == f"sqlite:///{proj / 'data' / 'eir.db'}?poll_interval=2"
    assert cfg.store.observations_url == f"sqlite:///{proj / 'obs.db'}"
    assert cfg.lists.import_on_start == [str(proj / "config" / "lists" / "a.csv"), "/abs/b.csv"]
    assert describe_store(cfg) == f"sqlite:///{proj / 'data' / 'eir.db'}"


def test_defaults_a_file_leaves_in_place_resolve_too(tmp_path: Path) -> None:
    cfg = load_config(_touch(tmp_path / "lab" / "eir.yaml", "log: {level: debug}\n"), environ={})
    assert cfg.data_dir == str(tmp_path / "lab" / "data")
    assert cfg.store.url == f"sqlite:///{tmp_path / 'lab' / 'data' / 'eir.db'}"
    # sqlite:// alone means <data_dir>/eir.db
    cfg = load_config(_touch(tmp_path / "x" / "eir.yaml", "store: {url: 'sqlite://'}\n"), environ={})
    assert describe_store(cfg) == f"sqlite:///{tmp_path / 'x' / 'data' / 'eir.db'}"


def test_absolute_paths_other_stores_and_environment_values_are_left_alone(tmp_path: Path) -> None:
    f = _touch(tmp_path / "c" / "eir.yaml", "store: {url: 'sqlite:////srv/eir.db'}\n")
    assert load_config(f, environ={}).store.url == "sqlite:////srv/eir.db"
    f.write_text("store: {url: 'postgresql://eir:secret@db/eir'}\n")
    cfg = load_config(f, environ={})
    assert cfg.store.url == "postgresql://eir:secret@db/eir"
    assert describe_store(cfg) == "postgresql://eir:***@db/eir"
    # a value from the environment is the shell's: relative to the working directory
    cfg = load_config(f, environ={"EIR_STORE_URL": "sqlite:///here.db", "EIR_DATA_DIR": "d"})
    assert (cfg.store.url, cfg.data_dir) == ("sqlite:///here.db", "d")
    assert describe_store(cfg) == f"sqlite:///{Path.cwd() / 'here.db'}"


def test_no_file_keeps_the_working_directory_defaults() -> None:
    cfg = load_config(None, environ={})
    assert cfg == Config()
    assert load_config("/dev/null", environ={}) == Config()  # not a file in a project: the same
    assert describe_store(cfg) == f"sqlite:///{Path.cwd() / 'data' / 'eir.db'}"


# --- config/eir.yaml documents every key ---------------------------------------------------------------


def _keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of the config dataclasses (dotted) with its default value."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out.update(_keys(tp, key + "."))
        else:
            out[key] = getattr(default, f.name)
    return out


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_yaml_keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


SHIPPED = yaml.safe_load((ROOT / "config" / "eir.yaml").read_text())
DELIBERATE = {"lists.import_on_start": ["config/lists/demo.csv"]}
"""Keys whose shipped value differs from the built-in default on purpose (make run's demo lists)."""


@pytest.mark.parametrize("key", sorted(_keys(Config)))
def test_shipped_config_lists_every_key_with_its_default(key: str) -> None:
    shipped = _yaml_keys(SHIPPED)
    assert key in shipped, f"config/eir.yaml does not list {key}"
    default = _keys(Config)[key]
    assert shipped[key] == DELIBERATE.get(key, default), f"{key}: config/eir.yaml says {shipped[key]!r}"


def test_shipped_config_has_no_key_the_code_does_not_know() -> None:
    assert set(_yaml_keys(SHIPPED)) <= set(_keys(Config))
