"""Identity stores behind one interface (:class:`eir.store.base.IdentityStore`).

:func:`create_store` picks the backend from the URL scheme; PostgreSQL and Redis are imported only
when asked for, so their client libraries are not loaded otherwise.
"""

from __future__ import annotations

from typing import Any

from eir.store.base import IdentityStore, StoreError

__all__ = ["create_store"]


def create_store(url: str, data_dir: str = "data", **options: Any) -> IdentityStore:
    """``sqlite:///rel/path`` (relative to the working directory), ``sqlite:////abs/path``,
    ``sqlite://`` (``<data_dir>/eir.db``), ``memory://``, ``postgresql://…``, ``redis://…``.

    ``options`` are backend keywords (SQLite: ``poll_interval``, ``keep_versions``); a backend
    ignores the ones it does not know."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from eir.store.sqlite import SqliteStore

        known = {k: v for k, v in options.items() if k in ("poll_interval", "keep_versions")}
        return SqliteStore(url, data_dir, **known)
    if scheme == "memory":
        from eir.store.memory import MemoryStore

        return MemoryStore(url, **{k: v for k, v in options.items() if k == "keep_versions"})
    if scheme in ("postgresql", "postgres"):
        from eir.store.postgres import PostgresStore

        pg: IdentityStore = PostgresStore(url)
        return pg
    if scheme in ("redis", "rediss"):
        from eir.store.redis import RedisStore

        rd: IdentityStore = RedisStore(url)
        return rd
    raise StoreError(f"store.url: unsupported scheme {scheme!r} (sqlite, memory, postgresql, redis)")
