"""Soak: mixed REST and CLI load on bgtasks with a `ceph mgr fail` every few minutes.

Starts its own cluster (1 mon, 2 mgrs, --osds memstore OSDs; bgtasks on 127.0.0.1, plain
HTTP, test rounds of 0.2 s, retention limited to `max_retained` 500 so that memory must stay
flat), then for --minutes runs, in threads:
  - REST creators: POST /api/taskqueue/test_task {"times": 1..8} (Bearer token);
  - a REST deleter: DELETE finished/failed tasks, and now and then a long task aborted
    while pending (DELETE -> 200, kept as failed/Aborted);
  - REST listers: GET /api/taskqueue?state=pending, GET /api/taskqueue?page=1&pageSize=100,
    GET /api/taskqueue/<id>;
  - a CLI client: `ceph bgtask test N`, `ceph bgtask ls`, `ceph bgtask rm <id>`;
  - `ceph mgr fail` every --fail-every minutes, and the mgrs' RSS every 30 s;
  - after --minutes, the same load for --steady-minutes without a failover.
Then it waits for every task to end and accounts for each id it was given: present (finished,
failed, aborted by us), deleted by us, removed by retention (a `deleted by retention` line in
the mgr logs or the audit log), or lost. A request whose answer was lost after it was sent
(a failover) is counted as unacknowledged, never as lost. It prints the counts, the RSS series
and p50/p99 REST latency per interval between failovers, and last a line
`SOAK_RESULT {json}`. Exit status 0 only if nothing was lost, every finished test task
counted exactly its rounds and nothing was left pending.

Memory: beside it runs a control cluster without bgtasks, idle, whose mgr is failed at the
same moments; the report sets the active mgr's RSS growth against the control's, and
against the module's own Python objects (from /metrics): ceph-mgr itself grows while idle.
A mgr's RSS grows for its first minutes whatever runs in it (its log of recent lines,
malloc's per-thread arenas and the module's bounded caches fill), and no mgr lives past
that with a failover every 5 minutes: the figure to judge is the growth over the second
half of the steady phase. At its end the soak calls glibc's malloc_trim(0) in each active
mgr (through gdb, if installed), then shrinks the mgr's log of recent lines
(`log_max_recent` 1), and reports the RSS each gave back.

That log is a ring of `log_max_recent` lines (10,000 in a daemon), and each slot keeps the
largest buffer it ever held: a gathered debug line longer than 1 KiB (at `debug_monc` 10, each
config-key command in full: the progress module writes back its completed events, ~13 KB,
three lines every 5 s while events complete) leaves its buffer in its slot until a longer one
replaces it. Under load the mgr's heap so grows ~0.45 MiB/min for hours before the ring's bound
(lines x longest line) is reached, however flat the rest is. --log-max-recent sets the ring in
both clusters, so that its bound is reached within minutes; malloc's arenas still settle for
about 30 minutes of a mgr's life, so judge flatness on a steady phase longer than that. The
RSS the shrinking gives back is the ring's own slots (one mapping); the buffers it frees stay
in malloc's free lists, so heaptrack, not RSS, shows them.

Two bugs (fixed) once kept the REST server down for good after a failover with both mgrs
on one host (a standby's redirect server keeping the port; serve() dying with
MGR_MODULE_ERROR "Port N not free"); if REST has not come back 45 s after a failover, the
soak still works around them (restarts the standby, or fails the mgr over again) and
counts it under `workarounds`, which should stay empty.

Usage: /usr/bin/python3 bench/soak.py [--minutes 30] [--fail-every 5] [--steady-minutes 40]
                                      [--log-max-recent N] [--osds 1] [--rate 6] [--dir D]
                                      [--no-control] [--release pacific|tentacle]
"""
import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'dev'))
from devcluster import DevCluster, DevClusterError, free_port  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

USER = 'soak'
PASSWORD = 'S0ak-pass-w0rd!'
MAX_RETAINED = 500
ROUND_SECONDS = 0.2
RSS_EVERY = 30.0
RETENTION_LINE = re.compile(r'task (\d+) deleted by retention')


# ---------------------------------------------------------------------- bookkeeping


