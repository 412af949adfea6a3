"""The table of task records on its own: ids, the id floor, indexes, paging, retention."""
from typing import Any

import pytest

from mgr_bgtasks.engine import TaskTable
from mgr_bgtasks.errors import NotFound
from mgr_bgtasks.task import Task


def make(task_id: int, kind: str = 'test', created: float = 100.0, **fields: Any) -> Task:
    return Task(id=task_id, kind=kind, description=f'task {task_id}', params={'n': task_id},
                created=created, created_by='u', last_modified=created, **fields)


def filled(*tasks: Task, id_floor: int = 0) -> TaskTable:
    table = TaskTable()
    table.fill(tasks, id_floor)
    return table


def add(table: TaskTable, kind: str = 'test', created: float = 100.0) -> Task:
    task = make(table.new_id(), kind, created)
    table.add(task).release()
    return task


def test_ids_increase_from_one() -> None:
    table = TaskTable()
    assert [add(table).id for _ in range(3)] == [1, 2, 3]
    assert table.next_id == 4 and len(table) == 3


def test_next_id_follows_the_highest_stored_task_or_the_floor() -> None:
    assert filled(make(4), make(9)).next_id == 10
    assert filled(make(4), id_floor=12).next_id == 13
    assert filled().next_id == 1


def test_id_floor_is_stored_only_for_ids_above_it() -> None:
    table = filled(make(1), make(2), make(3))
    assert table.floor_to_store(3) == 3
    table.floor_stored(3)
    assert table.floor_to_store(3) is None and table.floor_to_store(2) is None
    add(table)                                  # id 4
    assert table.floor_to_store(4) == 4
    table.floor_stored(2)                       # never lowers it
    assert table.floor_to_store(3) is None


def test_a_new_task_comes_with_its_lock_held() -> None:
    table = TaskTable()
    lock = table.add(make(table.new_id()))
    assert table.lock_of(1) is lock and lock.locked()
    lock.release()
    table.remove(1)
    assert table.lock_of(1) is None and table.get(1) is None
    with pytest.raises(NotFound):
        table.find(1)


def test_loaded_tasks_have_free_locks() -> None:
    table = filled(make(1), make(2))
    lock = table.lock_of(2)
    assert lock is not None and not lock.locked()
    assert table.find(2).id == 2


def test_pending_index_follows_transitions() -> None:
    table = filled(make(1), make(2, status='Finished'), make(3, kind='other'))
    assert [t.id for t in table.pending()] == [1, 3]
    assert [t.id for t in table.pending_of('test')] == [1]
    task = add(table)                                   # id 4, pending
    assert [t.id for t in table.pending_of('test')] == [1, 4]

    task.start(101.0)
    table.changed(task)
    assert table.pending_count == 3                     # running is still pending
    task.finish(102.0, 'done')
    table.changed(task)
    assert [t.id for t in table.pending()] == [1, 3]

    first = table.find(1)
    first.abort(103.0, 'by u')
    table.changed(first)
    third = table.find(3)
    third.fail(104.0, 'broken')
    table.changed(third)
    assert list(table.pending()) == [] and table.pending_count == 0
    assert table.page('pending') == (0, [])


def test_removing_a_pending_task_drops_it_from_the_index() -> None:
    table = TaskTable()
    task = add(table)
    table.remove(task.id)
    assert table.pending_count == 0 and list(table.pending_of('test')) == []


def test_page_is_newest_first_and_filters() -> None:
    table = filled(*[make(i) for i in range(1, 8)])
    for i in (2, 5, 6):
        table.find(i).finish(200.0, None)
        table.changed(table.find(i))
    table.find(3).fail(200.0, 'e')
    table.changed(table.find(3))

    total, tasks = table.page()
    assert total == 7 and [t.id for t in tasks] == [7, 6, 5, 4, 3, 2, 1]
    total, tasks = table.page(offset=2, limit=3)
    assert total == 7 and [t.id for t in tasks] == [5, 4, 3]
    total, tasks = table.page('finished', limit=2)
    assert total == 3 and [t.id for t in tasks] == [6, 5]
    total, tasks = table.page('pending')
    assert total == 3 and [t.id for t in tasks] == [7, 4, 1]
    total, tasks = table.page(status='Exception')
    assert total == 1 and [t.id for t in tasks] == [3]
    assert table.page('failed', offset=5) == (1, [])


def test_retention_candidates_by_age() -> None:
    day = 86400.0
    table = filled(make(1, created=0.0), make(2, created=0.0), make(3, created=0.0))
    table.find(1).finish(1 * day, None)
    table.find(2).finish(5 * day, None)          # 3 stays pending, however old
    for i in (1, 2):
        table.changed(table.find(i))
    assert table.retention_candidates(8.5 * day, 7.0, 100) == [1]
    assert table.retention_candidates(12.5 * day, 7.0, 100) == [1, 2]


def test_retention_candidates_by_count_oldest_ended_first() -> None:
    table = filled(*[make(i) for i in range(1, 6)])
    # Ended out of id order: the count drops the ones that ended first.
    for task_id, ended in ((1, 300.0), (2, 100.0), (3, 200.0), (4, 400.0)):
        table.find(task_id).finish(ended, None)
        table.changed(table.find(task_id))
    assert table.retention_candidates(500.0, 7.0, 2) == [2, 3]
    assert table.retention_candidates(500.0, 7.0, 0) == [2, 3, 1, 4]
    assert table.retention_candidates(500.0, 7.0, 10) == []
