"""Background writes: newest value wins, order per key kept, failures retried."""
import threading
import time
from typing import Dict, List, Optional, Tuple

from mgr_bgtasks.store import MemoryStore
from mgr_bgtasks.writer import Writer


class SlowStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.log: List[Tuple[str, Optional[str]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def put(self, key: str, value: Optional[str]) -> None:
        assert self.gate.wait(5)
        time.sleep(0.002)
        super().put(key, value)
        self.log.append((key, value))


def test_pending_values_coalesce_and_the_newest_lands() -> None:
    store = SlowStore()
    w = Writer(store, threads=2)
    w.start()
    store.gate.clear()
    for i in range(50):
        w.put('k', str(i))
    store.gate.set()
    w.stop()
    assert store.get('k') == '49'
    assert len([v for k, v in store.log if k == 'k']) <= 3    # not 50 writes


def test_wait_writes_before_returning_and_after_older_ones() -> None:
    store = SlowStore()
    w = Writer(store, threads=2)
    w.start()
    for i in range(20):
        w.put('a', f'step {i}')
    w.put('a', 'aborted', wait=True)
    assert store.get('a') == 'aborted'
    w.stop()
    assert store.get('a') == 'aborted'          # no older step record landed after it


def test_failed_writes_stay_pending_until_retried() -> None:
    store = MemoryStore()
    w = Writer(store)
    store.fail_writes = True
    w.put('x', '1')
    assert w.pending() == 1 and store.get('x') is None
    store.fail_writes = False
    w.retry()
    assert w.pending() == 0 and store.get('x') == '1'


def test_checked_write_raises_and_is_dropped() -> None:
    store = MemoryStore()
    w = Writer(store)
    store.fail_writes = True
    try:
        w.put('x', '1', wait=True, check=True)
    except IOError:
        pass
    else:
        raise AssertionError('no error')
    assert w.pending() == 0


def test_background_writes_linger_so_short_lived_records_are_written_once() -> None:
    store = SlowStore()
    w = Writer(store, threads=2, linger=0.2)
    w.start()
    w.put('task/1', 'running')
    w.put('task/2', 'running')
    time.sleep(0.05)
    assert store.log == []                          # still lingering
    w.put('task/1', 'finished')
    w.put('task/3', 'created', wait=True)           # what a user waits for goes at once
    assert store.log == [('task/3', 'created')]
    time.sleep(0.4)
    assert sorted(store.log[1:]) == [('task/1', 'finished'), ('task/2', 'running')]
    w.put('task/4', 'x')
    w.stop()                                        # stopping writes what lingers
    assert store.get('task/4') == 'x'


def test_no_per_key_state_outlives_its_writes() -> None:
    # One lock per key ever written grew the mgr with every task it ever ran.
    store = SlowStore()
    w = Writer(store, threads=2, linger=0.0)
    w.start()
    for i in range(50):
        w.put(f'k{i}', 'v', wait=i % 2 == 0)
    w.stop()
    assert len(store.data) == 50
    assert w._key_locks == {} and w.pending() == 0


def test_callers_waiting_at_once_share_one_write() -> None:
    store = SlowStore()
    batches: List[int] = []
    real_put = store.put

    def put_many(items: Dict[str, Optional[str]]) -> None:
        batches.append(len(items))
        for key, value in items.items():
            real_put(key, value)

    store.put_many = put_many               # type: ignore[attr-defined]
    w = Writer(store, threads=1)
    w.start()
    store.gate.clear()                      # the first write waits: the others queue up
    callers = [threading.Thread(target=w.put, args=(f'k{i}', str(i)),
                                kwargs={'wait': True, 'check': True}) for i in range(20)]
    for t in callers:
        t.start()
    time.sleep(0.2)
    store.gate.set()
    for t in callers:
        t.join()
    w.stop()
    assert all(store.get(f'k{i}') == str(i) for i in range(20))
    assert sum(batches) == 20 and len(batches) <= 3       # not 20 writes


def test_a_shared_write_that_fails_raises_for_each_checked_caller() -> None:
    store = MemoryStore()
    w = Writer(store, threads=1)
    w.start()
    store.fail_writes = True
    errors: List[Exception] = []

    def create(key: str) -> None:
        try:
            w.put(key, 'v', wait=True, check=True)
        except IOError as e:
            errors.append(e)

    callers = [threading.Thread(target=create, args=(f'k{i}',)) for i in range(5)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    store.fail_writes = False
    w.stop()
    assert len(errors) == 5 and w.pending() == 0 and store.data == {}
