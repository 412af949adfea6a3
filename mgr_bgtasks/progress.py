"""Mirrors running tasks into the progress module, so they show in `ceph -s`,
`ceph progress` and the Ceph dashboard's task list.

A call into the progress module costs about a millisecond of the mgr's time (it crosses
into that module and updates the mgr's progress events), the most a short task's step
costs. So the mirror runs off the steps' path, in a thread of its own, once per TICK:
a task shows once it has run for SHOW_AFTER seconds (one that ends sooner was never in
progress for anyone to watch, and costs nothing), an event moves at most once per tick
whatever the task's step rate, and only events this mgr opened are closed.
"""
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Set

from .kind import TaskKind

log = logging.getLogger(__name__)

Remote = Callable[..., Any]

TICK = 1.0
SHOW_AFTER = 1.0


def event_id(task_id: int) -> str:
    return f'bgtasks-{task_id}'


class ProgressMirror:
    def __init__(self, remote: Remote, kinds: Dict[str, TaskKind],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._remote = remote
        self._kinds = kinds
        self._clock = clock
        self._cond = threading.Condition()
        # The newest snapshot of each task not mirrored yet, and since when it runs.
        self._latest: Dict[str, Dict[str, Any]] = {}
        self._since: Dict[str, float] = {}
        # Events opened in this mgr's progress module and not closed yet.
        self._open: Set[str] = set()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def task_changed(self, task: Dict[str, Any]) -> None:
        ev = event_id(task['id'])
        with self._cond:
            self._latest[ev] = task
            self._since.setdefault(ev, self._clock())
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name='bgtasks-progress',
                                                daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Mirrors what changed last (ends included), then ends the thread."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread, self._stopping = None, False

    def flush(self) -> None:
        """Mirrors every change that is due."""
        now = self._clock()
        with self._cond:
            due = {}
            for ev, task in list(self._latest.items()):
                pending = task['state'] == 'pending'
                if pending and ev not in self._open and now - self._since[ev] < SHOW_AFTER:
                    continue
                due[ev] = task
                del self._latest[ev]
                if not pending:
                    self._since.pop(ev, None)
        for ev, task in due.items():
            self._mirror(ev, task)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping:
                    self._cond.wait(TICK)
                stopping = self._stopping
            self.flush()
            if stopping:
                return

    def _mirror(self, ev: str, task: Dict[str, Any]) -> None:
        pending = task['state'] == 'pending'
        if pending:
            self._open.add(ev)
        elif ev in self._open:
            self._open.discard(ev)
        else:
            return
        try:
            if pending:
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

    def _refs(self, task: Dict[str, Any]) -> Dict[str, Any]:
        kind = self._kinds.get(task['kind'])
        return {'origin': 'bgtasks', 'task_id': task['id'], 'kind': task['kind'],
                **(kind.refs(task['params']) if kind else {})}
