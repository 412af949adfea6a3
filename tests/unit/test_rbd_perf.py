"""The RBD performance task against fake OSD reports: chunks of deltas, one per OSD
every 5 s, the first of each covering only part of a period."""
import json
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import Harness

from mgr_bgtasks.errors import Invalid, NotFound
from mgr_bgtasks.omapstore import MAX_VALUE_BYTES
from mgr_bgtasks.task import key_of
from test_pg_num import FakeCluster


class PerfCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.queries: Dict[int, Dict[str, Any]] = {}
        self.pending: Dict[int, List[Dict[str, Any]]] = {}
        self.next_qid = 0
        self.names: Dict[Tuple[int, str], Dict[str, str]] = {}
        self.registered = 0
        self.name_lookups: List[List[str]] = []

    def add_perf_query(self, query: Dict[str, Any]) -> Optional[int]:
        self.next_qid += 1
        self.registered += 1
        self.queries[self.next_qid] = query
        self.pending[self.next_qid] = []
        return self.next_qid

    def remove_perf_query(self, query_id: int) -> None:
        del self.queries[query_id]

    def perf_counters(self, query_id: int) -> Dict[str, Any]:
        out, self.pending[query_id] = self.pending[query_id], []
        return {'counters': out}

    def rbd_image_names(self, pool_id: int, namespace: str,
                        image_ids: List[str]) -> Dict[str, str]:
        self.name_lookups.append(sorted(image_ids))
        known = self.names.get((pool_id, namespace), {})
        return {i: known[i] for i in image_ids if i in known}

    def report(self, osd: int, image_id: str, seconds: float, write_ops: float = 0,
               read_ops: float = 0, pool_id: int = 2, latency_ns: float = 1e6) -> None:
        """One OSD's report: `seconds` worth of load on an image, to every query."""
        w, r = write_ops * seconds, read_ops * seconds
        for qid in self.queries:
            self.pending[qid].append({
                'k': [[str(pool_id)], [''], ['', image_id], [str(osd)]],
                'c': [[w, 0], [r, 0], [w * 4096, 0], [r * 4096, 0],
                      [w * latency_ns, w], [r * latency_ns, r]]})


@pytest.fixture
def perf() -> Tuple[Harness, PerfCluster]:
    h = Harness()
    cluster = PerfCluster()
    cluster.add_pool('rbd', 2, 8)
    cluster.pool(2)['application_metadata'] = {'rbd': {}}
    cluster.add_pool('data', 3, 8)
    cluster.names[(2, '')] = {'aaa': 'img-a', 'bbb': 'img-b'}
    h.engine._ctx.cluster = cluster
    return h, cluster


def run_window(h: Harness, cluster: PerfCluster, seconds: float,
               phase: Tuple[float, ...] = (0.3, 2.1), start: float = 0.0) -> None:
    """Advances the clock in 0.5 s steps; each OSD reports every 5 s at its own phase:
    OSD 0 drives 100 writes/s on img-a, OSD 1 50 reads/s on img-b."""
    t = start
    while t < seconds - 1e-9:
        t_next = t + 0.5
        for osd, ph in enumerate(phase):
            k = 0
            while ph + 5 * k < t_next:
                if ph + 5 * k >= t:
                    # The first report after registering covers only part of a period.
                    covered = 5.0 if ph + 5 * k >= 5 else ph + 5 * k
                    if osd == 0:
                        cluster.report(0, 'aaa', covered, write_ops=100)
                    else:
                        cluster.report(1, 'bbb', covered, read_ops=50)
                k += 1
        h.tick(0.5)
        t = t_next


def test_validation(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    for seconds in (4, 3601, '30', True, 2.5):
        with pytest.raises(Invalid, match='seconds must be an integer from 5 to 3600'):
            h.engine.submit('rbd_perf', {'seconds': seconds}, 'u')
    with pytest.raises(NotFound, match="pool 'nope' not found"):
        h.engine.submit('rbd_perf', {'pool': 'nope'}, 'u')
    with pytest.raises(Invalid, match="pool 'data' is not an RBD pool"):
        h.engine.submit('rbd_perf', {'pool': 'data'}, 'u')
    cluster.pool(2)['application_metadata'] = {}
    with pytest.raises(Invalid, match='there is no RBD pool'):
        h.engine.submit('rbd_perf', {}, 'u')


def test_identical_pending_request_is_merged(perf: Tuple[Harness, PerfCluster]) -> None:
    h, _ = perf
    a, _ = h.engine.submit('rbd_perf', {'pool': 'rbd'}, 'u')
    b, created = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 30}, 'v')
    assert not created and a['id'] == b['id']
    assert a['description'] == "Getting RBD performance data of pool 'rbd' for 30 s"


def test_rates_latency_and_query_lifetime(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 30}, 'u')
    h.engine.run_due()
    assert len(cluster.queries) == 1
    query = next(iter(cluster.queries.values()))
    assert query['key_descriptor'][0]['regex'] == '^(2)$'
    assert [d['type'] for d in query['key_descriptor']] == ['pool_id', 'namespace',
                                                            'object_name', 'osd_id']
    run_window(h, cluster, 30)
    h.tick(0.5)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished', t
    assert cluster.queries == {}                        # removed when the task ended
    r = t['result']
    a, b = r['images']
    assert (a['image'], a['pool'], a['namespace']) == ('img-a', 'rbd', '')
    assert a['total']['write_ops/s'] == pytest.approx(100, rel=0.02)
    assert a['total']['write_bytes/s'] == pytest.approx(409600, rel=0.02)
    assert a['total']['read_ops/s'] == 0 and a['total']['write_latency_ms'] == 1.0
    assert b['image'] == 'img-b' and b['total']['read_ops/s'] == pytest.approx(50, rel=0.02)
    assert b['total']['write_ops/s'] == 0
    assert r['samples'] >= 10 and r['segments'] == 1 and r['other_images'] == 0
    assert 29.5 <= r['window']['seconds'] <= 31
    series = a['series']
    assert [p['t'] for p in series][:3] == [0, 5, 10]
    assert series[2]['write_ops/s'] == pytest.approx(100, rel=0.01)


