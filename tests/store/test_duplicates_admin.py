"""Listing, explaining and clearing DIRBS duplicate_mk1 flags (eir/duplicates.py) through the admin
API, in-process (:class:`eir.admin.routes.AdminApi` on a real checker) on every store: paging, the
rule's inputs, the auth roles, 404s, and a clear that lasts until new observations flag the IMEI
again."""

from __future__ import annotations

import json
from typing import Any

from eir.admin.routes import AdminApi
from eir.checker import PolicyChecker
from eir.config import load_config
from eir.events import NullEvents
from eir.faults import FaultRegistry
from eir.model import CheckRequest, Interface
from eir.store.base import IdentityStore
from tests.unit.test_reference_rules import DUP, T0, TODAY, Clock, synthetic_history

WRITE = [(b"authorization", b"Bearer w")]
READ = [(b"authorization", b"Bearer r")]
DUPED = "35000000000010"


async def _call(api: AdminApi, method: str, path: str, auth: Any = WRITE) -> tuple[int, Any]:
    r = await api.handle(method, f"/api/v1{path}", auth, b"")
    return r.status, json.loads(r.body) if r.body else None


async def test_flags_listed_explained_and_cleared(store: IdentityStore) -> None:
    clock = Clock()
    cfg = load_config(
        None,
        environ={},
        overrides={
            "admin": {"token": "w", "tokens": [{"token": "r", "role": "read"}]},
            "policy": {"duplicate": {"enabled": True, **DUP}, "clone": {"enabled": False}},
        },
    )
    checker = PolicyChecker(cfg, store, NullEvents(), wall=clock)
    tracker = checker.duplicates
    assert tracker is not None
    await tracker.start()  # records the checks' pairs (background rounds: hourly, not in this test)
    try:
        await _flags_listed_explained_and_cleared(store, checker, cfg, clock)
    finally:
        await tracker.close()


async def _flags_listed_explained_and_cleared(
    store: IdentityStore, checker: PolicyChecker, cfg: Any, clock: Clock
) -> None:
    tracker = checker.duplicates
    assert tracker is not None
    api = AdminApi(cfg, checker, store, faults=FaultRegistry())
    await store.write_daily(synthetic_history())
    assert await tracker.classify() == [DUPED]
    # two more to page (flag_duplicates flags only an IMEI with history)
    await store.write_daily([("35000000000001", TODAY, "a"), ("35000000000002", TODAY, "a")])
    await store.flag_duplicates(["35000000000001", "35000000000002"], T0 - 5)

    async def status(imei: str) -> tuple[str, str]:
        v = await checker.check(CheckRequest(imei=imei, interface=Interface.S13))
        return v.status.value, v.rule

    assert await status(DUPED) == ("grey", "duplicate")

    # the list, paged by IMEI, for a read token
    code, body = await _call(api, "GET", "/duplicates?limit=2", READ)
    assert code == 200, body
    assert body == {
        "duplicates": [
            {"imei": "35000000000001", "flagged": T0 - 5},
            {"imei": "35000000000002", "flagged": T0 - 5},
        ],
        "total": 3,
        "offset": 0,
        "limit": 2,
    }
    code, body = await _call(api, "GET", "/duplicates?limit=2&offset=2", READ)
    assert body["duplicates"] == [{"imei": DUPED, "flagged": T0}]
    assert (await _call(api, "GET", "/duplicates?limit=0"))[0] == 400
    assert (await _call(api, "GET", "/duplicates?page=1"))[0] == 400

    # one flag with the inputs that flagged it (IMEISV and 15 digits name the same IMEI)
    code, body = await _call(api, "GET", f"/duplicates/{DUPED}0", READ)
    assert code == 200, body
    assert body["imei"] == DUPED and body["flagged"] == T0 and body["verdict"] == "grey"
    inputs = body["inputs"]
    assert inputs["day"] == TODAY and inputs["meets_rule"] is True
    assert (inputs["distinct_imsis"], inputs["threshold"]) == (4, 4)
    assert (inputs["days_seen"], inputs["daily_average"], inputs["daily_avg"]) == (3, 2.0, 2.0)
    assert inputs["per_day"] == {str(TODAY - 3): 2, str(TODAY - 2): 2, str(TODAY - 1): 2}
    assert inputs["imsis"] == ["a", "b", "c", "d"]
    code, body = await _call(api, "GET", "/duplicates/35000000000012")
    assert (code, body["cause"]) == (404, "not_flagged")
    assert (await _call(api, "GET", "/duplicates/123"))[0] == 400

    # auth: no token 401, a read token cannot clear, an IMEI not flagged is 404 and keeps its history
    assert (await _call(api, "GET", "/duplicates", []))[0] == 401
    assert (await _call(api, "DELETE", f"/duplicates/{DUPED}", READ))[0] == 403
    before = await store.daily_history("35000000000012")
    code, body = await _call(api, "DELETE", "/duplicates/35000000000012")
    assert (code, body["cause"]) == (404, "not_flagged")
    assert await store.daily_history("35000000000012") == before != []

    # the clear: the verdict is white at once, and the next classification does not flag it again
    code, body = await _call(api, "DELETE", f"/duplicates/{DUPED}")
    assert (code, body) == (200, {"imei": DUPED, "cleared": True, "history_rows": 6})
    assert await status(DUPED) == ("white", "default")
    assert (await _call(api, "GET", f"/duplicates/{DUPED}"))[0] == 404
    assert (await _call(api, "DELETE", f"/duplicates/{DUPED}"))[0] == 404
    assert await tracker.classify() == []
    assert await status(DUPED) == ("white", "default")
    assert (await _call(api, "GET", "/duplicates"))[1]["total"] == 2

    # new observations (checks after the clear) flag it again
    for day_ago, imsis in ((2, "pq"), (1, "rs"), (0, "tu")):
        clock.now = (TODAY - day_ago) * 86400.0 + 60
        for imsi in imsis:
            await checker.check(
                CheckRequest(imei=DUPED, imsi=f"26201000000{ord(imsi)}", interface=Interface.S13)
            )
        await tracker.flush()
    assert await tracker.classify() == [DUPED]
    assert await status(DUPED) == ("grey", "duplicate")


async def test_a_clear_made_elsewhere_reaches_a_running_tracker(store: IdentityStore) -> None:
    """The CLI (another process) clears in the store; a serving tracker drops the flag at its next
    classification, which reads the store's flags back."""
    cfg = load_config(None, environ={}, overrides={"policy": {"duplicate": {"enabled": True, **DUP}}})
    checker = PolicyChecker(cfg, store, NullEvents(), wall=Clock())
    tracker = checker.duplicates
    assert tracker is not None
    await store.write_daily(synthetic_history())
    assert await tracker.classify() == [DUPED]
    assert tracker.is_flagged(DUPED)
    assert await store.clear_duplicate(DUPED) == (True, 6)
    assert await tracker.classify() == []
    assert not tracker.is_flagged(DUPED)
