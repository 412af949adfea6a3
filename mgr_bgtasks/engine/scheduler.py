"""When each pending task's next step runs, and the thread that runs them.

It knows task ids only: what a step does and what follows from it is the callbacks'.
Its condition is the engine's, so a change of the tasks and of their schedule is one
atomic change; every method takes it (it is reentrant), the loop waits on it.
"""
import heapq
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from ..clock import Clock

MAINTENANCE_SECONDS = 5.0
# Threads are started lazily up to this; `max_workers` limits how many are busy.
THREAD_CAP = 64

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, cond: threading.Condition, clock: Clock,
                 run_step: Callable[[int], None], maintain: Callable[[], None],
                 max_workers: int = 4) -> None:
        self._cond = cond
        self._clock = clock
        self._run_step = run_step
        self._maintain = maintain
        self.max_workers = max_workers
        # `_due` is the truth, the heap may hold stale entries.
        self._due: Dict[int, float] = {}
        self._heap: List[Tuple[float, int]] = []
        self._wake_on: Dict[int, FrozenSet[str]] = {}
        self._running: Set[int] = set()

        self._thread: Optional[threading.Thread] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._stopping = False
        self._next_maintenance = 0.0

    # ---------------------------------------------------------------- due times

    def schedule(self, task_id: int, when: float) -> None:
        with self._cond:
            self._due[task_id] = when
            heapq.heappush(self._heap, (when, task_id))

    def wait_for(self, task_id: int, events: FrozenSet[str]) -> None:
        """Until its due time, any of `events` makes the task due at once."""
        with self._cond:
            self._wake_on[task_id] = events

    def unschedule(self, task_id: int) -> None:
        with self._cond:
            self._due.pop(task_id, None)
            self._wake_on.pop(task_id, None)

    def due_count(self) -> int:
        with self._cond:
            return len(self._due)

    def wake(self, event: str, now: float) -> None:
        """Tasks waiting on `event` become due now."""
        with self._cond:
            for task_id, events in list(self._wake_on.items()):
                if event in events and self._due.get(task_id, 0.0) > now:
                    self.schedule(task_id, now)
            self._cond.notify_all()

    def notify(self) -> None:
        """Something became due: the loop looks again."""
        with self._cond:
            self._cond.notify_all()

    # ---------------------------------------------------------------- running

    def claim_due(self, now: float, limit: int) -> List[int]:
        """Pop up to `limit` due tasks that are not running; they count as running."""
        ids: List[int] = []
        with self._cond:
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

    def is_running(self, task_id: int) -> bool:
        with self._cond:
            return task_id in self._running

    def step_done(self, task_id: int) -> None:
        """A claimed task's step returned: a worker is free again."""
        with self._cond:
            self._running.discard(task_id)
            self._cond.notify_all()

    def next_wait(self, now: float) -> float:
        """How long the loop may sleep: until the next due task (if a worker is free
        for it) or the next maintenance."""
        with self._cond:
            while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)
            waits = [self._next_maintenance - now]
            if self._heap and len(self._running) < self.max_workers:
                waits.append(self._heap[0][0] - now)
            return max(0.0, min(waits))

    # ---------------------------------------------------------------- the loop

    def start(self) -> None:
        """Run due steps on a bounded pool of threads until stop()."""
        with self._cond:
            self._stopping = False
        self._executor = ThreadPoolExecutor(max_workers=THREAD_CAP,
                                            thread_name_prefix='bgtasks-step')
        self._thread = threading.Thread(target=self._loop, name='bgtasks-scheduler', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the loop; steps already handed to the pool go on until drain()."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def drain(self) -> None:
        if self._executor is not None:
            # Steps in flight finish and persist; queued ones simply run on the next engine.
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self._clock.now()
                ids = self.claim_due(now, self.max_workers - len(self._running))
                if not ids and now < self._next_maintenance:
                    self._cond.wait(self.next_wait(now))
                    continue
            assert self._executor is not None
            for task_id in ids:
                self._executor.submit(self._run_step, task_id)
            if now >= self._next_maintenance:
                self._next_maintenance = now + MAINTENANCE_SECONDS
                try:
                    self._maintain()
                except Exception:
                    log.exception('maintenance failed')
