"""The REST server under load, with the Ceph dashboard's task list as the peer, same run.

Starts its own cluster (1 mon, 1 mgr, 1 OSD; bgtasks and the dashboard, both on 127.0.0.1),
then:
  A  --clients (20) keep-alive clients for --seconds (60) against bgtasks with a Bearer token,
     mixing in equal thirds: list (GET /api/taskqueue?state=pending), get (GET
     /api/taskqueue/<id>) and create (POST /api/taskqueue/test_task {"times": 1});
  B  --creates (1,000) creates from one client as fast as it goes, each persisted (checked in
     the omap of the mgr's pool afterwards), against --creates raw `config-key set` mon
     commands (what each create's store write cost before records moved to RADOS) measured
     in the same run; once on a
     fresh store before A, once after A (which leaves tens of thousands of tasks);
  C  the dashboard's GET /api/task from the same number of clients for the same time.
Prints requests/s, p50/p99 ms and errors per phase, the ratios, and the goals beside them.

Usage: /usr/bin/python3 bench/bench_rest.py [--seconds 60] [--clients 20] [--creates 1000]
                                            [--ssl] [--release pacific|tentacle]
On Pacific it installs Debian's ceph-mgr-dashboard (dev/install-deps.sh) if it is missing
(the Tentacle root has it). The raw config-key sets run in the release's own Python
(dev/radoscmd.py), timed there.
"""
import argparse
import http.client
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'dev'))
from devcluster import DevCluster, free_port  # noqa: E402
from radoscmd import RadosCmd  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

BENCH_USER = 'bench'
BENCH_PASSWORD = 'Bench-pass-w0rd!'
DASHBOARD_ACCEPT = 'application/vnd.ceph.api.v1.0+json'
GOAL_CREATES_PER_S = 300.0
GOAL_P99_MS = 100.0


class Client:
    """One keep-alive connection (http.client: little client overhead), reopened on error."""

    def __init__(self, port: int, tls: bool, headers: Dict[str, str]) -> None:
        self.port = port
        self.tls = tls
        self.headers = headers
        self.conn: Optional[http.client.HTTPConnection] = None
        self.reconnects = 0

    def _connect(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection('127.0.0.1', self.port, timeout=60,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)

    def request(self, method: str, path: str, body: Optional[Any] = None
                ) -> Tuple[int, bytes]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                payload = res.read()
                if (res.getheader('Connection') or '').lower() == 'close':
                    self.conn.close()
                    self.conn = None
                return res.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError('unreachable')

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


Op = Callable[[Client], bool]


@dataclass
class Result:
    seconds: float = 0.0
    errors: int = 0
    reconnects: int = 0
    mgr_cpu: float = 0.0            # mgr CPU seconds per second during the phase
    latencies: Dict[str, List[float]] = field(default_factory=dict)
    error_samples: List[str] = field(default_factory=list)

    @property
    def all(self) -> List[float]:
        return sorted(x for lat in self.latencies.values() for x in lat)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def pct(values: List[float], p: float) -> float:
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000.0


def run_load(clients: List[Client], ops: List[Tuple[str, Op]], seconds: float) -> Result:
    """Each client in its own thread runs ops round robin (offset by its index) until the
    deadline; latency per request in seconds, errors = anything but the expected status."""
    result = Result(latencies={name: [] for name, _ in ops})
    lock = threading.Lock()
    start = threading.Barrier(len(clients) + 1)
    deadline = [0.0]

    def worker(index: int, client: Client) -> None:
        local: Dict[str, List[float]] = {name: [] for name, _ in ops}
        errors = 0
        samples: List[str] = []
        i = index
        start.wait()
        while time.perf_counter() < deadline[0]:
            name, op = ops[i % len(ops)]
            i += 1
            t0 = time.perf_counter()
            try:
                ok = op(client)
            except Exception as exc:  # a failed request is counted, not fatal
                ok = False
                samples.append(f'{name}: {exc!r}')
            local[name].append(time.perf_counter() - t0)
            if not ok:
                errors += 1
        with lock:
            for name, lat in local.items():
                result.latencies[name].extend(lat)
            result.errors += errors
            result.error_samples.extend(samples[:3])

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True)
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    result.reconnects = sum(c.reconnects for c in clients)
    return result


