"""The scheduler on its own: ids, due times, wake-ups and what counts as running."""
import threading
from typing import List

from conftest import FakeClock

from mgr_bgtasks.engine import Scheduler


def make(max_workers: int = 4) -> Scheduler:
    return Scheduler(threading.Condition(), FakeClock(0.0), lambda task_id: None,
                     lambda: None, max_workers)


def test_due_tasks_are_claimed_in_due_order_then_id() -> None:
    s = make()
    s.schedule(1, 30.0)
    s.schedule(2, 10.0)
    s.schedule(3, 20.0)
    s.schedule(4, 10.0)
    assert s.claim_due(5.0, 10) == []
    assert s.claim_due(20.0, 10) == [2, 4, 3]
    assert s.due_count() == 1
    assert s.claim_due(100.0, 10) == [1]
    assert s.due_count() == 0


def test_claim_respects_the_limit_and_leaves_the_rest_due() -> None:
    s = make()
    for task_id in range(1, 6):
        s.schedule(task_id, 0.0)
    assert s.claim_due(1.0, 2) == [1, 2]
    assert s.claim_due(1.0, 0) == []
    assert s.due_count() == 3
    assert s.claim_due(1.0, 10) == [3, 4, 5]


def test_running_ids_are_not_claimed_twice() -> None:
    s = make()
    s.schedule(1, 0.0)
    assert s.claim_due(1.0, 10) == [1]
    assert s.is_running(1)
    assert s.claim_due(1.0, 10) == []
    s.step_done(1)
    assert not s.is_running(1)
    s.schedule(1, 2.0)                  # its next step
    assert s.claim_due(1.0, 10) == []
    assert s.claim_due(2.0, 10) == [1]


def test_rescheduling_leaves_a_stale_heap_entry_that_is_skipped() -> None:
    s = make()
    s.schedule(1, 5.0)
    s.schedule(1, 50.0)                 # the 5.0 entry is stale now
    s.schedule(2, 10.0)
    assert s.claim_due(20.0, 10) == [2]
    assert s.claim_due(60.0, 10) == [1]
    assert s.claim_due(1000.0, 10) == []


def test_unscheduled_ids_are_never_claimed() -> None:
    s = make()
    s.schedule(1, 0.0)
    s.schedule(2, 0.0)
    s.wait_for(2, frozenset({'osd_map'}))
    s.unschedule(1)
    s.unschedule(2)
    s.wake('osd_map', 0.0)
    assert s.claim_due(100.0, 10) == [] and s.due_count() == 0


def test_wake_on_makes_a_waiting_id_due_now() -> None:
    s = make()
    s.schedule(1, 100.0)
    s.wait_for(1, frozenset({'osd_map'}))
    s.schedule(2, 100.0)
    s.wait_for(2, frozenset({'pg_summary'}))
    s.schedule(3, 100.0)
    s.wake('osd_map', 7.0)
    assert s.claim_due(7.0, 10) == [1]
    s.wake('pg_summary', 8.0)
    assert s.claim_due(8.0, 10) == [2]
    assert s.claim_due(99.0, 10) == []
    # A claimed id no longer waits: the event does not make it due again.
    s.wake('osd_map', 9.0)
    assert s.claim_due(9.0, 10) == []


def test_wake_never_delays_an_id_already_due() -> None:
    s = make()
    s.schedule(1, 3.0)
    s.wait_for(1, frozenset({'osd_map'}))
    s.wake('osd_map', 5.0)
    assert s.claim_due(3.0, 10) == [1]


def test_next_wait_is_the_nearer_of_due_time_and_maintenance() -> None:
    s = make(max_workers=1)
    # Maintenance is due at once until the loop first runs it.
    s.schedule(1, 30.0)
    assert s.next_wait(10.0) == 0.0
    s._next_maintenance = 25.0
    assert s.next_wait(10.0) == 15.0
    s._next_maintenance = 100.0
    assert s.next_wait(10.0) == 20.0
    s.schedule(1, 40.0)                 # stale 30.0 entry is dropped, not waited for
    assert s.next_wait(10.0) == 30.0
    # No free worker: only maintenance wakes the loop.
    s.schedule(2, 5.0)
    assert s.claim_due(10.0, 1) == [2]
    assert s.next_wait(10.0) == 90.0


def test_the_loop_runs_due_steps_through_its_pool_and_maintains() -> None:
    clock = FakeClock(0.0)
    ran: List[int] = []
    maintained = threading.Event()
    stepped = threading.Event()
    cond = threading.Condition()

    def run_step(task_id: int) -> None:
        ran.append(task_id)
        s.step_done(task_id)
        if len(ran) == 2:
            stepped.set()

    s = Scheduler(cond, clock, run_step, maintained.set, max_workers=2)
    s.schedule(1, 0.0)
    s.schedule(2, 0.0)
    s.schedule(3, 1000.0)
    s.start()
    try:
        assert stepped.wait(5) and maintained.wait(5)
    finally:
        s.stop()
        s.drain()
    assert sorted(ran) == [1, 2] and s.due_count() == 1