def test_percent_grows_and_store_writes_follow_arrivals(
        perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 20}, 'u')
    h.engine.run_due()
    writes = h.store.writes
    run_window(h, cluster, 10)
    assert 30 <= h.engine.get(task['id'])['percent'] <= 50
    assert h.store.writes - writes <= 6             # about one write per arrival, not per read


def test_failover_registers_a_new_query_and_keeps_the_window(
        perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 40}, 'u')
    h.engine.run_due()
    run_window(h, cluster, 20)
    old_queries = set(cluster.queries)
    h.restart()                                     # the old mgr died with its query
    h.engine._ctx.cluster = cluster
    for qid in old_queries:
        cluster.remove_perf_query(qid)
    h.engine.run_due()
    assert cluster.registered == 2 and len(cluster.queries) == 1
    run_window(h, cluster, 40, start=20.5)
    h.tick(0.5)
    r = h.engine.get(task['id'])['result']
    assert r['segments'] == 2
    a = r['images'][0]
    assert a['total']['write_ops/s'] == pytest.approx(100, rel=0.03)


def test_abort_and_shutdown_remove_the_query(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd'}, 'u')
    h.engine.run_due()
    assert len(cluster.queries) == 1
    h.engine.delete(task['id'], abort_pending=True, deleted_by='u')
    assert cluster.queries == {}
    h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 60}, 'u')
    h.engine.run_due()
    assert len(cluster.queries) == 1
    h.engine.stop()                                 # module shutdown
    assert cluster.queries == {}


def test_image_deleted_mid_window_keeps_its_data(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    cluster.names[(2, '')] = {'bbb': 'img-b'}       # img-a was removed before we could name it
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 10}, 'u')
    h.engine.run_due()
    run_window(h, cluster, 10)
    h.tick(0.5)
    images = {i['image_id']: i for i in h.engine.get(task['id'])['result']['images']}
    assert images['aaa']['image'] is None and images['aaa']['total']['write_ops/s'] > 0
    assert images['bbb']['image'] == 'img-b'


def test_many_images_fit_in_one_record(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    h.engine.max_record_bytes = MAX_VALUE_BYTES       # records in RADOS
    task, _ = h.engine.submit('rbd_perf', {'seconds': 10}, 'u')   # every RBD pool
    h.engine.run_due()
    for t in (0.0, 5.0, 10.0):
        for i in range(300):
            cluster.report(i % 3, f'img{i:04d}', 5.0, write_ops=i + 1)
        h.tick(5.0 if t else 0.5)
    h.tick(0.5)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished', t['error']
    r = t['result']
    assert len(r['images']) == 300 and r['other_images'] == 0      # every image kept
    assert r['images'][0]['image_id'] == 'img0299'
    assert len(h.store.get(key_of(task['id'])) or '') < MAX_VALUE_BYTES
    assert json.loads(h.store.get(key_of(task['id'])) or '{}')['step'] == {}


def test_a_window_with_one_report_per_osd_still_has_figures(
        perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 5}, 'u')
    h.engine.run_due()                            # query registered at t0
    h.tick(4.0)
    cluster.report(0, 'aaa', 4.0, write_ops=100)  # the only report: 4 s since registering
    h.tick(0.5)
    h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished'
    # Read at 5 s, at the window's end: what the report covered is known only to be at
    # most the time since registering and at most one period.
    assert t['result']['images'][0]['total']['write_ops/s'] == pytest.approx(80, rel=0.05)


def test_a_late_read_that_finds_two_reports_of_an_osd_counts_both_periods(
        perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 30}, 'u')
    h.engine.run_due()
    t = 0.0
    for report_at in (1.0, 6.0, 11.0, 16.0, 21.0, 26.0):
        h.tick(report_at - t)
        # The first report covers part of a period (dropped); the others one period each.
        cluster.report(0, 'aaa', 1.0 if report_at == 1.0 else 5.0, write_ops=100)
        t = report_at
        if report_at == 11.0:
            continue        # the mgr is busy: 11's and 16's reports are read together
        h.tick(0.5)
        t += 0.5
    for _ in range(10):
        h.tick(0.5)
    r = h.engine.get(task['id'])['result']
    assert r['images'][0]['total']['write_ops/s'] == pytest.approx(100, rel=0.01)


def test_only_image_ids_seen_in_counters_are_named(perf: Tuple[Harness, PerfCluster]) -> None:
    h, cluster = perf
    # A pool of many images of which the window sees two: naming must not cost the rest.
    cluster.names[(2, '')].update({f'idle{n}': f'idle-{n}' for n in range(1000)})
    task, _ = h.engine.submit('rbd_perf', {'pool': 'rbd', 'seconds': 10}, 'u')
    h.engine.run_due()
    run_window(h, cluster, 10)
    h.tick(0.5)
    assert cluster.name_lookups
    assert all(set(ids) <= {'aaa', 'bbb'} for ids in cluster.name_lookups)
    images = {i['image_id']: i['image'] for i in h.engine.get(task['id'])['result']['images']}
    assert images == {'aaa': 'img-a', 'bbb': 'img-b'}
