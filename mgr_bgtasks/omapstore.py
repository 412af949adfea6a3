"""Task records in RADOS: omap entries of a few objects in the mgr's own pool.

Ceph's own modules keep bulk data this way (rbd_support's `rbd_task`, devicehealth's
metrics): an OSD write costs no mon commit, and a record may be larger than the mon's
64 KiB config-key limit. Records of ids [k * SHARD_IDS, (k + 1) * SHARD_IDS) share the
object `tasks.<k>`: tasks made together are written together, in one op, and 100,000
records take 25 objects of at most 4,096 keys, far below the 200,000 keys at which deep
scrub warns `LARGE_OMAP_OBJECTS`. Other keys (the id floor) live in object `meta`.

The handle is the module's own, which the mon blocklists when another mgr takes over: a
write of an old active fails instead of landing. Nothing here reconnects it.
"""
import errno
import os
import threading
from typing import Any, Dict, Iterator, List, Optional, Protocol, Tuple

from .task import KEY_PREFIX

NAMESPACE = 'bgtasks'
META_OBJECT = 'meta'
SHARD_PREFIX = 'tasks.'
SHARD_IDS = 4096
# Far above the mon's 64 KiB; one op stays far below osd_max_write_size (90 MiB).
MAX_VALUE_BYTES = 4 << 20
MAX_OP_BYTES = 8 << 20
MAX_OP_KEYS = 1024
PAGE_KEYS = 256
# A write the OSDs do not answer within this (pool full, PGs inactive) is reported as
# failed; the writer retries it, a create is refused with EAGAIN.
WRITE_TIMEOUT = 10.0


class Fenced(IOError):
    """The mon blocklisted our handle: another mgr is active; nothing we write lands."""


class StoreTimeout(IOError):
    """The OSDs did not answer a write in time; it may still land later."""


class Omap(Protocol):
    """The few omap calls the store needs, on objects of one pool and namespace."""

    def write(self, obj: str, values: Dict[str, bytes], removed: List[str],
              timeout: float) -> None:
        ...

    def read(self, obj: str, after: str, count: int) -> List[Tuple[str, bytes]]:
        ...

    def read_keys(self, obj: str, keys: List[str]) -> Dict[str, bytes]:
        ...

    def objects(self) -> List[str]:
        ...