@dataclass
class Created:
    times: int
    via: str


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: Dict[int, Created] = field(default_factory=dict)
    deleted: Set[int] = field(default_factory=set)
    aborted: Set[int] = field(default_factory=set)
    unacked_creates: int = 0
    unacked_deletes: Set[int] = field(default_factory=set)
    last_seen: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    # (monotonic time, seconds, operation) of every REST request that got an answer
    latencies: List[Tuple[float, float, str]] = field(default_factory=list)
    # (monotonic time, what) of every REST request that did not get a 2xx answer
    errors: List[Tuple[float, str]] = field(default_factory=list)
    cli_ops: int = 0
    cli_errors: int = 0
    failovers: List[Dict[str, Any]] = field(default_factory=list)
    rss: List[Dict[str, Any]] = field(default_factory=list)

    def seen(self, tasks: List[Dict[str, Any]]) -> None:
        with self.lock:
            for t in tasks:
                self.last_seen[int(t['id'])] = {'state': t['state'], 'status': t['status'],
                                                'result': t['result']}

    def final_ids(self) -> List[int]:
        with self.lock:
            return [i for i, t in self.last_seen.items()
                    if t['state'] != 'pending' and i in self.created and i not in self.deleted]


SENT, REFUSED, UNACKED = 'answered', 'refused', 'unacknowledged'


class Rest:
    """One REST client: a new connection per request (so a request to a dead server is
    refused before it is sent, not lost after), Bearer token, latency recorded."""

    def __init__(self, port: int, stats: Stats, token: List[str]) -> None:
        self.base = f'http://127.0.0.1:{port}'
        self.stats = stats
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False

    def login(self) -> bool:
        try:
            r = self.session.post(self.base + '/api/auth/login', timeout=30,
                                  json={'username': USER, 'password': PASSWORD},
                                  headers={'Connection': 'close'})
        except requests.RequestException:
            return False
        if r.status_code == 200:
            self.token[0] = r.json()['token']
            return True
        return False

    def call(self, op: str, method: str, path: str, body: Optional[Dict[str, Any]] = None
             ) -> Tuple[str, Optional[requests.Response]]:
        headers = {'Authorization': f'Bearer {self.token[0]}', 'Connection': 'close'}
        t0 = time.monotonic()
        try:
            r = self.session.request(method, self.base + path, json=body, headers=headers,
                                     timeout=30, allow_redirects=False)
        except requests.ConnectTimeout:
            return self._error(t0, op, 'connect timeout', REFUSED)
        except requests.ConnectionError as e:
            if 'NewConnectionError' in repr(e) or 'Connection refused' in str(e):
                return self._error(t0, op, 'refused', REFUSED)
            return self._error(t0, op, f'connection lost: {type(e).__name__}', UNACKED)
        except requests.RequestException as e:
            return self._error(t0, op, f'no answer: {type(e).__name__}', UNACKED)
        spent = time.monotonic() - t0
        with self.stats.lock:
            self.stats.latencies.append((t0, spent, op))
            if r.status_code >= 300:
                self.stats.errors.append((t0, f'{op} {r.status_code}'))
        if r.status_code == 401:
            self.login()
        return SENT, r

    def _error(self, t0: float, op: str, what: str, kind: str
               ) -> Tuple[str, Optional[requests.Response]]:
        with self.stats.lock:
            self.stats.errors.append((t0, f'{op} {what}'))
        return kind, None


# ---------------------------------------------------------------------- load


