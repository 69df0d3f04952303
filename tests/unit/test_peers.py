"""A missing independent peer skips its tests on a developer's machine and fails them under CI=true."""

from __future__ import annotations

import pytest

from testkit import peers


def test_a_present_peer_lets_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(peers.PEERS, "tshark", lambda: None)
    for ci in ("true", ""):
        monkeypatch.setenv("CI", ci)
        peers.require_peer("tshark", "it decodes our messages")  # returns: nothing raised


def test_a_missing_peer_skips_locally_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(peers.PEERS, "tshark", lambda: "tshark is not installed (Debian package tshark)")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as e:
        peers.require_peer("tshark", "it decodes our messages")
    assert "peer tshark missing: tshark is not installed (Debian package tshark)" in str(e.value)
    assert "it decodes our messages" in str(e.value)


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setitem(peers.PEERS, "mosquitto", lambda: "mosquitto is not installed")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as e:
        peers.require_peer("mosquitto", "MQTT events go to a real broker")
    assert "CI=true: peer mosquitto missing" in str(e.value)


def test_every_peer_of_debian_deps_is_known() -> None:
    """.ci/debian-deps installs what the peers need, and every peer can say whether it is there."""
    assert set(peers.PEERS) == {
        "tshark",
        "freediameter",
        "redis-server",
        "mosquitto",
        "postgresql",
        "curl",
        "nghttp2-client",
        "nghttp2-server",
        "openssl",
    }
    for name in peers.PEERS:
        reason = peers.missing(name)
        assert reason is None or isinstance(reason, str)
    with pytest.raises(KeyError):
        peers.missing("no-such-peer")
