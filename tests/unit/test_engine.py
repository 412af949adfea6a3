"""The engine without Ceph: an in-memory store, a fake clock, and small task kinds."""
import errno
import json
import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from conftest import Harness

from mgr_bgtasks.clock import Clock
from mgr_bgtasks.engine import ABORT_WARNING, ID_FLOOR_KEY
from mgr_bgtasks.errors import (BgtaskError, Busy, Conflict, Invalid, NotFound, NotReady,
                                Unavailable)
from mgr_bgtasks.kind import Context, Continue, Finish, Outcome, TaskKind
from mgr_bgtasks.store import MemoryStore
from mgr_bgtasks.task import key_of


class PoolKind(TaskKind):
    """Acts on 'the cluster': merged when identical, busy per pool."""
    name = 'pool'

    def __init__(self) -> None:
        self.ended_calls: List[Dict[str, Any]] = []

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        return {'pool': params['pool'], 'n': params['n']}

    def describe(self, params: Dict[str, Any]) -> str:
        return f"pool {params['pool']} to {params['n']}"

    def conflicts(self, params: Dict[str, Any], other: Dict[str, Any]) -> bool:
        return params['pool'] == other['pool']

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        if state.get('waited'):
            return Finish({'pool': params['pool']})
        return Continue({'waited': True}, percent=50, delay=100, wake_on=frozenset({'osd_map'}))

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        self.ended_calls.append(params)


class BlockingKind(TaskKind):
    """A step that blocks until released, to catch what happens meanwhile."""
    name = 'block'
    merge_identical = False

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.ended_calls = 0
        self.steps = 0

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        return {}

    def describe(self, params: Dict[str, Any]) -> str:
        return 'blocking'

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        self.steps += 1
        self.entered.set()
        assert self.release.wait(10)
        return Continue({'x': 1}, percent=10, delay=0)

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        self.ended_calls += 1


class FailingKind(TaskKind):
    name = 'fail'
    merge_identical = False

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        return dict(params)

    def describe(self, params: Dict[str, Any]) -> str:
        return 'fails'

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        if params.get('big'):
            return Finish('x' * 70000)
        raise RuntimeError('disk on fire')


def harness_with(*kinds: TaskKind, **engine_args: Any) -> Harness:
    h = Harness(**engine_args)
    for k in kinds:
        h.kinds[k.name] = k
    return h


# ------------------------------------------------------------------ the test task

def test_test_task_counts_rounds_then_finishes(h: Harness) -> None:
    task, created = h.engine.submit('test', {'times': 3}, 'client.admin')
    assert created
    assert task['state'] == 'pending' and task['status'] == 'Not Started'
    assert task['description'] == 'Test task counting 3 rounds'
    assert task['created_by'] == 'client.admin'
    assert task['percent'] == 0 and task['started'] is None

    assert h.engine.run_due() == 1
    t = h.engine.get(task['id'])
    assert t['status'] == 'Running' and t['started'] is not None and t['percent'] == 0
    assert t['status_text'] == 'round 1 of 3'
    assert h.tick(0.5) == 0          # the round is waited out, not stepped early
    percents = []
    for _ in range(3):
        h.tick(0.5)
        percents.append(h.engine.get(task['id'])['percent'])
        h.clock.advance(0.5)
    assert percents == [33, 66, 100]
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished' and t['status'] == 'Finished'
    assert t['result'] == {'rounds': 3}
    assert t['ended'] is not None and t['estimated'] is None
    assert h.engine.list('finished')[0]['id'] == task['id']
    assert h.engine.list('pending') == []


def test_eta_follows_measured_progress(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 4}, 'u')
    h.engine.run_due()
    assert h.engine.get(task['id'])['estimated'] is None     # 0 % says nothing yet
    h.tick(1.0)                                                # 1 of 4 rounds in 1 s
    t = h.engine.get(task['id'])
    assert t['percent'] == 25
    started = h.clock.now() - 1.0
    from mgr_bgtasks.clock import iso
    assert t['estimated'] == iso(started + 4.0)


@pytest.mark.parametrize('times', [0, -1, 100001, '5', 2.5, True, None])
def test_test_task_rejects_bad_times(h: Harness, times: Any) -> None:
    with pytest.raises(Invalid, match='from 1 to 100000'):
        h.engine.submit('test', {'times': times}, 'u')
    assert h.engine.list(None) == []


