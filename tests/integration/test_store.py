"""Issue 14: task records live in RADOS omap (the mgr's pool, namespace `bgtasks`), not in
the mon's config-key store; tasks made before the pool exists wait in config-key and move;
an older bgtasks' config-key records move too, even when the move is cut short by kill -9;
an old active mgr, fenced by the failover, writes nothing that lands."""
import json
import os
import signal
import tempfile
import shutil
import time
from typing import Any, Dict, Iterator, List

import pytest

from conftest import Bgtask
from devcluster import DevCluster

NAMESPACE = 'bgtasks'


def omap(cluster: DevCluster, pool: str) -> Dict[str, Dict[str, str]]:
    """Every record in the module's namespace, read with the cluster's own librados."""
    out = cluster.run(cluster.script('radostool.py', 'omap', pool, NAMESPACE),
                      timeout=120).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def records(cluster: DevCluster, pool: str) -> Dict[int, Dict[str, Any]]:
    found: Dict[int, Dict[str, Any]] = {}
    for obj, entries in omap(cluster, pool).items():
        for key, value in entries.items():
            if key.startswith('task/'):
                task_id = int(key[len('task/'):])
                assert obj == 'tasks.%06d' % (task_id // 4096), (obj, key)
                assert task_id not in found, f'task {task_id} stored twice'
                found[task_id] = json.loads(value)
    return found


def kv_task_keys(cluster: DevCluster) -> List[str]:
    keys = cluster.ceph('config-key', 'ls', json_out=True)
    return [k for k in keys if k.startswith('mgr/bgtasks/task/') or k == 'mgr/bgtasks/id_floor']


def store_of(bg: Bgtask) -> Dict[str, Any]:
    return bg.json('store')  # type: ignore[no-any-return]


def test_records_live_in_omap_and_not_in_config_key(cluster: DevCluster, bg: Bgtask) -> None:
    where = store_of(bg)
    assert where['backend'] == 'rados' and where['namespace'] == NAMESPACE
    pools = [p['pool_name'] for p in cluster.ceph('osd', 'pool', 'ls', 'detail',
                                                  json_out=True)]
    assert where['pool'] in pools
    assert where['max_record_bytes'] >= 1 << 20
    task = bg.json('test', '2')
    done = bg.wait_task(task['id'], lambda t: t['state'] == 'finished')
    stored = records(cluster, where['pool'])
    assert stored[task['id']]['status'] == 'Finished'
    assert stored[task['id']]['result'] == done['result'] == {'rounds': 2}
    assert stored[task['id']].get('v') == 1
    assert kv_task_keys(cluster) == []
    after = store_of(bg)
    assert after['records'] >= 1 and after['bytes'] > 0
    assert bg.run('rm', str(task['id'])).returncode == 0
    assert task['id'] not in records(cluster, where['pool'])


def test_a_record_over_64_kib_round_trips(cluster: DevCluster, bg: Bgtask) -> None:
    """rbd-du of 400 images: a result the mon's config-key could not have held."""
    pool = 'bigrecord'
    cluster.ceph('osd', 'pool', 'create', pool, '8')
    cluster.ceph('osd', 'pool', 'application', 'enable', pool, 'rbd')
    try:
        cluster.run(cluster.script('radostool.py', 'images', pool, 'image-', '400'),
                    timeout=300)
        task = bg.json('rbd-du', pool)
        done = bg.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=300)
        assert done['state'] == 'finished', done['error']
        assert len(done['result']['images']) == 400 and done['result']['other_images'] == 0
        stored = records(cluster, store_of(bg)['pool'])[task['id']]
        assert len(json.dumps(stored)) > 65536
        assert stored['result'] == done['result']
        bg.run('rm', str(task['id']))
    finally:
        cluster.ceph('osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it',
                     check=False)


