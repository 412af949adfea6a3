"""The RBD performance task on the real cluster, under `rbd bench` load, compared with
rbd_support's `ceph rbd perf image stats` over the same window."""
import datetime
import threading
import time
from typing import Dict, Iterator, List

import pytest
from conftest import Bgtask, RbdLoad, RestApi, no_module_error, rbd
from devcluster import DevCluster

POOL = 'rbdperf'


def seconds(iso: str) -> float:
    """The task's ISO 8601 UTC times ('...Z') as time.time() seconds."""
    return datetime.datetime.fromisoformat(iso.replace('Z', '+00:00')).timestamp()


@pytest.fixture(scope='module')
def images(cluster: DevCluster) -> Iterator[None]:
    cluster.ceph('osd', 'pool', 'create', POOL, '8', '8')
    rbd(cluster, 'pool', 'init', POOL)
    for name in ('img-w', 'img-r', 'idle'):
        rbd(cluster, 'create', '--size', '32M', f'{POOL}/{name}')
    # Something to read back.
    rbd(cluster, 'bench', '--io-type', 'write', '--io-size', '1M', '--io-total', '32M',
        '--io-pattern', 'seq', f'{POOL}/img-r')
    yield
    cluster.ceph('osd', 'pool', 'rm', POOL, POOL, '--yes-i-really-really-mean-it',
                 check=False)


