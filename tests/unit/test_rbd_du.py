"""The RBD disk usage task over a fake cluster whose images report fixed usage."""
import threading
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import Harness

from mgr_bgtasks.cluster import ImageGone, Interrupted, PoolGone
from mgr_bgtasks.dataobjects import DataObjects, used_bytes
from mgr_bgtasks.errors import Invalid, NotFound
from mgr_bgtasks.kinds import rbd_du
from mgr_bgtasks.omapstore import MAX_VALUE_BYTES
from mgr_bgtasks.task import key_of
from test_pg_num import FakeCluster

MiB = 1 << 20


class DuCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        # (pool id, namespace, image id) -> [name, provisioned, used, snapshots, created]
        self.images: Dict[Tuple[int, str, str], List[Any]] = {}
        self.measured: List[str] = []
        self.gone_after_listing: set = set()
        self.pool_gone = False
        self.block: Optional[threading.Event] = None
        self.listings: set = set()

    def image(self, pool_id: int, name: str, provisioned: int, used: int,
              namespace: str = '', snapshots: Tuple[Tuple[str, int], ...] = (),
              created: float = 0.0) -> None:
        entry = [name, provisioned, used, list(snapshots), created]
        self.images[(pool_id, namespace, f'id-{name}')] = entry

    def rbd_image_specs(self, pool_id: int) -> List[Tuple[str, str, str]]:
        if self.pool_gone:
            raise PoolGone('gone')
        return [(ns, i, v[0]) for (p, ns, i), v in self.images.items() if p == pool_id]

    def rbd_image_id(self, pool_id: int, namespace: str, name: str) -> Optional[str]:
        for (p, ns, i), v in self.images.items():
            if (p, ns, v[0]) == (pool_id, namespace, name):
                return i
        return None

    def rbd_disk_usage(self, pool_id: int, namespace: str, image_id: str,
                       created_before: float, stop: Any,
                       objects: Optional[DataObjects] = None) -> Optional[Dict[str, Any]]:
        self.listings.add(None if objects is None else id(objects))
        if self.pool_gone:
            raise PoolGone('gone')
        if self.block is not None:
            self.block.wait(5)
        if stop.is_set():
            raise Interrupted()
        if image_id in self.gone_after_listing:
            raise ImageGone(image_id)
        name, provisioned, used, snaps, created = self.images[(pool_id, namespace, image_id)]
        if created > created_before:
            return None
        self.measured.append(name)
        return {'name': name, 'id': image_id, 'provisioned_bytes': provisioned,
                'used_bytes': used, 'fast_diff': True, 'seconds': 0.01,
                'snapshots': [{'name': s, 'id': n, 'provisioned_bytes': provisioned,
                               'used_bytes': u} for n, (s, u) in enumerate(snaps)]}


@pytest.fixture
def du() -> Tuple[Harness, DuCluster]:
    h = Harness()
    cluster = DuCluster()
    cluster.add_pool('rbd', 2, 8)
    cluster.pool(2)['application_metadata'] = {'rbd': {}}
    cluster.add_pool('vms', 4, 8)
    cluster.pool(4)['application_metadata'] = {'rbd': {}}
    cluster.add_pool('data', 3, 8)
    h.engine._ctx.cluster = cluster
    return h, cluster


def run(h: Harness, steps: int = 100) -> None:
    for _ in range(steps):
        if not h.tick(0.1):
            break


