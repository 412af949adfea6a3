"""Mirrors running tasks into the progress module, so they show in `ceph -s`,
`ceph progress` and the Ceph dashboard's task list."""
import logging
from typing import Any, Callable, Dict

from .kind import TaskKind

log = logging.getLogger(__name__)

Remote = Callable[..., Any]


def event_id(task_id: int) -> str:
    return f'bgtasks-{task_id}'


class ProgressMirror:
    def __init__(self, remote: Remote, kinds: Dict[str, TaskKind]) -> None:
        self._remote = remote
        self._kinds = kinds

    def _refs(self, task: Dict[str, Any]) -> Dict[str, Any]:
        kind = self._kinds.get(task['kind'])
        return {'origin': 'bgtasks', 'task_id': task['id'], 'kind': task['kind'],
                **(kind.refs(task['params']) if kind else {})}

    def task_changed(self, task: Dict[str, Any]) -> None:
        ev = event_id(task['id'])
        try:
            if task['state'] == 'pending':
                self._remote('progress', 'update', ev, task['description'],
                             task['percent'] / 100.0,
                             refs=self._refs(task),
                             add_to_ceph_s=True)
            elif task['state'] == 'finished':
                self._remote('progress', 'complete', ev)
            else:
                self._remote('progress', 'fail', ev, task['error'] or task['status'])
        except ImportError:
            pass    # the progress module is off: nothing to mirror into
        except Exception as e:
            log.warning('progress event %s: %s', ev, e)