def mgr_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def mon_commits(cluster: DevCluster) -> int:
    """Paxos commits of the mon so far (every config-key write is one, or shares one)."""
    asoks = cluster.asok_paths('mon.a')
    if not asoks:
        return -1
    # The release's own CLI (the host's `ceph` is Pacific's).
    out = cluster.run(cluster.command('ceph', '--admin-daemon', asoks[0], 'perf',
                                      'dump')).stdout
    return int(json.loads(out)['paxos']['commit'])


def drain(port: int, tls: bool, token: str, timeout: float = 600) -> float:
    """Waits until no task is pending (so a phase does not pay for the last one's
    backlog); returns the seconds waited."""
    c = Client(port, tls, {'Authorization': f'Bearer {token}'})
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < timeout:
            status, body = c.request('GET', '/api/taskqueue?state=pending&page=1&pageSize=1')
            if status == 200 and json.loads(body)['count'] == 0:
                return time.perf_counter() - t0
            time.sleep(0.5)
    finally:
        c.close()
    raise SystemExit(f'tasks still pending after {timeout:.0f} s')


def expect(status: int, wanted: int, body: bytes, samples: List[str]) -> bool:
    if status != wanted and len(samples) < 5:
        samples.append(f'{status}: {body[:200]!r}')
    return status == wanted


# ---------------------------------------------------------------------- setup

def ensure_dashboard_installed(cluster: DevCluster) -> None:
    rel = cluster.release
    if (rel.host_path(rel.stock_mgr_dir) / 'dashboard').is_dir():
        return
    if rel.root is not None:
        raise SystemExit(f'no dashboard in the {rel.name} root {rel.root}')
    subprocess.run(['bash', os.path.join(REPO, 'dev', 'install-deps.sh')], check=True)


def wait_http(cluster: DevCluster, port: int, tls: bool, path: str, what: str) -> None:
    def answers() -> bool:
        c = Client(port, tls, {})
        try:
            status, _ = c.request('GET', path)
            return status < 500
        except (OSError, http.client.HTTPException):
            return False
        finally:
            c.close()

    cluster.wait_for(answers, timeout=120, interval=1, what=what,
                     diag=lambda: cluster.ceph('health', 'detail', check=False).stdout)


def bgtasks_token(port: int, tls: bool) -> str:
    c = Client(port, tls, {})
    status, body = c.request('POST', '/api/auth/login',
                             {'username': BENCH_USER, 'password': BENCH_PASSWORD})
    c.close()
    if status != 200:
        raise SystemExit(f'bgtasks login failed: {status} {body[:300]!r}')
    return str(json.loads(body)['token'])


def dashboard_token(cluster: DevCluster, port: int) -> str:
    def login() -> Optional[str]:
        c = Client(port, False, {'Accept': DASHBOARD_ACCEPT})
        try:
            status, body = c.request('POST', '/api/auth',
                                     {'username': BENCH_USER, 'password': BENCH_PASSWORD})
        except (OSError, http.client.HTTPException):
            return None
        finally:
            c.close()
        return str(json.loads(body)['token']) if status in (200, 201) else None

    return cluster.wait_for(login, timeout=60, interval=1, what='dashboard login')


