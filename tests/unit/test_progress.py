from typing import Any, Dict, List, Tuple

from mgr_bgtasks.kinds import all_kinds
from mgr_bgtasks.progress import SHOW_AFTER, ProgressMirror


def snapshot(task_id: int, state: str, percent: float = 0.0) -> Dict[str, Any]:
    return {'id': task_id, 'kind': 'test', 'params': {'times': 3}, 'state': state,
            'description': f'test task {task_id}', 'percent': percent, 'error': None,
            'status': {'pending': 'Pending', 'finished': 'Finished'}.get(state, 'Failed')}


class Mirror:
    def __init__(self) -> None:
        self.t = 100.0
        self.calls: List[Tuple[Any, ...]] = []
        self.mirror = ProgressMirror(self.remote, all_kinds(), clock=lambda: self.t)

    def remote(self, module: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((module, method) + args)

    def tick(self, seconds: float = SHOW_AFTER) -> List[Tuple[Any, ...]]:
        self.t += seconds
        self.mirror.flush()
        calls, self.calls = self.calls, []
        return [c[:3] if c[1] != 'update' else c[:3] + (c[4],) for c in calls]


def test_a_task_shows_once_it_ran_a_while_and_its_end_closes_the_event() -> None:
    m = Mirror()
    m.mirror.task_changed(snapshot(1, 'pending', 10.0))
    assert m.tick(SHOW_AFTER / 2) == []
    assert m.tick(SHOW_AFTER / 2) == [('progress', 'update', 'bgtasks-1', 0.1)]
    assert m.tick() == []                               # nothing changed
    m.mirror.task_changed(snapshot(1, 'pending', 40.0))
    m.mirror.task_changed(snapshot(1, 'pending', 50.0))
    assert m.tick() == [('progress', 'update', 'bgtasks-1', 0.5)]   # the newest only
    m.mirror.task_changed(snapshot(1, 'finished', 100.0))
    assert m.tick(0) == [('progress', 'complete', 'bgtasks-1')]


def test_a_failed_task_fails_its_event() -> None:
    m = Mirror()
    m.mirror.task_changed(snapshot(2, 'pending', 10.0))
    m.tick()
    m.mirror.task_changed(snapshot(2, 'failed'))
    assert m.tick(0) == [('progress', 'fail', 'bgtasks-2')]


def test_a_task_that_ends_before_it_shows_calls_nothing() -> None:
    m = Mirror()
    m.mirror.task_changed(snapshot(3, 'pending', 0.0))
    m.mirror.task_changed(snapshot(3, 'finished', 100.0))
    m.mirror.task_changed(snapshot(4, 'failed'))
    assert m.tick() == [] and m.tick() == []


def test_stop_mirrors_the_last_changes_from_its_thread() -> None:
    m = Mirror()
    m.mirror.task_changed(snapshot(5, 'pending', 10.0))
    m.tick()
    m.mirror.task_changed(snapshot(5, 'finished', 100.0))
    m.mirror.stop()
    assert [c[:3] for c in m.calls] == [('progress', 'complete', 'bgtasks-5')]
