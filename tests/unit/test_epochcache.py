"""Reads kept until the OSD map's next epoch, shared by every task that asks."""
import threading
from typing import Any, List

from conftest import FakeClock

from mgr_bgtasks.epochcache import EpochCache


def reader(values: List[Any]) -> Any:
    reads: List[int] = []

    def read() -> Any:
        reads.append(1)
        return values[len(reads) - 1]
    read.reads = reads      # type: ignore[attr-defined]
    return read


def test_one_read_per_epoch_and_key() -> None:
    clock = FakeClock()
    cache = EpochCache(clock, max_age=10)
    read = reader(['e1', 'e2'])
    assert cache.epochs == 0
    assert [cache.get('k', read) for _ in range(5)] == ['e1'] * 5
    assert cache.get('other', lambda: 'o') == 'o'
    assert len(read.reads) == 1
    cache.changed()
    assert cache.epochs == 1
    assert cache.get('k', read) == 'e2'
    assert cache.get('k', read) == 'e2'
    assert len(read.reads) == 2


def test_a_lost_notification_costs_at_most_max_age() -> None:
    clock = FakeClock()
    cache = EpochCache(clock, max_age=10)
    read = reader(['old', 'new'])
    assert cache.get('k', read) == 'old'
    clock.advance(9.9)
    assert cache.get('k', read) == 'old'
    clock.advance(0.2)
    assert cache.get('k', read) == 'new'


def test_a_value_read_across_a_notification_serves_once_only() -> None:
    cache = EpochCache(FakeClock(), max_age=10)

    def read_while_a_map_comes() -> str:
        cache.changed()         # the mgr's notification, from another thread in life
        return 'maybe old'
    assert cache.get('k', read_while_a_map_comes) == 'maybe old'
    assert cache.get('k', lambda: 'new') == 'new'


def test_a_read_may_use_another_cached_value() -> None:
    cache = EpochCache(FakeClock(), max_age=10)
    assert cache.get('counts', lambda: cache.get('map', lambda: 'm') + '!') == 'm!'
    assert cache.get('map', lambda: 'again') == 'm'


def test_tasks_that_miss_together_share_the_first_read() -> None:
    cache = EpochCache(FakeClock(), max_age=10)
    started, release = threading.Event(), threading.Event()
    reads: List[int] = []

    def slow() -> str:
        reads.append(1)
        started.set()
        release.wait(5)
        return 'v'
    got: List[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get('k', slow)))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=lambda: got.append(cache.get('k', slow)))
              for _ in range(3)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert got == ['v'] * 4 and len(reads) == 1