def setup(cluster: DevCluster, tls: bool) -> Tuple[int, int]:
    """Starts the cluster with bgtasks and the dashboard; returns their ports."""
    port, dport = free_port(), free_port()
    while dport == port:
        dport = free_port()
    cluster.start(mgrs=1, osds=1, module_options={
        'server_addr': '127.0.0.1', 'server_port': port, 'ssl': tls,
        'test_round_seconds': 0.01, 'max_retained': 1000000})
    cluster.enable_module('dashboard', options={'ssl': False, 'server_addr': '127.0.0.1',
                                                'server_port': dport})
    pwfile = cluster.dir / 'tmp' / 'bench-password'
    pwfile.write_text(BENCH_PASSWORD)
    cluster.ceph('bgtask', 'user', 'create', BENCH_USER, 'admin', '-i', str(pwfile))
    wait_http(cluster, port, tls, '/api/openapi.json', 'bgtasks REST server')
    wait_http(cluster, dport, False, '/', 'dashboard')
    cluster.wait_for(lambda: cluster.ceph('dashboard', 'ac-user-create', BENCH_USER, '-i',
                                          str(pwfile), 'administrator', check=False
                                          ).returncode == 0,
                     timeout=60, interval=2, what='dashboard ac-user-create')
    return port, dport


# ---------------------------------------------------------------------- phases

def phase_a(port: int, tls: bool, token: str, clients: int, seconds: float) -> Result:
    auth = {'Authorization': f'Bearer {token}'}
    seed = Client(port, tls, auth)
    ids = []
    for _ in range(clients):
        status, body = seed.request('POST', '/api/taskqueue/test_task', {'times': 1})
        assert status == 201, body
        ids.append(json.loads(body)['id'])
    seed.close()
    samples: List[str] = []

    def list_pending(c: Client) -> bool:
        status, body = c.request('GET', '/api/taskqueue?state=pending')
        return expect(status, 200, body, samples)

    def get_one(c: Client) -> bool:
        status, body = c.request('GET', f'/api/taskqueue/{random.choice(ids)}')
        return expect(status, 200, body, samples)

    def create(c: Client) -> bool:
        status, body = c.request('POST', '/api/taskqueue/test_task', {'times': 1})
        return expect(status, 201, body, samples)

    pool = [Client(port, tls, auth) for _ in range(clients)]
    for c in pool:
        c.request('GET', '/api/auth/me')          # connect (and handshake) before timing
    res = run_load(pool, [('list', list_pending), ('get', get_one), ('create', create)],
                   seconds)
    for c in pool:
        c.close()
    res.error_samples += samples
    return res


def phase_b(cluster: DevCluster, port: int, tls: bool, token: str, creates: int
            ) -> Dict[str, Any]:
    client = Client(port, tls, {'Authorization': f'Bearer {token}'})
    # The bare cost of one authenticated request from this client, for comparison.
    bare: List[float] = []
    for _ in range(200):
        t0 = time.perf_counter()
        client.request('GET', '/api/auth/me')
        bare.append(time.perf_counter() - t0)
    created: List[int] = []
    lat: List[float] = []
    errors = 0
    commits0 = mon_commits(cluster)
    t_start = time.perf_counter()
    for _ in range(creates):
        t0 = time.perf_counter()
        status, body = client.request('POST', '/api/taskqueue/test_task', {'times': 1})
        lat.append(time.perf_counter() - t0)
        if status == 201:
            created.append(int(json.loads(body)['id']))
        else:
            errors += 1
    seconds = time.perf_counter() - t_start
    client.close()
    drain(port, tls, token)
    commits = mon_commits(cluster) - commits0

    where = cluster.ceph('bgtask', 'store', json_out=True)
    out = cluster.run(cluster.script('radostool.py', 'omap', where['pool'],
                                     where['namespace']), timeout=300).stdout
    stored = {int(k[len('task/'):]) for entries in json.loads(out).values() for k in entries
              if k.startswith('task/')}
    missing = [i for i in created if i not in stored]

    with RadosCmd(cluster) as r:
        value = 'x' * 600                       # about one task record
        kv = r.repeat('mon', {'prefix': 'config-key set', 'key': 'bench/k{i}', 'val': value},
                      creates)
        failed = [x['err'] for x in kv['results'] if x['ret'] != 0]
        assert not failed, failed[0]
        kv_lat: List[float] = kv['latencies']
        kv_seconds = float(kv['seconds'])
        r.repeat('mon', {'prefix': 'config-key rm', 'key': 'bench/k{i}'}, creates)
    return {'creates': creates, 'errors': errors, 'not_persisted': len(missing),
            'bare_p50_ms': pct(bare, 0.5), 'bare_p99_ms': pct(bare, 0.99),
            'commits_per_create': commits / creates,
            'creates_per_s': creates / seconds, 'p50_ms': pct(lat, 0.5),
            'p99_ms': pct(lat, 0.99), 'kv_per_s': creates / kv_seconds,
            'kv_p50_ms': pct(kv_lat, 0.5), 'kv_p99_ms': pct(kv_lat, 0.99)}


