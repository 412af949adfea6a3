"""The task engine: the service functions every interface calls, and the scheduler.

It knows nothing of ceph-mgr: it talks to a `Store` (key-value, persisted), a
`Clock`, the task kinds, and an optional observer (the progress mirror). A task's
record is written after every step, so a new engine over the same store resumes
every pending task from its last completed step.

Locking: `_cond` guards every in-memory structure. Each task also has a lock held
from a mutation until its record is handed to the writer (`writer.py`, which keeps
the newest record of each task and writes them in order); it is always taken before
`_cond`, never while holding it (a fresh task's lock is the one exception: nobody
else can know it yet).
"""
import copy
import heapq
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import (Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Protocol, Set,
                    Tuple)

from .clock import Clock
from .errors import BgtaskError, Busy, Conflict, Invalid, NotFound, NotReady
from .kind import Context, Continue, Finish, Outcome, TaskKind
from .store import Store
from .task import (ABORTED, EXCEPTION, KEY_PREFIX, NOT_STARTED, PENDING, RUNNING, STATES,
                   STATUS_FINISHED, STATUSES, Task, key_of)
from .writer import Writer

# Highest id ever handed out, written only when a task with a higher id is deleted:
# otherwise the highest stored task already tells it, and a create costs one write.
ID_FLOOR_KEY = 'id_floor'
# mon_config_key_max_entry_size; a record larger than this cannot be stored.
MAX_RECORD_BYTES = 65536
MAINTENANCE_SECONDS = 5.0
# Threads are started lazily up to this; `max_workers` limits how many are busy.
THREAD_CAP = 64

ABORT_WARNING = ('The running step is not stopped, its follow-up steps are cancelled, '
                 'nothing done so far is undone, and the task is kept as failed (Aborted).')

log = logging.getLogger(__name__)


class Observer(Protocol):
    def task_changed(self, task: Dict[str, Any]) -> None:
        """Called after a started task's record changed (step, end, abort)."""
        ...