def test_validation(du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    with pytest.raises(NotFound, match="pool 'nope' not found"):
        h.engine.submit('rbd_du', {'pool': 'nope'}, 'u')
    with pytest.raises(Invalid, match='not an RBD pool'):
        h.engine.submit('rbd_du', {'pool': 'data'}, 'u')
    with pytest.raises(Invalid, match='needs its pool'):
        h.engine.submit('rbd_du', {'image': 'a'}, 'u')
    with pytest.raises(NotFound, match="image 'a' not found in pool 'rbd'"):
        h.engine.submit('rbd_du', {'pool': 'rbd', 'image': 'a'}, 'u')
    with pytest.raises(Invalid, match='pool must be a pool name'):
        h.engine.submit('rbd_du', {'pool': ''}, 'u')


def test_every_pool_summed_like_rbd_du_and_largest_first(
        du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    cluster.image(2, 'small', 64 * MiB, 4 * MiB)
    cluster.image(2, 'big', 256 * MiB, 100 * MiB, snapshots=(('s1', 20 * MiB),))
    cluster.image(2, 'other', 32 * MiB, 8 * MiB, namespace='ns1')
    for n in range(6):
        cluster.image(4, f'vm{n}', 10 * MiB, n * MiB)
    task, created = h.engine.submit('rbd_du', {}, 'u')
    assert created and task['description'] == 'Getting RBD disk usage of every RBD pool'
    run(h)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished', t
    r = t['result']
    assert [i['name'] for i in r['images'][:3]] == ['big', 'other', 'vm5']
    big = r['images'][0]
    assert (big['pool'], big['namespace'], big['used_bytes']) == ('rbd', '', 100 * MiB)
    assert big['snapshots'] == [{'name': 's1', 'id': 0, 'provisioned_bytes': 256 * MiB,
                                 'used_bytes': 20 * MiB}]
    assert r['pools'] == [
        {'pool': 'rbd', 'images': 3, 'provisioned_bytes': 352 * MiB,
         'used_bytes': 132 * MiB},
        {'pool': 'vms', 'images': 6, 'provisioned_bytes': 60 * MiB, 'used_bytes': 15 * MiB}]
    assert r['total'] == {'images': 9, 'provisioned_bytes': 412 * MiB,
                          'used_bytes': 147 * MiB}
    assert r['measurements'] == 9 and r['runs'] == 1 and r['not_measured'] == []
    text = h.engine.kinds['rbd_du'].render(t)
    assert text is not None and 'big@s1' in text and '<3 images>' in text


def test_one_image_and_identical_request_merged(du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    cluster.image(2, 'a', 64 * MiB, 4 * MiB)
    cluster.image(2, 'b', 64 * MiB, 4 * MiB, namespace='ns')
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd', 'image': 'ns/b'}, 'u')
    again, created = h.engine.submit('rbd_du', {'pool': 'rbd', 'image': 'ns/b'}, 'v')
    assert not created and again['id'] == task['id']
    run(h)
    r = h.engine.get(task['id'])['result']
    assert [(i['namespace'], i['name']) for i in r['images']] == [('ns', 'b')]
    assert cluster.measured == ['b']


def test_failover_goes_on_after_the_images_measured(du: Tuple[Harness, DuCluster],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    h, cluster = du
    monkeypatch.setattr(rbd_du, 'STEP_IMAGES', 4)
    for n in range(10):
        cluster.image(2, f'img{n:02}', 10 * MiB, MiB)
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    h.tick(0.1)
    h.tick(0.1)                                     # two steps of four
    assert len(cluster.measured) == 8
    assert h.engine.get(task['id'])['percent'] == pytest.approx(80.0)
    h.restart()
    h.engine._ctx.cluster = cluster
    cluster.image(2, 'new', 10 * MiB, MiB, created=h.clock.now() + 1)   # made since
    run(h)
    r = h.engine.get(task['id'])['result']
    assert sorted(cluster.measured) == [f'img{n:02}' for n in range(10)]   # once each
    assert r['runs'] == 2 and r['total']['images'] == 10
    assert sorted({i['run'] for i in r['images']}) == [1, 2]


def test_image_deleted_during_the_run_is_listed_not_counted(
        du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    cluster.image(2, 'a', 10 * MiB, MiB)
    cluster.image(2, 'b', 10 * MiB, MiB)
    cluster.gone_after_listing.add('id-b')
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    run(h)
    r = h.engine.get(task['id'])['result']
    assert r['total']['images'] == 1
    assert r['not_measured'] == [{'pool': 'rbd', 'namespace': '', 'name': 'b', 'id': 'id-b',
                                  'reason': 'deleted during the run'}]


def test_pool_deleted_fails_the_task(du: Tuple[Harness, DuCluster],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    h, cluster = du
    monkeypatch.setattr(rbd_du, 'STEP_IMAGES', 4)
    for n in range(10):
        cluster.image(2, f'img{n}', 10 * MiB, MiB)
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    h.tick(0.1)
    cluster.pool_list = [p for p in cluster.pool_list if p['pool'] != 2]
    run(h)
    t = h.engine.get(task['id'])
    assert t['state'] == 'failed' and t['error'] == "pool 'rbd' was deleted"


def test_many_images_fit_in_one_record(du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    for n in range(600):
        cluster.image(2, f'image-with-a-longish-name-{n:04}', 10 * MiB, n * 4096,
                      snapshots=(('snap', 1),))
    h.engine.max_record_bytes = MAX_VALUE_BYTES       # records in RADOS
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    run(h, steps=400)
    t = h.engine.get(task['id'])
    r = t['result']
    assert r['total']['images'] == 600
    assert len(r['images']) == 600 and r['other_images'] == 0     # every image kept
    assert r['images'][0]['name'] == 'image-with-a-longish-name-0599'
    assert 64 * 1024 < len(h.store.get(key_of(task['id'])) or '') < MAX_VALUE_BYTES


def test_stopping_keeps_what_was_measured(du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    for n in range(4):
        cluster.image(2, f'img{n}', 10 * MiB, MiB)
    task, _ = h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    kind = h.engine.kinds['rbd_du']
    kind.stopping()
    h.tick(0.1)
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending' and t['percent'] == 0
    kind.shutdown(h.engine._ctx)
    run(h)
    assert h.engine.get(task['id'])['result']['total']['images'] == 4


def test_a_run_over_pools_shares_one_object_listing_and_one_image_has_none(
        du: Tuple[Harness, DuCluster]) -> None:
    h, cluster = du
    for n in range(20):
        cluster.image(2, f'img{n:02}', 10 * MiB, MiB)
    h.engine.submit('rbd_du', {'pool': 'rbd'}, 'u')
    run(h)
    assert len(cluster.listings) == 1 and None not in cluster.listings
    cluster.listings.clear()
    h.engine.submit('rbd_du', {'pool': 'rbd', 'image': 'img03'}, 'u')
    run(h)
    assert cluster.listings == {None}


def test_data_objects_listed_once_per_namespace_and_not_past_the_limit() -> None:
    calls = []

    def names() -> List[str]:
        calls.append(1)
        return ['rbd_directory', 'rbd_header.abc', 'rbd_data.abc.0000000000000000',
                'rbd_data.abc.0000000000000003', 'rbd_data.def.0000000000000001',
                'rbd_data.odd.not-hex']
    objects = DataObjects()
    assert list(objects.indices(1, '', 'rbd_data.abc', names) or []) == [0, 3]
    assert list(objects.indices(1, '', 'rbd_data.def', names) or []) == [1]
    assert list(objects.indices(1, '', 'rbd_data.none', names) or []) == []
    assert len(calls) == 1
    objects.indices(1, 'ns', 'rbd_data.abc', names)
    assert len(calls) == 2
    assert DataObjects(max_objects=5).indices(1, '', 'rbd_data.abc', names) is None


def test_used_bytes_counts_whole_objects_and_the_last_up_to_the_end() -> None:
    # A 10 MiB image of 4 MiB objects: 0 and 1 whole, 2 holds the image's last 2 MiB;
    # an object past the end (left by a shrink) is not the image's.
    assert used_bytes([0, 2, 7], 10 * MiB, 4 * MiB) == 6 * MiB
    assert used_bytes([], 10 * MiB, 4 * MiB) == 0