def phase_c(port: int, token: str, clients: int, seconds: float) -> Result:
    headers = {'Authorization': f'Bearer {token}', 'Accept': DASHBOARD_ACCEPT}
    samples: List[str] = []

    def tasks(c: Client) -> bool:
        status, body = c.request('GET', '/api/task')
        return expect(status, 200, body, samples)

    pool = [Client(port, False, headers) for _ in range(clients)]
    for c in pool:
        c.request('GET', '/api/task')
    res = run_load(pool, [('task', tasks)], seconds)
    for c in pool:
        c.close()
    res.error_samples += samples
    return res


# ---------------------------------------------------------------------- report

def line(label: str, value: str, goal: str = '') -> None:
    print(f'{label:40s} {value:>14s}  {goal}')


def verdict(ok: bool) -> str:
    return 'met' if ok else 'MISSED'


def report(a: Result, bs: List[Tuple[str, Dict[str, Any]]], c: Result, seconds: float,
           clients: int, tls: bool) -> None:
    a_rps, c_rps = a.requests / a.seconds, c.requests / c.seconds
    a_p99, c_p99 = pct(a.all, 0.99), pct(c.all, 0.99)
    print(f'\n== A: bgtasks REST ({"https" if tls else "http"}), {clients} clients, '
          f'{seconds:.0f} s, list/get/create in thirds')
    line('requests/s', f'{a_rps:.1f}')
    line('requests', f'{a.requests}')
    line('p50 ms (all)', f'{pct(a.all, 0.5):.1f}')
    line('p99 ms (all)', f'{a_p99:.1f}', f'goal <= {GOAL_P99_MS:.0f} ms: '
         f'{verdict(a_p99 <= GOAL_P99_MS)}')
    for name, lat in a.latencies.items():
        line(f'  {name}: n, p50 ms, p99 ms',
             f'{len(lat)} {pct(lat, 0.5):.1f} {pct(lat, 0.99):.1f}')
    line('errors', f'{a.errors}', f'goal 0: {verdict(a.errors == 0)}')
    line('reconnects', f'{a.reconnects}')
    line('mgr CPU (cores busy)', f'{a.mgr_cpu:.2f}')
    for label, b in bs:
        report_b(label, b)
    print(f'\n== C: Ceph dashboard GET /api/task, {clients} clients, {seconds:.0f} s (http)')
    line('requests/s', f'{c_rps:.1f}')
    line('p50 ms', f'{pct(c.all, 0.5):.1f}')
    line('p99 ms', f'{c_p99:.1f}')
    line('errors', f'{c.errors}')
    line('mgr CPU (cores busy)', f'{c.mgr_cpu:.2f}')
    print('\n== ratios')
    line('A requests/s / C requests/s', f'{a_rps / c_rps:.2f} x')
    line('A p99 / C p99', f'{a_p99 / c_p99:.2f} x')
    for label, b in bs:
        line(f'B ({label}) creates/s / config-key sets/s',
             f'{b["creates_per_s"] / b["kv_per_s"]:.2f} x')
    samples = a.error_samples + c.error_samples
    if samples:
        print('\nerror samples:\n  ' + '\n  '.join(samples[:10]))


