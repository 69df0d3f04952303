"""Whatever a publisher puts on the lists topic, the EIR answers with an acknowledgement (applied or
the reason it was not) and never raises — hypothesis drives ListUpdates with arbitrary bytes, JSON
shapes and CSV text against the in-memory store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eir.mqtt_lists import ListUpdates
from eir.store.memory import MemoryStore

_cells = st.one_of(
    st.text(max_size=20), st.integers(), st.booleans(), st.none(), st.from_regex(r"\d{8,16}", fullmatch=True)
)
_row = st.dictionaries(st.sampled_from(["op", "imei", "status", "imsi", "reason", "x"]), _cells, max_size=6)
_doc = st.dictionaries(
    st.sampled_from(["id", "kind", "delta", "rows", "csv", "extra"]),
    st.one_of(_cells, st.lists(_row, max_size=5), st.text(max_size=200)),
    max_size=5,
)
_payload = st.one_of(
    st.binary(max_size=300),
    _doc.map(lambda d: json.dumps(d).encode()),
    st.text(max_size=300).map(lambda t: ("imei,status\n" + t).encode()),
)


async def _apply_all(payloads: list[bytes]) -> list[dict[str, Any]]:
    store = MemoryStore()
    await store.open()
    try:
        updates = ListUpdates(store, max_bytes=4096)
        return [await updates.apply(p) for p in payloads]
    finally:
        await store.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_payload, min_size=1, max_size=4))
def test_any_message_gets_an_acknowledgement(payloads: list[bytes]) -> None:
    for ack in asyncio.run(_apply_all(payloads)):
        assert isinstance(ack["ok"], bool)
        if ack["ok"]:
            assert isinstance(ack["version"], int)
        else:
            assert ack["error"] and isinstance(ack["errors"], list)
        json.dumps(ack)  # publishable as it is
