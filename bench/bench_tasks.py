"""Creates 1,000 one-round test tasks through the mgr command interface and measures
how fast they are created and finished, the active mgr's RSS before and after, and,
as the peer figure, raw mon config-key writes (what every `set_store` costs) measured
in the same run.

Usage: /usr/bin/python3 bench/bench_tasks.py [--tasks 1000] [--clients 8] [--dir D]
Starts its own throwaway cluster unless --conf names a running one.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

import rados

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dev'))
from devcluster import DevCluster  # noqa: E402


def mgr_cmd(r: rados.Rados, **cmd: Any) -> Tuple[int, bytes, str]:
    ret, out, err = r.mgr_command(json.dumps(cmd), b'', timeout=60)
    return ret, out, err


def rss_kib(pid: int) -> int:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def parallel(clients: int, count: int, fn: Any) -> Tuple[float, List[float]]:
    """Runs fn(i) count times over `clients` threads; returns (seconds, latencies)."""
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
            fn(i)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sorted(latencies)


def pct(values: List[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000.0


def run(cluster: DevCluster, tasks: int, clients: int) -> Dict[str, Any]:
    r = rados.Rados(conffile=str(cluster.conf_path))
    r.connect()
    try:
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/test_round_seconds', '0.01')
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/max_retained', str(tasks * 10))
        pid = cluster.mgr_pid(cluster.active_mgr())
        rss_before = rss_kib(pid)

        # Peer: the mon commit every set_store costs, from the same machine, same run.
        def key_write(i: int) -> None:
            ret, _, err = r.mon_command(json.dumps({'prefix': 'config-key set',
                                                    'key': f'bench/k{i}', 'val': 'x' * 600}),
                                        b'')
            assert ret == 0, err
        kv_seconds, _ = parallel(1, tasks, key_write)
        kv_par_seconds, _ = parallel(clients, tasks, key_write)
        for i in range(tasks):
            r.mon_command(json.dumps({'prefix': 'config-key rm', 'key': f'bench/k{i}'}), b'')

        ids: List[int] = []

        def create(i: int) -> None:
            ret, out, err = mgr_cmd(r, prefix='bgtask test', times=1, format='json')
            assert ret == 0, err
            ids.append(json.loads(out)['id'])

        t_start = time.perf_counter()
        create_seconds, lat = parallel(clients, tasks, create)
        wanted = set(ids)
        while True:
            ret, out, err = mgr_cmd(r, prefix='bgtask ls', state='finished', format='json')
            done = {t['id'] for t in json.loads(out)} & wanted
            if len(done) == len(wanted):
                break
            if time.perf_counter() - t_start > 600:
                raise SystemExit(f'only {len(done)} of {tasks} finished after 600 s')
            time.sleep(0.2)
        finish_seconds = time.perf_counter() - t_start
        rss_after = rss_kib(pid)

        ls_t0 = time.perf_counter()
        mgr_cmd(r, prefix='bgtask ls', state='all', format='json')
        ls_ms = (time.perf_counter() - ls_t0) * 1000
        return {
            'tasks': tasks, 'clients': clients,
            'create_per_s': tasks / create_seconds,
            'create_p50_ms': pct(lat, 0.5), 'create_p99_ms': pct(lat, 0.99),
            'finished_per_s': tasks / finish_seconds,
            'all_finished_after_s': finish_seconds,
            'kv_write_per_s_serial': tasks / kv_seconds,
            'kv_write_per_s_parallel': tasks / kv_par_seconds,
            'ls_all_ms': ls_ms,
            'mgr_rss_mib_before': rss_before / 1024, 'mgr_rss_mib_after': rss_after / 1024,
        }
    finally:
        cluster.ceph('config', 'rm', 'mgr', 'mgr/bgtasks/test_round_seconds', check=False)
        r.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--tasks', type=int, default=1000)
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--dir', help='cluster folder of a running dev cluster to reuse')
    args = ap.parse_args()
    if args.dir:
        res = run(DevCluster(args.dir), args.tasks, args.clients)
    else:
        folder = tempfile.mkdtemp(prefix='bgtasks-bench-')
        cluster = DevCluster(folder)
        cluster.start(mgrs=1, osds=1)
        try:
            res = run(cluster, args.tasks, args.clients)
        finally:
            cluster.stop()
    for k, v in res.items():
        print(f'{k:28s} {v:10.1f}' if isinstance(v, float) else f'{k:28s} {v:>10}')
    print(f"{'create vs serial set_store':28s} {res['create_per_s'] / 750.0:10.2f} x "
          '(750 writes/s = 1.33 ms per set_store)')
    print(f"{'create vs kv writes here':28s} "
          f"{res['create_per_s'] / res['kv_write_per_s_parallel']:10.2f} x")


if __name__ == '__main__':
    main()
