"""RBD performance data against rbd_support, on 1, 10 and 50 images under a steady
`rbd bench` load (held by librbd QoS so the true rate is known).

For each image count it prints the largest per-image difference between our window
total and (a) rbd_support's cumulative `rbd perf image counters` over the same window,
(b) its `rbd perf image stats` sampled every 5 s (what `rbd perf image iostat` shows;
each sample divides by whole seconds, so it alone strays by up to 20 %), (c) the QoS
rate; the time from creating the task to its first OSD report;
and the mgr's CPU seconds over the window, ours against rbd_support serving
`rbd perf image stats` every 5 s (each minus an idle baseline with the same load).
Goal: within 5 % of rbd_support.

Usage: /usr/bin/python3 bench/bench_rbd.py [--counts 1,10,50] [--seconds 30]
                                           [--release pacific|tentacle]
The mgr commands go over librados in the release's own Python (dev/radoscmd.py), `rbd` is
the release's CLI.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dev'))
from devcluster import DevCluster  # noqa: E402
from radoscmd import RadosCmd  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

POOL = 'bench'


def cpu_seconds(pid: int) -> float:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def mgr(r: RadosCmd, **cmd: Any) -> Any:
    ret, out, err = r.mgr({**cmd, 'format': 'json'}, timeout=60)
    assert ret == 0, err
    return json.loads(out)


def peer_counters(r: RadosCmd) -> Dict[str, float]:
    out = mgr(r, prefix='rbd perf image counters', pool_spec=POOL)
    return {k.split('/', 1)[1]: v[0] for e in out['counters'] for k, v in e.items()}


class PeerRates:
    """rbd_support's cumulative write ops per image, each divided by the time between the
    first and the last change we saw, both noticed within a poll (its `stats` divide by
    whole seconds between its ticks, which alone is off by up to 20 % per sample). The
    value before the first change only marks where counting starts: the time it was read
    is not when its chunk arrived."""

    def __init__(self) -> None:
        self.baseline: Dict[str, float] = {}
        self.first: Dict[str, float] = {}
        self.first_t: Dict[str, float] = {}
        self.last: Dict[str, float] = {}
        self.last_t: Dict[str, float] = {}

    def poll(self, r: RadosCmd) -> None:
        now = time.time()
        for image, value in peer_counters(r).items():
            if image not in self.baseline:
                self.baseline[image] = value
            elif image not in self.first:
                if value != self.baseline[image]:
                    self.first[image], self.first_t[image] = value, now
            elif value != self.last.get(image, self.first[image]):
                self.last[image], self.last_t[image] = value, now

    def rates(self) -> Dict[str, float]:
        return {i: (self.last[i] - self.first[i]) / (self.last_t[i] - self.first_t[i])
                for i in self.last if self.last_t[i] > self.first_t[i]}


def ours_task(r: RadosCmd, seconds: int, poll: Any = None) -> Dict[str, Any]:
    """Runs our task; returns it finished, with `first_sample_s` added."""
    t0 = time.time()
    task = mgr(r, prefix='bgtask rbd-perf', pool=POOL, seconds=seconds)
    first = None
    while True:
        if poll is not None:
            poll()
        t = mgr(r, prefix='bgtask show', task_id=task['id'])
        if first is None and t['status_text'] and not t['status_text'].startswith('0 '):
            first = time.time() - t0
        if t['state'] != 'pending':
            break
        # Our own polling costs mgr CPU too: about as often as rbd_support is asked,
        # unless the peer is polled at the same time.
        time.sleep(0.5 if first is None or poll is not None else 5)
    assert t['state'] == 'finished', t
    return {**t, 'first_sample_s': first}


def peer_stats(r: RadosCmd) -> Dict[str, float]:
    out = mgr(r, prefix='rbd perf image stats', pool_spec=POOL)
    return {k.split('/', 1)[1]: v[0] for e in out['stats'] for k, v in e.items()}


def run(cluster: DevCluster, count: int, seconds: int, iops: int) -> Dict[str, Any]:
    names = [f'img{i:02d}' for i in range(count)]
    for n in names:
        cluster.run(cluster.command('rbd', 'create', '--size', '16M', f'{POOL}/{n}'))
        cluster.run(cluster.command('rbd', 'config', 'image', 'set', f'{POOL}/{n}',
                                    'rbd_qos_iops_limit', iops))
    loads = [subprocess.Popen(cluster.command('rbd', 'bench', '--io-type', 'write',
                                              '--io-size', '4096', '--io-threads', '2',
                                              '--io-total', '100G', '--io-pattern', 'rand',
                                              f'{POOL}/{n}'),
                              env=cluster.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in names]
    r = RadosCmd(cluster)
    pid = cluster.mgr_pid(cluster.active_mgr())
    assert pid is not None
    try:
        time.sleep(10)                      # loads steady
        c0 = cpu_seconds(pid)
        time.sleep(seconds)
        idle = cpu_seconds(pid) - c0

        # Ours alone over the window: its CPU.
        c0 = cpu_seconds(pid)
        first = ours_task(r, seconds)['first_sample_s']
        ours_cpu = cpu_seconds(pid) - c0

        # rbd_support serving `rbd perf image stats` every 5 s over a window as long.
        peer_stats(r)
        time.sleep(10)                      # its query warms up (first answers are empty)
        c0 = cpu_seconds(pid)
        samples: List[Dict[str, float]] = []
        end = time.time() + seconds
        while time.time() < end:
            samples.append(peer_stats(r))
            time.sleep(5)
        peer_cpu = cpu_seconds(pid) - c0

        # Agreement: both over the same window (the loads of 50 images on 2 cores wander
        # from one window to the next).
        peer = PeerRates()
        t = ours_task(r, seconds, poll=lambda: peer.poll(r))
    finally:
        for p in loads:
            p.terminate()
        for p in loads:
            p.wait()
        r.close()
    peer_rates = peer.rates()
    ours = {i['image']: i['total']['write_ops/s'] for i in t['result']['images']}
    peer_samples = {n: sum(s.get(n, 0.0) for s in samples) / len(samples) for n in names}
    for n in names:
        cluster.run(cluster.command('rbd', 'rm', '--no-progress', f'{POOL}/{n}'), timeout=120)
    time.sleep(65)                          # rbd_support's queries expire after a minute unused
    return {
        'images': count,
        'max_diff_vs_peer_%': max(abs(ours.get(n, 0) / peer_rates[n] - 1) * 100 for n in names),
        'max_diff_vs_peer_stats_%': max(abs(ours.get(n, 0) / peer_samples[n] - 1) * 100
                                        for n in names),
        'max_diff_vs_qos_%': max(abs(ours.get(n, 0) / iops - 1) * 100 for n in names),
        'first_sample_s': first,
        'ours_cpu_s': ours_cpu,
        'peer_cpu_s': peer_cpu, 'idle_cpu_s': idle,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--counts', default='1,10,50')
    ap.add_argument('--seconds', type=int, default=30)
    ap.add_argument('--iops', type=int, default=40, help='QoS limit per image')
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix='bgtasks-bench-rbd-')
    cluster = DevCluster(folder, release=args.release)
    try:
        cluster.start(mgrs=1, osds=3)
        print(cluster.version(), flush=True)
        cluster.ceph('osd', 'pool', 'create', POOL, '32', '32')
        cluster.run(cluster.command('rbd', 'pool', 'init', POOL), timeout=120)
        for count in [int(c) for c in args.counts.split(',')]:
            res = run(cluster, count, args.seconds, args.iops)
            print(json.dumps(res), flush=True)
            print(f"{count:3d} images at {args.iops} writes/s each, {args.seconds} s window: "
                  f"ours vs rbd_support counters max {res['max_diff_vs_peer_%']:.1f} % "
                  f"(goal <= 5 %), vs its 5 s stats {res['max_diff_vs_peer_stats_%']:.1f} %, "
                  f"vs QoS {res['max_diff_vs_qos_%']:.1f} %; first sample after "
                  f"{res['first_sample_s']:.1f} s; mgr CPU ours {res['ours_cpu_s']:.2f} s, "
                  f"rbd_support {res['peer_cpu_s']:.2f} s, idle {res['idle_cpu_s']:.2f} s",
                  flush=True)
    finally:
        cluster.stop()


if __name__ == '__main__':
    main()
