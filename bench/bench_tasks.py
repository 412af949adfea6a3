"""Creates 1,000 one-round test tasks through the mgr command interface and measures
how fast they are created and finished, the active mgr's RSS before and after, and,
as the peer figure, raw mon config-key writes (what every `set_store` costs) measured
in the same run.

Usage: /usr/bin/python3 bench/bench_tasks.py [--tasks 1000] [--clients 8] [--dir D]
                                            [--release pacific|tentacle]
Starts its own throwaway cluster unless --dir names a running one (which keeps its release).
The mgr and mon commands go over librados in the release's own Python (dev/radoscmd.py),
from --clients threads there, each call timed there.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dev'))
from devcluster import DevCluster  # noqa: E402
from radoscmd import RadosCmd  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def many(r: RadosCmd, target: str, cmd: Dict[str, Any], count: int, clients: int
         ) -> Dict[str, Any]:
    """`count` calls of cmd ("{i}": the call's index) over `clients` threads, each asserted
    to succeed; the answer of RadosCmd.repeat (seconds, latencies, results)."""
    res = r.repeat(target, cmd, count, clients)
    failed = [x['err'] for x in res['results'] if x['ret'] != 0]
    assert not failed, f'{len(failed)} of {count} {cmd["prefix"]} failed: {failed[0]}'
    return res


def pct(values: List[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000.0


def run(cluster: DevCluster, tasks: int, clients: int) -> Dict[str, Any]:
    # librados in the release's own Python; the calls are timed there (dev/radoscmd.py).
    r = RadosCmd(cluster)
    try:
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/test_round_seconds', '0.01')
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/max_retained', str(tasks * 10))
        pid = cluster.mgr_pid(cluster.active_mgr())
        assert pid is not None
        rss_before = rss_kib(pid)

        # Peer: the mon commit every set_store costs, from the same machine, same run.
        key_write = {'prefix': 'config-key set', 'key': 'bench/k{i}', 'val': 'x' * 600}
        kv_seconds = many(r, 'mon', key_write, tasks, 1)['seconds']
        kv_par_seconds = many(r, 'mon', key_write, tasks, clients)['seconds']
        r.repeat('mon', {'prefix': 'config-key rm', 'key': 'bench/k{i}'}, tasks)

        created = many(r, 'mgr', {'prefix': 'bgtask test', 'times': 1, 'format': 'json'},
                       tasks, clients)
        t_start = float(created['started'])
        create_seconds = float(created['seconds'])
        lat = sorted(created['latencies'])
        wanted = {json.loads(x['out'])['id'] for x in created['results']}
        while True:
            ret, out, err = r.mgr({'prefix': 'bgtask ls', 'state': 'finished',
                                   'format': 'json'})
            done = {t['id'] for t in json.loads(out)} & wanted
            if len(done) == len(wanted):
                break
            if time.time() - t_start > 600:
                raise SystemExit(f'only {len(done)} of {tasks} finished after 600 s')
            time.sleep(0.2)
        finish_seconds = time.time() - t_start
        rss_after = rss_kib(pid)

        ls_ms = r.call('mgr', {'prefix': 'bgtask ls', 'state': 'all', 'format': 'json'})[3] * 1000
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
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--tasks', type=int, default=1000)
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--dir', help='cluster folder of a running dev cluster to reuse')
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of a new cluster (default: $BGTASKS_RELEASE, else '
                    'pacific)')
    args = ap.parse_args()
    if args.dir:
        cluster = DevCluster(args.dir, release=args.release)
        print(cluster.version(), flush=True)
        res = run(cluster, args.tasks, args.clients)
    else:
        folder = tempfile.mkdtemp(prefix='bgtasks-bench-')
        cluster = DevCluster(folder, release=args.release)
        try:
            cluster.start(mgrs=1, osds=1)
            print(cluster.version(), flush=True)
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
