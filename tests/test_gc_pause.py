"""The collector is paused only inside, and restored to what it was."""

from __future__ import annotations

import gc

from sailplan.gc_pause import paused_gc


def test_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_restored_after_an_exception() -> None:
    try:
        with paused_gc():
            raise ValueError
    except ValueError:
        pass
    assert gc.isenabled()


def _frozen_by(work: object) -> int:
    """How many objects a pause around `work()` moved to the permanent generation."""
    gc.unfreeze()
    gc.collect()
    try:
        with paused_gc():
            kept = work()  # type: ignore[operator]
        frozen = gc.get_freeze_count()
        del kept
        return frozen
    finally:
        gc.unfreeze()


def test_what_a_large_pause_leaves_behind_is_frozen() -> None:
    # The first collection after the pause would otherwise scan every one of these.
    frozen = _frozen_by(lambda: [{"k": [i]} for i in range(60_000)])
    assert frozen >= 120_000
    assert gc.get_count()[0] < 1_000


def test_a_small_pause_freezes_nothing() -> None:
    assert _frozen_by(lambda: [{"k": [i]} for i in range(1_000)]) == 0


def test_a_pause_that_fails_freezes_nothing() -> None:
    gc.unfreeze()
    kept: list[object] = []
    try:
        with paused_gc():
            kept.extend({"k": [i]} for i in range(60_000))
            raise ValueError
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