def test_a_fenced_old_active_writes_nothing_that_lands(cluster: DevCluster, bg: Bgtask) -> None:
    """The active mgr is frozen with tasks running, failed over, and thawed. The failover
    blocklisted the RADOS client its records go through, and the module never opens
    another one once another mgr is active: whatever the old one still sends, no record
    goes back to what it had."""
    pool = store_of(bg)['pool']
    tasks = [bg.json('test', '40') for _ in range(8)]
    for t in tasks:
        bg.wait_task(t['id'], lambda x: x['percent'] > 0)
    old = cluster.active_mgr()
    clients = [c for c in cluster.mgr_dump().get('active_clients', [])
               if c['name'] == 'bgtasks']
    addrs = [f"{a['addr']}/{a['nonce']}" for c in clients for a in c['addrvec']]
    assert addrs, 'the module registered no RADOS client with the mgr map'
    pid = cluster.mgr_pid(old)
    assert pid is not None
    log = cluster.mgr_log_path(old)
    mark = log.stat().st_size
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.ceph('mgr', 'fail', old)
        new = cluster.wait_for(
            lambda: (lambda d: d.get('available') and d.get('active_name') not in (None, old)
                     and d['active_name'])(cluster.mgr_dump()),
            timeout=60, what='another mgr to be active')
        blocklist = cluster.ceph('osd', 'blocklist', 'ls', check=False)
        blocklist = blocklist.stdout + blocklist.stderr
        assert all(a in blocklist for a in addrs), (addrs, blocklist)
        # The new active runs the tasks on and stores their steps.
        for t in tasks:
            bg.wait_task(t['id'], lambda x: x['status'] == 'Running'
                         and x['percent'] >= 5)
        before = {i: r['last_modified'] for i, r in records(cluster, pool).items()
                  if i in {t['id'] for t in tasks}}
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(5)
    after = records(cluster, pool)
    for t in tasks:
        bg.run('rm', str(t['id']), '--yes-i-really-mean-it')
    assert cluster.active_mgr() == new
    for task_id, modified in before.items():
        assert after[task_id]['last_modified'] >= modified, \
            f'task {task_id}: an older record landed after the failover'
    text = log.read_bytes()[mark:].decode(errors='replace')
    assert 'RADOS client blocklisted; reconnecting' not in text
    cluster.wait_mgrs()