def test_test_tasks_are_never_merged(h: Harness) -> None:
    a, _ = h.engine.submit('test', {'times': 5}, 'u')
    b, created = h.engine.submit('test', {'times': 5}, 'u')
    assert created and a['id'] != b['id']


def test_unknown_kind_and_bad_filters(h: Harness) -> None:
    with pytest.raises(Invalid, match='unknown task kind'):
        h.engine.submit('nope', {}, 'u')
    with pytest.raises(Invalid, match='state must be one of'):
        h.engine.list('running')
    with pytest.raises(Invalid, match='status must be one of'):
        h.engine.list(status='Done')


def test_not_ready_before_load() -> None:
    from mgr_bgtasks.engine import Engine
    from mgr_bgtasks.kinds import all_kinds
    from mgr_bgtasks.store import MemoryStore
    e = Engine(MemoryStore(), Clock(), all_kinds(), Context(None, Clock(), {}))
    with pytest.raises(NotReady):
        e.list()


# ------------------------------------------------------------------ ids and persistence

def test_ids_increase_and_are_never_reused(h: Harness) -> None:
    ids = [h.engine.submit('test', {'times': 1}, 'u')[0]['id'] for _ in range(3)]
    assert ids == [1, 2, 3]
    h.engine.run_due()
    h.tick(1.0)                        # all finished
    h.engine.delete(3, abort_pending=False, deleted_by='u')
    h.engine.delete(2, abort_pending=False, deleted_by='u')
    assert h.store.get(ID_FLOOR_KEY) == '3'
    h.restart()
    assert h.engine.submit('test', {'times': 1}, 'u')[0]['id'] == 4


def test_one_store_write_per_create(h: Harness) -> None:
    before = h.store.writes
    for _ in range(10):
        h.engine.submit('test', {'times': 1}, 'u')
    assert h.store.writes - before == 10


def test_progress_is_persisted_after_every_step_and_resumed(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 5}, 'u')
    h.engine.run_due()
    h.tick(1.0)
    h.tick(1.0)
    stored = json.loads(h.store.get(key_of(task['id'])) or '{}')
    assert stored['percent'] == 40.0 and stored['step']['done'] == 2

    h.restart()                                 # a new mgr over the same store
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending' and t['percent'] == 40
    assert h.engine.run_due() == 1              # due at once after a reload
    assert h.engine.get(task['id'])['percent'] == 60   # next round, not from 0
    for _ in range(3):
        h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished' and t['result'] == {'rounds': 5}


def test_unreadable_record_is_skipped_and_unknown_kind_fails(h: Harness) -> None:
    h.store.put('task/0000000007', '{not json')
    h.store.put(key_of(8), json.dumps({
        'id': 8, 'kind': 'gone', 'description': 'd', 'params': {}, 'created': 1.0,
        'created_by': 'u'}))
    h.restart()
    assert [t['id'] for t in h.engine.list(None)] == [8]
    t = h.engine.get(8)
    assert t['status'] == 'Exception' and 'unknown task kind' in t['error']
    h.engine.maintain()
    assert json.loads(h.store.get(key_of(8)) or '{}')['status'] == 'Exception'
    assert h.engine.submit('test', {'times': 1}, 'u')[0]['id'] == 9


def test_store_outage_during_steps_is_retried(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 2}, 'u')
    h.engine.run_due()
    h.store.fail_writes = True
    h.tick(1.0)
    assert h.engine.get(task['id'])['percent'] == 50     # memory moves on
    stored = json.loads(h.store.get(key_of(task['id'])) or '{}')
    assert stored['percent'] == 0.0
    h.store.fail_writes = False
    h.engine.maintain()
    stored = json.loads(h.store.get(key_of(task['id'])) or '{}')
    assert stored['percent'] == 50.0


def test_create_fails_cleanly_when_the_store_is_down(h: Harness) -> None:
    h.store.fail_writes = True
    with pytest.raises(BgtaskError, match='could not store'):
        h.engine.submit('test', {'times': 1}, 'u')
    assert h.engine.list(None) == []
    h.store.fail_writes = False
    assert h.engine.submit('test', {'times': 1}, 'u')[0]['id'] == 2


