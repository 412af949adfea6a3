"""The RBD disk usage task on the real cluster: its numbers against `rbd du --format json`
for images with and without fast-diff, with snapshots and in a namespace; a failover,
an image and a pool deleted, and an abort, all in the middle of a run."""
import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from conftest import Bgtask, RestApi, rbd
from devcluster import DevCluster

POOL = 'rbddu'
SLOW = 'rbddu-slow'
# Images without an object map but with a snapshot are scanned object by object (without
# a snapshot the pool's listing would answer): small objects and one operation at a time
# in the mgr's librbd make a pool of these take long enough (seconds an image here) to
# act on a run midway. Twenty, so that when the first step (four) is done, the last
# image has not been started.
SLOW_IMAGES = 20
SLOW_SIZE = '512M'
SLOW_OBJECT = '64K'


def write(cluster: DevCluster, spec: str, total: str, pattern: str = 'seq') -> None:
    # One thread: with several, rbd bench spreads even a sequential write over the image.
    rbd(cluster, 'bench', '--io-type', 'write', '--io-size', '1M', '--io-threads', '1',
        '--io-total', total, '--io-pattern', pattern, spec)


@pytest.fixture(scope='module')
def images(cluster: DevCluster) -> Iterator[None]:
    cluster.ceph('osd', 'pool', 'create', POOL, '8', '8')
    rbd(cluster, 'pool', 'init', POOL)
    rbd(cluster, 'create', '--size', '64M', f'{POOL}/fd')
    rbd(cluster, 'create', '--size', '64M', '--image-feature', 'layering', f'{POOL}/nofd')
    rbd(cluster, 'create', '--size', '32M', f'{POOL}/empty')
    rbd(cluster, 'namespace', 'create', f'{POOL}/ns1')
    rbd(cluster, 'create', '--size', '16M', f'{POOL}/ns1/inner')
    for name in ('fd', 'nofd'):
        write(cluster, f'{POOL}/{name}', '16M')
        rbd(cluster, 'snap', 'create', f'{POOL}/{name}@s1')
        write(cluster, f'{POOL}/{name}', '8M', 'rand')
        rbd(cluster, 'snap', 'create', f'{POOL}/{name}@s2')
        write(cluster, f'{POOL}/{name}', '4M', 'rand')
    write(cluster, f'{POOL}/ns1/inner', '4M')
    # Without fast-diff nor snapshots, counted from the pool's listing: one ends within
    # an object (37 MiB of 4 MiB objects), written to its end; one in a namespace.
    rbd(cluster, 'create', '--size', '37M', '--image-feature', 'layering', f'{POOL}/plain')
    write(cluster, f'{POOL}/plain', '37M')
    rbd(cluster, 'create', '--size', '64M', '--image-feature', 'layering',
        f'{POOL}/ns1/sparse')
    write(cluster, f'{POOL}/ns1/sparse', '8M', 'rand')
    yield
    cluster.ceph('osd', 'pool', 'rm', POOL, POOL, '--yes-i-really-really-mean-it',
                 check=False)


def rbd_du(cluster: DevCluster, *args: str) -> Dict[str, Any]:
    return json.loads(rbd(cluster, 'du', '--format', 'json', *args))  # type: ignore[no-any-return]


def ours_as_rbd_du(result: Dict[str, Any], namespace: str) -> List[Tuple[Any, ...]]:
    """Our images as the rows `rbd du` prints: each snapshot, then the image."""
    rows = []
    for i in result['images']:
        if i['namespace'] != namespace:
            continue
        for s in i['snapshots']:
            rows.append((i['name'], i['id'], s['name'], s['id'], s['provisioned_bytes'],
                         s['used_bytes']))
        rows.append((i['name'], i['id'], None, None, i['provisioned_bytes'], i['used_bytes']))
    return sorted(rows, key=repr)


def theirs(du: Dict[str, Any]) -> List[Tuple[Any, ...]]:
    return sorted(((e['name'], e['id'], e.get('snapshot'), e.get('snapshot_id'),
                    e['provisioned_size'], e['used_size']) for e in du['images']), key=repr)


def test_equals_rbd_du_byte_for_byte(cluster: DevCluster, bg: Bgtask, images: None) -> None:
    task = bg.json('rbd-du', POOL)
    assert task['description'] == f"Getting RBD disk usage of pool '{POOL}'"
    done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=120)
    assert done['state'] == 'finished', done
    r = done['result']
    default, ns1 = rbd_du(cluster, '-p', POOL), rbd_du(cluster, '-p', POOL, '--namespace', 'ns1')
    assert ours_as_rbd_du(r, '') == theirs(default)
    assert ours_as_rbd_du(r, 'ns1') == theirs(ns1)
    by_name = {i['name']: i for i in r['images']}
    assert by_name['fd']['fast_diff'] is True and by_name['nofd']['fast_diff'] is False
    # Written, so used is below provisioned, and the snapshots hold some of it.
    assert 0 < by_name['nofd']['used_bytes'] < by_name['nofd']['provisioned_bytes']
    assert by_name['fd']['snapshots'][0]['used_bytes'] == 16 << 20
    assert by_name['plain']['used_bytes'] == by_name['plain']['provisioned_bytes'] == 37 << 20
    assert r['pools'] == [{
        'pool': POOL, 'images': 6,
        'provisioned_bytes': default['total_provisioned_size'] + ns1['total_provisioned_size'],
        'used_bytes': default['total_used_size'] + ns1['total_used_size']}]
    assert r['total']['images'] == 6 and r['measurements'] == 6
    # The largest used first.
    used = [i['used_bytes'] + sum(s['used_bytes'] for s in i['snapshots'])
            for i in r['images']]
    assert used == sorted(used, reverse=True)
    text = bg.run('show', str(task['id'])).stdout
    assert 'fd@s1' in text and 'PROVISIONED' in text


