"""The engine's store of task records: RADOS omap once the mgr's pool is there, the
mon's key-value store until then, and the move from the one to the other.

A module that finds task records in the key-value store (an upgrade from a bgtasks that
kept them there, or tasks made while the pool did not exist yet) copies them into omap,
switches, then deletes the old keys. The copy overwrites with the same values, so a move
cut short anywhere (kill -9) is simply done again by the next start: nothing is lost
and nothing is doubled. Writes wait while a move runs.
"""
import threading
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional

from .omapstore import NAMESPACE, Fenced, FencedOmap, Omap, OmapStore
from .store import Store
from .task import KEY_PREFIX

ID_FLOOR_KEY = 'id_floor'
# The mon's mon_config_key_max_entry_size.
KV_MAX_VALUE_BYTES = 65536
MOVE_BATCH = 512


class TaskStore:
    def __init__(self, kv: Store, open_omap: Callable[[bool], Optional[Omap]],
                 pool: Callable[[], str],
                 fenced: Callable[[Omap], None] = lambda omap: None) -> None:
        """`open_omap(fenced)` gives the omap of the mgr's pool on the current RADOS
        handle, or None while the pool is not there; with fenced=True (after a
        blocklisting) only while this mgr is still the active one. `fenced(omap)` is told
        when a write found the omap's handle blocklisted; it renews the handle (`renew`)."""
        self._kv = kv
        self._open_omap = open_omap
        self._pool = pool
        self._fenced = fenced
        self._omap: Optional[OmapStore] = None
        # Keys moved into omap and not yet deleted from the key-value store.
        self._moved: List[str] = []
        # Writers share the store; a move has it to itself.
        self._cond = threading.Condition()
        self._users = 0
        self._moving = False

    @property
    def in_rados(self) -> bool:
        return self._omap is not None

    @property
    def max_value_bytes(self) -> int:
        return self._omap.max_value_bytes if self._omap is not None else KV_MAX_VALUE_BYTES

    def get(self, key: str) -> Optional[str]:
        with self._shared() as store:
            return store.get(key)

    def put(self, key: str, value: Optional[str]) -> None:
        self.put_many({key: value})

    def put_many(self, items: Dict[str, Optional[str]]) -> None:
        try:
            self._put_many(items)
        except Fenced:
            if self._omap is None or isinstance(self._omap.omap, FencedOmap):
                raise
            self._fenced(self._omap.omap)
            self._put_many(items)

    def renew(self, shut_down_old: Callable[[], None]) -> None:
        """Replaces a blocklisted RADOS handle with no write in flight on it. Records go on
        over the new one only while this mgr is still the active one: after a failover, a
        write of this old active never lands."""
        with self._exclusive():
            shut_down_old()
            if self._omap is not None:
                fresh = self._open_omap(True)
                self._omap.use(fresh if fresh is not None else FencedOmap())

    def _put_many(self, items: Dict[str, Optional[str]]) -> None:
        with self._shared() as store:
            if isinstance(store, OmapStore):
                store.put_many(items)
                return
            for key, value in items.items():
                store.put(key, value)

    def scan(self, prefix: str) -> Dict[str, str]:
        with self._shared() as store:
            return store.scan(prefix)

    def move(self) -> bool:
        """Into RADOS, if not there yet and the pool can be opened; True once there."""
        if self._omap is not None:
            self._delete_moved()
            return True
        opened = self._open_omap(False)
        if opened is None:
            return False
        omap = OmapStore(opened)
        with self._exclusive():
            if self._omap is not None:
                return True
            old = self._kv.scan(KEY_PREFIX)
            floor = self._kv.get(ID_FLOOR_KEY)
            # A record already in omap is the newer one (written there after a move whose
            # old keys were not all deleted): a move never goes back over it.
            there = omap.scan(KEY_PREFIX) if old else {}
            keys = sorted(k for k in old if k not in there)
            for start in range(0, len(keys), MOVE_BATCH):
                omap.put_many({k: old[k] for k in keys[start:start + MOVE_BATCH]})
            if floor is not None:
                stored = omap.get(ID_FLOOR_KEY)
                if stored is None or int(stored) < int(floor):
                    omap.put(ID_FLOOR_KEY, floor)
            self._omap = omap
            self._moved = sorted(old) + ([ID_FLOOR_KEY] if floor is not None else [])
        self._delete_moved()
        return True

    def _delete_moved(self) -> None:
        """The old keys go only once all is in omap (until then the next start moves it
        again); one that fails to go is tried again by the next `move()`."""
        while self._moved:
            self._kv.put(self._moved[-1], None)
            self._moved.pop()

    def where(self) -> Dict[str, object]:
        """Where records live, how many and their bytes."""
        if self._omap is None:
            old = self._kv.scan(KEY_PREFIX)
            return {'backend': 'config-key', 'waiting_for_pool': self._pool(),
                    'records': len(old), 'bytes': sum(len(v.encode()) for v in old.values()),
                    'max_record_bytes': KV_MAX_VALUE_BYTES}
        return {'backend': 'rados', 'pool': self._pool(), 'namespace': NAMESPACE,
                **self._omap.usage(), 'max_record_bytes': self._omap.max_value_bytes}

    @contextmanager
    def _shared(self) -> Iterator[Store]:
        with self._cond:
            while self._moving:
                self._cond.wait()
            self._users += 1
            store: Store = self._omap if self._omap is not None else self._kv
        try:
            yield store
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._moving:
                self._cond.wait()
            self._moving = True
            while self._users:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._moving = False
                self._cond.notify_all()