def report_b(label: str, b: Dict[str, Any]) -> None:
    print(f'\n== B ({label}): {b["creates"]} creates from one client, then as many raw '
          'config-key sets')
    line('persisted creates/s', f'{b["creates_per_s"]:.1f}',
         f'goal >= {GOAL_CREATES_PER_S:.0f}/s: '
         f'{verdict(b["creates_per_s"] >= GOAL_CREATES_PER_S)}')
    line('create p50 / p99 ms', f'{b["p50_ms"]:.1f} / {b["p99_ms"]:.1f}')
    line('GET /api/auth/me p50 / p99 ms (idle)', f'{b["bare_p50_ms"]:.1f} / '
         f'{b["bare_p99_ms"]:.1f}')
    line('errors', f'{b["errors"]}', f'goal 0: {verdict(b["errors"] == 0)}')
    line('created but not in the store', f'{b["not_persisted"]}',
         f'goal 0: {verdict(b["not_persisted"] == 0)}')
    line('mon commits per create (incl. its task)', f'{b["commits_per_create"]:.2f}')
    line('config-key set/s (serial)', f'{b["kv_per_s"]:.1f}')
    line('config-key set p50 / p99 ms', f'{b["kv_p50_ms"]:.2f} / {b["kv_p99_ms"]:.2f}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=60.0)
    ap.add_argument('--clients', type=int, default=20)
    ap.add_argument('--creates', type=int, default=1000)
    ap.add_argument('--ssl', action='store_true',
                    help='serve bgtasks over TLS (default plain http, like the dashboard peer)')
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix='bgtasks-bench-rest-')
    cluster = DevCluster(folder, release=args.release)
    ensure_dashboard_installed(cluster)
    try:
        t0 = time.monotonic()
        port, dport = setup(cluster, args.ssl)
        print(f'cluster up in {time.monotonic() - t0:.0f}s: bgtasks on {port}, '
              f'dashboard on {dport}; {cluster.version()}; load average '
              f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores', flush=True)
        token = bgtasks_token(port, args.ssl)
        pid = cluster.mgr_pid(cluster.active_mgr())
        assert pid is not None
        # Once on a fresh store, once after A has left tens of thousands of tasks (the mon
        # itself commits more slowly then).
        bs = [('fresh store', phase_b(cluster, port, args.ssl, token, args.creates))]
        print(f'B done: {args.creates} creates; backlog drained in '
              f'{drain(port, args.ssl, token):.1f} s', flush=True)
        cpu0 = mgr_cpu_seconds(pid)
        a = phase_a(port, args.ssl, token, args.clients, args.seconds)
        a.mgr_cpu = (mgr_cpu_seconds(pid) - cpu0) / a.seconds
        print(f'A done: {a.requests} requests; backlog drained in '
              f'{drain(port, args.ssl, token):.1f} s', flush=True)
        bs.append((f"after A, {len(a.latencies['create']) + args.creates} tasks kept",
                   phase_b(cluster, port, args.ssl, token, args.creates)))
        print(f'B done: {args.creates} creates; backlog drained in '
              f'{drain(port, args.ssl, token):.1f} s', flush=True)
        dtoken = dashboard_token(cluster, dport)
        cpu0 = mgr_cpu_seconds(pid)
        c = phase_c(dport, dtoken, args.clients, args.seconds)
        c.mgr_cpu = (mgr_cpu_seconds(pid) - cpu0) / c.seconds
        print(f'C done: {c.requests} requests', flush=True)
        report(a, bs, c, args.seconds, args.clients, args.ssl)
        print(f'\nload average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores '
              '(anything else running skews every figure)')
    finally:
        cluster.stop()


if __name__ == '__main__':
    main()
