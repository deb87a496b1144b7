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


def test_what_the_pause_built_is_not_scanned_when_it_ends() -> None:
    # The youngest generation's count, when a collection starts, is how many containers it
    # scans (at least). Left at what the pause built, the first allocation after the pause
    # would scan all of it.
    pending: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            pending.append(gc.get_count()[0])

    gc.callbacks.append(record)
    try:
        with paused_gc():
            built = [[index] for index in range(100_000)]
        after = [[index] for index in range(10_000)]
    finally:
        gc.callbacks.remove(record)
    assert pending, "no collection ran after the pause"
    assert max(pending) < 10_000
    assert len(built) + len(after) == 110_000


def test_objects_the_program_froze_stay_frozen() -> None:
    frozen = [[index] for index in range(100)]
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with paused_gc():
            built = [[index] for index in range(1_000)]
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
    assert len(frozen) + len(built) == 1_100
