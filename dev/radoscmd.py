"""Mon and mgr commands over librados, for benchmarks, with the cluster's own release's
Python (a Pacific client cannot log in to a Tentacle cluster, whose keys are AES-256).

In the cluster's release, `radoscmd.py` reads one JSON request a line on stdin and answers
each with one JSON line on stdout, over one connection (CEPH_CONF names the cluster):
    {"target": "mon"|"mgr", "cmd": {...}, "timeout": 60}
        -> {"ret": 0, "out": "...", "err": "...", "dt": seconds the call took}
    {"target": ..., "cmd": {...}, "repeat": N, "clients": C}
        -> {"started": time.time() before the first call, "seconds": wall time of all,
            "latencies": [seconds per call, in the order they ended],
            "results": [{"ret", "out", "err"} for i in 0..N-1]}
        the N calls from C threads sharing the connection; "{i}" in a string of cmd is
        replaced by the call's index. What is timed runs in that process, as it would in
        an operator's script: the pipe to the host adds nothing to it.
The host side (RadosCmd) takes a DevCluster and runs the script.
"""
import json
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

# ---------------------------------------------------------------- in the cluster's release


def _call(r: Any, target: str, cmd: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    call = r.mgr_command if target == 'mgr' else r.mon_command
    ret, out, err = call(json.dumps(cmd), b'', timeout=int(timeout))
    return {'ret': ret, 'out': out.decode('utf-8', 'replace'), 'err': err}


def _indexed(cmd: Dict[str, Any], i: int) -> Dict[str, Any]:
    return {k: v.replace('{i}', str(i)) if isinstance(v, str) else v for k, v in cmd.items()}


def _repeat(r: Any, req: Dict[str, Any]) -> Dict[str, Any]:
    count, clients = int(req['repeat']), max(1, int(req.get('clients', 1)))
    timeout = float(req.get('timeout', 60))
    results: List[Optional[Dict[str, Any]]] = [None] * count
    latencies: List[float] = []
    lock = threading.Lock()
    nxt = [0]

    def worker() -> None:
        while True:
            with lock:
                i = nxt[0]
                if i >= count:
                    return
                nxt[0] += 1
            t0 = time.perf_counter()
            res = _call(r, req['target'], _indexed(req['cmd'], i), timeout)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                results[i] = res

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {'started': started, 'seconds': time.perf_counter() - t0,
            'latencies': latencies, 'results': results}


def _serve() -> None:
    import rados
    r = rados.Rados(conffile='')     # CEPH_CONF names the cluster
    r.connect()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            if 'repeat' in req:
                answer = _repeat(r, req)
            else:
                t0 = time.perf_counter()
                answer = _call(r, req['target'], req['cmd'], float(req.get('timeout', 60)))
                answer['dt'] = time.perf_counter() - t0
            print(json.dumps(answer), flush=True)
    finally:
        r.shutdown()


# ---------------------------------------------------------------- on the host


class RadosCmd:
    """One librados connection to the cluster, in the release's Python; one call at a time."""

    def __init__(self, cluster: Any) -> None:
        self._proc = subprocess.Popen(cluster.script('radoscmd.py'), env=cluster.env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lock = threading.Lock()

    def _ask(self, req: Dict[str, Any]) -> Dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps(req) + '\n')
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f'radoscmd.py exited ({self._proc.poll()})')
        return dict(json.loads(line))

    def call(self, target: str, cmd: Dict[str, Any], timeout: float = 60
             ) -> Tuple[int, str, str, float]:
        """(ret, out, err, seconds the call took in the release's process)."""
        a = self._ask({'target': target, 'cmd': cmd, 'timeout': timeout})
        return int(a['ret']), str(a['out']), str(a['err']), float(a['dt'])

    def mon(self, cmd: Dict[str, Any], timeout: float = 60) -> Tuple[int, str, str]:
        return self.call('mon', cmd, timeout)[:3]

    def mgr(self, cmd: Dict[str, Any], timeout: float = 60) -> Tuple[int, str, str]:
        return self.call('mgr', cmd, timeout)[:3]

    def repeat(self, target: str, cmd: Dict[str, Any], count: int, clients: int = 1,
               timeout: float = 60) -> Dict[str, Any]:
        """`count` calls of cmd ("{i}" in its strings: the call's index) from `clients`
        threads; see the module's doc for the answer."""
        return self._ask({'target': target, 'cmd': cmd, 'repeat': count, 'clients': clients,
                          'timeout': timeout})

    def close(self) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> 'RadosCmd':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


if __name__ == '__main__':
    try:
        _serve()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
