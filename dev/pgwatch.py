"""An independent judge of "the pool has settled", for tests and benchmarks.

Settled: pg_num == pg_num_target == pgp_num == pgp_num_target == N, and every PG of the
pool is active+clean with its stats' up/acting equal to what `pg map` (the current OSD
map) assigns. It asks the cluster over librados, as an operator's script would. A live
judge also asks each PG's primary OSD (`pg query`) once the stats say settled: stats lag
the OSDs, and a merge target's stats from before its merge look settled.

The librados part runs as a script with the cluster's own release's Python (a Pacific
client cannot log in to a Tentacle cluster, whose keys are AES-256):
    pgwatch.py watch POOL TARGET [INTERVAL [live]]
                                               a JSON line per look: {"t": time, "ok": bool,
                                               "why": what is not settled yet, or null}
    pgwatch.py fill POOL OBJECTS [SIZE]        writes objects so placement changes move data
The host side (Watcher, fill_pool, pool_info) takes a DevCluster and runs the script.
"""
import json
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

# ---------------------------------------------------------------- in the cluster's release


def _cmd(r: Any, mgr: bool, **cmd: Any) -> Any:
    cmd['format'] = 'json'
    call = r.mgr_command if mgr else r.mon_command
    ret, out, err = call(json.dumps(cmd), b'', timeout=30)
    if ret != 0:
        raise RuntimeError(f"{cmd['prefix']}: {err}")
    return json.loads(out)


def _pool(r: Any, name: str) -> Optional[Dict[str, Any]]:
    for p in _cmd(r, False, prefix='osd pool ls', detail='detail'):
        if p['pool_name'] == name:
            return dict(p)
    return None


def unsettled_because(r: Any, name: str, target: int, live: bool = False) -> Optional[str]:
    """None if the pool has settled, else the first thing that is not yet so."""
    pool = _pool(r, name)
    if pool is None:
        return 'no such pool'
    counts = [pool[k] for k in ('pg_num', 'pg_num_target', 'pg_placement_num',
                                'pg_placement_num_target')]
    if counts != [target] * 4:
        return 'pg_num, its target, pgp_num, its target: ' + ', '.join(map(str, counts))
    # The pool's PGs alone (filtered in the mgr): a judge that dumped every PG of the
    # cluster five times a second would itself load the mgr in proportion to the cluster.
    found = _cmd(r, True, prefix='pg ls-by-pool', poolstr=name)
    stats = found['pg_stats'] if isinstance(found, dict) else found
    if len(stats) != target:
        return f'stats for {len(stats)} PGs'
    for s in stats:
        if s['state'] != 'active+clean':
            return f"{s['pgid']} {s['state']}"
    for s in stats:
        m = _cmd(r, False, prefix='pg map', pgid=s['pgid'])
        if m['up'] != s['up'] or m['acting'] != s['acting']:
            return f"{s['pgid']} reported on {s['up']}/{s['acting']}, mapped to " \
                f"{m['up']}/{m['acting']}"
    for s in stats if live else []:
        ret, out, err = r.pg_command(s['pgid'], json.dumps(
            {'prefix': 'query', 'pgid': s['pgid'], 'format': 'json'}), b'', timeout=30)
        if ret != 0:
            return f"{s['pgid']} query: {err}"
        state = json.loads(out)['state']
        if state != 'active+clean':
            return f"{s['pgid']} {state} on its OSD"
    return None


def _connect() -> Any:
    import rados
    r = rados.Rados(conffile='')     # CEPH_CONF names the cluster
    r.connect()
    return r


def _watch(pool: str, target: int, interval: float, live: bool) -> None:
    r = _connect()
    while True:
        t = time.time()
        why = unsettled_because(r, pool, target, live)
        print(json.dumps({'t': t, 'ok': why is None, 'why': why}), flush=True)
        time.sleep(interval)


