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

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        with self._reading:
            with self._lock:
                now, epochs, hit = self._clock.now(), self._epochs, self._values.get(key)
                if hit is not None and 0 <= now - hit[0] < self._max_age:
                    return hit[1]
            value = read()
            with self._lock:
                # A notification during the read: the value may be of the older epoch.
                if self._epochs == epochs:
                    self._values[key] = (now, value)
            return value
