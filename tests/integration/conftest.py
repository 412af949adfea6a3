"""A real throwaway cluster (1 mon, 2 mgrs, 3 memstore OSDs) for the whole session.

The REST server listens on 127.0.0.1 on a free port; the session creates an `admin` and a
`read-only` user through the CLI (`ceph bgtask user create ... -i <password file>`).
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urljoin

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'dev'))

from devcluster import DevCluster, free_port  # noqa: E402
from release import release  # noqa: E402


# The Ceph version every cluster of the run reported, for the summary.
CEPH_VERSIONS: List[str] = []


def pytest_report_header(config: pytest.Config) -> str:
    return f'bgtasks integration tests on Ceph {release().name} (BGTASKS_RELEASE)'


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for version in dict.fromkeys(CEPH_VERSIONS):
        terminalreporter.write_line(f'Ceph under test ({release().name}): {version}')


def pytest_configure(config: pytest.Config) -> None:
    # The module serves a self-signed certificate; tests that check it do so explicitly.
    config.addinivalue_line('filterwarnings',
                            'ignore::urllib3.exceptions.InsecureRequestWarning')


REST_ADMIN = 'rest-admin'
REST_READER = 'rest-reader'
PASSWORDS = {REST_ADMIN: 'Adm1n-pass-w0rd!', REST_READER: 'Read-0nly-pass!'}
ROLES = {REST_ADMIN: 'admin', REST_READER: 'read-only'}


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
def rest_port() -> int:
    return free_port()


@pytest.fixture(scope='session')
def cluster(rest_port: int) -> Iterator[DevCluster]:
    folder = tempfile.mkdtemp(prefix='bgtasks-it-')
    c = DevCluster(folder)
    try:
        c.start(mgrs=2, osds=3, module_options={'test_round_seconds': '0.5',
                                                'server_addr': '127.0.0.1',
                                                'server_port': str(rest_port)})
        CEPH_VERSIONS.append(c.version())
        yield c
    finally:
        keep = os.environ.get('BGTASKS_KEEP_LOGS')
        if keep:        # the daemons' logs and crash reports, for a failure seen in CI
            # Copied before stop(), which removes the folder.
            for part in ('log', 'crash'):
                if os.path.isdir(os.path.join(folder, part)):
                    shutil.copytree(os.path.join(folder, part), os.path.join(keep, part),
                                    dirs_exist_ok=True)
        c.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def bg(cluster: DevCluster) -> Bgtask:
    return Bgtask(cluster)


def no_module_error(cluster: DevCluster) -> bool:
    health = cluster.ceph('health', 'detail', json_out=True)
    return 'MGR_MODULE_ERROR' not in health.get('checks', {})


# ---------------------------------------------------------------------- REST


def password_file(cluster: DevCluster, name: str, password: str) -> str:
    """A file holding `password` (no trailing newline), for `-i`."""
    path = cluster.dir / 'tmp' / f'pw-{name}'
    path.write_text(password)
    return str(path)


def create_user(cluster: DevCluster, username: str, role: str, password: str) -> None:
    cluster.ceph('bgtask', 'user', 'create', username, role, '-i',
                 password_file(cluster, username, password))


def no_traceback(text: str) -> bool:
    return 'Traceback' not in text and 'File "/' not in text


class RestApi:
    """The module's REST server on 127.0.0.1:<port>, with a cached token per user."""

    def __init__(self, cluster: DevCluster, port: int) -> None:
        self.cluster = cluster
        self.port = port
        self.scheme = 'https'
        self.passwords: Dict[str, str] = dict(PASSWORDS)
        self._tokens: Dict[str, str] = {}

    @property
    def base(self) -> str:
        return f'{self.scheme}://127.0.0.1:{self.port}'

    def url(self, path: str) -> str:
        return urljoin(self.base + '/', path)

    def request(self, method: str, path: str, user: Optional[str] = None,
                token: Optional[str] = None, **kwargs: Any) -> requests.Response:
        """One request; `user` authenticates with that user's (cached) bearer token."""
        headers = dict(kwargs.pop('headers', None) or {})
        if user is not None:
            token = self.token(user)
        if token is not None:
            headers['Authorization'] = f'Bearer {token}'
        kwargs.setdefault('timeout', 30)
        kwargs.setdefault('allow_redirects', False)
        with self.session() as s:
            return s.request(method, self.url(path), headers=headers, **kwargs)

    @staticmethod
    def session() -> requests.Session:
        """A session that ignores the environment's CA bundle and proxies (loopback only)."""
        s = requests.Session()
        s.trust_env = False
        s.verify = False
        return s

    def get(self, path: str, user: Optional[str] = REST_ADMIN, **kwargs: Any
            ) -> requests.Response:
        return self.request('GET', path, user=user, **kwargs)

    def post(self, path: str, body: Any, user: Optional[str] = REST_ADMIN, **kwargs: Any
             ) -> requests.Response:
        return self.request('POST', path, user=user, json=body, **kwargs)

    def delete(self, path: str, user: Optional[str] = REST_ADMIN, **kwargs: Any
               ) -> requests.Response:
        return self.request('DELETE', path, user=user, **kwargs)

    def login(self, username: str, password: Optional[str] = None) -> requests.Response:
        if password is None:
            password = self.passwords[username]
        return self.request('POST', '/api/auth/login',
                            json={'username': username, 'password': password})

    def new_token(self, username: str) -> str:
        res = self.login(username)
        assert res.status_code == 200, f'login {username}: {res.status_code} {res.text}'
        return str(res.json()['token'])

    def token(self, username: str) -> str:
        if username not in self._tokens:
            self._tokens[username] = self.new_token(username)
        return self._tokens[username]

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def answers(self) -> bool:
        try:
            with self.session() as s:
                res = s.get(self.url('/api/openapi.json'), timeout=5)
        except requests.RequestException:
            return False
        return res.status_code == 200

    def wait_answers(self, timeout: float = 90) -> None:
        """Wait until the server answers; drop cached tokens that no longer work."""
        self.cluster.wait_for(self.answers, timeout=timeout, interval=0.5,
                              what=f'bgtasks REST server on {self.base}',
                              diag=lambda: self.cluster.module_log())
        for user, token in list(self._tokens.items()):
            res = self.request('GET', '/api/auth/me', token=token)
            if res.status_code != 200:
                del self._tokens[user]

    def create_test(self, times: int, user: str = REST_ADMIN,
                    prefix: str = '') -> Dict[str, Any]:
        res = self.post(f'{prefix}/api/taskqueue/test_task', {'times': times}, user=user)
        assert res.status_code == 201, f'{res.status_code} {res.text}'
        return dict(res.json())

    def task(self, task_id: int) -> Dict[str, Any]:
        res = self.get(f'/api/taskqueue/{task_id}')
        assert res.status_code == 200, f'{res.status_code} {res.text}'
        return dict(res.json())

    def wait_task(self, task_id: int, predicate: Callable[[Dict[str, Any]], bool],
                  timeout: float = 60) -> Dict[str, Any]:
        end = time.monotonic() + timeout
        last: Dict[str, Any] = {}
        while time.monotonic() < end:
            last = self.task(task_id)
            if predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f'task {task_id} never got there; last seen: {last}')

    def served_cert(self, port: Optional[int] = None) -> bytes:
        """The DER certificate the server presents (not verified)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(('127.0.0.1', port or self.port), timeout=10) as sock:
            with ctx.wrap_socket(sock) as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


@pytest.fixture(scope='session')
def rest_session(cluster: DevCluster, rest_port: int) -> RestApi:
    for username, password in PASSWORDS.items():
        create_user(cluster, username, ROLES[username], password)
    rest = RestApi(cluster, rest_port)
    rest.wait_answers()
    return rest


@pytest.fixture
def api(rest_session: RestApi) -> RestApi:
    """The REST server, answering (it may have moved to another mgr in an earlier test)."""
    rest_session.wait_answers()
    return rest_session


# ====================================================================== faults
# Added for tests/integration/test_faults.py (issue 7). Additive only: helpers to take the
# mon away and bring it back, which DevCluster has no method for.


def kill_mon(cluster: DevCluster, ident: str = 'a', sig: Optional[int] = None,
             timeout: float = 30) -> List[str]:
    """Kill mon.<ident> (SIGKILL unless `sig`) and wait until it is gone.

    Returns its command line (read from /proc/<pid>/cmdline) for start_mon().
    """
    import signal
    from devcluster import DevClusterError, _pid_alive, _read_cmdline
    pid = cluster.daemon_pid(f'mon.{ident}')
    if pid is None:
        raise DevClusterError(f'mon.{ident} is not running in {cluster.dir}')
    argv = _read_cmdline(pid)
    os.kill(pid, signal.SIGKILL if sig is None else sig)
    cluster.wait_for(lambda: not _pid_alive(pid), timeout=timeout, interval=0.05,
                     what=f'mon.{ident} (pid {pid}) to exit')
    return argv


def start_mon(cluster: DevCluster, argv: List[str], ident: str = 'a',
              timeout: float = 60) -> int:
    """Run the mon's command line again (ceph-mon daemonizes itself) and wait until it
    answers `ceph mon stat`; returns its pid."""
    from devcluster import DevClusterError
    if cluster.daemon_pid(f'mon.{ident}') is None:
        # The command line as the mon saw it: in its release's chroot, if it has one (the
        # host's older ceph-mon cannot read a newer mon's store).
        cluster.run(cluster.release.command(argv), timeout=timeout)
    cluster.wait_for(lambda: cluster.ceph('mon', 'stat', check=False,
                                          timeout=10).returncode == 0,
                     timeout=timeout, interval=0.3, what=f'mon.{ident} to answer')
    pid = cluster.daemon_pid(f'mon.{ident}')
    if pid is None:
        raise DevClusterError(f'mon.{ident} exited after its restart')
    return pid


# ---------------------------------------------------------------------- RBD load


def rbd(cluster: DevCluster, *args: str) -> str:
    return cluster.run(cluster.command('rbd', *args), timeout=120).stdout


class RbdLoad:
    """`rbd bench` on one image until stopped, held to `iops` by librbd's QoS so that the
    load is steady on a busy two-core machine and every tool sees the same rate.

    QoS is a cap, not a promise: on a loaded machine the bench can fall short of it, so
    what it really did is kept, from its own once-a-second count of operations."""

    def __init__(self, cluster: DevCluster, pool: str, image: str, io_type: str = 'write',
                 iops: int = 400) -> None:
        rbd(cluster, 'config', 'image', 'set', f'{pool}/{image}', 'rbd_qos_iops_limit',
            str(iops))
        self.counts: List[Tuple[float, int]] = []        # (wall time, operations so far)
        self.proc = subprocess.Popen(
            cluster.command('rbd', 'bench', '--io-type', io_type, '--io-size', '4096',
                            '--io-threads', '2', '--io-total', '100G', '--io-pattern', 'rand',
                            f'{pool}/{image}'),
            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            # "  SEC       OPS   OPS/SEC   BYTES/SEC" then "    3      1202   400.799   1.6 MiB/s"
            fields = line.split()
            if len(fields) >= 3 and fields[0].isdigit() and fields[1].isdigit():
                self.counts.append((time.time(), int(fields[1])))

    def rate(self, start: float, end: float) -> float:
        """Operations per second the bench did between two wall-clock times, as far as its
        counts (one a second, until it was stopped) cover them."""
        start, end = max(start, self.counts[0][0]), min(end, self.counts[-1][0])
        return (self._ops_at(end) - self._ops_at(start)) / (end - start)

    def _ops_at(self, when: float) -> float:
        points = self.counts
        for (t0, n0), (t1, n1) in zip(points, points[1:]):
            if t0 <= when <= t1:
                return n0 + (n1 - n0) * (when - t0) / (t1 - t0)
        raise AssertionError(f'no count of operations at {when}')

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)


# ---------------------------------------------------------------------- browser

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']
OUTPUT = Path(REPO) / 'test-output'


@pytest.fixture(scope='session')
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one for the session; screenshots go to OUTPUT."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright as start
    except ImportError as exc:
        pytest.fail(f'the Python package playwright is missing ({exc}); tox installs it, '
                    f'or: pip install playwright')
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f'{CHROMIUM} missing: apt-get install chromium (dev/install-deps.sh)')
    OUTPUT.mkdir(exist_ok=True)
    with start() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                   headless=True, timeout=60000)
        except PlaywrightError as exc:
            pytest.skip(f'chromium cannot start: {str(exc).splitlines()[0]}')
        try:
            yield b
        finally:
            b.close()
