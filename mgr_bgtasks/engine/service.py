"""The service functions every interface calls: submit, get, list, delete, load, and
running a step, over a `TaskTable`, a `Scheduler`, the `Writer` and the task kinds.

It knows nothing of ceph-mgr: it talks to a `Store` (key-value, persisted), a
`Clock`, the task kinds, and an optional observer (the progress mirror). A task's
record is written after every step, so a new engine over the same store resumes
every pending task from its last completed step.

Locking: `_cond` guards every in-memory structure (the table and the scheduler). Each
task also has a lock held from a mutation until its record is handed to the writer
(`writer.py`, which keeps the newest record of each task and writes them in order); it
is always taken before `_cond`, never while holding it (a fresh task's lock is the one
exception: nobody else can know it yet).
"""
import copy
import logging
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Tuple

from ..clock import Clock
from ..errors import BgtaskError, Busy, Conflict, Invalid, NotFound, NotReady, Unavailable
from ..kind import Context, Continue, Finish, Outcome, TaskKind
from ..store import Store
from ..task import EXCEPTION, KEY_PREFIX, STATES, STATUSES, Task, key_of
from ..writer import Writer
from .scheduler import Scheduler
from .table import TaskTable

# Highest id ever handed out, written only when a task with a higher id is deleted:
# otherwise the highest stored task already tells it, and a create costs one write.
ID_FLOOR_KEY = 'id_floor'
# mon_config_key_max_entry_size; a record larger than this cannot be stored.
MAX_RECORD_BYTES = 65536

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
                 writer_threads: int = 0, write_linger: float = 0.0,
                 max_record_bytes: Optional[int] = None) -> None:
        self._store = store
        # Without threads (unit tests), records are written before the call returns.
        self._writer = Writer(store, writer_threads, write_linger)
        self._audit = audit or (lambda message: None)
        self._clock = clock
        self._kinds = kinds
        self._ctx = ctx
        self._observer = observer
        self.retention_days = retention_days
        self.max_retained = max_retained
        # None: as large as the store takes at the time (config-key 64 KiB, omap more).
        self.max_record_bytes = max_record_bytes
        # Records that did not load, by key: kept in the store and reported, never dropped.
        self.unreadable: Dict[str, str] = {}

        self._cond = threading.Condition()
        self._loaded = False
        self._table = TaskTable()
        self._scheduler = Scheduler(self._cond, clock, self._run_step, self.maintain,
                                    max_workers)
        # For /metrics: per kind, steps run and seconds spent in them; tasks that failed.
        self.step_count: Dict[str, int] = {}
        self.step_seconds: Dict[str, float] = {}
        # This thread's CPU only: wall time also counts waits on the mgr and other modules.
        self.step_cpu_seconds: Dict[str, float] = {}
        self.failures: Dict[str, int] = {}

    @property
    def max_workers(self) -> int:
        return self._scheduler.max_workers

    @max_workers.setter
    def max_workers(self, value: int) -> None:
        self._scheduler.max_workers = value

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        """Read every task from the store; pending ones are due at once."""
        tasks: List[Task] = []
        unknown_kind: List[Task] = []
        unreadable: Dict[str, str] = {}
        for key, text in self._store.scan(KEY_PREFIX).items():
            try:
                task = Task.loads(text)
            except (ValueError, TypeError) as e:
                log.error('unreadable record %s kept aside: %s', key, e)
                unreadable[key] = f'{type(e).__name__}: {e}'
                continue
            if task.kind not in self._kinds:
                log.error('task %d has unknown kind %r; failing it', task.id, task.kind)
                if task.pending:
                    task.fail(self._clock.now(), f'unknown task kind {task.kind!r}',
                              keep_progress=True)
                    unknown_kind.append(task)
            tasks.append(task)
        floor = int(self._store.get(ID_FLOOR_KEY) or 0)
        # An unreadable record's id is not handed out again either.
        floor = max([floor] + [int(k[len(KEY_PREFIX):]) for k in unreadable
                               if k[len(KEY_PREFIX):].isdigit()])
        now = self._clock.now()
        with self._cond:
            self.unreadable = unreadable
            self._table.fill(tasks, floor)
            for task in self._table.pending():
                self._scheduler.schedule(task.id, now)
            self._loaded = True
            self._cond.notify_all()
        for task in unknown_kind:
            self._persist(task.id, task.dumps())
        log.info('loaded %d tasks (%d pending), next id %d', len(self._table),
                 self._scheduler.due_count(), self._table.next_id)

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
            for other in self._table.pending_of(kind_name):
                if kind.conflicts(params, other.params):
                    raise Busy(f'task {other.id} ({other.description}) is pending')
            task_id = self._table.new_id()
            task = Task(id=task_id, kind=kind_name, description=kind.describe(params),
                        params=params, created=now, last_modified=now, created_by=created_by,
                        step=kind.first_state(params))
            lock = self._table.add(task)
            text = task.dumps()
        try:
            try:
                # Stored before the caller hears of it: an id once given is never lost.
                self._writer.put(key_of(task_id), text, wait=True, check=True)
            except Exception as e:
                with self._cond:
                    self._table.remove(task_id)
                # A write that timed out may still land; this delete lands after it.
                self._writer.put(key_of(task_id), None)
                raise Unavailable(f'could not store the task, try again: {e}')
        finally:
            lock.release()
        with self._cond:
            # Answered as created: once scheduled, its first step may start at any moment.
            created = task.to_json(now)
            # Scheduled only once stored: a step must never run for a task that is not.
            if self._table.get(task_id) is not None:
                self._scheduler.schedule(task_id, now)
                self._cond.notify_all()
        self._audit(f'task {task_id} created by {created_by}: {task.description}')
        return created, True

    def _pending_like(self, kind: TaskKind, params: Dict[str, Any]) -> Optional[Task]:
        """A pending task of `kind` asked with the same request, if the kind merges them.
        Only the request's own keys count: `check` may have added facts to the other's."""
        if not kind.merge_identical:
            return None
        for other in self._table.pending_of(kind.name):
            if all(other.params.get(k) == v for k, v in params.items()):
                return other
        return None

    def get(self, task_id: int) -> Dict[str, Any]:
        self._check_ready()
        with self._cond:
            return self._table.find(task_id).to_json(self._clock.now())

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
            total, tasks = self._table.page(state, status, offset, limit)
            # Only the page is turned into JSON: a list of thousands is asked for by page.
            return total, [t.to_json(now) for t in tasks]

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
                task.abort(now, f'deleted while pending by {deleted_by}')
                self._table.changed(task)
                self._scheduler.unschedule(task_id)
                still_running = self._scheduler.is_running(task_id)
                text = task.dumps()
                snapshot = task.to_json(now)
            self._persist(task_id, text, wait=True)
        self._audit(f'task {task_id} aborted by {deleted_by}: {task.description}')
        if not still_running:
            # Otherwise the step in flight releases the kind's resources when it returns.
            self._ended(task, task.step)
        self._notify(snapshot)
        return snapshot

    def pending_writes(self) -> int:
        """Records handed to the writer and not stored yet."""
        return self._writer.pending()

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
            return [t.to_json(now) for t in self._table.all() if t.status == EXCEPTION]

    def counts(self) -> Dict[Tuple[str, str], int]:
        """Number of tasks by (kind, status), every known pair included."""
        with self._cond:
            result = {(k, s): 0 for k in self._kinds for s in STATUSES}
            for t in self._table.all():
                result[(t.kind, t.status)] += 1
            return result

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        """Run steps on a bounded pool of threads until stop()."""
        self._writer.start()
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.stop()
        for kind in self._kinds.values():
            kind.stopping()
        self._scheduler.drain()
        self._writer.stop()
        for kind in self._kinds.values():
            try:
                kind.shutdown(self._ctx)
            except Exception:
                log.error('%s: releasing resources failed:\n%s', kind.name,
                          traceback.format_exc())

    def wake(self, event: str) -> None:
        """A cluster event (osd_map, pg_summary, ...) makes tasks waiting on it due now."""
        self._scheduler.wake(event, self._clock.now())

    def run_due(self) -> int:
        """Run every due step inline (tests drive the engine this way with a fake clock)."""
        with self._cond:
            ids = self._scheduler.claim_due(self._clock.now(), self._scheduler.due_count())
        for task_id in ids:
            self._run_step(task_id)
        return len(ids)

    def maintain(self) -> None:
        """Retry failed writes and apply retention."""
        self._writer.retry()
        now = self._clock.now()
        with self._cond:
            expired = self._table.retention_candidates(now, self.retention_days,
                                                       self.max_retained)
        for task_id in expired:
            try:
                self.delete(task_id, abort_pending=False, deleted_by='retention')
            except (NotFound, Conflict):
                pass

    # ---------------------------------------------------------------- internals

    def _check_ready(self) -> None:
        if not self._loaded:
            raise NotReady('bgtasks is loading its tasks, try again')

    @contextmanager
    def _task_lock(self, task_id: int) -> Iterator[Task]:
        with self._cond:
            lock = self._table.lock_of(task_id)
            self._table.find(task_id)
        if lock is None:
            raise NotFound(f'task {task_id} not found')
        with lock:
            with self._cond:
                task = self._table.find(task_id)
            yield task

    def _forget(self, task_id: int) -> None:
        self._scheduler.unschedule(task_id)
        self._table.remove(task_id)

    def _run_step(self, task_id: int) -> None:
        with self._cond:
            task = self._table.get(task_id)
            if task is None or not task.pending:
                self._scheduler.step_done(task_id)
                return
            kind = self._kinds[task.kind]
            # A deep copy: a step may change nested state in place, and the record
            # must only change once the step's outcome is applied.
            params, state = task.params, copy.deepcopy(task.step)
            task.start(self._clock.now())
            lock = self._table.lock_of(task_id)
            assert lock is not None
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
                self._scheduler.step_done(task_id)
                self.step_count[kind.name] = self.step_count.get(kind.name, 0) + 1
                self.step_seconds[kind.name] = self.step_seconds.get(kind.name, 0.0) + spent
                self.step_cpu_seconds[kind.name] = \
                    self.step_cpu_seconds.get(kind.name, 0.0) + spent_cpu
                if error is not None:
                    self.failures[kind.name] = self.failures.get(kind.name, 0) + 1
                current = self._table.get(task_id)
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
                    self._table.changed(current)
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
        """Record a step's outcome in memory; a task that goes on is scheduled again."""
        now = self._clock.now()
        if isinstance(outcome, Continue):
            task.advance(now, outcome.state, outcome.percent, outcome.status_text)
            self._scheduler.schedule(task.id, now + max(0.0, outcome.delay))
            if outcome.wake_on:
                self._scheduler.wait_for(task.id, outcome.wake_on)
        elif isinstance(outcome, Finish):
            task.finish(now, outcome.result)
        else:
            task.fail(now, error or 'step returned no outcome')

    def _record(self, task: Task) -> str:
        """The record to store; a task whose record outgrew the store's value limit fails
        (and is kept, small) rather than being lost."""
        text = task.dumps()
        limit = self.max_record_bytes or int(getattr(self._store, 'max_value_bytes',
                                                     MAX_RECORD_BYTES))
        if len(text) > limit:
            if task.pending:
                self._scheduler.unschedule(task.id)
            task.fail(self._clock.now(), f'task record too large to store ({len(text)} bytes)')
            text = task.dumps()
        return text

    def _persist(self, task_id: int, text: Optional[str], wait: bool = False) -> None:
        """Write (or with None delete) a record; a failed write is retried by maintain().
        `wait` for what a user asked for (deletes): done before they are answered."""
        self._writer.put(key_of(task_id), text, wait=wait)

    def _write_id_floor(self, deleted_id: int) -> None:
        with self._cond:
            floor = self._table.floor_to_store(deleted_id)
        if floor is None:
            return
        # Written before the record goes, so a reload never hands this id out again.
        self._store.put(ID_FLOOR_KEY, str(floor))
        with self._cond:
            self._table.floor_stored(floor)

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
