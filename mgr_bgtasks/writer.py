"""Getting task records into the store: at once, or from background threads.

Every store write is a round trip (an OSD op; a mon commit before the pool exists), so
steps hand their records to background writers instead of waiting; a record changed
again before it was written replaces the pending one (the store only ever needs the
newest). Background writes linger a little first: a task that starts and ends within the
linger is written once, and every record due at the same time goes in one batch (one op
per object in RADOS). Writes of one key are serialised and each writes the newest value
pending at that moment, so the store never goes back to an older record. A write that
fails stays pending and is retried.
"""
import collections
import contextlib
import logging
import threading
import time
from typing import Deque, Dict, Iterator, List, Optional, Set, Tuple

from .store import Store

log = logging.getLogger(__name__)

# Records one background flush takes at most.
BATCH_KEYS = 512


class Writer:
    def __init__(self, store: Store, threads: int = 0, linger: float = 0.0) -> None:
        self._store = store
        self._thread_count = threads
        self._linger = linger
        # Background writers wait on `_cond`, callers of _write_now on `_committed`: one
        # lock, two conditions, so that neither kind of waiter takes the other's wake-up.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._committed = threading.Condition(lock)
        self._pending: Dict[str, Optional[str]] = {}
        self._queue: Deque[str] = collections.deque()
        # When each queued key was queued (the queue is in that order).
        self._queued_at: Dict[str, float] = {}
        # Only keys being written have one (with how many flushes hold or wait for it): a
        # lock kept for every key ever written grew the mgr by each task it ever ran.
        self._key_locks: Dict[str, Tuple[threading.Lock, List[int]]] = {}
        self._failed: Set[str] = set()
        self._threads: List[threading.Thread] = []
        self._stopping = False
        # Writes callers wait for, by key, and whether one is in flight: callers that come
        # while it is join the next one (group commit: concurrent creates share an op).
        self._urgent: Dict[str, List['_Ticket']] = {}
        self._committing = False

    def put(self, key: str, value: Optional[str], wait: bool = False,
            check: bool = False) -> None:
        """Store `value` (None deletes). With `wait`, returns once it is written; with
        `check` too, a failed write raises (and is not retried)."""
        with self._cond:
            queued = key in self._pending
            self._pending[key] = value
            background = bool(self._threads) and not wait
            if background and not queued:
                self._queue.append(key)
                self._queued_at[key] = time.monotonic()
                self._cond.notify()
        if not background:
            self._write_now(key, check)

    def retry(self) -> None:
        """Writes again what failed before."""
        with self._cond:
            keys = [k for k in self._failed if k in self._pending]
            self._failed.clear()
            if self._threads:
                for k in keys:
                    if k not in self._queued_at:
                        self._queue.appendleft(k)
                        self._queued_at[k] = 0.0
                self._cond.notify_all()
                return
        for key in keys:
            self._write_now(key, False)

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            self._threads = [threading.Thread(target=self._run, name=f'bgtasks-writer-{i}',
                                              daemon=True)
                             for i in range(self._thread_count)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Drains the queue, then writes in the caller's thread from now on."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        self.retry()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                now = time.monotonic()
                due = self._queued_at[self._queue[0]] + self._linger
                if due > now and not self._stopping:
                    self._cond.wait(due - now)
                    continue
                # Every key due now goes in one flush: a store that writes a batch in
                # one op (omap) pays one round trip for them all.
                keys: List[str] = []
                while self._queue and len(keys) < BATCH_KEYS and (
                        self._stopping
                        or self._queued_at[self._queue[0]] + self._linger <= now):
                    key = self._queue.popleft()
                    del self._queued_at[key]
                    keys.append(key)
            self._flush_many(keys, set())

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._cond:
            entry = self._key_locks.get(key)
            if entry is None:
                entry = self._key_locks[key] = (threading.Lock(), [0])
            lock, users = entry
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._cond:
                users[0] -= 1
                if not users[0]:
                    del self._key_locks[key]

    def _write_now(self, key: str, check: bool) -> None:
        """Writes `key` before returning: in a batch of its own, or, if one is in flight,
        in the next one with every other key asked for meanwhile."""
        ticket = _Ticket(check)
        with self._cond:
            self._urgent.setdefault(key, []).append(ticket)
            while not ticket.done:
                if self._committing:
                    self._committed.wait()
                    continue
                self._committing = True
                batch, self._urgent = self._urgent, {}
                self._cond.release()
                try:
                    checked = {k for k, ts in batch.items() if any(t.check for t in ts)}
                    error = self._flush_many(list(batch), checked)
                finally:
                    self._cond.acquire()
                    self._committing = False
                for tickets in batch.values():
                    for t in tickets:
                        t.done, t.error = True, error
                self._committed.notify_all()
        if ticket.error is not None and check:
            raise ticket.error

    def _flush_many(self, keys: List[str], checked: Set[str]) -> Optional[Exception]:
        """Writes the pending values of `keys`; on failure returns the error, drops the
        values of the `checked` keys (their callers are told) and keeps the others for a
        retry."""
        with contextlib.ExitStack() as held:
            # In sorted order: two batches never wait for each other's keys in a circle.
            for key in sorted(keys):
                held.enter_context(self._key_lock(key))
            with self._cond:
                # A later flush may already have written the newest value of some.
                batch = {k: self._pending.pop(k) for k in keys if k in self._pending}
            if not batch:
                return None
            try:
                put_many = getattr(self._store, 'put_many', None)
                if put_many is not None:
                    put_many(batch)
                else:
                    for key, value in batch.items():
                        self._store.put(key, value)
            except Exception as e:
                with self._cond:
                    for key, value in batch.items():
                        if key in checked:
                            continue
                        # Kept unless a newer value came meanwhile; retried by retry().
                        self._pending.setdefault(key, value)
                        self._failed.add(key)
                log.warning('could not store %s, will retry: %s', ', '.join(sorted(batch)), e)
                return e
        return None


class _Ticket:
    """One caller's wait for its key's write."""

    def __init__(self, check: bool) -> None:
        self.check = check
        self.done = False
        self.error: Optional[Exception] = None