class Soak:
    def __init__(self, cluster: DevCluster, port: int, minutes: float, fail_every: float,
                 rate: float, control: Optional[DevCluster] = None,
                 steady_minutes: float = 0.0) -> None:
        self.cluster = cluster
        self.control = control
        self.port = port
        self.seconds = minutes * 60.0
        self.steady = steady_minutes * 60.0
        self.fail_every = fail_every * 60.0
        self.rate = rate
        self.stats = Stats()
        self.token = ['']
        self.stop = threading.Event()
        self.t0 = 0.0
        self.t_end = 0.0
        self.log_memory: Dict[str, Optional[float]] = {}
        self.trimmed: Dict[str, Optional[float]] = {}

    def rest(self) -> Rest:
        return Rest(self.port, self.stats, self.token)

    def _loop(self, period: float, body: Any) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                body(rng)
            except Exception as e:      # a load thread must not die silently
                with self.stats.lock:
                    self.stats.errors.append((began, f'client bug: {e!r}'))
            self.stop.wait(max(0.0, period - (time.monotonic() - began)))

    def creator(self) -> None:
        rest = self.rest()

        def once(rng: random.Random) -> None:
            times = rng.randint(1, 8)
            kind, r = rest.call('create', 'POST', '/api/taskqueue/test_task', {'times': times})
            with self.stats.lock:
                if kind == UNACKED or (r is not None and r.status_code >= 500):
                    self.stats.unacked_creates += 1
                elif r is not None and r.status_code == 201:
                    self.stats.created[int(r.json()['id'])] = Created(times, 'rest')
        self._loop(2.0 / self.rate, once)

    def deleter(self) -> None:
        rest = self.rest()
        n = [0]

        def once(rng: random.Random) -> None:
            n[0] += 1
            if n[0] % 10 == 0:
                self._abort_one(rest)
                return
            ids = self.stats.final_ids()
            if not ids:
                return
            task_id = rng.choice(ids)
            kind, r = rest.call('delete', 'DELETE', f'/api/taskqueue/{task_id}')
            with self.stats.lock:
                if r is not None and r.status_code == 204:
                    self.stats.deleted.add(task_id)
                elif r is not None and r.status_code == 200:
                    # Seen ended on the old mgr, pending again on the new one (its last
                    # step was not stored): the DELETE aborted it.
                    self.stats.aborted.add(task_id)
                elif kind == UNACKED or (r is not None and r.status_code >= 500):
                    self.stats.unacked_deletes.add(task_id)
                elif r is not None and r.status_code == 404:
                    self.stats.last_seen.pop(task_id, None)     # retention got it first
        self._loop(0.5, once)

    def _abort_one(self, rest: Rest) -> None:
        kind, r = rest.call('create', 'POST', '/api/taskqueue/test_task', {'times': 500})
        if r is None or r.status_code != 201:
            with self.stats.lock:
                if kind == UNACKED or (r is not None and r.status_code >= 500):
                    self.stats.unacked_creates += 1
            return
        task_id = int(r.json()['id'])
        with self.stats.lock:
            self.stats.created[task_id] = Created(500, 'rest')
        for attempt in range(30):
            self.stop.wait(1.0 if attempt == 0 else 2.0)
            kind, r = rest.call('abort', 'DELETE', f'/api/taskqueue/{task_id}')
            if r is not None and r.status_code == 200:
                with self.stats.lock:
                    self.stats.aborted.add(task_id)
                return
            if kind == UNACKED or r is not None:
                # Maybe aborted already (answer lost): look before trying again, since a
                # second DELETE of an aborted task deletes it.
                _, look = rest.call('get', 'GET', f'/api/taskqueue/{task_id}')
                if look is not None and look.status_code == 200 and \
                        look.json()['status'] == 'Aborted':
                    with self.stats.lock:
                        self.stats.aborted.add(task_id)
                    return

    def lister(self) -> None:
        rest = self.rest()

        def once(rng: random.Random) -> None:
            _, r = rest.call('list pending', 'GET', '/api/taskqueue?state=pending')
            if r is not None and r.status_code == 200:
                self.stats.seen(r.json()['results'])
            _, r = rest.call('list page', 'GET', '/api/taskqueue?page=1&pageSize=100')
            if r is not None and r.status_code == 200:
                self.stats.seen(r.json()['results'])
            with self.stats.lock:
                ids = list(self.stats.created)
            if ids:
                rest.call('get', 'GET', f'/api/taskqueue/{rng.choice(ids[-200:])}')
        self._loop(0.5, once)

    def cli(self) -> None:
        def once(rng: random.Random) -> None:
            times = rng.randint(1, 8)
            out = self.cluster.ceph('bgtask', 'test', str(times), '-f', 'json', check=False,
                                    timeout=30)
            ok = out.returncode == 0
            if ok:
                task_id = int(json.loads(out.stdout)['id'])
                with self.stats.lock:
                    self.stats.created[task_id] = Created(times, 'cli')
            elif out.returncode == 124:
                with self.stats.lock:
                    self.stats.unacked_creates += 1
            ls = self.cluster.ceph('bgtask', 'ls', 'all', '-f', 'json', check=False,
                                   timeout=30)
            if ls.returncode == 0:
                self.stats.seen(json.loads(ls.stdout))
            ids = self.stats.final_ids()
            rm_ok = True
            if ids:
                task_id = rng.choice(ids)
                rm = self.cluster.ceph('bgtask', 'rm', str(task_id), check=False, timeout=30)
                rm_ok = rm.returncode in (0, 2)
                with self.stats.lock:
                    if rm.returncode == 0:
                        self.stats.deleted.add(task_id)
                    elif rm.returncode == 124:
                        self.stats.unacked_deletes.add(task_id)
            with self.stats.lock:
                self.stats.cli_ops += 3
                self.stats.cli_errors += (not ok) + (ls.returncode != 0) + (not rm_ok)
        self._loop(2.0, once)

    def rss_sampler(self) -> None:
        while not self.stop.is_set():
            sample = rss_snapshot(self.cluster, time.monotonic() - self.t0)
            sample['objects'] = python_objects(self.port)
            if self.control is not None:
                c = rss_snapshot(self.control, 0)
                sample['control'] = c.get(c['active']) if c['active'] else None
            with self.stats.lock:
                self.stats.rss.append(sample)
            self.stop.wait(RSS_EVERY)

    def fail_over(self) -> None:
        if self.control is not None:
            # The control's mgr respawns at the same moments, so both start afresh together.
            try:
                self.control.fail_mgr(timeout=60)
            except DevClusterError as e:
                log(f'control cluster: mgr fail: {e}')
        t = time.monotonic()
        old = self.cluster.mgr_dump().get('active_name')
        new = self.cluster.fail_mgr(timeout=180)
        active_after = time.monotonic() - t
        rest = self.rest()
        workarounds: List[str] = []
        last_action = time.monotonic()
        while time.monotonic() - t < 300:
            _, r = rest.call('probe', 'GET', '/api/openapi.json')
            if r is not None and r.status_code == 200:
                break
            if time.monotonic() - last_action > 45 and len(workarounds) < 3:
                # Known bugs that keep the REST server down for good: work around, count.
                last_action = time.monotonic()
                crash = serve_crash(self.cluster)
                if crash:
                    workarounds.append(f'serve() died ({crash}): ceph mgr fail')
                    log(workarounds[-1])
                    self.cluster.fail_mgr(timeout=180)
                elif r is not None and ('no active mgr serves bgtasks' in r.text
                                        or 'see the active mgr' in r.text):
                    workarounds.append(f'REST port held by the standby ({r.status_code}): '
                                       'standby restarted')
                    log(workarounds[-1])
                    for name in self.cluster.standby_mgrs():
                        self.cluster.kill_mgr(name)
                        self.cluster.start_mgr(name)
            time.sleep(0.2)
        entry = {'at': t - self.t0, 'from': old, 'to': new,
                 'active_after': round(active_after, 1),
                 'rest_after': round(time.monotonic() - t, 1),
                 'workarounds': workarounds}
        with self.stats.lock:
            self.stats.failovers.append(entry)
        log(f"ceph mgr fail {old} -> {new}: active after {entry['active_after']} s, "
            f"REST after {entry['rest_after']} s")

    def run(self) -> None:
        rest = self.rest()
        if not rest.login():
            raise SystemExit('soak: cannot log in')
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=f, name=n, daemon=True) for n, f in
                   (('creator-1', self.creator), ('creator-2', self.creator),
                    ('deleter', self.deleter), ('lister-1', self.lister),
                    ('lister-2', self.lister), ('cli', self.cli),
                    ('rss', self.rss_sampler))]
        for th in threads:
            th.start()
        failing_until = self.t0 + self.seconds
        end = failing_until + self.steady
        next_fail = self.t0 + self.fail_every
        last_report = self.t0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_fail and next_fail < failing_until - 5:
                self.fail_over()
                next_fail += self.fail_every
                continue
            if now - last_report >= 60:
                last_report = now
                with self.stats.lock:
                    log(f'{(now - self.t0) / 60:.0f} min: {len(self.stats.created)} created, '
                        f'{len(self.stats.deleted)} deleted, {len(self.stats.latencies)} '
                        f'REST answers, {len(self.stats.errors)} REST errors')
            time.sleep(min(1.0, max(0.05, min(end, next_fail) - now)))
            if now < failing_until <= time.monotonic() and self.steady:
                log(f'{self.seconds / 60:g} min: failovers over; same load for '
                    f'{self.steady / 60:g} min more')
        self.stop.set()
        self.t_end = time.monotonic()
        for th in threads:
            th.join(60)
        with self.stats.lock:
            self.stats.rss.append(rss_snapshot(self.cluster, self.t_end - self.t0))
        if self.steady:
            self.trimmed = {'bgtasks': malloc_trim(self.cluster)}
            self.log_memory = {'bgtasks': log_memory(self.cluster)}
            if self.control is not None:
                self.trimmed['control'] = malloc_trim(self.control)
                self.log_memory['control'] = log_memory(self.control)


