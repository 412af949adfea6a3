"""Task records in omap: sharding, batched writes, paged reads, the move from config-key."""
import threading
from typing import Dict, List, Optional

import pytest

from mgr_bgtasks.omapstore import (MAX_VALUE_BYTES, PAGE_KEYS, SHARD_IDS, Fenced, MemoryOmap,
                                   OmapStore, object_of)
from mgr_bgtasks.store import MemoryStore
from mgr_bgtasks.task import key_of
from mgr_bgtasks.taskstore import ID_FLOOR_KEY, KV_MAX_VALUE_BYTES, TaskStore
from mgr_bgtasks.writer import Writer


def test_records_are_sharded_by_id_block_and_the_floor_kept_apart() -> None:
    assert object_of(key_of(1)) == object_of(key_of(SHARD_IDS - 1)) == 'tasks.000000'
    assert object_of(key_of(SHARD_IDS)) == 'tasks.000001'
    assert object_of(ID_FLOOR_KEY) == 'meta'


def test_a_batch_is_one_write_per_object_and_reads_page() -> None:
    omap = MemoryOmap()
    store = OmapStore(omap)
    records = {key_of(i): f'{{"id":{i}}}' for i in range(1, 3 * PAGE_KEYS)}
    store.put_many(records)
    assert omap.writes == 1                       # all in object tasks.000000
    store.put_many({key_of(SHARD_IDS + 1): 'a', key_of(2): 'b', key_of(3): None})
    assert omap.writes == 3                       # one op for each of the two objects
    found = store.scan('task/')
    assert len(found) == 3 * PAGE_KEYS - 1          # 767 made, one added, one deleted
    assert found[key_of(2)] == 'b' and key_of(3) not in found
    assert found[key_of(SHARD_IDS + 1)] == 'a'
    assert store.usage() == {'records': len(found),
                             'bytes': sum(len(v) for v in found.values())}


def test_large_records_round_trip_and_oversized_ones_are_refused() -> None:
    store = OmapStore(MemoryOmap())
    big = 'x' * (1 << 20)
    store.put(key_of(5), big)
    assert store.get(key_of(5)) == big
    with pytest.raises(ValueError):
        store.put(key_of(6), 'x' * (MAX_VALUE_BYTES + 1))
    assert store.get(key_of(6)) is None


def test_writer_flushes_due_records_in_one_batch() -> None:
    omap = MemoryOmap()
    store = OmapStore(omap)
    gate = threading.Event()
    real_write = omap.write

    def slow_write(*args: object, **kwargs: object) -> None:
        gate.wait(5)
        real_write(*args, **kwargs)         # type: ignore[arg-type]

    omap.write = slow_write                 # type: ignore[method-assign]
    w = Writer(store, threads=1)
    w.start()
    w.put(key_of(1), 'first')               # the thread takes this one and waits
    for i in range(2, 200):
        w.put(key_of(i), str(i))
    gate.set()
    w.stop()
    assert len(store.scan('task/')) == 199
    assert omap.writes <= 3                 # not 199


class Opener:
    def __init__(self) -> None:
        self.omap = MemoryOmap()
        self.ready = False

    def __call__(self, fenced: bool) -> Optional[MemoryOmap]:
        return self.omap if self.ready else None


class CrashingKv(MemoryStore):
    """Dies (like a kill -9) after `left` more deletes."""

    def __init__(self) -> None:
        super().__init__()
        self.left: Optional[int] = None

    def put(self, key: str, value: Optional[str]) -> None:
        if value is None and self.left is not None:
            if self.left == 0:
                raise SystemExit('killed')
            self.left -= 1
        super().put(key, value)


def _task_store(kv: MemoryStore, opener: Opener) -> TaskStore:
    return TaskStore(kv, opener, lambda: '.mgr')


def test_before_the_pool_records_go_to_config_key_then_move() -> None:
    kv, opener = MemoryStore(), Opener()
    store = _task_store(kv, opener)
    assert not store.move() and not store.in_rados
    store.put(key_of(1), 'one')
    store.put(ID_FLOOR_KEY, '4')
    assert kv.get(key_of(1)) == 'one' and store.max_value_bytes == KV_MAX_VALUE_BYTES
    assert store.where()['backend'] == 'config-key'
    opener.ready = True
    assert store.move() and store.in_rados
    assert kv.scan('') == {}                                 # old keys gone
    assert store.scan('task/') == {key_of(1): 'one'}
    assert store.get(ID_FLOOR_KEY) == '4'
    store.put(key_of(2), 'two')
    assert kv.get(key_of(2)) is None and store.get(key_of(2)) == 'two'
    where = store.where()
    assert where['backend'] == 'rados' and where['records'] == 2
    assert where['namespace'] == 'bgtasks' and where['pool'] == '.mgr'


