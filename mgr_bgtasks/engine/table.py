"""The tasks an engine keeps, in memory: by id, with their ids, locks and indexes.

It knows nothing of the store, the scheduler or what a kind does. It is not locked
itself: the engine holds its condition around every use.
"""
import threading
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..errors import NotFound
from ..task import PENDING, Task


class TaskTable:
    def __init__(self) -> None:
        self._tasks: Dict[int, Task] = {}
        # Held from a task's mutation until its record is handed to the writer.
        self._locks: Dict[int, threading.Lock] = {}
        self._next_id = 1
        # Highest id ever handed out, as last stored (ids above it are derived from tasks).
        self._id_floor = 0
        # Ids of pending tasks: merge and busy checks look only at these, not at the
        # thousands of finished ones kept.
        self._pending: Set[int] = set()

    def fill(self, tasks: Iterable[Task], id_floor: int) -> None:
        """Replace everything with tasks read from the store."""
        self._tasks = {t.id: t for t in tasks}
        self._locks = {i: threading.Lock() for i in self._tasks}
        self._id_floor = id_floor
        self._next_id = max([id_floor] + list(self._tasks)) + 1
        self._pending = {t.id for t in self._tasks.values() if t.pending}

    # ---------------------------------------------------------------- ids

    @property
    def next_id(self) -> int:
        return self._next_id

    def new_id(self) -> int:
        task_id = self._next_id
        self._next_id += 1
        return task_id

    def floor_to_store(self, deleted_id: int) -> Optional[int]:
        """The id floor to store before `deleted_id` goes, or None when the stored one
        already covers it."""
        if deleted_id <= self._id_floor:
            return None
        return self._next_id - 1

    def floor_stored(self, floor: int) -> None:
        self._id_floor = max(self._id_floor, floor)

    # ---------------------------------------------------------------- tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: Task) -> threading.Lock:
        """File a new task. Its lock comes back already held: its record is not stored
        yet, and nobody else can know the task to wait for it."""
        lock = threading.Lock()
        lock.acquire()
        self._tasks[task.id] = task
        self._locks[task.id] = lock
        self.changed(task)
        return lock

    def remove(self, task_id: int) -> None:
        del self._tasks[task_id]
        del self._locks[task_id]
        self._pending.discard(task_id)

    def get(self, task_id: int) -> Optional[Task]:
        return self._tasks.get(task_id)

    def find(self, task_id: int) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f'task {task_id} not found')
        return task

    def lock_of(self, task_id: int) -> Optional[threading.Lock]:
        return self._locks.get(task_id)

    def changed(self, task: Task) -> None:
        """After a transition of `task`: the pending index follows its status."""
        if task.pending:
            self._pending.add(task.id)
        else:
            self._pending.discard(task.id)

    def all(self) -> List[Task]:
        """Every task, oldest first."""
        return sorted(self._tasks.values(), key=lambda t: t.id)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending(self) -> Iterator[Task]:
        """Pending tasks, oldest first."""
        for task_id in sorted(self._pending):
            yield self._tasks[task_id]

    def pending_of(self, kind_name: str) -> Iterator[Task]:
        return (t for t in self.pending() if t.kind == kind_name)

    def page(self, state: Optional[str] = None, status: Optional[str] = None,
             offset: int = 0, limit: Optional[int] = None) -> Tuple[int, List[Task]]:
        """How many tasks match, and `limit` of them from `offset`, newest first."""
        pool = ([self._tasks[i] for i in self._pending] if state == PENDING
                else self._tasks.values())
        tasks = [t for t in pool
                 if (state is None or t.state == state)
                 and (status is None or t.status == status)]
        tasks.sort(key=lambda t: t.id, reverse=True)
        end = None if limit is None else offset + limit
        return len(tasks), tasks[offset:end]

    def retention_candidates(self, now: float, retention_days: float,
                             max_retained: int) -> List[int]:
        """Final tasks past `retention_days`, and the oldest beyond `max_retained`."""
        final = sorted((t.ended or t.created, t.id) for t in self._tasks.values()
                       if not t.pending)
        horizon = now - retention_days * 86400.0
        excess = len(final) - max_retained
        return [task_id for i, (ended, task_id) in enumerate(final)
                if ended < horizon or i < excess]
