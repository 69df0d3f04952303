"""Identity stores behind one interface (:class:`eir.store.base.IdentityStore`).

:func:`create_store` picks the backend from the URL scheme; PostgreSQL and Redis are imported only
when asked for, so their client libraries are not loaded otherwise.
"""

from __future__ import annotations

from typing import Any

from eir.store.base import IdentityStore, StoreError

__all__ = ["create_store", "store_options"]


def create_store(url: str, data_dir: str = "data", **options: Any) -> IdentityStore:
    """``sqlite:///rel/path`` (relative to the working directory), ``sqlite:////abs/path``,
    ``sqlite://`` (``<data_dir>/eir.db``), ``memory://``, ``postgresql://…``, ``redis://…``.

    ``options`` are backend keywords (``keep_versions``; SQLite ``poll_interval``,
    ``index_max_keys``; PostgreSQL and
    Redis ``connect_timeout``, ``command_timeout``); each backend takes the ones it knows."""
    scheme = url.split(":", 1)[0].lower()

    def known(*names: str) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in names}

    if scheme == "sqlite":
        from eir.store.sqlite import SqliteStore

        return SqliteStore(url, data_dir, **known("poll_interval", "keep_versions", "index_max_keys"))
    if scheme == "memory":
        from eir.store.memory import MemoryStore

        return MemoryStore(url, **known("keep_versions"))
    if scheme in ("postgresql", "postgres"):
        from eir.store.postgres import PostgresStore

        return PostgresStore(url, **known("keep_versions", "connect_timeout", "command_timeout"))
    if scheme in ("redis", "rediss"):
        from eir.store.redis import RedisStore

        return RedisStore(url, **known("keep_versions", "connect_timeout", "command_timeout"))
    raise StoreError(f"store.url: unsupported scheme {scheme!r} (sqlite, memory, postgresql, redis)")


def serving_options(config: Any) -> dict[str, Any]:
    """:func:`store_options` for the list store of ``eir serve``: with the SQLite list index
    (``store.index_max_keys``), which only a serving process gains from. A CLI command asks a few
    times and exits: it builds none (nor logs one)."""
    return store_options(config) | {"index_max_keys": config.index_max_keys}


def store_options(config: Any) -> dict[str, Any]:
    """The ``create_store`` keywords a :class:`eir.config.StoreConfig` sets."""
    return {
        "poll_interval": config.poll_interval,
        "keep_versions": config.keep_versions,
        "connect_timeout": config.connect_timeout,
        "command_timeout": config.command_timeout,
    }
