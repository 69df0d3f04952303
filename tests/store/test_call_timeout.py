"""store.call_timeout (issue 10): a remote store that hangs (its server stopped with SIGSTOP, so
connections stay open and nothing answers) costs one check ``call_timeout``, whatever the client
library's own connect and command timeouts say; the check gets the ``store.on_unavailable`` answer
and the next ones get the verdict again once the server is back."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest

from eir.checker import PolicyChecker
from eir.config import Config, StoreConfig
from eir.events import NullEvents
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, IdentityStore, ListEntry
from eir.store.postgres import PostgresStore
from eir.store.redis import RedisStore
from testkit.flood import signal_tree
from testkit.services import PostgresServer, RedisServer, start_postgres, start_redis

BLACK = "35209900176148"
BOUND = 20.0  # a hang would be the client library's 60 s timeouts: this bounds the test, not the code


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    srv = start_postgres()
    yield srv
    srv.destroy()


@pytest.fixture(scope="module")
def rd() -> Iterator[RedisServer]:
    srv = start_redis()
    yield srv
    srv.destroy()


def request() -> CheckRequest:
    return CheckRequest(imei=BLACK, interface=Interface.S13, origin="mme.lab")


async def run(store: IdentityStore, pid: int) -> None:
    await store.open()
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=BLACK, status=Status.BLACK)], [], source="test"
    )
    cfg = Config(store=StoreConfig(call_timeout=0.3, on_unavailable="failure"))
    cfg.policy.clone.enabled = False
    checker = PolicyChecker(cfg, store, NullEvents(), retry_after=0.0)
    try:
        assert (await asyncio.wait_for(checker.check(request()), BOUND)).status is Status.BLACK
        checker._lookups.clear()  # the cache of a remote store would answer: ask the store again
        signal_tree(pid, signal.SIGSTOP)
        try:
            v = await asyncio.wait_for(checker.check(request()), BOUND)
        finally:
            signal_tree(pid, signal.SIGCONT)
        assert (v.status, v.rule) == (Status.FAILURE, "store")
        got = None
        for _ in range(100):  # bounded: the server answers again
            got = await asyncio.wait_for(checker.check(request()), BOUND)
            if got.status is Status.BLACK:
                break
            await asyncio.sleep(0.05)
        assert got is not None and got.status is Status.BLACK
    finally:
        await store.close()


async def test_postgres_call_timeout(pg: PostgresServer) -> None:
    assert pg.proc is not None
    store = PostgresStore(pg.new_database(), connect_timeout=60.0, command_timeout=60.0)
    await run(store, pg.proc.pid)


async def test_redis_call_timeout(rd: RedisServer) -> None:
    assert rd.proc is not None
    store = RedisStore(rd.url, connect_timeout=60.0, command_timeout=60.0)
    await run(store, rd.proc.pid)
