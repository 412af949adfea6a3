"""An independent judge of "the pool has settled", for tests and benchmarks.

Settled: pg_num == pg_num_target == pgp_num == pgp_num_target == N, and every PG of the
pool is active+clean with its stats' up/acting equal to what `pg map` (the current OSD
map) assigns. It asks the cluster over librados, as an operator's script would.
"""
import json
import threading
import time
from typing import Any, Dict, List, Optional

import rados


def _cmd(r: rados.Rados, mgr: bool, **cmd: Any) -> Any:
    cmd['format'] = 'json'
    call = r.mgr_command if mgr else r.mon_command
    ret, out, err = call(json.dumps(cmd), b'', timeout=30)
    if ret != 0:
        raise RuntimeError(f"{cmd['prefix']}: {err}")
    return json.loads(out)


def pool_info(r: rados.Rados, name: str) -> Optional[Dict[str, Any]]:
    for p in _cmd(r, False, prefix='osd pool ls', detail='detail'):
        if p['pool_name'] == name:
            return dict(p)
    return None


def settled(r: rados.Rados, name: str, target: int) -> bool:
    pool = pool_info(r, name)
    if pool is None or not (pool['pg_num'] == pool['pg_num_target'] == target
                            == pool['pg_placement_num'] == pool['pg_placement_num_target']):
        return False
    prefix = f"{pool['pool_id']}."
    stats = [s for s in _cmd(r, True, prefix='pg dump', dumpcontents=['pgs_brief'])['pg_stats']
             if s['pgid'].startswith(prefix)]
    if len(stats) != target or any(s['state'] != 'active+clean' for s in stats):
        return False
    for s in stats:
        m = _cmd(r, False, prefix='pg map', pgid=s['pgid'])
        if m['up'] != s['up'] or m['acting'] != s['acting']:
            return False
    return True


class Watcher:
    """Polls `settled` every `interval` seconds in a thread; remembers when the pool was
    last seen unsettled and first seen settled after that."""

    def __init__(self, conf: str, name: str, target: int, interval: float = 0.2) -> None:
        self.name, self.target, self.interval = name, target, interval
        self.r = rados.Rados(conffile=conf)
        self.r.connect()
        self.last_unsettled: Optional[float] = None
        self.settled_at: Optional[float] = None
        self.samples: List[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> 'Watcher':
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            ok = settled(self.r, self.name, self.target)
            self.samples.append(ok)
            if ok and self.settled_at is None:
                self.settled_at = t
            elif not ok:
                self.last_unsettled, self.settled_at = t, None
            self._stop.wait(self.interval)

    def wait_settled(self, timeout: float) -> float:
        end = time.time() + timeout
        while self.settled_at is None:
            if time.time() > end:
                raise TimeoutError(f'pool {self.name} did not settle in {timeout} s')
            time.sleep(0.05)
        return self.settled_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.r.shutdown()


def fill_pool(conf: str, name: str, objects: int, size: int = 4096) -> None:
    """Writes `objects` objects so that placement changes really move data."""
    r = rados.Rados(conffile=conf)
    r.connect()
    try:
        with r.open_ioctx(name) as io:
            data = b'x' * size
            pending = [io.aio_write_full(f'obj-{i}', data) for i in range(objects)]
            for c in pending:
                c.wait_for_complete()
    finally:
        r.shutdown()
