"""RBD disk usage: our rbd_du task against `rbd du -p`, in one run on one pool.

The pool holds --images images of --size, half of them without fast-diff (no object
map: every object is asked), each partly written. Each side runs --rounds times,
alternating; it prints the wall times (ours: REST create to finished, polled every
5 ms), their ratio (goal <= 0.5 x), whether the totals are identical, and a REST list's
p50/p99 while our task runs (one run after another for 10 s, each polled every 50 ms)
against the same with nothing running (goal <= 2 x), and while `rbd du -p` runs outside the
mgr the same way (what the machine's cores being busy does to it alone).

Usage: /usr/bin/python3 bench/bench_rbd_du.py [--images 20] [--size 256M] [--rounds 5]
                                              [--release pacific|tentacle]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import multiprocessing
import time
from typing import Any, Callable, Dict, List, Tuple

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'dev'))
sys.path.insert(0, HERE)
from bench_pg import PASSWORD, _answers  # noqa: E402
from devcluster import DevCluster, free_port  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

POOL = 'du'
BUSY_POLL = 0.05


class Lister:
    """GET /api/taskqueue (a page of 20) in a loop: the mgr's other work. In a process of
    its own, so that the benchmark's own polling never holds its GIL."""

    def __init__(self, s: requests.Session, base: str) -> None:
        self._token = s.headers['Authorization']
        self._base = base
        self._stop = multiprocessing.Event()
        self._out: Any = multiprocessing.Queue()
        self._proc = multiprocessing.Process(target=self._run, daemon=True)

    def start(self) -> None:
        self._proc.start()

    def finish(self) -> List[float]:
        self._stop.set()
        times: List[float] = self._out.get(timeout=60)
        self._proc.join()
        return times

    def _run(self) -> None:
        s = requests.Session()
        s.trust_env = False
        s.headers['Authorization'] = self._token
        times = []
        while not self._stop.is_set():
            t0 = time.perf_counter()
            s.get(self._base + '/api/taskqueue', params={'page': 1, 'pageSize': 20},
                  timeout=30).raise_for_status()
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)
        self._out.put(times)


