"""Where task records live: the interface the engine needs, and an in-memory one for tests.

In the mgr, task records live in RADOS omap (`omapstore.py`, `taskstore.py`); settings,
users and the certificate in the module's key-value store (`set_store`, a mon commit per
write, values up to 64 KiB), which `adapters.py` adapts.
"""
import threading
from typing import Dict, Optional, Protocol


class Store(Protocol):
    def get(self, key: str) -> Optional[str]:
        ...

    def put(self, key: str, value: Optional[str]) -> None:
        """Write a value; None deletes the key."""
        ...

    def scan(self, prefix: str) -> Dict[str, str]:
        ...


class MemoryStore:
    def __init__(self) -> None:
        self.data: Dict[str, str] = {}
        self.writes = 0
        self.fail_writes = False
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[str]:
        with self._lock:
            return self.data.get(key)

    def put(self, key: str, value: Optional[str]) -> None:
        if self.fail_writes:
            raise IOError('store unavailable')
        with self._lock:
            self.writes += 1
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def scan(self, prefix: str) -> Dict[str, str]:
        with self._lock:
            return {k: v for k, v in self.data.items() if k.startswith(prefix)}
