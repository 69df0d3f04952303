"""The ``mosquitto`` fixture: a private broker per test (testkit.services.MosquittoServer)."""

from __future__ import annotations

from testkit.services import mosquitto

__all__ = ["mosquitto"]