def rss_mib(pid: int) -> Optional[float]:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def active_mgr(cluster: DevCluster) -> Tuple[Optional[int], List[Any]]:
    """The active mgr's pid and admin sockets."""
    try:
        name = cluster.mgr_dump().get('active_name')
        return (cluster.mgr_pid(name) if name else None,
                list(cluster.asok_paths(f'mgr.{name}')) if name else [])
    except DevClusterError:
        return None, []


def malloc_trim(cluster: DevCluster) -> Optional[float]:
    """MiB of the active mgr's RSS given back by glibc's malloc_trim(0), called through gdb:
    heap that was freed but that malloc still held, i.e. RSS growth that was no live data."""
    pid, _ = active_mgr(cluster)
    before = rss_mib(pid) if pid else None
    if before is None or not shutil.which('gdb'):
        return None
    cluster.run(['gdb', '-p', str(pid), '-batch', '-ex', 'call (int)malloc_trim(0)'],
                check=False, timeout=120)
    time.sleep(2)
    after = rss_mib(pid)
    return round(before - after, 1) if after is not None else None


def log_memory(cluster: DevCluster) -> Optional[float]:
    """MiB of the active mgr's RSS given back when its log of recent lines shrinks to one
    line (`log_max_recent`, 10,000 in a daemon; besides the lines it writes, it keeps the
    debug lines it gathers, e.g. every config-key command at debug_monc 10): the RSS of the
    ring's slots, one mapping. The long lines' buffers it frees stay in malloc's free lists,
    so they do not show here. Ends the mgr's history of recent lines, so only at the end."""
    pid, socks = active_mgr(cluster)
    before = rss_mib(pid) if pid else None
    if before is None or not socks:
        return None
    # The release's own CLI (the host's `ceph` is Pacific's).
    cluster.run(cluster.command('ceph', '--admin-daemon', socks[0], 'config', 'set',
                                'log_max_recent', '1'), check=False)
    time.sleep(5)
    after = rss_mib(pid)
    return round(before - after, 1) if after is not None else None