def p(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ours(s: requests.Session, base: str, poll: float = 0.005) -> Tuple[float, Dict[str, Any]]:
    t0 = time.perf_counter()
    r = s.post(base + '/api/taskqueue/rbd_du', json={'pool': POOL}, timeout=30)
    r.raise_for_status()
    task_id = r.json()['id']
    while True:
        t = s.get(f'{base}/api/taskqueue/{task_id}', timeout=30).json()
        if t['state'] != 'pending':
            break
        time.sleep(poll)
    took = time.perf_counter() - t0
    assert t['state'] == 'finished', t
    return took, t['result']


def theirs(cluster: DevCluster) -> Tuple[float, Dict[str, Any]]:
    t0 = time.perf_counter()
    out = cluster.run(cluster.command('rbd', 'du', '-p', POOL, '--format', 'json'),
                      timeout=600).stdout
    return time.perf_counter() - t0, json.loads(out)


def listing_p(s: requests.Session, base: str, seconds: float) -> List[float]:
    lister = Lister(s, base)
    lister.start()
    time.sleep(seconds)
    return lister.finish()


def busy_while(s: requests.Session, base: str, work: Callable[[], Any],
               seconds: float = 10) -> Tuple[List[float], int]:
    lister = Lister(s, base)
    lister.start()
    runs = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        work()
        runs += 1
    return lister.finish(), runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=20)
    ap.add_argument('--size', default='256M')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix='bgtasks-bench-rbd-du-')
    cluster = DevCluster(folder, release=args.release)
    port = free_port()
    try:
        cluster.start(mgrs=1, osds=3, module_options={
            'server_addr': '127.0.0.1', 'server_port': str(port), 'ssl': 'false'})
        version = cluster.version()
        print(version, flush=True)
        pw = os.path.join(folder, 'pw')
        with open(pw, 'w') as f:
            f.write(PASSWORD)
        cluster.ceph('bgtask', 'user', 'create', 'bench', 'admin', '-i', pw)
        base = f'http://127.0.0.1:{port}'
        cluster.wait_for(lambda: _answers(base), timeout=60, what='the web server')
        s = requests.Session()
        r = s.post(base + '/api/auth/login', json={'username': 'bench', 'password': PASSWORD})
        r.raise_for_status()
        s.headers['Authorization'] = 'Bearer ' + r.json()['token']

        cluster.ceph('osd', 'pool', 'create', POOL, '32', '32')
        cluster.run(cluster.command('rbd', 'pool', 'init', POOL), timeout=120)
        for n in range(args.images):
            spec = f'{POOL}/img{n:02}'
            features = ['--image-feature', 'layering'] if n % 2 else []
            cluster.run(cluster.command('rbd', 'create', '--size', args.size, *features, spec))
            # Partly written: a quarter to a half of each image, in 1 MiB writes.
            total = (n % 4 + 4) * 8
            cluster.run(cluster.command('rbd', 'bench', '--io-type', 'write', '--io-size', '1M',
                                        '--io-total', f'{total}M', '--io-pattern', 'rand',
                                        spec), timeout=300)
        print(f'{args.images} images of {args.size}, half without fast-diff', flush=True)

        idle = listing_p(s, base, 10)
        ours_t: List[float] = []
        theirs_t: List[float] = []
        same = True
        for _ in range(args.rounds):
            took, du = theirs(cluster)
            theirs_t.append(took)
            took, result = ours(s, base)
            ours_t.append(took)
            same = same and (result['total']['provisioned_bytes'], result['total']['used_bytes']) \
                == (du['total_provisioned_size'], du['total_used_size'])
            print(json.dumps({'ours_s': round(ours_t[-1], 3), 'rbd_du_s': round(theirs_t[-1], 3),
                              'ours_total': result['total'],
                              'rbd_du_total': [du['total_provisioned_size'],
                                               du['total_used_size']],
                              'images_seconds': result['seconds']}), flush=True)
        # The mgr's other work while runs follow one another for as long as the idle look;
        # the same while `rbd du` runs beside the mgr (the machine's share of it). Here the
        # end is polled every BUSY_POLL s: a poll every 5 ms would be 200 requests/s of the
        # benchmark's own into the mgr it measures, none of which `rbd du` makes.
        busy, runs = busy_while(s, base, lambda: ours(s, base, BUSY_POLL))
        beside, rbd_runs = busy_while(s, base, lambda: theirs(cluster))
    finally:
        cluster.stop()
    o, t = statistics.median(ours_t), statistics.median(theirs_t)
    print(f'{version}; {args.images} images of {args.size}, half without fast-diff, '
          f'{args.rounds} rounds')
    print(f'ours {o:.3f} s (median; {min(ours_t):.3f} .. {max(ours_t):.3f}), rbd du -p '
          f'{t:.3f} s ({min(theirs_t):.3f} .. {max(theirs_t):.3f}): {o / t:.2f} x '
          f'(goal <= 0.5 x); totals identical: {same}')
    print(f'REST list while ours runs ({runs} runs in a row, polled every {BUSY_POLL:g} s): p50 '
          f'{p(busy, 0.5) * 1000:.1f} ms, p99 {p(busy, 0.99) * 1000:.1f} ms '
          f'({len(busy)} requests); idle p50 {p(idle, 0.5) * 1000:.1f} ms, p99 '
          f'{p(idle, 0.99) * 1000:.1f} ms ({len(idle)}): {p(busy, 0.99) / p(idle, 0.99):.2f} x '
          '(goal <= 2 x)')
    print(f'REST list while rbd du -p runs ({rbd_runs} runs in a row): p50 '
          f'{p(beside, 0.5) * 1000:.1f} ms, p99 {p(beside, 0.99) * 1000:.1f} ms '
          f'({len(beside)} requests): {p(beside, 0.99) / p(idle, 0.99):.2f} x idle')


if __name__ == '__main__':
    main()