def _fill(pool: str, objects: int, size: int) -> None:
    r = _connect()
    try:
        with r.open_ioctx(pool) as io:
            data = b'x' * size
            pending = [io.aio_write_full(f'obj-{i}', data) for i in range(objects)]
            for c in pending:
                c.wait_for_complete()
    finally:
        r.shutdown()


# ---------------------------------------------------------------- on the host


class Settle(NamedTuple):
    """What the judge saw around a task's end."""
    at: float                           # its first look of the settled run reaching past it
    last_unsettled: Optional[float]     # its last unsettled look before that run
    why: Optional[str]
    # The first unsettled look after the run: not the change's (the pool had settled),
    # mostly a new PG's first scrub.
    again: Optional[Tuple[float, str]]


class Watcher:
    """Looks every `interval` seconds whether the pool has settled; remembers every look,
    and when the pool was first seen settled since it was last seen unsettled."""

    def __init__(self, cluster: Any, name: str, target: int, interval: float = 0.2,
                 live: bool = False) -> None:
        self.name, self.target = name, target
        self.settled_at: Optional[float] = None
        self.looks: List[Tuple[float, bool, Optional[str]]] = []
        self._proc = subprocess.Popen(
            cluster.script('pgwatch.py', 'watch', name, target, interval,
                           *(['live'] if live else [])), env=cluster.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> 'Watcher':
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            look = json.loads(line)
            self.looks.append((float(look['t']), bool(look['ok']), look.get('why')))
            if look['ok'] and self.settled_at is None:
                self.settled_at = float(look['t'])
            elif not look['ok']:
                self.settled_at = None

    def wait_settled(self, timeout: float) -> float:
        end = time.time() + timeout
        while self.settled_at is None:
            self._wait(end, timeout)
        return self.settled_at

    def settle(self, done: float, timeout: float) -> Settle:
        """Around a task that ended at `done`: the run of settled looks that reaches past
        it, and the unsettled look before that run. Done early if that look came after
        `done`. Once the pool has settled, a later unsettled look is something new."""
        end = time.time() + timeout
        while True:
            looks = list(self.looks)
            first = next((i for i, (t, ok, _) in enumerate(looks) if ok and t >= done), None)
            if first is not None:
                break
            self._wait(end, timeout)
        start = first
        while start > 0 and looks[start - 1][1]:
            start -= 1
        before = looks[start - 1] if start else None
        again = next(((t, str(why)) for t, ok, why in looks[first:] if not ok), None)
        return Settle(looks[start][0], before[0] if before else None,
                      before[2] if before else None, again)

    def _wait(self, end: float, timeout: float) -> None:
        if time.time() > end:
            raise TimeoutError(f'pool {self.name} did not settle in {timeout} s')
        if self._proc.poll() is not None:
            raise RuntimeError(f'the watcher of pool {self.name} exited '
                               f'({self._proc.returncode})')
        time.sleep(0.05)

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._thread.join(10)


def fill_pool(cluster: Any, name: str, objects: int, size: int = 4096) -> None:
    """Writes `objects` objects so that placement changes really move data."""
    cluster.run(cluster.script('pgwatch.py', 'fill', name, objects, size), timeout=300)


def pool_info(cluster: Any, name: str) -> Optional[Dict[str, Any]]:
    for p in cluster.ceph('osd', 'pool', 'ls', 'detail', json_out=True):
        if p['pool_name'] == name:
            return dict(p)
    return None


if __name__ == '__main__':
    verb, pool_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = sys.argv[4:]
    try:
        if verb == 'watch':
            _watch(pool_name, count, float(extra[0]) if extra else 0.2, extra[1:] == ['live'])
        elif verb == 'fill':
            _fill(pool_name, count, int(extra[0]) if extra else 4096)
        else:
            sys.exit(f'unknown verb {verb!r}')
    except (KeyboardInterrupt, BrokenPipeError) as e:
        # Ctrl-C or a reader that went away ends a watcher quietly; this line says which.
        print(f'pgwatch {verb} {pool_name}: {type(e).__name__}', file=sys.stderr)