def test_an_osd_down_makes_creates_eagain_and_loses_nothing(cluster: DevCluster,
                                                            bg: Bgtask) -> None:
    """The OSD holding the records stops: a create is refused with EAGAIN after a bounded
    wait (and never appears later), a running task's step records wait and land once the
    OSD is back, and the task finishes."""
    pool = store_of(bg)['pool']
    running = bg.json('test', '30')
    bg.wait_task(running['id'], lambda t: t['percent'] > 0)
    where = cluster.ceph('osd', 'map', pool, 'tasks.%06d' % (running['id'] // 4096), NAMESPACE,
                         json_out=True)
    osd = int(where['acting_primary'])
    cluster.stop_osd(osd)
    try:
        began = time.monotonic()
        refused = bg.run('test', '1')
        waited = time.monotonic() - began
        assert refused.returncode == 11, (refused.returncode, refused.stderr)  # EAGAIN
        assert 'try again' in refused.stderr and waited < 30
        assert store_of(bg)['pending_writes'] >= 0
    finally:
        cluster.start_osd(osd)
    done = bg.wait_task(running['id'], lambda t: t['state'] == 'finished', timeout=120)
    assert done['result'] == {'rounds': 30}
    cluster.wait_for(lambda: store_of(bg)['pending_writes'] == 0, timeout=60,
                     what='every pending write to land')
    stored = records(cluster, pool)
    assert stored[running['id']]['status'] == 'Finished'
    # The refused create's record, if its write landed late, was deleted after it.
    assert not [i for i in stored if i > running['id']]
    assert not [t for t in bg.ls('all') if t['id'] > running['id']]
    bg.run('rm', str(running['id']))


# ----------------------------------------------------- a cluster of its own, without OSDs


@pytest.fixture(scope='module')
def bare(rest_port: int) -> Iterator[DevCluster]:
    folder = tempfile.mkdtemp(prefix='bgtasks-store-')
    c = DevCluster(folder)
    try:
        c.start(mgrs=2, osds=0, module_options={'test_round_seconds': '0.2',
                                                'server_addr': '127.0.0.1',
                                                'server_port': str(rest_port + 1)})
        yield c
    finally:
        c.stop()
        shutil.rmtree(folder, ignore_errors=True)


def health_checks(cluster: DevCluster) -> Dict[str, Any]:
    return cluster.ceph('health', 'detail', json_out=True).get('checks', {})  # type: ignore


def test_before_the_pool_tasks_wait_in_config_key_then_move(bare: DevCluster) -> None:
    bg = Bgtask(bare)
    where = store_of(bg)
    assert where['backend'] == 'config-key' and where['waiting_for_pool']
    task = bg.json('test', '1')
    assert bg.wait_task(task['id'], lambda t: t['state'] == 'finished')
    assert f'mgr/bgtasks/task/{task["id"]:010d}' in kv_task_keys(bare)
    check = bare.wait_for(lambda: health_checks(bare).get('BGTASKS_STORE_WAITING'),
                          timeout=30, what='BGTASKS_STORE_WAITING')
    assert where['waiting_for_pool'] in json.dumps(check)
    bare.add_osd()
    bare.wait_for(lambda: store_of(bg)['backend'] == 'rados', timeout=120,
                  what='the records to move into RADOS',
                  diag=lambda: json.dumps(store_of(bg)) + bare.module_log(records=10))
    bare.wait_for(lambda: 'BGTASKS_STORE_WAITING' not in health_checks(bare), timeout=30,
                  what='BGTASKS_STORE_WAITING to clear')
    assert kv_task_keys(bare) == []
    stored = records(bare, store_of(bg)['pool'])
    assert stored[task['id']]['status'] == 'Finished'
    assert bg.show(task['id'])['status'] == 'Finished'


def test_records_of_an_older_bgtasks_move_even_when_killed_midway(bare: DevCluster) -> None:
    bg = Bgtask(bare)
    first, count = 50001, 3000
    bare.ceph('mgr', 'module', 'disable', 'bgtasks')
    bare.wait_mgrs()
    bare.run(bare.script('radostool.py', 'kvset', first, count, 1), timeout=300)
    bare.ceph('mgr', 'module', 'enable', 'bgtasks')
    # Killed while the old keys are being deleted: some gone, some not.
    killed = ''
    end = time.monotonic() + 120
    while time.monotonic() < end:
        left = len(kv_task_keys(bare))
        if 0 < left < count:
            killed = bare.active_mgr()
            bare.kill_mgr(killed)
            break
        if left == 0:
            break
        time.sleep(0.05)
    if killed:
        bare.start_mgr(killed)
    bare.wait_for(lambda: bg.run('ls').returncode == 0, timeout=120,
                  what='bgtasks to answer after the move')
    bare.wait_for(lambda: not kv_task_keys(bare), timeout=120, what='the old keys to go')
    ids = [t['id'] for t in bg.ls('all')]
    moved = [i for i in ids if first <= i < first + count]
    assert len(moved) == len(set(moved)) == count
    pending = bg.wait_task(first + count - 1, lambda t: t['state'] == 'finished')
    assert pending['result'] == {'rounds': 1}
    assert bg.show(first)['created_by'] == 'old-bgtasks'
    stored = records(bare, store_of(bg)['pool'])
    assert all(first + i in stored for i in range(count))
    fresh = bg.json('test', '1')
    assert fresh['id'] > first + count - 1          # ids never reused
    assert killed, 'the move finished before it could be cut short; nothing was interrupted'


def test_an_unreadable_record_is_kept_aside_and_named(bare: DevCluster) -> None:
    bg = Bgtask(bare)
    pool = store_of(bg)['pool']
    key = 'task/%010d' % 90001
    bare.run(bare.script('radostool.py', 'setomap', pool, NAMESPACE, 'tasks.%06d' % (90001 // 4096),
                         key, '{"id": 90001, "kind": "test", "trunc'))
    bare.fail_mgr()             # the next active loads it
    check = bare.wait_for(lambda: health_checks(bare).get('BGTASKS_UNREADABLE_RECORDS'),
                          timeout=60, what='BGTASKS_UNREADABLE_RECORDS')
    assert key in json.dumps(check)
    assert store_of(bg)['unreadable'] == [key]
    assert bg.json('test', '1')['id'] > 90001           # its id is not handed out again
    assert key in omap(bare, pool)['tasks.%06d' % (90001 // 4096)]     # never dropped
