"""AdminApi in-process on real stores (memory, and a PostgreSQL server that is not there): the
answers :mod:`eir.admin.server` puts on the wire, without a socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eir.admin.routes import AdminApi
from eir.checker import build_checker
from eir.config import load_config
from eir.events import NullEvents
from eir.faults import FaultRegistry
from eir.store import create_store
from testkit.services import free_port

W = [(b"authorization", b"Bearer w")]


async def _api(url: str, tmp: Path) -> AdminApi:
    cfg = load_config(
        None, environ={}, overrides={"admin": {"token": "w"}, "store": {"connect_timeout": 0.5}}
    )
    store = create_store(url, str(tmp), connect_timeout=0.5, command_timeout=0.5)
    if url.startswith("memory"):
        await store.open()
    return AdminApi(cfg, build_checker(cfg, store, NullEvents()), store, faults=FaultRegistry())


async def test_changes_on_the_memory_store_and_head(tmp_path: Path) -> None:
    api = await _api("memory://", tmp_path)
    r = await api.handle("PUT", "/api/v1/lists/entries/35394206000002", W, b'{"status":"black"}')
    assert (r.status, json.loads(r.body)) == (200, {"version": 1})
    r = await api.handle("GET", "/api/v1/check?imei=35394206000002", W, b"")
    assert json.loads(r.body)["status"] == "black"
    r = await api.handle("HEAD", "/api/v1/lists/versions", W, b"")
    assert r.status == 200
    r = await api.handle("DELETE", "/api/v1/lists/entries/35394206000002", W, b"x")
    assert r.status == 400 and r.content_type == b"application/problem+json"


async def test_a_store_that_is_down_is_503_problem_details_and_nothing_changes(tmp_path: Path) -> None:
    api = await _api(f"postgresql://postgres@127.0.0.1:{free_port()}/none", tmp_path)
    r = await api.handle("PUT", "/api/v1/lists/entries/35394206000002", W, b'{"status":"black"}')
    body: dict[str, Any] = json.loads(r.body)
    assert r.status == 503 and r.content_type == b"application/problem+json"
    assert body["cause"] == "store_unavailable" and "store" in body["detail"]
    r = await api.handle("GET", "/api/v1/ready", [], b"")
    assert r.status == 503 and json.loads(r.body)["ready"] is False
