"""asyncio adapters, one per interface. Each module exposes

    async def start(config: Config, checker: Checker, events: EventSink) -> RunningServer

and keeps protocol logic in ``protocols/`` (these adapters are thin)."""

from __future__ import annotations

from typing import Any, Protocol


class RunningServer(Protocol):
    name: str
    """Interface name for logs: "diameter", "m3ua"."""

    def addresses(self) -> list[tuple[str, int, str]]:
        """Bound (host, port, transport) — port 0 in the config resolves here."""
        ...

    def peers(self) -> list[dict[str, Any]]:
        """The peers connected now, with their state and counters (the admin API's ``GET /peers``):
        JSON-ready dicts, one per Diameter peer / M3UA association / HTTP client."""
        ...

    async def shutdown(self, grace: float) -> None:
        """Stop listening, close each association gracefully (DPR/DPA, ASP-DOWN), wait at most
        ``grace`` seconds, then cut what remains."""
        ...
