"""eir/app.py: ``eir serve`` runs with the garbage collector's serving thresholds."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from eir.app import GC_THRESHOLD, run
from eir.cli import EXIT_STORE
from eir.config import load_config


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_serving_sets_the_collector_thresholds(restored_gc: None, tmp_path: Path) -> None:
    """Set before anything is built (a store that cannot open ends this start early): population
    checks leave objects behind for a while, and at CPython's default a full collection over the
    whole heap could come every ~20k of them (eir/app.py)."""
    gc.set_threshold(700, 10, 10)
    config = load_config(
        None,
        environ={},
        overrides={"data_dir": str(tmp_path), "store": {"url": "sqlite:////proc/no/such/eir.db"}},
    )
    assert run(config) == EXIT_STORE
    assert gc.get_threshold() == GC_THRESHOLD