class Engine:
    def __init__(self, store: Store, clock: Clock, kinds: Dict[str, TaskKind], ctx: Context,
                 observer: Optional[Observer] = None, max_workers: int = 4,
                 retention_days: float = 7.0, max_retained: int = 10000,
                 audit: Optional[Callable[[str], None]] = None,
                 writer_threads: int = 0, write_linger: float = 0.0) -> None:
        self._store = store
        # Without threads (unit tests), records are written before the call returns.
        self._writer = Writer(store, writer_threads, write_linger)
        self._audit = audit or (lambda message: None)
        self._clock = clock
        self._kinds = kinds
        self._ctx = ctx
        self._observer = observer
        self.max_workers = max_workers
        self.retention_days = retention_days
        self.max_retained = max_retained

        self._cond = threading.Condition()
        self._loaded = False
        self._tasks: Dict[int, Task] = {}
        self._task_locks: Dict[int, threading.Lock] = {}
        self._next_id = 1
        self._id_floor = 0
        # Scheduling of pending tasks: `_due` is the truth, the heap may hold stale entries.
        self._due: Dict[int, float] = {}
        self._heap: List[Tuple[float, int]] = []
        self._wake_on: Dict[int, FrozenSet[str]] = {}
        self._running: Set[int] = set()
        # Ids of pending tasks: merge and busy checks look only at these, not at the
        # thousands of finished ones kept.
        self._pending_ids: Set[int] = set()

        self._thread: Optional[threading.Thread] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._stopping = False
        self._next_maintenance = 0.0
        # For /metrics: per kind, steps run and seconds spent in them; tasks that failed.
        self.step_count: Dict[str, int] = {}
        self.step_seconds: Dict[str, float] = {}
        # This thread's CPU only: wall time also counts waits on the mgr and other modules.
        self.step_cpu_seconds: Dict[str, float] = {}
        self.failures: Dict[str, int] = {}

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        """Read every task from the store; pending ones are due at once."""
        tasks: Dict[int, Task] = {}
        unknown_kind: List[Task] = []
        for key, text in self._store.scan(KEY_PREFIX).items():
            try:
                task = Task.loads(text)
            except (ValueError, TypeError) as e:
                log.error('ignoring unreadable record %s: %s', key, e)
                continue
            if task.kind not in self._kinds:
                log.error('task %d has unknown kind %r; failing it', task.id, task.kind)
                if task.pending:
                    task.status, task.error = EXCEPTION, f'unknown task kind {task.kind!r}'
                    task.ended = self._clock.now()
                    unknown_kind.append(task)
            tasks[task.id] = task
        floor = int(self._store.get(ID_FLOOR_KEY) or 0)
        now = self._clock.now()
        with self._cond:
            self._tasks = tasks
            self._task_locks = {i: threading.Lock() for i in tasks}
            self._id_floor = floor
            self._next_id = max([floor] + list(tasks)) + 1
            self._pending_ids = {t.id for t in tasks.values() if t.pending}
            for task_id in self._pending_ids:
                self._schedule(task_id, now)
            self._loaded = True
            self._cond.notify_all()
        for task in unknown_kind:
            self._persist(task.id, task.dumps())
        log.info('loaded %d tasks (%d pending), next id %d', len(tasks),
                 len(self._due), self._next_id)

    # ------------------------------------------------------ service functions

    def submit(self, kind_name: str, params: Dict[str, Any],
               created_by: str) -> Tuple[Dict[str, Any], bool]:
        """Queue a task. Returns (task, created); created is False when an identical
        pending task of a kind that acts on the cluster is returned instead."""
        self._check_ready()
        kind = self._kinds.get(kind_name)
        if kind is None:
            raise Invalid(f'unknown task kind {kind_name!r}')
        if not isinstance(params, dict):
            raise Invalid('params must be an object')
        params = kind.validate(self._ctx, params)
        now = self._clock.now()
        with self._cond:
            same = self._pending_like(kind, params)
            if same is not None:
                return same.to_json(now), False
        params = kind.check(self._ctx, params)
        with self._cond:
            same = self._pending_like(kind, params)
            if same is not None:
                return same.to_json(now), False
            for other in self._pending_of(kind_name):
                if kind.conflicts(params, other.params):
                    raise Busy(f'task {other.id} ({other.description}) is pending')
            task_id = self._next_id
            self._next_id += 1
            task = Task(id=task_id, kind=kind_name, description=kind.describe(params),
                        params=params, created=now, last_modified=now, created_by=created_by,
                        step=kind.first_state(params))
            lock = threading.Lock()
            lock.acquire()
            self._tasks[task_id] = task
            self._task_locks[task_id] = lock
            self._pending_ids.add(task_id)
            text = task.dumps()
        try:
            try:
                # Stored before the caller hears of it: an id once given is never lost.
                self._writer.put(key_of(task_id), text, wait=True, check=True)
            except Exception as e:
                with self._cond:
                    del self._tasks[task_id]
                    del self._task_locks[task_id]
                    self._pending_ids.discard(task_id)
                raise BgtaskError(f'could not store the task: {e}')
        finally:
            lock.release()
        with self._cond:
            # Answered as created: once scheduled, its first step may start at any moment.
            created = task.to_json(now)
            # Scheduled only once stored: a step must never run for a task that is not.
            if task_id in self._tasks:
                self._schedule(task_id, now)
                self._cond.notify_all()
        self._audit(f'task {task_id} created by {created_by}: {task.description}')
        return created, True

    def _pending_like(self, kind: TaskKind, params: Dict[str, Any]) -> Optional[Task]:
        """A pending task of `kind` asked with the same request, if the kind merges them.
        Only the request's own keys count: `check` may have added facts to the other's."""
        if not kind.merge_identical:
            return None
        for other in self._pending_of(kind.name):
            if all(other.params.get(k) == v for k, v in params.items()):
                return other
        return None

    def _pending_of(self, kind_name: str) -> Iterator[Task]:
        for task_id in sorted(self._pending_ids):
            task = self._tasks[task_id]
            if task.kind == kind_name:
                yield task

    def get(self, task_id: int) -> Dict[str, Any]:
        self._check_ready()
        with self._cond:
            return self._get(task_id).to_json(self._clock.now())

    def list(self, state: Optional[str] = None,
             status: Optional[str] = None) -> List[Dict[str, Any]]:
        """Tasks newest first, optionally of one state (pending, failed, finished) or status."""
        return self.page(state, status)[1]

    def page(self, state: Optional[str] = None, status: Optional[str] = None,
             offset: int = 0, limit: Optional[int] = None
             ) -> Tuple[int, List[Dict[str, Any]]]:
        """How many tasks match, and `limit` of them from `offset`, newest first."""
        self._check_ready()
        if state is not None and state not in STATES:
            raise Invalid(f"state must be one of {', '.join(STATES)}, not {state!r}")
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        now = self._clock.now()
        with self._cond:
            pool = ([self._tasks[i] for i in self._pending_ids] if state == PENDING
                    else self._tasks.values())
            tasks = [t for t in pool
                     if (state is None or t.state == state)
                     and (status is None or t.status == status)]
            tasks.sort(key=lambda t: t.id, reverse=True)
            end = None if limit is None else offset + limit
            # Only the page is turned into JSON: a list of thousands is asked for by page.
            return len(tasks), [t.to_json(now) for t in tasks[offset:end]]

    def delete(self, task_id: int, abort_pending: bool,
               deleted_by: str) -> Optional[Dict[str, Any]]:
        """Remove a finished or failed task (returns None), or abort a pending one
        (returns it, now failed/Aborted). A pending task needs `abort_pending`."""
        self._check_ready()
        with self._task_lock(task_id) as task:
            if not task.pending:
                self._write_id_floor(task_id)
                with self._cond:
                    self._forget(task_id)
                self._persist(task_id, None, wait=True)
                self._audit(f'task {task_id} deleted by {deleted_by}: {task.description}')
                return None
            if not abort_pending:
                raise Conflict(f'task {task_id} is pending. {ABORT_WARNING} '
                               'Confirm to delete it anyway.')
            now = self._clock.now()
            with self._cond:
                task.status = ABORTED
                self._pending_ids.discard(task_id)
                task.ended = task.last_modified = now
                task.error = f'deleted while pending by {deleted_by}'
                task.status_text = None
                self._unschedule(task_id)
                still_running = task_id in self._running
                text = task.dumps()
                snapshot = task.to_json(now)
            self._persist(task_id, text, wait=True)
        self._audit(f'task {task_id} aborted by {deleted_by}: {task.description}')
        if not still_running:
            # Otherwise the step in flight releases the kind's resources when it returns.
            self._ended(task, task.step)
        self._notify(snapshot)
        return snapshot

    @property
    def kinds(self) -> Dict[str, TaskKind]:
        return self._kinds

    @property
    def cluster(self) -> Any:
        """The cluster the kinds act on, for services beside the engine (inventory)."""
        return self._ctx.cluster

    def failed_with_error(self) -> List[Dict[str, Any]]:
        """Tasks that failed by an error (not a user's abort) and are still kept."""
        now = self._clock.now()
        with self._cond:
            return [t.to_json(now) for t in sorted(self._tasks.values(), key=lambda t: t.id)
                    if t.status == EXCEPTION]

    def counts(self) -> Dict[Tuple[str, str], int]:
        """Number of tasks by (kind, status), every known pair included."""
        with self._cond:
            result = {(k, s): 0 for k in self._kinds for s in STATUSES}
            for t in self._tasks.values():
                result[(t.kind, t.status)] += 1
            return result

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        """Run steps on a bounded pool of threads until stop()."""
        with self._cond:
            self._stopping = False
        self._writer.start()
        self._executor = ThreadPoolExecutor(max_workers=THREAD_CAP,
                                            thread_name_prefix='bgtasks-step')
        self._thread = threading.Thread(target=self._loop, name='bgtasks-scheduler', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for kind in self._kinds.values():
            kind.stopping()
        if self._executor is not None:
            # Steps in flight finish and persist; queued ones simply run on the next engine.
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._writer.stop()
        for kind in self._kinds.values():
            try:
                kind.shutdown(self._ctx)
            except Exception:
                log.error('%s: releasing resources failed:\n%s', kind.name,
                          traceback.format_exc())

    def wake(self, event: str) -> None:
        """A cluster event (osd_map, pg_summary, ...) makes tasks waiting on it due now."""
        now = self._clock.now()
        with self._cond:
            for task_id, events in list(self._wake_on.items()):
                if event in events and self._due.get(task_id, 0.0) > now:
                    self._schedule(task_id, now)
            self._cond.notify_all()

    def run_due(self) -> int:
        """Run every due step inline (tests drive the engine this way with a fake clock)."""
        with self._cond:
            ids = self._claim_due(self._clock.now(), len(self._due))
        for task_id in ids:
            self._run_step(task_id)
        return len(ids)

    def maintain(self) -> None:
        """Retry failed writes and apply retention."""
        self._writer.retry()
        for task_id in self._expired(self._clock.now()):
            try:
                self.delete(task_id, abort_pending=False, deleted_by='retention')
            except (NotFound, Conflict):
                pass

    # ---------------------------------------------------------------- internals

    def _check_ready(self) -> None:
        if not self._loaded:
            raise NotReady('bgtasks is loading its tasks, try again')

    def _get(self, task_id: int) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f'task {task_id} not found')
        return task

    @contextmanager
    def _task_lock(self, task_id: int) -> Iterator[Task]:
        with self._cond:
            lock = self._task_locks.get(task_id)
            self._get(task_id)
        if lock is None:
            raise NotFound(f'task {task_id} not found')
        with lock:
            with self._cond:
                task = self._get(task_id)
            yield task

    def _schedule(self, task_id: int, when: float) -> None:
        self._due[task_id] = when
        heapq.heappush(self._heap, (when, task_id))

    def _unschedule(self, task_id: int) -> None:
        self._due.pop(task_id, None)
        self._wake_on.pop(task_id, None)

    def _forget(self, task_id: int) -> None:
        self._unschedule(task_id)
        del self._tasks[task_id]
        del self._task_locks[task_id]

    def _claim_due(self, now: float, limit: int) -> List[int]:
        """Pop up to `limit` due tasks that are not running; they count as running."""
        ids: List[int] = []
        while self._heap and len(ids) < limit:
            when, task_id = self._heap[0]
            if self._due.get(task_id) != when:
                heapq.heappop(self._heap)     # stale entry
                continue
            if when > now:
                break
            heapq.heappop(self._heap)
            del self._due[task_id]
            self._wake_on.pop(task_id, None)
            self._running.add(task_id)
            ids.append(task_id)
        return ids

    def _next_wait(self, now: float) -> Optional[float]:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        waits = [self._next_maintenance - now]
        if self._heap and len(self._running) < self.max_workers:
            waits.append(self._heap[0][0] - now)
        return max(0.0, min(waits))

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self._clock.now()
                ids = self._claim_due(now, self.max_workers - len(self._running))
                if not ids and now < self._next_maintenance:
                    self._cond.wait(self._next_wait(now))
                    continue
            assert self._executor is not None
            for task_id in ids:
                self._executor.submit(self._run_step, task_id)
            if now >= self._next_maintenance:
                self._next_maintenance = now + MAINTENANCE_SECONDS
                try:
                    self.maintain()
                except Exception:
                    log.exception('maintenance failed')

    def _run_step(self, task_id: int) -> None:
        with self._cond:
            task = self._tasks.get(task_id)
            if task is None or not task.pending:
                self._running.discard(task_id)
                self._cond.notify_all()
                return
            kind = self._kinds[task.kind]
            # A deep copy: a step may change nested state in place, and the record
            # must only change once the step's outcome is applied.
            params, state = task.params, copy.deepcopy(task.step)
            if task.status == NOT_STARTED:
                task.status, task.started = RUNNING, self._clock.now()
            lock = self._task_locks[task_id]
        outcome: Optional[Outcome] = None
        error = None
        began, began_cpu = time.monotonic(), time.thread_time()
        try:
            outcome = kind.step(self._ctx, params, state)
        except BgtaskError as e:
            error = str(e)
        except Exception as e:
            error = f'{type(e).__name__}: {e}'
            log.error('task %d step failed:\n%s', task_id, traceback.format_exc())
        spent, spent_cpu = time.monotonic() - began, time.thread_time() - began_cpu
        with lock:
            with self._cond:
                self._running.discard(task_id)
                self._cond.notify_all()
                self.step_count[kind.name] = self.step_count.get(kind.name, 0) + 1
                self.step_seconds[kind.name] = self.step_seconds.get(kind.name, 0.0) + spent
                self.step_cpu_seconds[kind.name] = \
                    self.step_cpu_seconds.get(kind.name, 0.0) + spent_cpu
                if error is not None:
                    self.failures[kind.name] = self.failures.get(kind.name, 0) + 1
                current = self._tasks.get(task_id)
                if current is None:
                    return          # deleted (it was final) while the step ran
                if not current.pending:
                    aborted_meanwhile = True
                else:
                    aborted_meanwhile = False
                    last_state = current.step
                    seen_before = (current.step, current.percent, current.status_text)
                    self._apply(current, outcome, error)
                    changed = (current.step, current.percent, current.status_text,
                               current.pending) != seen_before + (True,)
                    # A watch step that saw nothing new costs no store write, nor one
                    # its kind says may wait for a later step.
                    save = changed and (not current.pending or (
                        isinstance(outcome, Continue) and outcome.save))
                    text = self._record(current) if save else None
                    snapshot = current.to_json(self._clock.now())
            if not aborted_meanwhile and text is not None:
                # An end is stored before it is announced: a failover between the two
                # must not let the next mgr run the last step and announce it again.
                self._persist(task_id, text, wait=not current.pending)
        if not current.pending:
            self._ended(current, current.step if aborted_meanwhile else last_state)
        if not aborted_meanwhile and changed:
            self._notify(snapshot)

    def _apply(self, task: Task, outcome: Optional[Outcome], error: Optional[str]) -> None:
        """Record a step's outcome in memory."""
        now = self._clock.now()
        task.last_modified = now
        if isinstance(outcome, Continue):
            task.step = outcome.state
            task.percent = max(0.0, min(100.0, outcome.percent))
            task.status_text = outcome.status_text
        else:
            # Nothing resumes a final task: its step state would only take room.
            task.ended, task.status_text, task.step = now, None, {}
            if isinstance(outcome, Finish):
                task.status, task.percent, task.result = STATUS_FINISHED, 100.0, outcome.result
            else:
                task.status, task.error = EXCEPTION, error or 'step returned no outcome'
        if not task.pending:
            self._pending_ids.discard(task.id)
        else:
            assert isinstance(outcome, Continue)
            self._schedule(task.id, now + max(0.0, outcome.delay))
            if outcome.wake_on:
                self._wake_on[task.id] = outcome.wake_on

    def _record(self, task: Task) -> str:
        """The record to store; a task whose record outgrew the store's value limit fails
        (and is kept, small) rather than being lost."""
        text = task.dumps()
        if len(text) > MAX_RECORD_BYTES:
            if task.pending:
                self._unschedule(task.id)
                self._pending_ids.discard(task.id)
            task.status, task.result, task.step = EXCEPTION, None, {}
            task.ended, task.status_text = self._clock.now(), None
            task.error = f'task record too large to store ({len(text)} bytes)'
            text = task.dumps()
        return text

    def _persist(self, task_id: int, text: Optional[str], wait: bool = False) -> None:
        """Write (or with None delete) a record; a failed write is retried by maintain().
        `wait` for what a user asked for (deletes): done before they are answered."""
        self._writer.put(key_of(task_id), text, wait=wait)

    def _write_id_floor(self, deleted_id: int) -> None:
        with self._cond:
            if deleted_id <= self._id_floor:
                return
            floor = self._next_id - 1
        # Written before the record goes, so a reload never hands this id out again.
        self._store.put(ID_FLOOR_KEY, str(floor))
        with self._cond:
            self._id_floor = max(self._id_floor, floor)

    def _expired(self, now: float) -> List[int]:
        with self._cond:
            final = sorted((t.ended or t.created, t.id) for t in self._tasks.values()
                           if not t.pending)
        horizon = now - self.retention_days * 86400.0
        excess = len(final) - self.max_retained
        return [task_id for i, (ended, task_id) in enumerate(final)
                if ended < horizon or i < excess]

    def _ended(self, task: Task, state: Dict[str, Any]) -> None:
        try:
            self._kinds[task.kind].ended(self._ctx, task.params, state)
        except Exception:
            log.error('task %d: releasing its resources failed:\n%s', task.id,
                      traceback.format_exc())

    def _notify(self, snapshot: Dict[str, Any]) -> None:
        if self._observer is None:
            return
        try:
            self._observer.task_changed(snapshot)
        except Exception:
            log.error('observer failed for task %s:\n%s', snapshot['id'], traceback.format_exc())