def test_a_create_the_store_did_not_take_answers_eagain_and_is_deleted_after(
        h: Harness) -> None:
    class LateStore(MemoryStore):
        # The OSDs answer after the create was refused: the record lands late.
        def put(self, key: str, value: Optional[str]) -> None:
            super().put(key, value)
            if self.fail_writes and value is not None:
                raise IOError('no answer from the OSDs within 10 s')

    h.store = LateStore()
    h.engine = h.restart()
    h.store.fail_writes = True
    with pytest.raises(Unavailable) as refused:
        h.engine.submit('test', {'times': 1}, 'u')
    assert refused.value.errno == errno.EAGAIN and refused.value.http_status == 503
    h.store.fail_writes = False
    h.engine.maintain()
    assert h.store.get(key_of(1)) is None           # the late record does not stay
    assert h.restart().list(None) == []


def test_an_unreadable_record_is_kept_aside_and_its_id_not_reused(h: Harness) -> None:
    h.store.put(key_of(7), '{"id": 7, "kind": "test", "truncat')
    h.restart()
    assert h.engine.unreadable and key_of(7) in h.engine.unreadable
    assert h.store.get(key_of(7)) is not None        # never dropped
    assert h.engine.submit('test', {'times': 1}, 'u')[0]['id'] == 8


# ------------------------------------------------------------------ merge and busy

def test_identical_pending_tasks_are_merged_and_same_pool_is_busy() -> None:
    kind = PoolKind()
    h = harness_with(kind)
    a, created = h.engine.submit('pool', {'pool': 'rbd', 'n': 8}, 'u')
    assert created
    b, created = h.engine.submit('pool', {'pool': 'rbd', 'n': 8}, 'v')
    assert not created and b['id'] == a['id']
    with pytest.raises(Busy, match=f"task {a['id']} .* is pending"):
        h.engine.submit('pool', {'pool': 'rbd', 'n': 16}, 'u')
    other, created = h.engine.submit('pool', {'pool': 'other', 'n': 16}, 'u')
    assert created
    # Once finished, the same request queues a new task.
    h.engine.run_due()
    h.engine.wake('osd_map')
    h.engine.run_due()
    c, created = h.engine.submit('pool', {'pool': 'rbd', 'n': 8}, 'u')
    assert created and c['id'] > other['id']


def test_wake_event_brings_a_waiting_step_forward() -> None:
    kind = PoolKind()
    h = harness_with(kind)
    task, _ = h.engine.submit('pool', {'pool': 'rbd', 'n': 8}, 'u')
    h.engine.run_due()
    assert h.tick(1.0) == 0                     # waits up to 100 s ...
    h.engine.wake('pg_summary')
    assert h.engine.run_due() == 0              # ... for an event it did not ask for
    h.engine.wake('osd_map')
    assert h.engine.run_due() == 1              # ... or one it did
    assert h.engine.get(task['id'])['state'] == 'finished'
    assert kind.ended_calls == [{'pool': 'rbd', 'n': 8}]


# ------------------------------------------------------------------ delete and abort

def test_delete_pending_needs_confirmation_then_aborts(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 10}, 'u')
    h.engine.run_due()
    h.tick(1.0)
    with pytest.raises(Conflict) as e:
        h.engine.delete(task['id'], abort_pending=False, deleted_by='u')
    assert ABORT_WARNING in str(e.value)
    assert h.engine.get(task['id'])['state'] == 'pending'

    t = h.engine.delete(task['id'], abort_pending=True, deleted_by='client.admin')
    assert t is not None
    assert t['state'] == 'failed' and t['status'] == 'Aborted' and t['percent'] == 10
    assert 'deleted while pending by client.admin' in t['error']
    for _ in range(3):
        assert h.tick(1.0) == 0                  # no follow-up step runs
    assert h.engine.get(task['id'])['percent'] == 10
    h.restart()                                  # nor after a failover
    assert h.engine.run_due() == 0
    assert h.engine.get(task['id'])['status'] == 'Aborted'


def test_delete_final_tasks_removes_them(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 10}, 'u')
    h.engine.delete(task['id'], abort_pending=True, deleted_by='u')
    assert h.engine.delete(task['id'], abort_pending=False, deleted_by='u') is None
    with pytest.raises(NotFound, match=f"task {task['id']} not found"):
        h.engine.get(task['id'])
    with pytest.raises(NotFound, match='task 42 not found'):
        h.engine.delete(42, abort_pending=True, deleted_by='u')
    assert h.store.get(key_of(task['id'])) is None