def test_one_image_over_rest_and_refusals(api: RestApi, images: None,
                                          cluster: DevCluster) -> None:
    res = api.post('/api/taskqueue/rbd_du', {'pool': POOL, 'image': 'ns1/inner'})
    assert res.status_code == 201, res.text
    done = api.wait_task(res.json()['id'], lambda t: t['state'] != 'pending', timeout=60)
    inner = done['result']['images']
    ours = ours_as_rbd_du(done['result'], 'ns1')
    assert [i['name'] for i in inner] == ['inner']
    assert ours == theirs(rbd_du(cluster, '--namespace', 'ns1', f'{POOL}/inner'))
    for body, status, text in (
            ({'pool': 'nope'}, 404, "pool 'nope' not found"),
            ({'pool': POOL, 'image': 'nope'}, 404, "image 'nope' not found"),
            ({'image': 'fd'}, 400, 'needs its pool'),
            ({'pool': 5}, 400, 'pool must be a pool name')):
        res = api.post('/api/taskqueue/rbd_du', body)
        assert res.status_code == status and text in res.text, (body, res.text)


@pytest.fixture
def slow_pool(cluster: DevCluster) -> Iterator[List[str]]:
    """A pool of images without object maps, some data in each, and the mgr's librbd
    held to one operation at a time; yields the image names in the order a run takes
    them (by id)."""
    cluster.ceph('osd', 'pool', 'create', SLOW, '8', '8')
    rbd(cluster, 'pool', 'init', SLOW)
    ids = {}
    for n in range(SLOW_IMAGES):
        name = f'img{n:02}'
        rbd(cluster, 'create', '--size', SLOW_SIZE, '--object-size', SLOW_OBJECT,
            '--image-feature', 'layering', f'{SLOW}/{name}')
        write(cluster, f'{SLOW}/{name}', '2M')
        rbd(cluster, 'snap', 'create', f'{SLOW}/{name}@s')
        ids[name] = json.loads(rbd(cluster, 'info', '--format', 'json', f'{SLOW}/{name}'))['id']
    cluster.ceph('config', 'set', 'mgr', 'rbd_concurrent_management_ops', '1')
    yield sorted(ids, key=lambda name: ids[name])
    cluster.ceph('config', 'rm', 'mgr', 'rbd_concurrent_management_ops')
    cluster.ceph('osd', 'pool', 'rm', SLOW, SLOW, '--yes-i-really-really-mean-it',
                 check=False)


def test_failover_midway_goes_on_after_the_images_measured(
        cluster: DevCluster, bg: Bgtask, slow_pool: List[str]) -> None:
    task = bg.json('rbd-du', SLOW)
    bg.wait_task(task['id'], lambda t: t['percent'] > 0, timeout=120)
    cluster.fail_mgr()
    done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=300)
    assert done['state'] == 'finished', done
    r = done['result']
    assert r['runs'] == 2 and r['total']['images'] == SLOW_IMAGES
    assert sorted(i['name'] for i in r['images']) == sorted(slow_pool)
    # Those the old mgr had measured kept their entries: the new one went on after them.
    assert {i['run'] for i in r['images']} == {1, 2}
    assert r['measurements'] == SLOW_IMAGES


def test_deleted_image_abort_and_deleted_pool_midway(cluster: DevCluster, bg: Bgtask,
                                                     api: RestApi,
                                                     slow_pool: List[str]) -> None:
    task = bg.json('rbd-du', SLOW)
    # The same request while it is pending is that task.
    again = api.post('/api/taskqueue/rbd_du', {'pool': SLOW})
    assert again.status_code == 200 and again.json()['id'] == task['id'], again.text
    bg.wait_task(task['id'], lambda t: t['percent'] > 0, timeout=120)
    rbd(cluster, 'snap', 'purge', f'{SLOW}/{slow_pool[-1]}')    # the last one the run
    rbd(cluster, 'rm', f'{SLOW}/{slow_pool[-1]}')               # reaches
    done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=300)
    assert done['state'] == 'finished', done
    r = done['result']
    assert [(i['name'], i['reason']) for i in r['not_measured']] == \
        [(slow_pool[-1], 'deleted during the run')]
    assert r['total']['images'] == SLOW_IMAGES - 1

    task = bg.json('rbd-du', SLOW)
    bg.wait_task(task['id'], lambda t: t['percent'] > 0, timeout=120)
    aborted = bg.json('rm', str(task['id']), '--yes-i-really-mean-it')
    assert aborted['status'] == 'Aborted'

    task = bg.json('rbd-du', SLOW)
    bg.wait_task(task['id'], lambda t: t['percent'] > 0, timeout=120)
    cluster.ceph('osd', 'pool', 'rm', SLOW, SLOW, '--yes-i-really-really-mean-it')
    done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=120)
    assert done['state'] == 'failed' and done['error'] == f"pool '{SLOW}' was deleted", done
