"""Mirrors running tasks into the progress module, so they show in `ceph -s`,
`ceph progress` and the Ceph dashboard's task list."""
import logging
from typing import Any, Callable, Dict

log = logging.getLogger(__name__)

Remote = Callable[..., Any]


def event_id(task_id: int) -> str:
    return f'bgtasks-{task_id}'


def _refs(task: Dict[str, Any]) -> Dict[str, Any]:
    refs = {'origin': 'bgtasks', 'task_id': task['id'], 'kind': task['kind']}
    # Name what the task works on, as Ceph's own modules do in their events.
    for key in ('pool', 'image'):
        if task['params'].get(key) is not None:
            refs[key] = task['params'][key]
    return refs


class ProgressMirror:
    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    def task_changed(self, task: Dict[str, Any]) -> None:
        ev = event_id(task['id'])
        try:
            if task['state'] == 'pending':
                self._remote('progress', 'update', ev, task['description'],
                             task['percent'] / 100.0,
                             refs=_refs(task),
                             add_to_ceph_s=True)
            elif task['state'] == 'finished':
                self._remote('progress', 'complete', ev)
            else:
                self._remote('progress', 'fail', ev, task['error'] or task['status'])
        except ImportError:
            pass    # the progress module is off: nothing to mirror into
        except Exception as e:
            log.warning('progress event %s: %s', ev, e)
