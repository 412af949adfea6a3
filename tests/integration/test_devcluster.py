"""`dev/cluster` as a new user meets it: what `start` prints works, a second start and a
second stop are harmless, and Ctrl-C during a start leaves nothing running."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import REPO, RestApi

from devcluster import DEMO_IMAGES, DEMO_POOL, DevCluster, free_port

TOOL = os.path.join(REPO, 'dev', 'cluster')


def dev_cluster(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([TOOL, '--dir', str(folder), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def printed(stdout: str) -> Dict[str, str]:
    """The `key: value` lines start prints (URL, username, password), and the export line."""
    lines: Dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith('export CEPH_CONF='):
            lines['export'] = line
        elif ':' in line and not line.startswith(' '):
            key, value = line.split(':', 1)
            lines[key.strip()] = value.strip()
    return lines


@pytest.fixture(scope='module')
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix='bgtasks-dc-'))
    try:
        yield path
    finally:
        dev_cluster(path, 'stop')
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def started(folder: Path) -> subprocess.CompletedProcess:
    # A port of its own: the session's cluster and a developer's may run beside it.
    proc = dev_cluster(folder, 'start', '--module-option', f'server_port={free_port()}',
                       '--module-option', 'server_addr=127.0.0.1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_start_prints_a_working_url_and_login(folder: Path,
                                              started: subprocess.CompletedProcess) -> None:
    lines = printed(started.stdout)
    assert lines['export'] == f'export CEPH_CONF={folder / "ceph.conf"}'
    assert lines['URL'].startswith('https://127.0.0.1:')
    examples = [ln for ln in started.stdout.splitlines() if 'ceph bgtask' in ln]
    assert len(examples) == 3, started.stdout
    assert any(f'set-pg-num {DEMO_POOL} ' in ln for ln in examples)
    api = RestApi(DevCluster(folder), int(lines['URL'].rsplit(':', 1)[1].strip('/')))
    api.passwords[lines['username']] = lines['password']
    pools = {p['name']: p for p in api.get('/api/pools', user=lines['username']).json()}
    assert DEMO_POOL in pools and 'rbd' in pools[DEMO_POOL]['applications']
    images = api.get(f'/api/pools/{DEMO_POOL}/images', user=lines['username']).json()
    assert sorted(i['name'] for i in images) == sorted(i[0] for i in DEMO_IMAGES)
    # Some of them hold data, so a PG change moves real objects (`ceph df` counts from PG
    # stats, which reach the mgr up to a report period after the writes).
    cluster = DevCluster(folder)

    def demo_objects() -> int:
        pools = cluster.ceph('df', json_out=True)['pools']
        return int([p for p in pools if p['name'] == DEMO_POOL][0]['stats']['objects'])

    assert cluster.wait_for(demo_objects, timeout=60, what='the demo images\' objects') > 0


def test_second_start_prints_the_same_and_starts_nothing(
        folder: Path, started: subprocess.CompletedProcess) -> None:
    pids = DevCluster(folder).daemon_pids()
    again = dev_cluster(folder, 'start')
    assert again.returncode == 0, again.stderr
    assert 'already up' in again.stderr
    assert again.stdout == started.stdout
    assert DevCluster(folder).daemon_pids() == pids
    status = dev_cluster(folder, 'status')
    assert status.returncode == 0
    assert started.stdout.strip() in status.stdout


def test_stop_twice(folder: Path, started: subprocess.CompletedProcess) -> None:
    first = dev_cluster(folder, 'stop')
    assert first.returncode == 0 and not folder.exists(), first.stderr
    second = dev_cluster(folder, 'stop')
    assert second.returncode == 0, second.stderr
    assert 'nothing to stop' in second.stdout


def test_ctrl_c_during_start_leaves_no_daemons() -> None:
    folder = Path(tempfile.mkdtemp(prefix='bgtasks-dc-int-'))
    proc = subprocess.Popen([TOOL, '--dir', str(folder), 'start', '--module-option',
                             f'server_port={free_port()}'], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cluster = DevCluster(folder)
        seen: List[str] = []
        end = time.monotonic() + 120
        # Interrupted once the mgrs and OSDs are being started: the most to leave behind.
        while time.monotonic() < end and not any(d.startswith('osd.') for d in seen):
            seen = list(cluster.daemon_pids())
            time.sleep(0.1)
        assert any(d.startswith('osd.') for d in seen), 'start never got to the OSDs'
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]
        assert 'interrupted' in err
        assert DevCluster(folder).daemon_pids() == {}
        assert not folder.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        DevCluster(folder).stop()
        shutil.rmtree(folder, ignore_errors=True)