def test_abort_while_a_step_runs_keeps_it_aborted() -> None:
    kind = BlockingKind()
    h = harness_with(kind)
    task, _ = h.engine.submit('block', {}, 'u')
    runner = threading.Thread(target=h.engine.run_due)
    runner.start()
    assert kind.entered.wait(5)
    h.engine.delete(task['id'], abort_pending=True, deleted_by='u')
    assert kind.ended_calls == 0                 # the step in flight still holds resources
    kind.release.set()
    runner.join(5)
    t = h.engine.get(task['id'])
    assert t['status'] == 'Aborted' and t['percent'] == 0
    assert json.loads(h.store.get(key_of(task['id'])) or '{}')['status'] == 'Aborted'
    assert kind.ended_calls == 1
    assert h.tick(1.0) == 0 and kind.steps == 1


# ------------------------------------------------------------------ failures

def test_a_failing_step_fails_its_task_only() -> None:
    h = harness_with(FailingKind())
    bad, _ = h.engine.submit('fail', {}, 'u')
    good, _ = h.engine.submit('test', {'times': 1}, 'u')
    h.engine.run_due()
    h.tick(1.0)
    t = h.engine.get(bad['id'])
    assert t['state'] == 'failed' and t['status'] == 'Exception'
    assert t['error'] == 'RuntimeError: disk on fire'
    assert h.engine.get(good['id'])['state'] == 'finished'


def test_a_record_too_large_fails_instead_of_breaking_the_store() -> None:
    h = harness_with(FailingKind())
    task, _ = h.engine.submit('fail', {'big': True}, 'u')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['status'] == 'Exception' and 'too large' in t['error']
    assert len(h.store.get(key_of(task['id'])) or '') < 65536


def test_observer_sees_steps_and_end(h: Harness) -> None:
    task, _ = h.engine.submit('test', {'times': 2}, 'u')
    assert h.observer.events == []               # nothing to show before it runs
    h.engine.run_due()
    h.tick(1.0)
    h.tick(1.0)
    seen = [(e['status'], e['percent']) for e in h.observer.events]
    assert seen == [('Running', 0), ('Running', 50), ('Finished', 100)]


# ------------------------------------------------------------------ retention

def test_retention_by_count_keeps_pending_and_newest() -> None:
    h = Harness(max_retained=2)
    ids = [h.engine.submit('test', {'times': 1}, 'u')[0]['id'] for _ in range(4)]
    h.engine.run_due()
    h.tick(1.0)
    pending, _ = h.engine.submit('test', {'times': 99}, 'u')
    h.engine.maintain()
    assert sorted(t['id'] for t in h.engine.list(None)) == ids[2:] + [pending['id']]


def test_retention_by_age() -> None:
    h = Harness(retention_days=7)
    old, _ = h.engine.submit('test', {'times': 1}, 'u')
    h.engine.run_due()
    h.tick(1.0)
    h.clock.advance(6 * 86400)
    new, _ = h.engine.submit('test', {'times': 1}, 'u')
    h.engine.run_due()
    h.tick(1.0)
    h.clock.advance(1.5 * 86400)
    h.engine.maintain()
    assert [t['id'] for t in h.engine.list(None)] == [new['id']]


# ------------------------------------------------------------------ the threaded runner

def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError('timed out')


def threaded(*kinds: TaskKind, **engine_args: Any) -> Harness:
    h = harness_with(*kinds, **engine_args)
    h.clock = Clock()   # type: ignore[assignment]
    h.options['test_round_seconds'] = 0.02
    h.restart()
    return h


def test_threaded_engine_runs_many_tasks_to_the_end() -> None:
    h = threaded(max_workers=4)
    h.engine.start()
    try:
        ids = [h.engine.submit('test', {'times': 3}, 'u')[0]['id'] for _ in range(50)]
        wait_until(lambda: len(h.engine.list('finished')) == 50)
        assert {t['id'] for t in h.engine.list('finished')} == set(ids)
    finally:
        h.engine.stop()


