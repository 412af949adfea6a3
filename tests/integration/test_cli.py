"""`ceph bgtask` on a real cluster: the flows of the user page, errors, and failover."""
import json
import time
from typing import Any, Dict, Optional

from conftest import Bgtask, no_module_error


def test_test_task_runs_to_finished(bg: Bgtask) -> None:
    task = bg.json('test', '8')
    assert task['state'] == 'pending' and task['status'] == 'Not Started'
    assert task['kind'] == 'test' and task['params'] == {'times': 8}
    assert task['description'] == 'Test task counting 8 rounds'
    assert task['created_by'] == 'cli'

    pending_ids = [t['id'] for t in bg.json('ls')]          # default: pending
    assert task['id'] in pending_ids
    seen = set()
    done = bg.wait_task(task['id'], lambda t: (seen.add(t['percent']), t['state'])[1]
                        == 'finished', timeout=30)
    assert done['status'] == 'Finished' and done['percent'] == 100
    assert done['result'] == {'rounds': 8}
    assert any(0 < p < 100 for p in seen), f'no growing percent seen: {seen}'
    assert task['id'] in [t['id'] for t in bg.json('ls', 'finished')]
    assert task['id'] not in [t['id'] for t in bg.json('ls', 'pending')]


def test_plain_and_pretty_output(bg: Bgtask) -> None:
    task = bg.json('test', '2')
    table = bg.run('ls', 'all').stdout
    for header in ('ID', 'DESCRIPTION', 'STATUS', 'PERCENT', 'CREATED', 'ESTIMATED/ENDED'):
        assert header in table
    assert 'Test task counting 2 rounds' in table
    pretty = bg.run('show', str(task['id']), '-f', 'json-pretty').stdout
    assert json.loads(pretty)['id'] == task['id'] and '\n  "id"' in pretty
    assert 'description' in bg.run('show', str(task['id'])).stdout


def test_errors_are_refused_with_errno_and_the_module_stays_healthy(bg: Bgtask) -> None:
    for bad in ('0', '100001', '-3'):
        res = bg.run('test', bad)
        assert res.returncode == 22, res
        assert 'from 1 to 100000' in res.stderr
    res = bg.run('test', 'abc')                   # the ceph client refuses it itself
    assert res.returncode == 22
    res = bg.run('show', '987654')
    assert res.returncode == 2 and 'task 987654 not found' in res.stderr
    res = bg.run('rm', '987654')
    assert res.returncode == 2
    res = bg.run('ls', 'running')
    assert res.returncode == 22 and 'pending, failed, finished or all' in res.stderr
    res = bg.run('ls', '-f', 'xml')
    assert res.returncode == 22
    assert no_module_error(bg.cluster)


def test_rm_pending_needs_confirmation_and_aborts(bg: Bgtask) -> None:
    task = bg.json('test', '100')
    res = bg.run('rm', str(task['id']))
    assert res.returncode == 1                    # EPERM
    assert 'running step is not stopped' in res.stderr
    assert 'nothing done so far is undone' in res.stderr
    assert bg.show(task['id'])['state'] == 'pending'

    aborted = bg.json('rm', str(task['id']), '--yes-i-really-mean-it')
    assert aborted['state'] == 'failed' and aborted['status'] == 'Aborted'
    assert task['id'] in [t['id'] for t in bg.json('ls', 'failed')]
    percent = aborted['percent']
    time.sleep(1.5)                               # no follow-up step runs
    assert bg.show(task['id'])['percent'] == percent

    res = bg.run('rm', str(task['id']))           # failed: removed without a question
    assert res.returncode == 0
    assert bg.run('show', str(task['id'])).returncode == 2


def test_progress_event_while_running_and_completed_after(bg: Bgtask) -> None:
    task = bg.json('test', '30')
    ev_id = f"bgtasks-{task['id']}"

    def event(section: str) -> Optional[Dict[str, Any]]:
        events = bg.cluster.ceph('progress', 'json', json_out=True)[section]
        return next((e for e in events if e['id'] == ev_id), None)

    # A task shows once it has run for a second (mirrored once a second).
    running = bg.cluster.wait_for(lambda: event('events'), timeout=10, interval=0.25,
                                  what=f'{ev_id} among the progress events')
    assert running['refs'] == {'origin': 'bgtasks', 'task_id': task['id'], 'kind': 'test'}
    # `ceph -s` shows what the mgr last reported to the mon (every few seconds).
    bg.cluster.wait_for(lambda: 'Test task counting 30 rounds' in bg.cluster.ceph('-s'),
                        timeout=15)
    bg.wait_task(task['id'], lambda t: t['state'] == 'finished')
    bg.cluster.wait_for(lambda: event('completed') and not event('events'), timeout=10,
                        interval=0.25, what=f'{ev_id} completed')
