"""Reads that hold until the OSD map's next epoch.

A pool's entry, its counts and the map's dump change only with a new epoch, and the mgr
notifies each one. So a read made once after a notification serves every check until
the next, however many tasks ask and however often, instead of one read per check.
"""
import threading
from typing import Any, Callable, Dict, Hashable, Tuple

from .clock import Clock


class EpochCache:
    def __init__(self, clock: Clock, max_age: float) -> None:
        # max_age only guards against a notification that never comes.
        self._clock, self._max_age = clock, max_age
        # Guards the values; never held while reading, as the mgr's notifications of all
        # modules wait on `changed`.
        self._lock = threading.Lock()
        # One read at a time: tasks that miss together wait for the first read and share
        # it. Reentrant, as a read may itself use another cached value.
        self._reading = threading.RLock()
        self._epochs = 0
        self._values: Dict[Hashable, Tuple[float, Any]] = {}

    def changed(self) -> None:
        """A new epoch came: every value is read again on its next use."""
        with self._lock:
            self._epochs += 1
            self._values.clear()

    @property
    def epochs(self) -> int:
        """How many epochs were notified so far."""
        with self._lock:
            return self._epochs

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        # A hit never waits for another key's read: a mon round trip may take seconds,
        # and requests that only check a pool's name read the map's dump from here.
        found, value = self._hit(key)
        if found:
            return value
        with self._reading:
            found, value = self._hit(key)
            if found:
                return value
            with self._lock:
                now, epochs = self._clock.now(), self._epochs
            value = read()
            with self._lock:
                # A notification during the read: the value may be of the older epoch.
                if self._epochs == epochs:
                    self._values[key] = (now, value)
            return value

    def _hit(self, key: Hashable) -> Tuple[bool, Any]:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and 0 <= self._clock.now() - hit[0] < self._max_age:
                return True, hit[1]
            return False, None