def test_a_slow_step_does_not_stall_the_others() -> None:
    kind = BlockingKind()
    h = threaded(kind, max_workers=2)
    h.engine.start()
    try:
        h.engine.submit('block', {}, 'u')
        assert kind.entered.wait(5)
        task, _ = h.engine.submit('test', {'times': 3}, 'u')
        wait_until(lambda: h.engine.get(task['id'])['state'] == 'finished')
        assert h.engine.list('pending')[0]['kind'] == 'block'
    finally:
        kind.release.set()
        h.engine.stop()


def test_max_workers_bounds_concurrent_steps() -> None:
    class Counting(BlockingKind):
        name = 'count'
        running = 0
        peak = 0
        lock = threading.Lock()

        def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.05)
            with self.lock:
                self.running -= 1
            return Finish()

    kind = Counting()
    h = threaded(kind, max_workers=3)
    h.engine.start()
    try:
        for _ in range(12):
            h.engine.submit('count', {}, 'u')
        wait_until(lambda: len(h.engine.list('finished')) == 12)
        assert kind.peak == 3
    finally:
        h.engine.stop()


class SavingKind(TaskKind):
    """Counts; only every third step asks for its state to be stored."""
    name = 'saving'
    merge_identical = False

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        return dict(params)

    def describe(self, params: Dict[str, Any]) -> str:
        return 'saving'

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        n = state.get('n', 0) + 1
        if n == params.get('until', 7):
            return Finish({'n': n})
        if params.get('grow') and n == 2:
            return Continue({'n': n, 'pad': 'x' * 70000}, percent=n, delay=1)
        return Continue({'n': n}, percent=n, delay=1, save=n % 3 == 0)


def test_a_step_may_leave_its_store_write_to_a_later_step() -> None:
    h = harness_with(SavingKind())
    task, _ = h.engine.submit('saving', {}, 'u')
    stored = []
    for _ in range(5):
        h.tick(1.0)
        stored.append(json.loads(h.store.get(key_of(task['id'])) or '{}')['step'].get('n'))
        # What is shown is always the newest state, stored or not.
        assert h.engine.get(task['id'])['percent'] == len(stored)
    assert stored == [None, None, 3, 3, 3]
    assert h.engine.get(task['id'])['percent'] == 5
    # A new mgr resumes from the newest stored state.
    h.restart()
    h.tick(1.0)
    assert h.engine.get(task['id'])['percent'] == 4
    for _ in range(3):
        h.tick(1.0)
    assert h.engine.get(task['id'])['result'] == {'n': 7}
    assert json.loads(h.store.get(key_of(task['id'])) or '{}')['result'] == {'n': 7}


def test_a_state_too_large_to_store_fails_the_task_and_releases_it() -> None:
    kind = SavingKind()
    h = harness_with(kind)
    task, _ = h.engine.submit('saving', {'grow': True}, 'u')
    h.tick(1.0)
    h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['state'] == 'failed' and 'too large' in t['error']
    assert h.engine.list('pending') == []
    assert len(h.store.get(key_of(task['id'])) or '') < 65536
    assert h.tick(5.0) == 0                      # nothing left scheduled for it


def test_an_end_is_stored_before_it_is_announced() -> None:
    # Background writers that linger far longer than the test: only a write the step
    # waits for is in the store when the observer hears of the end.
    h = Harness(writer_threads=1, write_linger=60.0)
    seen: List[Optional[str]] = []
    h.observer.task_changed = lambda t: seen.append(  # type: ignore[method-assign]
        h.store.get(key_of(t['id'])) if t['state'] != 'pending' else None)
    h.engine._writer.start()
    try:
        task, _ = h.engine.submit('test', {'times': 1}, 'u')
        for _ in range(20):
            h.tick(1.0)
            if h.engine.get(task['id'])['state'] != 'pending':
                break
        assert h.engine.get(task['id'])['state'] == 'finished'
        stored = [json.loads(s) for s in seen if s is not None]
        assert stored and stored[-1]['status'] == 'Finished', seen
    finally:
        h.engine._writer.stop()


def test_record_limit_is_the_engines_own() -> None:
    h = Harness(max_record_bytes=200)
    task, _ = h.engine.submit('test', {'times': 3}, 'u')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['status'] == 'Exception' and 'too large' in t['error']
    assert h.engine.list('pending') == [] and h.tick(5.0) == 0
    assert json.loads(h.store.get(key_of(task['id'])) or '{}')['status'] == 'Exception'