@pytest.mark.parametrize('deletes_before_kill', [0, 1, 250, 599])
def test_a_move_killed_midway_is_finished_by_the_next_start(deletes_before_kill: int) -> None:
    kv, opener = CrashingKv(), Opener()
    opener.ready = True
    records = {key_of(i): f'record {i}' for i in range(1, 601)}
    for key, value in records.items():
        kv.put(key, value)
    kv.put(ID_FLOOR_KEY, '700')
    kv.left = deletes_before_kill
    with pytest.raises(SystemExit):
        _task_store(kv, opener).move()
    kv.left = None
    again = _task_store(kv, opener)          # the next start, on the same cluster
    assert again.move()
    assert again.scan('task/') == records    # every task, once
    assert again.get(ID_FLOOR_KEY) == '700'
    assert kv.scan('') == {}


def test_a_higher_floor_in_rados_is_kept() -> None:
    kv, opener = MemoryStore(), Opener()
    opener.ready = True
    OmapStore(opener.omap).put(ID_FLOOR_KEY, '90')
    kv.put(ID_FLOOR_KEY, '10')
    store = _task_store(kv, opener)
    assert store.move() and store.get(ID_FLOOR_KEY) == '90'


def test_writes_wait_while_a_move_runs() -> None:
    kv, opener = MemoryStore(), Opener()
    store = _task_store(kv, opener)
    for i in range(1, 50):
        store.put(key_of(i), 'old')
    opener.ready = True
    gate = threading.Event()
    real_write = opener.omap.write
    order: List[str] = []

    def slow_write(obj: str, values: Dict[str, bytes], removed: List[str],
                   timeout: float) -> None:
        gate.wait(5)
        order.append(','.join(sorted(values)))
        real_write(obj, values, removed, timeout)

    opener.omap.write = slow_write          # type: ignore[method-assign]
    mover = threading.Thread(target=store.move)
    mover.start()
    writer = threading.Thread(target=store.put, args=(key_of(1), 'new'))
    while not store._moving:                # noqa: SLF001 - waiting for the move to hold it
        pass
    writer.start()
    gate.set()
    mover.join()
    writer.join()
    assert store.get(key_of(1)) == 'new'     # written after the move, not lost under it
    assert kv.get(key_of(1)) is None


class FencedOmap(MemoryOmap):
    def write(self, obj: str, values: Dict[str, bytes], removed: List[str],
              timeout: float) -> None:
        raise Fenced('blocklisted')


@pytest.mark.parametrize('still_active', [False, True])
def test_a_blocklisted_handle_is_renewed_only_while_this_mgr_is_active(
        still_active: bool) -> None:
    kv = MemoryStore()
    fresh = MemoryOmap()
    handles = [FencedOmap()]

    def opener(fenced: bool) -> Optional[MemoryOmap]:
        if not fenced:
            return handles[0]
        return fresh if still_active else None

    shut_down: List[bool] = []
    store = TaskStore(kv, opener, lambda: '.mgr',
                      lambda failed: store.renew(lambda: shut_down.append(True)))
    assert store.move()
    if still_active:
        store.put(key_of(1), 'late')
        assert fresh.data['tasks.000000'] == {key_of(1): b'late'}
    else:
        with pytest.raises(Fenced):
            store.put(key_of(1), 'late')
        assert fresh.data == {} and kv.get(key_of(1)) is None    # nothing landed anywhere
        with pytest.raises(Fenced):
            store.put(key_of(2), 'later')                        # nor ever will
    assert shut_down == [True]                                   # the old handle went


def test_a_key_left_after_a_move_never_goes_back_over_a_newer_record() -> None:
    kv, opener = CrashingKv(), Opener()
    opener.ready = True
    kv.put(key_of(1), 'pending')
    kv.put(key_of(2), 'pending')
    kv.left = 0                               # the mon refuses the first delete
    store = _task_store(kv, opener)
    with pytest.raises(SystemExit):
        store.move()
    assert store.in_rados
    store.put(key_of(1), 'finished')          # the task went on in omap
    store.put(key_of(2), 'finished')
    kv.left = None
    again = _task_store(kv, opener)           # a restart finds the old keys still there
    assert again.move()
    assert again.scan('task/') == {key_of(1): 'finished', key_of(2): 'finished'}
    assert kv.scan('') == {}
    store.move()                              # the first one's retry finds nothing left
    assert kv.scan('') == {}
