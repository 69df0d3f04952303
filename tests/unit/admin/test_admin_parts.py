"""The admin API's parts that need no server: tokens, redaction, config, the OpenAPI file."""

from __future__ import annotations

import json

import pytest

from eir.admin.auth import TokenTable, is_loopback
from eir.admin.openapi import render
from eir.admin.routes import OPENAPI_PATH, redact
from eir.admin.server import AdminConfigError, check_exposure
from eir.config import ConfigError, load_config


def test_the_committed_openapi_document_is_the_one_the_code_builds() -> None:
    # rewrite it with `python -m eir.admin.openapi`
    assert OPENAPI_PATH.read_text() == render()
    doc = json.loads(render())
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_roles_of_tokens() -> None:
    t = TokenTable([("reader-token", "read"), ("writer-token", "write")])
    assert not t.open
    assert t.role(b"Bearer reader-token") == "read"
    assert t.role(b"bearer writer-token") == "write"
    for bad in (
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"Basic writer-token",
        b"Bearer writer-tokenX",
        b"Bearer reader",
    ):
        assert t.role(bad) is None, bad


def test_no_token_means_open_and_a_shared_token_keeps_its_highest_role() -> None:
    assert TokenTable([]).role(None) == "write"
    assert TokenTable([("same", "read"), ("same", "write")]).role(b"Bearer same") == "write"


def test_environment_token_is_a_write_token() -> None:
    cfg = load_config(None, environ={"EIR_ADMIN_TOKEN": "s3cret", "EIR_ADMIN_LISTEN": "0.0.0.0:9465"})
    assert cfg.admin.token == "s3cret"
    assert TokenTable.from_config(cfg.admin).role(b"Bearer s3cret") == "write"
    check_exposure(cfg)  # a token: a non-loopback address is allowed


@pytest.mark.parametrize(
    ("listen", "refused"),
    [
        ("127.0.0.1:9465", False),
        ("[::1]:9465", False),
        ("localhost:1", False),
        ("0.0.0.0:9465", True),
        ("10.1.2.3:9465", True),
        ("[::]:9465", True),
    ],
)
def test_no_token_only_on_loopback(listen: str, refused: bool) -> None:
    cfg = load_config(None, environ={"EIR_ADMIN_LISTEN": listen})
    assert is_loopback(listen) is not refused
    if refused:
        with pytest.raises(AdminConfigError, match="not a loopback address and no token"):
            check_exposure(cfg)
    else:
        check_exposure(cfg)


def test_bad_admin_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"admin.tokens\[0\].role: must be one of read, write"):
        load_config(None, overrides={"admin": {"tokens": [{"token": "x", "role": "root"}]}}, environ={})
    with pytest.raises(ConfigError, match=r"admin.tokens\[0\].token: must not be empty"):
        load_config(None, overrides={"admin": {"tokens": [{"token": " ", "role": "read"}]}}, environ={})
    with pytest.raises(ConfigError, match=r"admin.listen\[0\]"):
        load_config(None, environ={"EIR_ADMIN_LISTEN": "nohost"})


def test_redaction_of_tokens_passwords_keys_and_url_passwords() -> None:
    cfg = {
        "store": {"url": "postgresql://eir:pw0rd@db:5432/eir", "observations_url": "redis://:rpass@r:6379/0"},
        "mqtt": {"url": "mqtt://user:mpass@broker:1883"},
        "admin": {"token": "tok", "tokens": [{"token": "t2", "role": "read"}], "listen": ["127.0.0.1:9465"]},
        "n5g": {"tls_key": "/etc/key.pem", "tls_cert": "/etc/cert.pem"},
        "sqlite": "sqlite:///data/eir.db",
    }
    out = json.dumps(redact(cfg))
    for secret in ("pw0rd", "rpass", "mpass", 'tok"', "t2", "key.pem"):
        assert secret not in out, secret
    r = redact(cfg)
    assert r["store"]["url"] == "postgresql://eir:***@db:5432/eir"
    assert r["admin"]["token"] == "***"
    assert r["admin"]["tokens"] == [{"token": "***", "role": "read"}]
    assert r["n5g"]["tls_cert"] == "/etc/cert.pem" and r["sqlite"] == "sqlite:///data/eir.db"
