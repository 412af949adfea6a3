"""Task records in RADOS against the mon's config-key store (issue 14), in one run.

Starts its own cluster (1 mon, 2 mgrs, 1 OSD; bgtasks on 127.0.0.1), then:
  idle  a competing mon client (`config-key set` of its own keys, serial, from the
        release's own librados) alone: its commit p50 / p99;
  ours  --creates (10,000) creates through REST (POST /api/taskqueue/test_task {"times": 1})
        from --clients (8) keep-alive clients, the competing client running beside them:
        persisted creates/s (every acknowledged id is then found in omap), the mon's paxos
        commits per task (create and end included, read after the backlog drained), the
        competing client's p99 meanwhile;
  (a)   --creates raw `config-key set` from --clients threads (what a create cost before);
  (b)   --creates raw omap writes of ~600 bytes, one key each, from --clients threads, to
        the same pool (what a create costs at least now);
  (c)   --creates REST GETs of one task from the same clients: the server with no store
        write, which bounds any create through it;
  fail  `ceph mgr fail` with the tasks retained and one test task running: seconds from the
        command to the first step the new mgr stores for that task (its last_modified);
  rss   the active mgr's RSS before the creates and with them retained.
Prints the figures, the ratios and the goals.

Usage: /usr/bin/python3 bench/bench_store.py [--creates 10000] [--clients 8]
                                             [--release pacific|tentacle]
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'dev'))
sys.path.insert(0, HERE)
from bench_rest import Client, bgtasks_token, mon_commits, pct, wait_http  # noqa: E402
from bench_tasks import rss_kib  # noqa: E402
from devcluster import DevCluster, free_port  # noqa: E402
from radoscmd import RadosCmd  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

BENCH_USER = 'bench'
BENCH_PASSWORD = 'Bench-pass-w0rd!'
GOAL_CREATES_PER_S = 2000.0
GOAL_RAW_SHARE = 0.5
GOAL_COMMITS_PER_TASK = 0.01
GOAL_COMPETING_P99 = 1.2
GOAL_FAILOVER_S = 2.0


class Competitor:
    """A mon client committing its own config-key writes one after another, timed in the
    release's own process."""

    def __init__(self, cluster: DevCluster) -> None:
        self._r = RadosCmd(cluster)
        self._stop = threading.Event()
        self.latencies: List[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            ret, _, err, dt = self._r.call('mon', {'prefix': 'config-key set',
                                                   'key': f'compete/k{i % 100}', 'val': 'x'})
            assert ret == 0, err
            self.latencies.append(dt)
            i += 1

    def __enter__(self) -> 'Competitor':
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._r.close()


def competing_alone(cluster: DevCluster, seconds: float) -> List[float]:
    with Competitor(cluster) as c:
        time.sleep(seconds)
    return c.latencies


def creates(port: int, token: str, count: int, clients: int,
            method: str = 'POST', path: str = '/api/taskqueue/test_task') -> Dict[str, Any]:
    """`count` requests from `clients` keep-alive clients: by default creates of one-round
    test tasks; `method` GET of a task's `path` measures the server alone (no store write)."""
    ok, body_sent = (201, {'times': 1}) if method == 'POST' else (200, None)
    ids: List[int] = []
    errors: List[str] = []
    lock = threading.Lock()
    left = [count]

    def client() -> None:
        c = Client(port, False, {'Authorization': f'Bearer {token}'})
        try:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                status, body = c.request(method, path, body_sent)
                with lock:
                    if status == ok:
                        ids.append(int(json.loads(body)['id']))
                    else:
                        errors.append(f'{status} {body[:200]!r}')
        finally:
            c.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {'ids': ids, 'errors': errors, 'seconds': time.perf_counter() - t0}


def drained(cluster: DevCluster, timeout: float = 600) -> None:
    cluster.wait_for(lambda: cluster.ceph('bgtask', 'ls', 'pending', json_out=True) == [],
                     timeout=timeout, interval=1, what='every task to end')


def stored_ids(cluster: DevCluster, pool: str) -> List[int]:
    out = cluster.run(cluster.script('radostool.py', 'omap', pool, 'bgtasks'),
                      timeout=300).stdout
    return [int(k[len('task/'):]) for entries in json.loads(out).values()
            for k in entries if k.startswith('task/')]


def raw_omap(cluster: DevCluster, pool: str, count: int, clients: int) -> float:
    out = cluster.run(cluster.script('radostool.py', 'writes', pool, 'bgtasks-bench', count,
                                     clients, 600), timeout=600).stdout
    return float(json.loads(out)['writes_per_second'])


def raw_config_key(cluster: DevCluster, count: int, clients: int) -> float:
    with RadosCmd(cluster) as r:
        res = r.repeat('mon', {'prefix': 'config-key set', 'key': 'bench/k{i}',
                               'val': 'x' * 600}, count, clients)
        failed = [x['err'] for x in res['results'] if x['ret'] != 0]
        assert not failed, failed[0]
        r.repeat('mon', {'prefix': 'config-key rm', 'key': 'bench/k{i}'}, count, clients)
    return count / float(res['seconds'])


def failover_to_first_step(cluster: DevCluster) -> float:
    task = cluster.ceph('bgtask', 'test', '100000', json_out=True)
    cluster.wait_for(lambda: cluster.ceph('bgtask', 'show', str(task['id']),
                                          json_out=True)['status'] == 'Running',
                     timeout=60, what='the test task to run')
    old = cluster.active_mgr()
    t0 = time.time()
    cluster.ceph('mgr', 'fail', old)

    def stepped_on_new() -> float:
        if cluster.mgr_dump().get('active_name') in (None, old):
            return 0.0
        proc = cluster.ceph('bgtask', 'show', str(task['id']), '-f', 'json', check=False)
        if proc.returncode != 0:
            return 0.0
        res = json.loads(proc.stdout)
        modified = datetime.datetime.fromisoformat(
            res['last_modified'].replace('Z', '+00:00')).timestamp()
        return modified - t0 if modified > t0 + 0.05 else 0.0

    seconds = cluster.wait_for(stepped_on_new, timeout=120, interval=0.2,
                               what='the new mgr to step the task')
    cluster.ceph('bgtask', 'rm', str(task['id']), '--yes-i-really-mean-it')
    return seconds


def line(label: str, value: str, goal: str = '') -> None:
    print(f'  {label:<58} {value:>18}  {goal}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--creates', type=int, default=10000)
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix='bgtasks-bench-store-')
    cluster = DevCluster(folder, release=args.release)
    try:
        port = free_port()
        cluster.start(mgrs=2, osds=1, module_options={
            'server_addr': '127.0.0.1', 'server_port': port, 'ssl': False,
            'test_round_seconds': 0.01, 'max_retained': 1000000})
        pwfile = cluster.dir / 'tmp' / 'bench-password'
        pwfile.write_text(BENCH_PASSWORD)
        cluster.ceph('bgtask', 'user', 'create', BENCH_USER, 'admin', '-i', str(pwfile))
        wait_http(cluster, port, False, '/api/openapi.json', 'bgtasks REST server')
        where = cluster.ceph('bgtask', 'store', json_out=True)
        assert where['backend'] == 'rados', where
        pool = where['pool']
        print(f'{cluster.version()}; records in pool {pool!r}, namespace '
              f'{where["namespace"]!r}; load average {os.getloadavg()[0]:.1f} on '
              f'{os.cpu_count()} cores', flush=True)
        token = bgtasks_token(port, False)
        pid = cluster.mgr_pid(cluster.active_mgr())
        assert pid is not None
        rss0 = rss_kib(pid)

        idle = competing_alone(cluster, 10)
        commits0 = mon_commits(cluster)
        with Competitor(cluster) as comp:
            ours = creates(port, token, args.creates, args.clients)
        drained(cluster)
        # The competitor's own commits are not ours.
        commits = mon_commits(cluster) - commits0 - len(comp.latencies)
        stored = set(stored_ids(cluster, pool))
        missing = [i for i in ours['ids'] if i not in stored]
        kv = cluster.ceph('config-key', 'ls', json_out=True)
        in_kv = [k for k in kv if k.startswith('mgr/bgtasks/task/')]
        rss1 = rss_kib(pid)
        print(f'ours done: {len(ours["ids"])} created in {ours["seconds"]:.1f} s', flush=True)

        # The same clients reading one task: what the REST server answers with no store
        # write at all, the most any create could reach through it.
        got = creates(port, token, args.creates, args.clients, 'GET',
                      f'/api/taskqueue/{ours["ids"][0]}')
        get_rate = len(got['ids']) / got['seconds']
        kv_rate = raw_config_key(cluster, args.creates, args.clients)
        omap_rate = raw_omap(cluster, pool, args.creates, args.clients)
        fail_s = failover_to_first_step(cluster)

        rate = len(ours['ids']) / ours['seconds']
        per_task = commits / max(1, len(ours['ids']))
        idle_p99, busy_p99 = pct(sorted(idle), 0.99), pct(sorted(comp.latencies), 0.99)
        print(f'\n{args.creates} creates through REST from {args.clients} clients '
              f'({args.release}):')
        line('persisted creates/s (ours)', f'{rate:.0f}', f'goal >= {GOAL_CREATES_PER_S:.0f}')
        line('(a) raw config-key set/s', f'{kv_rate:.0f}')
        line('(b) raw omap writes/s', f'{omap_rate:.0f}')
        line('ours / (b)', f'{rate / omap_rate:.2f} x', f'goal >= {GOAL_RAW_SHARE} x')
        line('(c) REST GETs/s of one task, same clients (no store write)', f'{get_rate:.0f}')
        line('  (c) / (b): the most any create through REST could reach',
             f'{get_rate / omap_rate:.2f} x')
        line('ours / (a)', f'{rate / kv_rate:.2f} x')
        line('errors; acknowledged but not in omap; task keys in config-key',
             f'{len(ours["errors"])}; {len(missing)}; {len(in_kv)}', 'goal 0; 0; 0')
        line('mon commits per task (create and end)', f'{per_task:.4f}',
             f'goal <= {GOAL_COMMITS_PER_TASK}')
        line('competing mon client commit p50 / p99 ms, idle',
             f'{pct(sorted(idle), 0.5):.2f} / {idle_p99:.2f}')
        line('  while ours ran', f'{pct(sorted(comp.latencies), 0.5):.2f} / {busy_p99:.2f}')
        line('  p99 ratio', f'{busy_p99 / idle_p99:.2f} x', f'goal <= {GOAL_COMPETING_P99} x')
        line(f'mgr fail to first step, {len(stored)} tasks retained', f'{fail_s:.2f} s',
             f'goal <= {GOAL_FAILOVER_S:.0f} s')
        line(f'mgr RSS: before, with {len(stored)} retained (MiB)',
             f'{rss0 / 1024:.0f} -> {rss1 / 1024:.0f}')
        line('  per 10,000 retained tasks (MiB)',
             f'{(rss1 - rss0) / 1024 * 10000 / max(1, len(stored)):.1f}')
        if ours['errors']:
            print('  first errors:', ours['errors'][:3])
    finally:
        cluster.stop()


if __name__ == '__main__':
    main()