class PeerSampler:
    """rbd_support's per-image rates, sampled every 5 s, as `rbd perf image iostat` does."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.samples: List[Dict[str, List[float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> Dict[str, List[float]]:
        out = self.cluster.ceph('rbd', 'perf', 'image', 'stats', POOL, json_out=True)
        return {k.split('/', 1)[1]: v for entry in out['stats'] for k, v in entry.items()}

    def start(self) -> 'PeerSampler':
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(5):
            self.samples.append(self.poll())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self, image: str, index: int) -> float:
        values = [s.get(image, [0.0] * 6)[index] for s in self.samples]
        return sum(values) / len(values)


def test_matches_rbd_support_under_load(cluster: DevCluster, bg: Bgtask, images: None) -> None:
    peer = PeerSampler(cluster)
    peer.poll()                                   # rbd_support registers its query now
    loads = [RbdLoad(cluster, POOL, 'img-w', 'write', 400),
             RbdLoad(cluster, POOL, 'img-r', 'read', 300)]
    try:
        time.sleep(12)                            # load steady, rbd_support warmed up
        task = bg.json('rbd-perf', POOL, '30')
        assert task['description'] == f"Getting RBD performance data of pool '{POOL}' for 30 s"
        peer.start()
        done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=90)
        peer.stop()
    finally:
        for load in loads:
            load.stop()
    assert done['state'] == 'finished', done
    result = done['result']
    by_name = {i['image']: i for i in result['images']}
    w, r = by_name['img-w']['total'], by_name['img-r']['total']
    # What the loads really did in the window, by rbd bench's own count: QoS caps them at
    # 400 writes/s and 300 reads/s of 4 KiB, and a busy machine can hold them under that.
    start, end = (seconds(result['window'][k]) for k in ('start', 'end'))
    made_w, made_r = loads[0].rate(start, end), loads[1].rate(start, end)
    print(f'rbd bench did {made_w:.1f} writes/s and {made_r:.1f} reads/s in the window')
    assert made_w <= 400 * 1.05 and made_r <= 300 * 1.05
    assert w['write_ops/s'] == pytest.approx(made_w, rel=0.05)
    assert w['write_bytes/s'] == pytest.approx(w['write_ops/s'] * 4096, rel=0.01)
    assert r['read_ops/s'] == pytest.approx(made_r, rel=0.05)
    assert w['read_ops/s'] == 0 and r['write_ops/s'] == 0
    assert w['write_latency_ms'] > 0 and r['read_latency_ms'] > 0
    assert 'idle' not in by_name                  # no I/O, no entry
    # rbd_support's descriptors: write_ops, read_ops, write_bytes, read_bytes, ...
    peer_w, peer_r = peer.mean('img-w', 0), peer.mean('img-r', 1)
    print(f"ours write {w['write_ops/s']:.1f} vs rbd_support {peer_w:.1f}; "
          f"ours read {r['read_ops/s']:.1f} vs rbd_support {peer_r:.1f}")
    # rbd_support averages over windows of its own, which a load the busy machine holds
    # unevenly can make differ from ours (once 229 reads/s to our 199, which rbd bench's
    # count confirmed): ours must be at least as close to what rbd bench did.
    for ours, theirs, made in ((w['write_ops/s'], peer_w, made_w),
                               (r['read_ops/s'], peer_r, made_r)):
        assert ours == pytest.approx(theirs, rel=0.25)
        assert abs(ours - made) <= max(abs(theirs - made), 0.10 * made)
    assert result['samples'] >= 6 and 29 <= result['window']['seconds'] <= 32
    series = by_name['img-w']['series']
    assert len(series) >= 5 and all(p['write_ops/s'] >= 0 for p in series)
    table = bg.run('show', str(task['id'])).stdout
    assert 'IMAGE' in table and 'img-w' in table and 'READ_OPS/S' in table
    assert no_module_error(cluster)


def held_queries(api: RestApi) -> float:
    for line in api.get('/metrics', user=None).text.splitlines():
        if line.startswith('bgtasks_held{kind="rbd_perf",resource="osd_perf_queries"}'):
            return float(line.split()[-1])
    raise AssertionError('no bgtasks_held line for rbd_perf')


def test_delete_mid_window_removes_the_query(bg: Bgtask, api: RestApi, images: None) -> None:
    r = api.post('/api/taskqueue/rbd_perf', {'pool': POOL, 'seconds': 60})
    assert r.status_code == 201, r.text
    task = r.json()
    again = api.post('/api/taskqueue/rbd_perf', {'pool': POOL, 'seconds': 60})
    assert again.status_code == 200 and again.json()['id'] == task['id']
    bg.wait_task(task['id'], lambda t: t['status'] == 'Running')
    assert held_queries(api) == 1
    gone = api.delete(f"/api/taskqueue/{task['id']}")
    assert gone.status_code == 200 and gone.json()['status'] == 'Aborted'
    assert held_queries(api) == 0


def test_refusals(bg: Bgtask, api: RestApi, cluster: DevCluster, images: None) -> None:
    res = bg.run('rbd-perf', 'no-such-pool')
    assert res.returncode == 2 and "pool 'no-such-pool' not found" in res.stderr
    assert api.post('/api/taskqueue/rbd_perf', {'pool': 'no-such-pool'}).status_code == 404
    cluster.ceph('osd', 'pool', 'create', 'not-rbd', '8', '8')
    try:
        res = bg.run('rbd-perf', 'not-rbd')
        assert res.returncode == 22 and 'not an RBD pool' in res.stderr
        assert api.post('/api/taskqueue/rbd_perf', {'pool': 'not-rbd'}).status_code == 400
    finally:
        cluster.ceph('osd', 'pool', 'rm', 'not-rbd', 'not-rbd', '--yes-i-really-really-mean-it')
    for seconds in ('4', '3601'):
        res = bg.run('rbd-perf', POOL, seconds)
        assert res.returncode == 22 and 'from 5 to 3600' in res.stderr
    for body in ({'seconds': 4}, {'seconds': '30'}, {'pool': 7}):
        assert api.post('/api/taskqueue/rbd_perf', body).status_code == 400, body


def test_image_deleted_mid_window_keeps_its_figures(cluster: DevCluster, bg: Bgtask,
                                                    images: None) -> None:
    rbd(cluster, 'create', '--size', '16M', f'{POOL}/img-tmp')
    load = RbdLoad(cluster, POOL, 'img-tmp', 'write')
    try:
        task = bg.json('rbd-perf', POOL, '15')
        time.sleep(9)
    finally:
        load.stop()
    rbd(cluster, 'rm', f'{POOL}/img-tmp')
    done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=60)
    assert done['state'] == 'finished', done
    tmp = [i for i in done['result']['images'] if i['image'] == 'img-tmp']
    assert tmp and tmp[0]['total']['write_ops/s'] > 0


def test_failover_mid_window_reregisters_and_finishes(cluster: DevCluster, bg: Bgtask,
                                                      images: None) -> None:
    load = RbdLoad(cluster, POOL, 'img-w', 'write')
    try:
        time.sleep(3)
        task = bg.json('rbd-perf', POOL, '30')
        bg.wait_task(task['id'], lambda t: t['percent'] >= 20, timeout=60)
        cluster.fail_mgr()
        done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=120)
    finally:
        load.stop()
    assert done['state'] == 'finished', done
    assert done['result']['segments'] == 2
    w = {i['image']: i for i in done['result']['images']}['img-w']['total']
    assert w['write_ops/s'] > 50
