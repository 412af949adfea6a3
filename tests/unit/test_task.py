"""The task record: its transitions and how records of other versions load."""
import json

import pytest

from mgr_bgtasks.task import (ABORTED, EXCEPTION, NOT_STARTED, RECORD_VERSION, RUNNING,
                              STATUS_FINISHED, Task)


def make(**fields: object) -> Task:
    base = dict(id=1, kind='test', description='d', params={'times': 2}, created=10.0,
                created_by='u', last_modified=10.0, step={'done': 0})
    base.update(fields)
    return Task(**base)  # type: ignore[arg-type]


def test_start_sets_started_once() -> None:
    t = make()
    t.start(11.0)
    assert t.status == RUNNING and t.started == 11.0 and t.pending
    t.start(12.0)
    assert t.started == 11.0


def test_advance_clamps_percent_and_keeps_the_task_pending() -> None:
    t = make()
    t.start(11.0)
    t.advance(12.0, {'done': 1}, 150.0, 'round 1')
    assert (t.status, t.step, t.percent, t.status_text, t.last_modified) == \
        (RUNNING, {'done': 1}, 100.0, 'round 1', 12.0)
    t.advance(13.0, {'done': 2}, -5.0, None)
    assert t.percent == 0.0 and t.pending


def test_finish_keeps_the_result_and_drops_the_step() -> None:
    t = make()
    t.start(11.0)
    t.advance(12.0, {'done': 1}, 50.0, 'round 1')
    t.finish(13.0, {'rounds': 2})
    assert t.status == STATUS_FINISHED and t.state == 'finished' and not t.pending
    assert (t.percent, t.result, t.step, t.status_text, t.ended, t.last_modified) == \
        (100.0, {'rounds': 2}, {}, None, 13.0, 13.0)


def test_fail_drops_result_and_step() -> None:
    t = make(status=STATUS_FINISHED, result='x' * 10, step={'big': 1}, status_text='s')
    t.fail(14.0, 'too large')
    assert t.status == EXCEPTION and t.state == 'failed'
    assert (t.error, t.result, t.step, t.status_text, t.ended, t.last_modified) == \
        ('too large', None, {}, None, 14.0, 14.0)


def test_fail_keeping_progress_leaves_the_last_step_as_stored() -> None:
    t = make(status=RUNNING, status_text='round 1', percent=50.0)
    t.fail(14.0, 'unknown task kind', keep_progress=True)
    assert t.status == EXCEPTION and t.ended == 14.0
    assert (t.step, t.status_text, t.last_modified, t.percent) == \
        ({'done': 0}, 'round 1', 10.0, 50.0)


def test_abort_keeps_the_step_for_the_kind_to_release() -> None:
    t = make(status=RUNNING, status_text='round 1')
    t.abort(15.0, 'deleted while pending by u')
    assert t.status == ABORTED and t.state == 'failed'
    assert (t.step, t.status_text, t.ended, t.last_modified, t.error) == \
        ({'done': 0}, None, 15.0, 15.0, 'deleted while pending by u')


# ------------------------------------------------------------------ record versions

def test_record_carries_its_version_and_round_trips() -> None:
    t = make(status=RUNNING, percent=40.0, started=11.0)
    record = json.loads(t.dumps())
    assert record['v'] == RECORD_VERSION == 1
    assert Task.loads(t.dumps()) == t


def test_record_without_version_loads_with_defaults() -> None:
    old = {'id': 3, 'kind': 'test', 'description': 'd', 'params': {}, 'created': 1.0,
           'created_by': 'u'}
    t = Task.loads(json.dumps(old))
    assert (t.id, t.status, t.percent, t.step, t.result, t.started) == \
        (3, NOT_STARTED, 0.0, {}, None, None)
    assert json.loads(t.dumps())['v'] == 1


def test_newer_record_loads_its_known_fields() -> None:
    newer = json.loads(make(status=RUNNING, percent=20.0).dumps())
    newer.update(v=RECORD_VERSION + 1, priority=5, owner={'team': 'storage'})
    t = Task.loads(json.dumps(newer))
    assert t == make(status=RUNNING, percent=20.0)
    assert 'priority' not in json.loads(t.dumps())


@pytest.mark.parametrize('text', ['[1, 2]', '"task"', '{"id": 1}', '{not json'])
def test_unreadable_records_still_raise(text: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        Task.loads(text)
