"""A real throwaway cluster (1 mon, 2 mgrs, 3 memstore OSDs) for the whole session."""
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'dev'))

from devcluster import DevCluster  # noqa: E402


class Bgtask:
    """`ceph bgtask ...` against the test cluster."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster

    def json(self, *args: str) -> Any:
        return self.cluster.ceph('bgtask', *args, json_out=True)

    def run(self, *args: str) -> Any:
        """Returns the completed process, whatever its exit code."""
        return self.cluster.ceph('bgtask', *args, check=False)

    def ls(self, state: str = 'all') -> List[Dict[str, Any]]:
        return self.json('ls', state)  # type: ignore[no-any-return]

    def show(self, task_id: int) -> Dict[str, Any]:
        return self.json('show', str(task_id))  # type: ignore[no-any-return]

    def set_option(self, key: str, value: str) -> None:
        self.cluster.ceph('config', 'set', 'mgr', f'mgr/bgtasks/{key}', value)

    def wait_task(self, task_id: int, predicate: Callable[[Dict[str, Any]], bool],
                  timeout: float = 60.0) -> Dict[str, Any]:
        end = time.monotonic() + timeout
        last: Dict[str, Any] = {}
        while time.monotonic() < end:
            res = self.run('show', str(task_id), '-f', 'json')
            if res.returncode == 0:
                last = json.loads(res.stdout)
                if predicate(last):
                    return last
            time.sleep(0.3)
        raise AssertionError(f'task {task_id} never got there; last seen: {last}')


@pytest.fixture(scope='session')
def cluster() -> Iterator[DevCluster]:
    folder = tempfile.mkdtemp(prefix='bgtasks-it-')
    c = DevCluster(folder)
    try:
        c.start(mgrs=2, osds=3, module_options={'test_round_seconds': '0.5'})
        yield c
    finally:
        c.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def bg(cluster: DevCluster) -> Bgtask:
    return Bgtask(cluster)


def no_module_error(cluster: DevCluster) -> bool:
    health = cluster.ceph('health', 'detail', json_out=True)
    return 'MGR_MODULE_ERROR' not in health.get('checks', {})