def object_of(key: str) -> str:
    if key.startswith(KEY_PREFIX):
        return '%s%06d' % (SHARD_PREFIX, int(key[len(KEY_PREFIX):]) // SHARD_IDS)
    return META_OBJECT


class OmapStore:
    """The engine's Store over omap, with batched writes (`put_many`)."""

    max_value_bytes = MAX_VALUE_BYTES

    def __init__(self, omap: Omap, timeout: float = WRITE_TIMEOUT) -> None:
        self._omap = omap
        self._timeout = timeout
        # Bytes of every task record, so `usage()` costs no read of them all.
        self._sizes: Dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def omap(self) -> Omap:
        return self._omap

    def use(self, omap: Omap) -> None:
        """Go on over another handle (the old one was blocklisted)."""
        self._omap = omap

    def get(self, key: str) -> Optional[str]:
        value = self._omap.read_keys(object_of(key), [key]).get(key)
        return None if value is None else value.decode()

    def put(self, key: str, value: Optional[str]) -> None:
        self.put_many({key: value})

    def put_many(self, items: Dict[str, Optional[str]]) -> None:
        """Writes (None: deletes) every item, one op per object and at most MAX_OP_BYTES."""
        by_object: Dict[str, List[Tuple[str, Optional[bytes]]]] = {}
        for key, value in items.items():
            data = None if value is None else value.encode()
            if data is not None and len(data) > MAX_VALUE_BYTES:
                raise ValueError(f'{key}: record of {len(data)} bytes is over the '
                                 f'{MAX_VALUE_BYTES} bytes a record may take')
            by_object.setdefault(object_of(key), []).append((key, data))
        for obj, entries in sorted(by_object.items()):
            for chunk in _chunks(entries):
                values = {k: v for k, v in chunk if v is not None}
                removed = [k for k, v in chunk if v is None]
                self._omap.write(obj, values, removed, self._timeout)
                with self._lock:
                    for k, v in chunk:
                        if not k.startswith(KEY_PREFIX):
                            continue
                        if v is None:
                            self._sizes.pop(k, None)
                        else:
                            self._sizes[k] = len(v)

    def scan(self, prefix: str) -> Dict[str, str]:
        result: Dict[str, str] = {}
        for obj in sorted(self._omap.objects()):
            if not (obj == META_OBJECT or obj.startswith(SHARD_PREFIX)):
                continue
            for key, value in self._pages(obj):
                if key.startswith(prefix):
                    result[key] = value.decode()
        with self._lock:
            for key, text in result.items():
                if key.startswith(KEY_PREFIX):
                    self._sizes[key] = len(text.encode())
        return result

    def usage(self) -> Dict[str, int]:
        """Records and their bytes as last read or written."""
        with self._lock:
            return {'records': len(self._sizes), 'bytes': sum(self._sizes.values())}

    def _pages(self, obj: str) -> Iterator[Tuple[str, bytes]]:
        after = ''
        while True:
            page = self._omap.read(obj, after, PAGE_KEYS)
            yield from page
            if len(page) < PAGE_KEYS:
                return
            after = page[-1][0]


def _chunks(entries: List[Tuple[str, Optional[bytes]]]
            ) -> Iterator[List[Tuple[str, Optional[bytes]]]]:
    chunk: List[Tuple[str, Optional[bytes]]] = []
    size = 0
    for key, data in entries:
        length = len(key) + len(data or b'')
        if chunk and (size + length > MAX_OP_BYTES or len(chunk) >= MAX_OP_KEYS):
            yield chunk
            chunk, size = [], 0
        chunk.append((key, data))
        size += length
    if chunk:
        yield chunk


class RadosOmap:
    """Omap over a librados I/O context (the `rados` Python binding)."""

    def __init__(self, ioctx: Any, handle: Any = None) -> None:
        self._ioctx = ioctx
        # The Rados handle the context belongs to: who renews a blocklisted one asks.
        self.handle = handle
        # Ops in flight, kept referenced until the OSDs answer.
        self._late: Dict[int, Any] = {}

    def write(self, obj: str, values: Dict[str, bytes], removed: List[str],
              timeout: float) -> None:
        import rados
        done = threading.Event()
        result: List[int] = []
        op = rados.WriteOpCtx().create()

        def completed(completion: Any) -> None:
            result.append(completion.get_return_value())
            done.set()
            # Released only now: the OSDs may answer a timed-out write late.
            self._late.pop(id(op), None)
            op.release()

        if values:
            self._ioctx.set_omap(op, tuple(values), tuple(values.values()))
        if removed:
            self._ioctx.remove_omap_keys(op, tuple(removed))
        self._late[id(op)] = op
        self._ioctx.operate_aio_write_op(op, obj, oncomplete=completed)
        if not done.wait(timeout):
            raise StoreTimeout(f'{obj}: no answer from the OSDs within {timeout:g} s')
        if result[0] == -errno.ESHUTDOWN:
            raise Fenced(f'{obj}: this client is blocklisted (another mgr took over)')
        if result[0] < 0:
            raise IOError(-result[0], f'writing {obj}: {os.strerror(-result[0])}')

    def read(self, obj: str, after: str, count: int) -> List[Tuple[str, bytes]]:
        import rados
        with rados.ReadOpCtx() as op:
            it, _ = self._ioctx.get_omap_vals(op, after, '', count)
            try:
                self._ioctx.operate_read_op(op, obj)
            except rados.ObjectNotFound:
                return []
            return [(k, bytes(v)) for k, v in it]

    def read_keys(self, obj: str, keys: List[str]) -> Dict[str, bytes]:
        import rados
        with rados.ReadOpCtx() as op:
            it, _ = self._ioctx.get_omap_vals_by_keys(op, tuple(keys))
            try:
                self._ioctx.operate_read_op(op, obj)
            except rados.ObjectNotFound:
                return {}
            return {k: bytes(v) for k, v in it}

    def objects(self) -> List[str]:
        return [o.key for o in self._ioctx.list_objects()]


class FencedOmap:
    """What the store writes through once another mgr is active: nothing."""

    handle = None

    def write(self, obj: str, values: Dict[str, bytes], removed: List[str],
              timeout: float) -> None:
        raise Fenced('another mgr is active; this one writes no task record')

    def read(self, obj: str, after: str, count: int) -> List[Tuple[str, bytes]]:
        raise Fenced('another mgr is active')

    def read_keys(self, obj: str, keys: List[str]) -> Dict[str, bytes]:
        raise Fenced('another mgr is active')

    def objects(self) -> List[str]:
        raise Fenced('another mgr is active')


class MemoryOmap:
    """An in-memory Omap for tests: counts writes and can be made to fail."""

    def __init__(self) -> None:
        self.data: Dict[str, Dict[str, bytes]] = {}
        self.writes = 0
        self.fail: Optional[Exception] = None
        self._lock = threading.Lock()

    def write(self, obj: str, values: Dict[str, bytes], removed: List[str],
              timeout: float) -> None:
        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.writes += 1
            entries = self.data.setdefault(obj, {})
            entries.update(values)
            for key in removed:
                entries.pop(key, None)

    def read(self, obj: str, after: str, count: int) -> List[Tuple[str, bytes]]:
        with self._lock:
            keys = sorted(k for k in self.data.get(obj, {}) if k > after)[:count]
            return [(k, self.data[obj][k]) for k in keys]

    def read_keys(self, obj: str, keys: List[str]) -> Dict[str, bytes]:
        with self._lock:
            entries = self.data.get(obj, {})
            return {k: entries[k] for k in keys if k in entries}

    def objects(self) -> List[str]:
        with self._lock:
            return list(self.data)
