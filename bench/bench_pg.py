"""pg_num 8 -> 32 on identically filled pools, three ways, in one run:

  (a) bare `ceph osd pool set <pool> pg_num 32`, watched by a script polling every
      0.2 s for "settled" (dev/pgwatch.py: counts at target and every PG active+clean
      on exactly the OSDs the current map assigns);
  (b) the Ceph dashboard's `PUT /api/pool/<pool>` task;
  (c) our `set_pg_num` task.

For (b) and (c) it prints the lag between "settled" (as the watcher sees it) and the
task reporting done (negative = reported done too early), and (c)'s total time over
(a)'s. Goals: ours never early, at most 1 s late; total <= 1.02 x.

Usage: /usr/bin/python3 bench/bench_pg.py [--objects 3000] [--rounds 1]
                                          [--release pacific|tentacle]
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'dev'))
from devcluster import DevCluster, free_port  # noqa: E402
from pgwatch import Watcher, fill_pool  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

TARGET = 32
PASSWORD = 'Bench-passw0rd!'


def ts(iso: str) -> float:
    """An ISO 8601 time, UTC unless it says otherwise ('Z', '+00:00': Tentacle's dashboard)."""
    dt = datetime.datetime.fromisoformat(iso.replace('Z', '+00:00'))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


class Dashboard:
    def __init__(self, port: int) -> None:
        self.base = f'http://127.0.0.1:{port}'
        self.s = requests.Session()
        self.s.headers['Accept'] = 'application/vnd.ceph.api.v1.0+json'

    def login(self) -> None:
        r = self.s.post(self.base + '/api/auth', json={'username': 'bench',
                                                       'password': PASSWORD})
        r.raise_for_status()
        self.s.headers['Authorization'] = 'Bearer ' + r.json()['token']

    def set_pg_num(self, pool: str) -> float:
        """Returns when the dashboard said the task finished (its end_time)."""
        r = self.s.put(f'{self.base}/api/pool/{pool}', json={'pg_num': TARGET})
        assert r.status_code in (200, 201, 202), r.text
        while True:
            tasks = self.s.get(self.base + '/api/task', params={'name': 'pool/edit'}).json()
            for t in tasks['finished_tasks']:
                if t['metadata'].get('pool_name') == pool:
                    assert t['success'], t
                    return ts(t['end_time'])
            time.sleep(0.2)


class Ours:
    def __init__(self, port: int) -> None:
        self.base = f'http://127.0.0.1:{port}'
        self.s = requests.Session()

    def login(self) -> None:
        r = self.s.post(self.base + '/api/auth/login', json={'username': 'bench',
                                                             'password': PASSWORD})
        r.raise_for_status()
        self.s.headers['Authorization'] = 'Bearer ' + r.json()['token']

    def set_pg_num(self, pool: str) -> float:
        r = self.s.post(self.base + '/api/taskqueue/set_pg_num',
                        json={'pool': pool, 'pg_num': TARGET})
        assert r.status_code == 201, r.text
        url = self.base + r.headers['Location']
        while True:
            task = self.s.get(url).json()
            if task['state'] != 'pending':
                assert task['state'] == 'finished', task
                return ts(task['ended'])
            time.sleep(0.2)


def run_one(cluster: DevCluster, pool: str, how: str, dash: Dashboard,
            ours: Ours) -> Dict[str, Any]:
    watcher = Watcher(cluster, pool, TARGET).start()
    try:
        t0 = time.time()
        done = None
        if how == 'bare':
            cluster.ceph('osd', 'pool', 'set', pool, 'pg_num', str(TARGET))
        elif how == 'dashboard':
            done = dash.set_pg_num(pool)
        else:
            done = ours.set_pg_num(pool)
        settled = watcher.wait_settled(1800)
        time.sleep(0.5)
    finally:
        watcher.stop()
    return {'how': how, 'pool': pool, 'total': settled - t0,
            'lag': None if done is None else done - settled,
            'reported_total': None if done is None else done - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--objects', type=int, default=3000)
    ap.add_argument('--rounds', type=int, default=1)
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix='bgtasks-bench-pg-')
    cluster = DevCluster(folder, release=args.release)
    bg_port, dash_port = free_port(), free_port()
    while dash_port == bg_port:
        dash_port = free_port()
    results: List[Dict[str, Any]] = []
    try:
        cluster.start(mgrs=1, osds=3, module_options={
            'server_addr': '127.0.0.1', 'server_port': str(bg_port), 'ssl': 'false'})
        version = cluster.version()
        print(version, flush=True)
        for key, value in (('ssl', 'false'), ('server_addr', '127.0.0.1'),
                           ('server_port', str(dash_port))):
            cluster.ceph('config', 'set', 'mgr', f'mgr/dashboard/{key}', value)
        cluster.enable_module('dashboard')
        pw = os.path.join(folder, 'pw')
        with open(pw, 'w') as f:
            f.write(PASSWORD)
        cluster.ceph('dashboard', 'ac-user-create', 'bench', '-i', pw, 'administrator')
        cluster.ceph('bgtask', 'user', 'create', 'bench', 'admin', '-i', pw)
        dash, ours = Dashboard(dash_port), Ours(bg_port)
        cluster.wait_for(lambda: _answers(dash.base) and _answers(ours.base), timeout=60,
                         what='both web servers')
        dash.login()
        ours.login()
        for rnd in range(args.rounds):
            for how in ('bare', 'dashboard', 'ours'):
                pool = f'bench-{how}-{rnd}'
                cluster.ceph('osd', 'pool', 'create', pool, '8', '8')
                cluster.ceph('osd', 'pool', 'set', pool, 'pg_autoscale_mode', 'off')
                cluster.ceph('osd', 'pool', 'application', 'enable', pool, 'bench')
                fill_pool(cluster, pool, args.objects)
                cluster.wait_for(lambda: _all_clean(cluster), timeout=300,
                                 what='every PG active+clean')
                res = run_one(cluster, pool, how, dash, ours)
                results.append(res)
                print(json.dumps(res), flush=True)
                cluster.ceph('osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it')
    finally:
        cluster.stop()

    def mean(how: str, key: str) -> float:
        vals = [r[key] for r in results if r['how'] == how]
        return sum(vals) / len(vals)
    print(f'{version}; objects per pool: {args.objects}, pg_num 8 -> {TARGET}, '
          f'rounds: {args.rounds}')
    print(f"(a) bare + 0.2 s watcher: settled after {mean('bare', 'total'):7.1f} s")
    print(f"(b) dashboard task:       settled after {mean('dashboard', 'total'):7.1f} s, "
          f"reported done {mean('dashboard', 'lag'):+6.2f} s after settled")
    print(f"(c) bgtasks task:         settled after {mean('ours', 'total'):7.1f} s, "
          f"reported done {mean('ours', 'lag'):+6.2f} s after settled "
          f"(goal: >= 0, <= 1 s)")
    print(f"(c) reported total / (a) total: "
          f"{mean('ours', 'reported_total') / mean('bare', 'total'):.3f} x (goal <= 1.02 x)")


def _all_clean(cluster: DevCluster) -> bool:
    pgs = cluster.ceph('pg', 'stat', json_out=True)
    states = pgs.get('pg_summary', pgs).get('num_pg_by_state', [])
    return all(s['name'] == 'active+clean' for s in states)


def _answers(base: str) -> bool:
    try:
        requests.get(base + '/', timeout=2)
        return True
    except requests.RequestException:
        return False


if __name__ == '__main__':
    main()