def python_objects(port: int) -> Optional[int]:
    """The active module's own objects (/metrics): tells growth in bgtasks from growth
    elsewhere in the mgr."""
    try:
        r = requests.get(f'http://127.0.0.1:{port}/metrics', timeout=10,
                         headers={'Connection': 'close'})
    except requests.RequestException:
        return None
    m = re.search(r'^bgtasks_python_objects (\d+)$', r.text, re.M)
    return int(m.group(1)) if m else None


def rss_snapshot(cluster: DevCluster, t: float) -> Dict[str, Any]:
    sample: Dict[str, Any] = {'t': t, 'active': None}
    try:
        sample['active'] = cluster.mgr_dump().get('active_name')
    except DevClusterError:
        pass
    for name in cluster.mgr_names:
        pid = cluster.mgr_pid(name)
        sample[name] = rss_mib(pid) if pid else None
    return sample


def serve_crash(cluster: DevCluster) -> Optional[str]:
    """bgtasks' MGR_MODULE_ERROR when serve() died because CherryPy found the port taken."""
    health = cluster.ceph('health', 'detail', json_out=True, check=False, timeout=30)
    if health.returncode != 0:
        return None
    check = json.loads(health.stdout).get('checks', {}).get('MGR_MODULE_ERROR')
    if not check:
        return None
    text = check['summary']['message']
    return text if 'bgtasks' in text and 'not free' in text else None


