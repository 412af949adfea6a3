"""What watching a PG change costs the mgr, and whether that cost follows the task's pool
or the whole cluster. In one run, on one cluster:

  (a)  pg_num 8 -> 32 on a small filled pool, nothing else in the cluster;
  (a4) the same on four pools at once;
  then other pools holding --other-pgs PGs are created and left to settle, and
  (b)  the same change as (a); (b4) as (a4).

For each it prints the CPU seconds bgtasks' set_pg_num steps spent during the change (the
steps' own threads: `bgtasks_step_cpu_seconds_total`), the checks made, the CPU per check,
and the task's done-minus-settled lag against the independent judge (dev/pgwatch.py, a look
every 0.2 s, reading the pool's PGs alone). Goals: (b)/(a) CPU <= 1.3 x; never done while the
judge still sees the pool unsettled; lag <= 1 s. The per-check cost measured with 0 and with
--other-pgs other PGs is extrapolated linearly to 100,000 PGs.

The same change takes 60 to 120 s from one run to the next, and checks follow its length,
so one change per phase cannot tell 1.3 x from that spread: each phase runs --rounds times
(each on new pools) and the ratios are of the medians, with each round's ratio beside them.

Usage: /usr/bin/python3 bench/bench_pg_cost.py [--rounds 3] [--objects 1000]
                                               [--other-pgs 3000] [--release pacific|tentacle]
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'dev'))
sys.path.insert(0, HERE)
from bench_pg import PASSWORD, TARGET, Ours, _all_clean, _answers, ts  # noqa: E402
from devcluster import DevCluster, free_port  # noqa: E402
from pgwatch import Watcher, fill_pool  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

KIND = 'set_pg_num'
FILLER_PG = 512


def step_cost(base: str) -> Tuple[float, int, float]:
    """(CPU seconds, steps) of the set_pg_num kind so far and the whole mgr's CPU seconds,
    from /metrics."""
    text = requests.get(base + '/metrics', timeout=10).text
    cpu = re.search(rf'^bgtasks_step_cpu_seconds_total{{kind="{KIND}"}} (\S+)$', text, re.M)
    count = re.search(rf'^bgtasks_step_seconds_count{{kind="{KIND}"}} (\S+)$', text, re.M)
    mgr = re.search(r'^bgtasks_mgr_cpu_seconds_total (\S+)$', text, re.M)
    return ((float(cpu.group(1)) if cpu else 0.0), (int(count.group(1)) if count else 0),
            float(mgr.group(1)) if mgr else 0.0)


def change(cluster: DevCluster, ours: Ours, pools: List[str], idle: bool) -> Dict[str, Any]:
    """pg_num 8 -> TARGET on every pool at once, by bgtasks; CPU and lags (and, if idle, the
    whole mgr's CPU in as long again without a task)."""
    watchers = [Watcher(cluster, pool, TARGET).start() for pool in pools]
    cpu0, steps0, mgr0 = step_cost(ours.base)
    began = time.monotonic()
    try:
        done: Dict[str, float] = {}
        locations = {}
        for pool in pools:
            r = ours.s.post(ours.base + '/api/taskqueue/set_pg_num',
                            json={'pool': pool, 'pg_num': TARGET})
            assert r.status_code == 201, r.text
            locations[pool] = ours.base + r.headers['Location']
        while len(done) < len(pools):
            for pool, url in locations.items():
                if pool not in done:
                    task = ours.s.get(url).json()
                    if task['state'] != 'pending':
                        assert task['state'] == 'finished', task
                        done[pool] = ts(task['ended'])
            time.sleep(0.2)
        settles = {w.name: w.settle(done[w.name], 600) for w in watchers}
    finally:
        for w in watchers:
            w.stop()
    cpu1, steps1, mgr1 = step_cost(ours.base)
    seconds = time.monotonic() - began
    mgr2 = None
    if idle:
        # The same watchers for as long with no task: what the mgr spends anyway (its own
        # PG stats, the judge's commands), so that the change's share of the whole mgr shows.
        quiet = [Watcher(cluster, pool, TARGET).start() for pool in pools]
        time.sleep(seconds)
        for w in quiet:
            w.stop()
        mgr2 = step_cost(ours.base)[2] - mgr1
    lags = [done[p] - settles[p].at for p in pools]
    # The pool settled between the judge's last unsettled look and its first settled one
    # (0.2 s apart): done after the first is never early; done before the last is.
    after = [done[p] - s.last_unsettled for p, s in settles.items()
             if s.last_unsettled is not None]
    early = [f'{p} ({s.why} {s.last_unsettled - done[p]:+.2f} s after done)'
             for p, s in settles.items()
             if s.last_unsettled is not None and s.last_unsettled > done[p]]
    again = [f'{p} ({s.again[1]} {s.again[0] - done[p]:+.2f} s after done)'
             for p, s in settles.items() if s.again is not None]
    steps = steps1 - steps0
    return {'pools': len(pools), 'cpu': cpu1 - cpu0, 'steps': steps,
            'per_check_ms': 1000 * (cpu1 - cpu0) / max(steps, 1),
            'seconds': seconds, 'mgr_cpu': mgr1 - mgr0, 'mgr_cpu_idle': mgr2,
            'lag_min': min(lags), 'lag_max': max(lags),
            'after_unsettled_min': min(after) if after else None, 'early': early,
            'again': again}


def make_pools(cluster: DevCluster, prefix: str, count: int, objects: int) -> List[str]:
    names = [f'{prefix}-{n}' for n in range(count)]
    for pool in names:
        cluster.ceph('osd', 'pool', 'create', pool, '8', '8')
        cluster.ceph('osd', 'pool', 'set', pool, 'pg_autoscale_mode', 'off')
        cluster.ceph('osd', 'pool', 'application', 'enable', pool, 'bench')
        fill_pool(cluster, pool, objects)
    cluster.wait_for(lambda: _all_clean(cluster), timeout=600, what='every PG active+clean')
    return names


def measure(cluster: DevCluster, ours: Ours, phase: str, count: int, rounds: int,
            objects: int) -> List[Dict[str, Any]]:
    results = []
    for r in range(rounds):
        for attempt in (1, 2):
            pools = make_pools(cluster, f'small-{phase}{r}-{attempt}', count, objects)
            try:
                result = change(cluster, ours, pools, idle=r == 0)
                break
            except RuntimeError as e:
                # A judge whose own process died says nothing of bgtasks: the round
                # runs again on new pools.
                if attempt == 2:
                    raise
                print(f'{phase} round {r + 1}: {e}; again', flush=True)
        results.append(result)
        print(phase, r + 1, json.dumps(result), flush=True)
    return results


def summary(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Medians of CPU, checks and CPU per check; the extremes of the lags over all rounds."""
    afters = [r['after_unsettled_min'] for r in runs if r['after_unsettled_min'] is not None]
    return {'cpu': statistics.median(r['cpu'] for r in runs),
            'steps': statistics.median(r['steps'] for r in runs),
            'per_check_ms': statistics.median(r['per_check_ms'] for r in runs),
            'cpus': [r['cpu'] for r in runs], 'seconds': [r['seconds'] for r in runs],
            'lag_min': min(r['lag_min'] for r in runs), 'lag_max': max(r['lag_max'] for r in runs),
            'after_unsettled_min': min(afters) if afters else None,
            'early': [e for r in runs for e in r['early']],
            'again': [e for r in runs for e in r['again']],
            'mgr_cpu': runs[0]['mgr_cpu'], 'mgr_cpu_idle': runs[0]['mgr_cpu_idle'],
            'first_seconds': runs[0]['seconds']}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--objects', type=int, default=1000)
    ap.add_argument('--other-pgs', type=int, default=3000)
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix='bgtasks-bench-pg-cost-')
    cluster = DevCluster(folder, release=args.release)
    port = free_port()
    runs: Dict[str, List[Dict[str, Any]]] = {}
    other = 0
    try:
        # 3 OSDs of size 1 each hold every PG once: room for the other pools' PGs and for
        # every round's small pools.
        small = 10 * args.rounds * TARGET
        per_osd = (args.other_pgs + 2 * small) // 3 + 200
        cluster.start(mgrs=1, osds=3, module_options={
            'server_addr': '127.0.0.1', 'server_port': str(port), 'ssl': 'false'},
            conf_overrides={'global': {'mon max pg per osd': per_osd,
                                       'osd max pg per osd hard ratio': 10}})
        version = cluster.version()
        print(version, flush=True)
        pw = os.path.join(folder, 'pw')
        with open(pw, 'w') as f:
            f.write(PASSWORD)
        cluster.ceph('bgtask', 'user', 'create', 'bench', 'admin', '-i', pw)
        ours = Ours(port)
        cluster.wait_for(lambda: _answers(ours.base), timeout=60, what='the web server')
        ours.login()
        for phase, count in (('a', 1), ('a4', 4)):
            runs[phase] = measure(cluster, ours, phase, count, args.rounds, args.objects)
        filler = 0
        while other < args.other_pgs:
            pgs = min(FILLER_PG, args.other_pgs - other)
            name = f'other-{filler}'
            cluster.ceph('osd', 'pool', 'create', name, str(pgs), str(pgs))
            cluster.ceph('osd', 'pool', 'set', name, 'pg_autoscale_mode', 'off')
            cluster.ceph('osd', 'pool', 'application', 'enable', name, 'bench')
            other += pgs
            filler += 1
        cluster.wait_for(lambda: _all_clean(cluster), timeout=900, interval=2,
                         what='the other pools active+clean')
        total = cluster.ceph('pg', 'stat', json_out=True)
        print(f"{total.get('pg_summary', total)['num_pgs']} PGs active+clean", flush=True)
        for phase, count in (('b', 1), ('b4', 4)):
            runs[phase] = measure(cluster, ours, phase, count, args.rounds, args.objects)
    finally:
        cluster.stop()
    report(runs, f'{version}; pg_num 8 -> {TARGET} on pools of {args.objects} objects; '
           f'medians of {args.rounds} rounds', args.other_pgs)


def report(runs: Dict[str, List[Dict[str, Any]]], title: str, other_pgs: int) -> None:
    results = {phase: summary(r) for phase, r in runs.items()}
    a, a4, b, b4 = (results[k] for k in ('a', 'a4', 'b', 'b4'))
    print(title)
    for key, what in (('a', 'one pool, nothing else'), ('a4', 'four pools, nothing else'),
                      ('b', 'one pool, others hold PGs'), ('b4', 'four pools, others hold PGs')):
        r = results[key]
        after = r['after_unsettled_min']
        print(f'({key:2}) {what:28}: {r["cpu"]:6.3f} CPU s in {r["steps"]:4.0f} checks '
              f'({r["per_check_ms"]:.2f} ms each; rounds '
              f'{", ".join(f"{c:.3f}" for c in r["cpus"])} s in '
              f'{", ".join(f"{t:.0f}" for t in r["seconds"])} s), lag {r["lag_min"]:+.2f} .. '
              f'{r["lag_max"]:+.2f} s after the judge\'s first settled look (goal <= 1 s), '
              f'at least {after if after is not None else float("nan"):+.2f} s after its '
              f'last unsettled look (goal >= 0), done early on {len(r["early"])} pools '
              f'(goal 0); whole mgr in round 1 {r["mgr_cpu"]:.2f} CPU s in '
              f'{r["first_seconds"]:.0f} s, {r["mgr_cpu_idle"]:.2f} in as long without a task')
        for pool in r['early']:
            print(f'     judge saw unsettled after done: {pool}')
        for pool in r['again']:
            print(f'     unsettled again after it had settled (not early): {pool}')

    def each(x: str, y: str) -> str:
        pairs = zip(results[x]['cpus'], results[y]['cpus'])
        return ', '.join(f'{q / max(o, 1e-9):.2f}' for q, o in pairs)

    print(f'(b)/(a) CPU: {b["cpu"] / a["cpu"]:.2f} x (goal <= 1.3 x; round by round '
          f'{each("b", "a")}); (b4)/(a4): {b4["cpu"] / a4["cpu"]:.2f} x ({each("b4", "a4")})')
    print(f'four pools at once / one: {a4["cpu"] / a["cpu"]:.2f} x without other PGs, '
          f'{b4["cpu"] / b["cpu"]:.2f} x with')
    slope = (b['per_check_ms'] - a['per_check_ms']) / max(other_pgs, 1)
    print(f'per check: {a["per_check_ms"]:.2f} ms with 0 other PGs, '
          f'{b["per_check_ms"]:.2f} ms with {other_pgs}; at 100,000 other PGs '
          f'(linear): {a["per_check_ms"] + slope * 100000:.2f} ms')


if __name__ == '__main__':
    main()