def log(msg: str) -> None:
    print(f'[soak {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- accounting


def all_tasks(rest: Rest, timeout: float = 180) -> Dict[int, Dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        _, r = rest.call('final list', 'GET', '/api/taskqueue')
        if r is not None and r.status_code == 200:
            return {int(t['id']): t for t in r.json()['results']}
        if time.monotonic() > deadline:
            raise SystemExit('soak: the REST server did not answer the final list')
        time.sleep(1)


def drain(soak: Soak, timeout: float = 180) -> Dict[int, Dict[str, Any]]:
    """Waits until none of our tasks is pending; returns every task the module keeps."""
    rest = soak.rest()
    deadline = time.monotonic() + timeout
    while True:
        tasks = all_tasks(rest)
        pending = [i for i in soak.stats.created if tasks.get(i, {}).get('state') == 'pending']
        if not pending or time.monotonic() > deadline:
            return tasks
        time.sleep(2)


def retention_removed(cluster: DevCluster) -> Set[int]:
    found: Set[int] = set()
    paths = list(cluster.log_dir.glob('mgr.*.log')) + [cluster.log_dir / 'ceph.audit.log']
    for path in paths:
        try:
            text = path.read_text(errors='replace')
        except OSError:
            continue
        found.update(int(m.group(1)) for m in RETENTION_LINE.finditer(text))
    return found


def percentile(values: List[float], p: float) -> float:
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000.0


def account(soak: Soak, final: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    s = soak.stats
    removed = retention_removed(soak.cluster)
    outcome: Dict[str, List[int]] = {k: [] for k in (
        'finished', 'failed', 'aborted', 'pending', 'deleted_by_us', 'removed_by_retention',
        'unacknowledged_delete', 'lost')}
    for task_id in sorted(s.created):
        t = final.get(task_id)
        if t is not None:
            key = {'Finished': 'finished', 'Exception': 'failed', 'Aborted': 'aborted'}.get(
                t['status'], 'pending')
        elif task_id in s.deleted:
            key = 'deleted_by_us'
        elif task_id in removed:
            key = 'removed_by_retention'
        elif task_id in s.unacked_deletes:
            key = 'unacknowledged_delete'
        else:
            key = 'lost'
        outcome[key].append(task_id)
    wrong = []
    for task_id, c in s.created.items():
        seen = final.get(task_id) or s.last_seen.get(task_id)
        if seen and seen['status'] == 'Finished' and seen['result'] != {'rounds': c.times}:
            wrong.append(task_id)
    unexpected_failures = [i for i in outcome['failed']]
    aborted_not_by_us = [i for i in outcome['aborted'] if i not in s.aborted]
    extra = sorted(i for i, t in final.items() if i not in s.created
                   and t['created_by'] in (USER, 'cli'))

    bounds = [0.0] + [f['at'] for f in s.failovers] + [soak.t_end - soak.t0]
    intervals = []
    for a, b in zip(bounds, bounds[1:]):
        lat = [x for t, x, _ in s.latencies if a <= t - soak.t0 < b]
        errs = [e for t, e in s.errors if a <= t - soak.t0 < b]
        intervals.append({'from_min': round(a / 60, 2), 'to_min': round(b / 60, 2),
                          'requests': len(lat), 'errors': len(errs),
                          'p50_ms': round(percentile(lat, 0.50), 1),
                          'p99_ms': round(percentile(lat, 0.99), 1),
                          'max_ms': round(max(lat) * 1000, 1) if lat else None})
    return {
        'created': len(s.created),
        'created_rest': sum(1 for c in s.created.values() if c.via == 'rest'),
        'created_cli': sum(1 for c in s.created.values() if c.via == 'cli'),
        **{k: len(v) for k, v in outcome.items()},
        'lost_ids': outcome['lost'][:50],
        'pending_ids': outcome['pending'][:50],
        'failed_ids': unexpected_failures[:50],
        'aborted_not_by_us': aborted_not_by_us[:50],
        'wrong_results': len(wrong), 'wrong_result_ids': wrong[:50],
        'unacknowledged_creates': s.unacked_creates,
        'unknown_tasks_present': len(extra),
        'kept_at_end': len(final),
        'cli_ops': s.cli_ops, 'cli_errors': s.cli_errors,
        'rest_requests': len(s.latencies), 'rest_errors': len(s.errors),
        'rest_error_kinds': dict(Counter(e for _, e in s.errors).most_common(8)),
        'failovers': s.failovers,
        'workarounds': sum(len(f['workarounds']) for f in s.failovers),
        'intervals': intervals,
        'steady_s': soak.steady,
        'rss_steady': steady_growth(s.rss, soak.seconds + soak.steady / 2)
        if soak.steady else {},
        'rss_freed_by_malloc_trim_mib': soak.trimmed,
        'rss_freed_by_shrinking_the_mgr_log_mib': soak.log_memory,
        'rss_mib': s.rss,
    }


def report(result: Dict[str, Any], minutes: float, fail_every: float,
           log_max_recent: Optional[int]) -> None:
    r = result
    print(f'\n== soak: {minutes:g} min, ceph mgr fail every {fail_every:g} min, '
          f'max_retained {MAX_RETAINED}, mgr log_max_recent {log_max_recent or "10000 (default)"}')
    print(f"tasks created   {r['created']} (REST {r['created_rest']}, CLI {r['created_cli']})")
    print(f"  finished      {r['finished']} (kept at the end)")
    print(f"  failed        {r['failed']} (with an error) {r['failed_ids'][:10]}")
    print(f"  aborted by us {r['aborted']} (deleted while pending, kept as failed)")
    print(f"  deleted by us {r['deleted_by_us']}")
    print(f"  removed by retention after ending {r['removed_by_retention']}")
    print(f"  delete unacknowledged (answer lost in a failover), gone: "
          f"{r['unacknowledged_delete']}")
    print(f"  still pending {r['pending']} {r['pending_ids'][:10]}")
    print(f"  LOST          {r['lost']} {r['lost_ids'][:10]}")
    print(f"wrong results (finished test task rounds != times): {r['wrong_results']} "
          f"{r['wrong_result_ids'][:10]}")
    print(f"unacknowledged creates (answer lost): {r['unacknowledged_creates']}; unknown tasks "
          f"of our users present: {r['unknown_tasks_present']}; tasks kept at the end: "
          f"{r['kept_at_end']}")
    print(f"REST: {r['rest_requests']} answered, {r['rest_errors']} errors; CLI: "
          f"{r['cli_ops']} commands, {r['cli_errors']} errors")
    kinds = ', '.join(f'{k}: {n}' for k, n in r['rest_error_kinds'].items())
    print(f"REST errors by kind (404s are deletes that retention was first to): {kinds}")
    print(f"known bugs worked around during failovers: {r['workarounds']}")
    print('\nfailovers:')
    for f in r['failovers']:
        held = f" (known bugs worked around: {'; '.join(f['workarounds'])})" \
            if f['workarounds'] else ''
        print(f"  at {f['at'] / 60:5.1f} min  {f['from']} -> {f['to']}  active after "
              f"{f['active_after']} s, REST after {f['rest_after']} s{held}")
    print('\nREST latency per interval between failovers:')
    print(f"  {'minutes':>13} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    for i in r['intervals']:
        print(f"  {i['from_min']:5.1f}-{i['to_min']:<6.1f} {i['requests']:9d} {i['errors']:7d} "
              f"{i['p50_ms']:8.1f} {i['p99_ms']:8.1f} {i['max_ms'] or 0:8.1f}")
    print('\nmgr RSS (MiB) every 30 s:')
    names = sorted({k for s in r['rss_mib'] for k in s} - {'t', 'active', 'objects', 'control'})
    print(f"  {'min':>5} {'active':>6} " + ' '.join(f'{"mgr." + n:>8}' for n in names)
          + f" {'active RSS':>10} {'control RSS':>11} {'bgtasks objects':>15}")
    for s in r['rss_mib']:
        active = s.get('active')
        print(f"  {s['t'] / 60:5.1f} {active or '-':>6} "
              + ' '.join(f"{s.get(n) or 0:8.1f}" for n in names)
              + f" {s.get(active) or 0:10.1f} {s.get('control') or '-':>11}"
              f" {s.get('objects') or '-':>15}")
    growth = rss_growth(r['rss_mib'])
    objects = [s['objects'] for s in r['rss_mib'] if s.get('objects')]
    third = max(1, len(objects) // 3)
    print('\nactive mgr RSS growth between failovers, MiB/min: bgtasks under load '
          f"{growth['active']}, control (no bgtasks, idle) {growth['control']}")
    if objects:
        print(f"bgtasks' own Python objects (they swing with the GC): first third mean "
              f"{sum(objects[:third]) / third:.0f}, last third mean "
              f"{sum(objects[-third:]) / third:.0f}, max {max(objects)}")
    st = r['rss_steady']
    if st:
        print(f"RSS growth over the last {st['minutes']:g} min (same load, no failover for "
              f"{r['steady_s'] / 60:g} min), MiB/min: bgtasks mgr {st['active']}, control "
              f"{st['control']}")
        trimmed = r['rss_freed_by_malloc_trim_mib']
        print(f"then RSS given back by malloc_trim(0) (freed heap malloc still held), MiB: "
              f"bgtasks mgr {trimmed.get('bgtasks')}, control {trimmed.get('control')}")
        freed = r['rss_freed_by_shrinking_the_mgr_log_mib']
        print(f"then RSS given back when the mgr's log of recent lines shrank to one line "
              f"(log_max_recent 1; its slots only, not the freed buffers of long lines), MiB: "
              f"bgtasks mgr {freed.get('bgtasks')}, control {freed.get('control')}")


def steady_growth(samples: List[Dict[str, Any]], since: float) -> Dict[str, Optional[float]]:
    """RSS growth in MiB/min from `since` to the end (least squares), of the active mgr (if
    it did not change) and of the control's: the figure that must be flat once the
    retention limits (the module's, and the mgr's own log of recent lines) are reached."""
    window = [x for x in samples if x['t'] >= since]
    out: Dict[str, Optional[float]] = {'minutes': round((window[-1]['t'] - since) / 60, 1)
                                       if window else 0.0}
    actives = {x.get('active') for x in window}
    series = {'active': [(x['t'], x.get(x['active'] or '')) for x in window]
              if len(actives) == 1 else [],
              'control': [(x['t'], x.get('control')) for x in window]}
    for key, points in series.items():
        pts = [(t, float(v)) for t, v in points if v is not None]
        if len(pts) < 3:
            out[key] = None
            continue
        mt = sum(t for t, _ in pts) / len(pts)
        mv = sum(v for _, v in pts) / len(pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        out[key] = round(sum((t - mt) * (v - mv) for t, v in pts) / den * 60, 3)
    return out


def rss_growth(samples: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Per-minute growth, averaged over the stretches where the active mgr did not change
    (a failover restarts the mgr process); the first 2 minutes of each stretch are skipped
    (start-up allocations)."""
    out: Dict[str, Optional[float]] = {}
    for key in ('active', 'control'):
        slopes: List[Tuple[float, float]] = []
        stretch: List[Tuple[float, float]] = []
        stretch_active: Optional[str] = None
        for s in samples + [{'t': float('inf'), 'active': None}]:
            value = s.get(s['active'] or '') if key == 'active' else s.get(key)
            if stretch and (s.get('active') != stretch_active or value is None):
                settled = [p for p in stretch if p[0] >= stretch[0][0] + 120]
                if len(settled) >= 2 and settled[-1][0] > settled[0][0]:
                    span = settled[-1][0] - settled[0][0]
                    slopes.append(((settled[-1][1] - settled[0][1]) / span * 60, span))
                stretch = []
            if value is not None:
                if not stretch:
                    stretch_active = s.get('active')
                stretch.append((s['t'], float(value)))
        total = sum(w for _, w in slopes)
        out[key] = round(sum(v * w for v, w in slopes) / total, 3) if total else None
    return out


# ---------------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--fail-every', type=float, default=5.0, help='minutes')
    parser.add_argument('--osds', type=int, default=1)
    parser.add_argument('--steady-minutes', type=float, default=40.0,
                        help='after the failovers, the same load this long without one; the '
                        'RSS growth over its second half is the figure that must be flat')
    parser.add_argument('--rate', type=float, default=6.0,
                        help='REST creates per second (both creators together)')
    parser.add_argument('--log-max-recent', type=int,
                        help="the mgrs' log of recent lines, in both clusters (default: "
                        "Ceph's, 10,000)")
    parser.add_argument('--dir', help='cluster folder (default: a new temporary one)')
    parser.add_argument('--no-control', action='store_true',
                        help='no second, idle cluster without bgtasks to compare mgr RSS with')
    parser.add_argument('--release', choices=RELEASES,
                        default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                        help='Ceph release of both clusters (default: $BGTASKS_RELEASE, else '
                        'pacific)')
    args = parser.parse_args(argv)

    folder = args.dir or tempfile.mkdtemp(prefix='bgtasks-soak-')
    cluster = DevCluster(folder, release=args.release)
    control = None if args.no_control else DevCluster(folder.rstrip('/') + '-control',
                                                      release=args.release)
    port = free_port()
    conf = {'mgr': {'log max recent': args.log_max_recent}} if args.log_max_recent else None
    try:
        if control is not None:
            control.start(mgrs=2, osds=1, enable_module=False, conf_overrides=conf)
        t = time.monotonic()
        cluster.start(mgrs=2, osds=args.osds, module_options={
            'server_addr': '127.0.0.1', 'server_port': str(port), 'ssl': 'false',
            'test_round_seconds': str(ROUND_SECONDS), 'max_retained': str(MAX_RETAINED),
            # Retention's `task N deleted by retention` lines must reach the mgr log: the
            # audit log (the cluster log) loses what a mgr had not sent when it respawned.
            'log_level': 'info'}, conf_overrides=conf)
        pw = cluster.dir / 'tmp' / 'soak-pw'
        pw.write_text(PASSWORD)
        cluster.ceph('bgtask', 'user', 'create', USER, 'admin', '-i', str(pw))
        log(f'cluster up in {time.monotonic() - t:.0f} s ({cluster.dir}); REST on {port}; '
            f'load for {args.minutes:g} min')
        soak = Soak(cluster, port, args.minutes, args.fail_every, args.rate, control,
                    args.steady_minutes)
        soak.run()
        log('load stopped; waiting for every task to end')
        final = drain(soak)
        result = account(soak, final)
    finally:
        cluster.stop()
        if control is not None:
            control.stop()
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    report(result, args.minutes, args.fail_every, args.log_max_recent)
    ok = result['lost'] == 0 and result['wrong_results'] == 0 and result['pending'] == 0
    print('SOAK_RESULT ' + json.dumps({k: v for k, v in result.items() if k != 'rss_mib'}
                                      | {'ok': ok, 'rss_mib': result['rss_mib']}))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
