#!/usr/bin/python3
"""Throwaway loopback Ceph cluster for developing and testing the bgtasks mgr module, on the
host's Ceph (Pacific 16.2) or on Tentacle 20.2 in a chroot (`--release tentacle`, release.py).

Everything a cluster needs (ceph.conf, keyrings, mon/mgr/osd data, logs, pid files, admin
sockets, the mgr module folder and the CMake-installed module) lives in one folder it owns.
Several clusters in different folders can run side by side: each mon picks a free port.

CLI (run with /usr/bin/python3; the default folder is <repo>/.dev/cluster, override with --dir
or BGTASKS_DEV_DIR)::

    dev/devcluster.py start [--release pacific|tentacle] [--mgrs 2] [--osds 3] [--bare]
                            [--no-module] [--module-option k=v]... [--extra-module NAME]...
    dev/devcluster.py status
    dev/devcluster.py ceph osd tree
    dev/devcluster.py reinstall [--restart]
    dev/devcluster.py stop

Python API (tests, benchmarks)::

    sys.path.insert(0, '<repo>/dev')
    from devcluster import DevCluster
    cluster = DevCluster(tmp_path / 'cluster', release='tentacle')  # default $BGTASKS_RELEASE
    cluster.start(mgrs=2, osds=3, module_options={'some_option': 5})
    cluster.ceph('bgtask', 'ls', json_out=True)
    cluster.stop()
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set,
                    TypeVar)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from release import RELEASES, Release, ReleaseError, release as find_release  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / '.dev' / 'cluster'
MODULE_NAME = 'bgtasks'
MGR_NAMES = 'xyzwvutsrq'
DAEMON_BINARIES = ('ceph-mon', 'ceph-mgr', 'ceph-osd')
MARKER = '.devcluster'
STATE_FILE = 'cluster.json'
LOGIN_FILE = 'login.json'
DEMO_POOL = 'demo'
# (image, size, bytes written): some data for the RBD page and for a PG change to move.
DEMO_IMAGES = (('vm-disk-1', '1G', '48M'), ('vm-disk-2', '512M', '16M'), ('empty', '256M', ''))
GIB = 1024 ** 3
# Unix socket paths are limited to 108 bytes (including the terminating NUL).
MAX_SOCKET_PATH = 107
# A mgr respawning by exec is briefly without a process; longer than this, it is lost.
GONE_GRACE = 5.0

T = TypeVar('T')


class DevClusterError(RuntimeError):
    """Something in the dev cluster did not work; the message says what and shows logs."""


class DevClusterTimeout(DevClusterError, TimeoutError):
    """A condition was not reached in time."""


class CephCommandError(DevClusterError):
    """A `ceph` (or other) command exited non-zero."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f'command failed (exit {returncode}): {" ".join(self.cmd)}\n'
            f'stdout: {stdout.strip()[-2000:]}\nstderr: {stderr.strip()[-2000:]}')


def _binary(name: str) -> str:
    return shutil.which(name) or f'/usr/bin/{name}'


def _ceph_binary(name: str) -> str:
    """A Ceph tool's path as its release sees it (a chroot's PATH is not the host's)."""
    return f'/usr/bin/{name}'


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port that was free a moment ago (outside the 6800-7300 range OSDs/mgrs use)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if not 6800 <= port <= 7300:
            return port
    raise DevClusterError('could not find a free TCP port')


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode('utf-8', 'replace')
    except OSError:
        return ''
    return '\n'.join(data.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read().decode('utf-8', 'replace')
    except OSError:
        return False
    # Field 3 (after the parenthesised comm, which may contain spaces) is the state.
    state = stat.rsplit(')', 1)[-1].split()[0]
    return state not in ('Z', 'X')


def _read_cmdline(pid: int) -> List[str]:
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode('utf-8', 'replace') for a in raw.split(b'\0') if a]


def _daemon_from_cmdline(argv: Sequence[str], conf: str) -> Optional[str]:
    """'mgr.x' if argv is a ceph daemon of ours (started with `-c <conf>`), else None."""
    if not argv or os.path.basename(argv[0]) not in DAEMON_BINARIES:
        return None
    dtype = os.path.basename(argv[0])[len('ceph-'):]
    conf_ok = False
    ident: Optional[str] = None
    for i, arg in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in ('-c', '--conf') and nxt == conf:
            conf_ok = True
        elif arg == f'--conf={conf}':
            conf_ok = True
        elif arg in ('-i', '--id') and nxt is not None:
            ident = nxt
        elif arg.startswith('--id='):
            ident = arg[len('--id='):]
    if not conf_ok or ident is None:
        return None
    return f'{dtype}.{ident}'


def _gids_in(dump: Optional[Dict[str, Any]]) -> Dict[str, int]:
    """{name: gid} of the active (if available) and the standby mgrs of a `mgr dump`."""
    if not dump:
        return {}
    gids = {str(s['name']): int(s['gid']) for s in dump.get('standbys', [])}
    if dump.get('available') and dump.get('active_name'):
        gids[str(dump['active_name'])] = int(dump['active_gid'])
    return gids


def _mgr_name(name: str) -> str:
    return name[len('mgr.'):] if name.startswith('mgr.') else name


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


class DevCluster:
    """A loopback Ceph cluster (1 mon, N mgrs, M memstore OSDs) living in `dir`."""

    def __init__(self, dir: os.PathLike[str] | str = DEFAULT_DIR,
                 repo: os.PathLike[str] | str = REPO, verbose: bool = False,
                 release: Optional[str] = None) -> None:
        self.dir = Path(dir).resolve()
        self.repo = Path(repo).resolve()
        self.verbose = verbose
        self.conf_path = self.dir / 'ceph.conf'
        self.keyring_path = self.dir / 'keyring'
        self.run_dir = self.dir / 'run'
        self.log_dir = self.dir / 'log'
        self.module_path = self.dir / 'mgr-modules'
        self.build_dir = self.dir / 'build'
        self.prefix_dir = self.dir / 'prefix'
        self.installed_module = self.prefix_dir / 'share' / 'ceph' / 'mgr' / MODULE_NAME
        self.state_path = self.dir / STATE_FILE
        self._module_enabled = False
        # A running cluster keeps the release it was started with; start() takes the one
        # asked for.
        self._wanted_release = release
        self.release: Release = find_release(self._state().get('release') or release)

    # ------------------------------------------------------------------ basics

    def __repr__(self) -> str:
        return f'DevCluster({str(self.dir)!r})'

    @property
    def env(self) -> Dict[str, str]:
        """Environment for subprocesses (ceph, rados, rbd ...) talking to this cluster."""
        env = dict(os.environ)
        env.pop('CEPH_ARGS', None)
        env['CEPH_CONF'] = str(self.conf_path)
        return self.release.env(env)

    def command(self, tool: str, *args: Any) -> List[str]:
        """argv for a Ceph tool ('ceph', 'rbd', 'rados', ...) of this cluster's release, with
        `-c <conf>`; run it with env=self.env."""
        return self.release.command([_ceph_binary(tool), '-c', str(self.conf_path),
                                     *[str(a) for a in args]])

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f'[devcluster] {msg}', file=sys.stderr, flush=True)

    def _state(self) -> Dict[str, Any]:
        try:
            with open(self.state_path) as f:
                return dict(json.load(f))
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: Mapping[str, Any]) -> None:
        tmp = self.state_path.with_suffix('.tmp')
        with open(tmp, 'w') as f:
            json.dump(state, f, indent=2, sort_keys=True)
        os.replace(tmp, self.state_path)

    @property
    def mon_port(self) -> Optional[int]:
        port = self._state().get('mon_port')
        return int(port) if port else None

    @property
    def mgr_names(self) -> List[str]:
        return list(self._state().get('mgrs', []))

    @property
    def osd_ids(self) -> List[int]:
        return [int(i) for i in self._state().get('osds', {})]

    def log_path(self, daemon: str) -> Path:
        """Log file of a daemon ('mon.a', 'mgr.x', 'osd.0', 'client.admin')."""
        return self.log_dir / f'{daemon}.log'

    def mgr_log_path(self, name: str) -> Path:
        return self.log_path(f'mgr.{_mgr_name(name)}')

    def asok_paths(self, daemon: str) -> List[Path]:
        """Admin sockets of a daemon ('mgr.x'); newest first (the name includes the pid)."""
        paths = list(self.run_dir.glob(f'{daemon}.*.asok'))
        return sorted(paths, key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)

    def _daemon_diag(self, daemon: str, lines: int = 40) -> str:
        parts = []
        out = tail(self.log_dir / f'{daemon}.stdout', lines)
        if out:
            parts.append(f'--- {daemon} stdout/stderr ---\n{out}')
        log = tail(self.log_path(daemon), lines)
        parts.append(f'--- tail of {self.log_path(daemon)} ---\n{log or "(empty or missing)"}')
        return '\n'.join(parts)

    # ------------------------------------------------------------------ commands

    def run(self, cmd: Sequence[str], check: bool = True, timeout: float = 60,
            input: Optional[str] = None) -> subprocess.CompletedProcess[str]:
        """Run a command with this cluster's environment; raise CephCommandError on failure.

        A timeout raises DevClusterTimeout when check=True and returns exit status 124 otherwise.
        """
        try:
            proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                                  timeout=timeout, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            if check:
                raise DevClusterTimeout(f'command timed out after {timeout}s: {" ".join(cmd)}'
                                        ) from exc
            return subprocess.CompletedProcess(list(cmd), 124, _text(exc.stdout),
                                               _text(exc.stderr) + f'\ntimed out after {timeout}s')
        if check and proc.returncode != 0:
            raise CephCommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def script(self, name: str, *args: Any) -> List[str]:
        """argv that runs dev/<name> with the Python of this cluster's release (its rados
        and rbd bindings); run it with env=self.env. The script is copied into the cluster
        folder, which the release's daemons and tools see."""
        tools = self.dir / 'tools'
        tools.mkdir(parents=True, exist_ok=True)
        # Copied aside and renamed over: a Python starting an earlier copy reads either
        # file whole, never one half written (an empty script exits 0 and says nothing).
        part = tools / f'.{name}.{os.getpid()}.{secrets.token_hex(4)}'
        shutil.copy2(Path(__file__).resolve().parent / name, part)
        os.replace(part, tools / name)
        return self.release.command(['/usr/bin/python3', str(tools / name),
                                     *[str(a) for a in args]])

    def ceph(self, *args: str, json_out: bool = False, check: bool = True, timeout: float = 60,
             input: Optional[str] = None) -> Any:
        """Run `ceph -c <conf> <args>`.

        check=True: returns stdout (str), or the parsed JSON (json_out=True adds `-f json`;
        empty output gives None); raises CephCommandError on a non-zero exit.
        check=False: returns the subprocess.CompletedProcess (returncode/stdout/stderr) as is.
        """
        args = tuple(str(a) for a in args)
        if '-i' in args[:-1] and input is None:
            # The file may lie where a chrooted CLI cannot see it: hand it over on stdin.
            at = args.index('-i')
            if args[at + 1] != '-' and self.dir not in Path(args[at + 1]).resolve().parents:
                input = Path(args[at + 1]).read_text()
                args = args[:at] + args[at + 2:]
        cmd = self.command('ceph', *args)
        if json_out:
            cmd += ['-f', 'json']
        if input is not None:
            cmd += ['-i', '-']
        proc = self.run(cmd, check=check, timeout=timeout, input=input)
        if not check:
            return proc
        if json_out:
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.stdout

    def _ceph_json(self, *args: str, timeout: float = 15) -> Any:
        """Parsed `ceph ... -f json`, or None on any failure (for polling)."""
        proc = self.ceph(*args, json_out=True, check=False, timeout=timeout)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return None

    def rados(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run `rados -c <conf> <args>`; returns stdout."""
        cmd = self.command('rados', *args)
        return self.run(cmd, check=check, timeout=timeout).stdout

    def wait_for(self, predicate: Callable[[], Optional[T]], timeout: float = 60,
                 interval: float = 0.5, what: str = 'condition',
                 diag: Optional[Callable[[], str]] = None) -> T:
        """Call `predicate` until it returns something truthy; return that value.

        DevClusterError raised by the predicate counts as "not yet". On timeout raises
        DevClusterTimeout naming `what`, the last error and the output of `diag()`.
        """
        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while True:
            try:
                result = predicate()
                if result:
                    return result
            except DevClusterError as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        msg = f'timed out after {timeout:.0f}s waiting for {what} (cluster {self.dir})'
        if last_error is not None:
            msg += f'\nlast error: {last_error}'
        if diag is not None:
            try:
                msg += '\n' + diag()
            except Exception as exc:  # diagnostics must not hide the timeout
                msg += f'\n(diagnostics failed: {exc})'
        raise DevClusterTimeout(msg)

    # ------------------------------------------------------------------ processes

    def daemon_pids(self) -> Dict[str, List[int]]:
        """Live ceph daemons of this folder: {'mgr.x': [pid], ...} (found via /proc)."""
        conf = str(self.conf_path)
        found: Dict[str, List[int]] = {}
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            pid = int(entry)
            name = _daemon_from_cmdline(_read_cmdline(pid), conf)
            if name is not None and _pid_alive(pid):
                found.setdefault(name, []).append(pid)
        # Daemons whose pid file points at a live ceph daemon process of ours.
        if self.run_dir.is_dir():
            for pidfile in self.run_dir.glob('*.pid'):
                try:
                    pid = int(pidfile.read_text().strip())
                except (OSError, ValueError):
                    continue
                name = _daemon_from_cmdline(_read_cmdline(pid), conf)
                if name is not None and _pid_alive(pid) and pid not in found.get(name, []):
                    found.setdefault(name, []).append(pid)
        return found

    def daemon_pid(self, daemon: str) -> Optional[int]:
        """Pid of a live daemon ('mgr.x', 'osd.0', 'mon.a'), None if not running."""
        pids = self.daemon_pids().get(daemon, [])
        return max(pids) if pids else None

    def mgr_pid(self, name: str) -> Optional[int]:
        return self.daemon_pid(f'mgr.{_mgr_name(name)}')

    def is_running(self) -> bool:
        return bool(self.daemon_pids())

    def _spawn(self, daemon: str, *extra: str, timeout: float = 60) -> None:
        """Start `ceph-<type> -i <id>` (it daemonizes itself and writes its pid file)."""
        dtype, ident = daemon.split('.', 1)
        cmd = self.command(f'ceph-{dtype}', '-i', ident, *extra)
        out_path = self.log_dir / f'{daemon}.stdout'
        self._log(' '.join(cmd))
        with open(out_path, 'ab') as out:
            try:
                proc = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise DevClusterTimeout(f'{" ".join(cmd)} did not return within {timeout}s\n'
                                        + self._daemon_diag(daemon)) from exc
        if proc.returncode != 0:
            raise DevClusterError(f'{" ".join(cmd)} failed with exit status {proc.returncode}\n'
                                  + self._daemon_diag(daemon))

    def _kill_pids(self, pids: Iterable[int], grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL whatever is still alive after `grace` seconds; wait for exit."""
        pids = [p for p in pids if _pid_alive(p)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if _pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.05)
        alive = [p for p in pids if _pid_alive(p)]
        if alive:
            raise DevClusterError(f'processes {alive} survived SIGKILL')

    # ------------------------------------------------------------------ module install

    def reinstall_module(self, restart: bool = False) -> Path:
        """(Re)install the module with CMake into <dir>/prefix and link it into mgr-modules.

        Files no longer part of the install are removed. Running mgrs keep the code they
        loaded; pass restart=True (or call restart_mgrs()) to make them load the new code.
        """
        cmake = _binary('cmake')
        if not (self.build_dir / 'CMakeCache.txt').exists():
            self.run([cmake, '-S', str(self.repo), '-B', str(self.build_dir),
                      f'-DCMAKE_INSTALL_PREFIX={self.prefix_dir}'], timeout=120)
        self.run([cmake, '--install', str(self.build_dir), '--prefix', str(self.prefix_dir)],
                 timeout=120)
        manifest = self.build_dir / 'install_manifest.txt'
        if manifest.exists() and self.installed_module.is_dir():
            installed = {Path(line) for line in manifest.read_text().splitlines() if line}
            for path in sorted(self.installed_module.rglob('*'), reverse=True):
                if '__pycache__' in path.parts:
                    continue
                if path.is_file() and path not in installed:
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        self._link_module()
        if restart:
            self.restart_mgrs()
        return self.installed_module

    def _link_module(self) -> bool:
        link = self.module_path / MODULE_NAME
        if not (self.installed_module / '__init__.py').exists():
            return False
        if not link.is_symlink():
            link.symlink_to(self.installed_module)
        return True

    def _prepare_module_path(self, install: bool, required: bool) -> bool:
        self.module_path.mkdir(parents=True, exist_ok=True)
        stock = self.release.stock_mgr_dir
        for entry in sorted(self.release.host_path(stock).iterdir()):
            if entry.name == '__pycache__':
                continue
            # The link resolves where the mgr runs (inside the chroot for one).
            (self.module_path / entry.name).symlink_to(f'{stock}/{entry.name}')
        if not install:
            return False
        try:
            self.reinstall_module()
        except DevClusterError as exc:
            if required:
                raise
            print(f'[devcluster] warning: module install failed, continuing without it:\n{exc}',
                  file=sys.stderr)
            return False
        linked = self._link_module()
        if not linked and required:
            raise DevClusterError(f'{self.installed_module}/__init__.py missing after cmake '
                                  f'--install; is {self.repo}/mgr_bgtasks ready?')
        return linked

    # ------------------------------------------------------------------ config

    def _write_conf(self, fsid: str, port: int, initial_modules: Sequence[str],
                    conf_overrides: Optional[Mapping[str, Mapping[str, Any]]]) -> None:
        d = self.dir
        sections: Dict[str, Dict[str, str]] = {
            'global': {
                'fsid': fsid,
                'mon host': f'v2:127.0.0.1:{port}',
                'public addr': '127.0.0.1',
                'cluster addr': '127.0.0.1',
                'public network': '127.0.0.0/8',
                'ms bind ipv6': 'false',
                'ms bind port min': str(self.release.ports[0]),
                'ms bind port max': str(self.release.ports[1]),
                'run dir': f'{d}/run',
                'pid file': f'{d}/run/$name.pid',
                'admin socket': f'{d}/run/$name.$pid.asok',
                'log file': f'{d}/log/$name.log',
                'mon cluster log file': f'{d}/log/$cluster.$channel.log',
                'crash dir': f'{d}/crash',
                'mon data': f'{d}/mon/$id',
                'mgr data': f'{d}/mgr/$id',
                'osd data': f'{d}/osd/$id',
                'auth allow insecure global id reclaim': 'false',
                'mon allow pool size one': 'true',
                'mon allow pool delete': 'true',
                'mon warn on pool no redundancy': 'false',
                'mon data avail warn': '5',
                'osd pool default size': '1',
                'osd pool default min size': '1',
                'osd pool default pg autoscale mode': 'off',
                'osd crush chooseleaf type': '0',
                'mgr initial modules': ' '.join(initial_modules),
                'mgr module path': str(self.module_path),
            },
            'mon': {
                'keyring': '$mon_data/keyring',
                # Fail fast if another process took the port; start() retries with a new one.
                'ms bind retry count': '1',
                'ms bind retry delay': '1',
            },
            'mgr': {
                'keyring': '$mgr_data/keyring',
            },
            'osd': {
                'keyring': '$osd_data/keyring',
                'osd objectstore': 'memstore',
                'memstore device bytes': str(GIB),
                # Clean shutdown so stop_osd()/start_osd() keep memstore data.
                'osd fast shutdown': 'false',
                'osd recovery sleep': '0',
                'osd recovery sleep hdd': '0',
                'osd max backfills': '8',
                'osd recovery max active': '8',
            },
            'client': {
                'keyring': str(self.keyring_path),
            },
        }
        for section, values in (conf_overrides or {}).items():
            sections.setdefault(section, {}).update(
                {k.replace('_', ' '): _conf_value(v) for k, v in values.items()})
        lines = [f'# written by {Path(__file__).name}; cluster folder {d}']
        for section, values in sections.items():
            lines.append(f'[{section}]')
            lines.extend(f'\t{k} = {v}' for k, v in values.items())
            lines.append('')
        self.conf_path.write_text('\n'.join(lines))

    # ------------------------------------------------------------------ start / stop

    def start(self, mgrs: int = 2, osds: int = 3, enable_module: bool = True,
              module_options: Optional[Mapping[str, Any]] = None,
              extra_modules: Sequence[str] = (),
              conf_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
              timeout: float = 120) -> 'DevCluster':
        """Create and start the cluster (stopping whatever ran in this folder first).

        module_options are set with `ceph config set mgr mgr/bgtasks/<key> <value>` before
        `ceph mgr module enable bgtasks`; extra_modules are enabled the same way afterwards.
        conf_overrides: {'global': {'mon mgr beacon grace': 10}, ...} added to ceph.conf.
        """
        if mgrs < 1 or osds < 0:
            raise ValueError('need at least one mgr and a non-negative number of OSDs')
        t0 = time.monotonic()
        self.stop()
        self.release = find_release(self._wanted_release)
        for sub in ('run', 'log', 'crash', 'mon/a', 'tmp'):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / MARKER).write_text('owned by dev/devcluster.py; removed by stop\n')
        self._save_state({'release': self.release.name})
        try:
            self.release.attach(self.dir)
        except ReleaseError as exc:
            raise DevClusterError(str(exc)) from exc
        if len(str(self.run_dir / 'client.admin.4194304.asok')) > MAX_SOCKET_PATH:
            print(f'[devcluster] warning: {self.run_dir} is too long for admin sockets; '
                  f'`ceph daemon` will not work', file=sys.stderr)
        names = [MGR_NAMES[i] if i < len(MGR_NAMES) else f'm{i}' for i in range(mgrs)]

        module_ready = self._prepare_module_path(install=True, required=enable_module)
        self._log(f'module path ready (bgtasks linked: {module_ready}) '
                  f'{time.monotonic() - t0:.1f}s')

        fsid = str(uuid.uuid4())
        state: Dict[str, Any] = {'fsid': fsid, 'mgrs': names, 'osds': {},
                                 'repo': str(self.repo), 'release': self.release.name}
        self._bootstrap_mon(fsid, state, conf_overrides)
        self._log(f'mon up on port {state["mon_port"]} {time.monotonic() - t0:.1f}s')

        with concurrent.futures.ThreadPoolExecutor(max_workers=mgrs + osds) as pool:
            mgr_futures = [pool.submit(self._create_mgr, name) for name in names]
            osd_futures = [pool.submit(self._create_osd) for _ in range(osds)]
            for mgr_future in mgr_futures:
                mgr_future.result()
            osd_map: Dict[str, str] = {}
            for osd_future in osd_futures:
                osd_id, osd_uuid = osd_future.result()
                osd_map[str(osd_id)] = osd_uuid
        state['osds'] = dict(sorted(osd_map.items(), key=lambda kv: int(kv[0])))
        self._save_state(state)
        self._log(f'daemons started {time.monotonic() - t0:.1f}s')

        deadline = t0 + timeout
        self.wait_mgrs(timeout=max(10.0, deadline - time.monotonic()))
        self.wait_osds_up(timeout=max(10.0, deadline - time.monotonic()))
        self._log(f'mgr available, {osds} osds up {time.monotonic() - t0:.1f}s')

        if enable_module:
            self.enable_module(MODULE_NAME, options=module_options, timeout=90)
        for module in extra_modules:
            self.enable_module(module, timeout=90)
        if enable_module or extra_modules:
            self.wait_mgrs(timeout=60)
            self._log(f'modules enabled {time.monotonic() - t0:.1f}s')
        state['start_seconds'] = round(time.monotonic() - t0, 2)
        self._save_state(state)
        return self

    def _bootstrap_mon(self, fsid: str, state: Dict[str, Any],
                       conf_overrides: Optional[Mapping[str, Mapping[str, Any]]]) -> None:
        authtool = _ceph_binary('ceph-authtool')
        if not self.keyring_path.exists():
            self.run(self.release.command([authtool, '--create-keyring', str(self.keyring_path),
                                           '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']))
            self.run(self.release.command([
                authtool, str(self.keyring_path), '--gen-key', '-n', 'client.admin',
                '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *',
                '--cap', 'mds', 'allow *', '--cap', 'mgr', 'allow *']))
        last_error: Optional[DevClusterError] = None
        for attempt in range(3):
            port = free_port()
            state['mon_port'] = port
            self._write_conf(fsid, port, ['iostat'], conf_overrides)
            self._save_state(state)
            mon_data = self.dir / 'mon' / 'a'
            shutil.rmtree(mon_data, ignore_errors=True)
            mon_data.mkdir(parents=True)
            monmap = self.dir / 'tmp' / 'monmap'
            self.run(self.release.command([_ceph_binary('monmaptool'), '--create', '--clobber',
                                           '--fsid', fsid, '--enable-all-features', '--addv',
                                           'a', f'[v2:127.0.0.1:{port}]', str(monmap)]))
            self.run(self.command('ceph-mon', '--mkfs', '-i', 'a', '--monmap', str(monmap),
                                  '--keyring', str(self.keyring_path)))
            try:
                self._spawn('mon.a')
            except DevClusterError as exc:
                # Most likely somebody took the port in between: try another one.
                last_error = exc
                self._kill_pids(self.daemon_pids().get('mon.a', []))
                continue
            self.wait_for(lambda: self._ceph_json('mon', 'stat', timeout=10), timeout=30,
                          interval=0.2, what='mon.a to answer',
                          diag=lambda: self._daemon_diag('mon.a'))
            return
        raise DevClusterError(f'mon.a did not start after 3 attempts: {last_error}')

    def _create_mgr(self, name: str) -> None:
        mgr_data = self.dir / 'mgr' / name
        mgr_data.mkdir(parents=True, exist_ok=True)
        keyring = mgr_data / 'keyring'
        if not keyring.exists():
            self.ceph('auth', 'get-or-create', f'mgr.{name}', 'mon', 'allow profile mgr',
                      'osd', 'allow *', 'mds', 'allow *', '-o', str(keyring))
        self._spawn(f'mgr.{name}')

    def add_osd(self, timeout: float = 60) -> int:
        """One more OSD in a running cluster; returns its id once it is up."""
        osd_id, osd_uuid = self._create_osd()
        state = self._state()
        state.setdefault('osds', {})[str(osd_id)] = osd_uuid
        self._save_state(state)
        self.wait_osds_up(timeout=timeout)
        return osd_id

    def _create_osd(self) -> tuple[int, str]:
        osd_uuid = str(uuid.uuid4())
        osd_id = int(self.ceph('osd', 'new', osd_uuid).strip())
        osd_data = self.dir / 'osd' / str(osd_id)
        osd_data.mkdir(parents=True, exist_ok=True)
        self.ceph('auth', 'get-or-create', f'osd.{osd_id}', 'mon', 'allow profile osd',
                  'osd', 'allow *', 'mgr', 'allow profile osd', '-o', str(osd_data / 'keyring'))
        self.run(self.command('ceph-osd', '-i', str(osd_id), '--mkfs', '--osd-uuid', osd_uuid),
                 timeout=120)
        self._spawn(f'osd.{osd_id}')
        return osd_id, osd_uuid

    def stop(self) -> None:
        """Kill every daemon of this folder (SIGTERM, SIGKILL after 5 s) and remove the folder."""
        daemons = self.daemon_pids()
        if daemons:
            self._log(f'stopping {len(daemons)} daemons in {self.dir}')
            # OSDs and mgrs first: an OSD shutting down waits (up to 5 s) for the mon's ack.
            self._kill_pids(p for name, plist in daemons.items() if not name.startswith('mon.')
                            for p in plist)
            self._kill_pids(p for name, plist in self.daemon_pids().items() for p in plist)
        if self.dir.exists() and not self._owned():
            raise DevClusterError(f'{self.dir} exists but was not created by devcluster '
                                  f'(no {MARKER} file); refusing to remove it')
        try:
            # Also when the folder is gone already: its mount in a chroot may not be.
            self.release.detach(self.dir)
        except ReleaseError as exc:
            raise DevClusterError(str(exc)) from exc
        if self.dir.exists():
            shutil.rmtree(self.dir)

    def _owned(self) -> bool:
        return (self.dir / MARKER).exists() or not any(self.dir.iterdir())

    # ------------------------------------------------------------------ waiting

    def mgr_dump(self) -> Dict[str, Any]:
        return dict(self.ceph('mgr', 'dump', json_out=True, timeout=15))

    def _mgr_gids(self) -> Dict[str, int]:
        """{name: gid} of the active (if available) and the standby mgrs in the mgr map."""
        return _gids_in(self._ceph_json('mgr', 'dump'))

    def wait_mgrs(self, timeout: float = 60, names: Optional[Iterable[str]] = None) -> str:
        """Wait until a mgr is available and every mgr of this cluster (or `names`) is in the map.

        A wanted mgr with no process for GONE_GRACE seconds is started again (what its log
        ended with goes to stderr). A daemonized mgr respawns (on `ceph mgr fail`, or a change
        of the enabled modules) by exec and fork, and on a loaded machine the new child can
        die (one that cannot lock the pid file its parent still holds exits): that is the dev
        cluster's way of running mgrs, and must not leave every later test without a standby.
        Returns the active mgr's name.
        """
        if names is None:
            wanted = set(self.mgr_names) | self._running_mgrs()
        else:
            wanted = {_mgr_name(n) for n in names}
        gone_since: Dict[str, float] = {}
        stale: Dict[str, Optional[int]] = {}    # revived here: {name: its gid before}

        def ready() -> Optional[str]:
            dump = self._ceph_json('mgr', 'dump')
            if not dump:
                return None
            gids = _gids_in(dump)
            running = self._running_mgrs()
            for name in self._revive_gone(wanted - running, gone_since):
                stale[name] = gids.get(name)
            if not dump.get('available'):
                return None
            # The map keeps a dead mgr until its beacon grace ends: a mgr counts once it runs
            # and, if started again here, once it registered anew.
            ok = all(n in gids and n in running and gids[n] != stale.get(n, -1) for n in wanted)
            return str(dump['active_name']) if ok else None

        return self.wait_for(ready, timeout=timeout, what=f'mgrs {sorted(wanted)} available',
                             diag=self._mgr_diag)

    def _revive_gone(self, gone: Set[str], gone_since: Dict[str, float]) -> List[str]:
        """Start each mgr of `gone` (those without a process) once it has had none for
        GONE_GRACE seconds; returns their names."""
        now = time.monotonic()
        for name in set(gone_since) - gone:
            del gone_since[name]
        started = []
        for name in sorted(gone):
            if now - gone_since.setdefault(name, now) < GONE_GRACE:
                continue
            print(f'[devcluster] mgr.{name} has not run for {GONE_GRACE:.0f}s; starting it '
                  f'again. It ended with:\n{self._daemon_diag(f"mgr.{name}", lines=30)}',
                  file=sys.stderr, flush=True)
            self._spawn(f'mgr.{name}')
            del gone_since[name]
            started.append(name)
        return started

    def _running_mgrs(self) -> Set[str]:
        return {d.split('.', 1)[1] for d in self.daemon_pids() if d.startswith('mgr.')}

    def module_log(self, mgr: Optional[str] = None, module: str = MODULE_NAME,
                   records: int = 30) -> str:
        """The last `records` entries of a mgr log (default: all mgrs) that mention `module`.

        Multi-line entries (Python tracebacks) are kept whole.
        """
        names = [_mgr_name(mgr)] if mgr else sorted(
            p.stem[len('mgr.'):] for p in self.log_dir.glob('mgr.*.log'))
        out: List[str] = []
        for name in names:
            try:
                text = self.mgr_log_path(name).read_text(errors='replace')
            except OSError:
                continue
            entries: List[List[str]] = []
            for line in text.splitlines():
                if line[:4].isdigit() or not entries:
                    entries.append([line])
                else:
                    entries[-1].append(line)
            hits = ['\n'.join(e) for e in entries if any(module in ln for ln in e)]
            if hits:
                out.append(f'--- mgr.{name} log entries mentioning {module} ---')
                out.extend(hits[-records:])
        return '\n'.join(out)

    def _mgr_diag(self) -> str:
        parts = [self.ceph('mgr', 'stat', check=False, timeout=10).stdout]
        for daemon in sorted(d for d in self._all_daemon_names() if d.startswith('mgr.')):
            parts.append(self._daemon_diag(daemon, lines=25))
        return '\n'.join(parts)

    def _all_daemon_names(self) -> List[str]:
        names = {p.stem for p in self.log_dir.glob('*.log')} if self.log_dir.is_dir() else set()
        names |= set(self.daemon_pids())
        return sorted(n for n in names if n.split('.', 1)[0] in ('mon', 'mgr', 'osd'))

    def wait_osds_up(self, timeout: float = 60) -> None:
        """Wait until every OSD of the map is up and in."""
        def ready() -> bool:
            stat = self._ceph_json('osd', 'stat')
            if not stat:
                return False
            stat = stat.get('osdmap', stat)  # older releases nest it
            num = int(stat.get('num_osds', 0))
            return (num == len(self.osd_ids) and int(stat.get('num_up_osds', -1)) == num
                    and int(stat.get('num_in_osds', -1)) == num)

        def diag() -> str:
            parts = [self.ceph('osd', 'tree', check=False, timeout=10).stdout]
            for osd_id in self.osd_ids:
                parts.append(self._daemon_diag(f'osd.{osd_id}', lines=20))
            return '\n'.join(parts)

        self.wait_for(ready, timeout=timeout, what=f'{len(self.osd_ids)} OSDs up and in',
                      diag=diag)

    def wait_healthy(self, timeout: float = 60) -> None:
        """Wait for HEALTH_OK."""
        def ok() -> bool:
            health = self._ceph_json('health')
            return bool(health) and health.get('status') == 'HEALTH_OK'

        self.wait_for(ok, timeout=timeout, what='HEALTH_OK',
                      diag=lambda: self.ceph('health', 'detail', check=False).stdout)

    # ------------------------------------------------------------------ modules

    def module_ls(self) -> Dict[str, Any]:
        return dict(self.ceph('mgr', 'module', 'ls', json_out=True, timeout=15))

    def enable_module(self, module: str, options: Optional[Mapping[str, Any]] = None,
                      timeout: float = 90) -> None:
        """Set mgr/<module>/<key> options, `ceph mgr module enable` it and wait until it works.

        For bgtasks "works" means `ceph bgtask ls` answers.
        """
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(5.0, deadline - time.monotonic())

        def diag() -> str:
            parts = [self.ceph('health', 'detail', check=False, timeout=10).stdout]
            ls = self._ceph_json('mgr', 'module', 'ls')
            if ls:
                for m in ls.get('disabled_modules', []):
                    if m.get('name') == module:
                        parts.append(f'{module}: can_run={m.get("can_run")} '
                                     f'error={m.get("error_string")!r}')
            return '\n'.join(parts) + '\n' + self.module_log(module=module) + '\n' \
                + self._mgr_diag()

        def known() -> Optional[Dict[str, Any]]:
            ls = self._ceph_json('mgr', 'module', 'ls')
            if not ls:
                return None
            if module in ls.get('enabled_modules', []) or module in ls.get(
                    'always_on_modules', []):
                return {'name': module, 'can_run': True}
            for m in ls.get('disabled_modules', []):
                if m.get('name') == module:
                    return dict(m)
            return None

        info = self.wait_for(known, timeout=left(), what=f'mgr to report module {module}',
                             diag=diag)
        if not info.get('can_run', True):
            raise DevClusterError(f'module {module} cannot run: '
                                  f'{info.get("error_string")}\n'
                                  + diag())
        for key, value in (options or {}).items():
            self.ceph('config', 'set', 'mgr', f'mgr/{module}/{key}', _conf_value(value))
        self.wait_for(lambda: self.ceph('mgr', 'module', 'enable', module, check=False,
                                        timeout=15).returncode == 0,
                      timeout=left(), what=f'`ceph mgr module enable {module}`', diag=diag)

        def enabled() -> bool:
            ls = self._ceph_json('mgr', 'module', 'ls')
            return bool(ls) and module in ls.get('enabled_modules', [])

        self.wait_for(enabled, timeout=left(), what=f'{module} in enabled_modules', diag=diag)
        if module == MODULE_NAME:
            self._module_enabled = True
            self.wait_module_answers(timeout=left())
        else:
            self.wait_for(lambda: self._ceph_json('mgr', 'stat', timeout=10).get('available'),
                          timeout=left(), what='mgr available', diag=diag)

    def wait_module_answers(self, timeout: float = 60) -> None:
        """Wait until `ceph bgtask ls` exits 0."""
        last: List[str] = ['']

        def answers() -> bool:
            proc = self.ceph('bgtask', 'ls', check=False, timeout=15)
            last[0] = f'exit {proc.returncode}: {proc.stdout.strip()} {proc.stderr.strip()}'
            return proc.returncode == 0

        self.wait_for(answers, timeout=timeout, interval=1.0, what='`ceph bgtask ls` to answer',
                      diag=lambda: f'last `ceph bgtask ls`: {last[0]}\n'
                      + self.ceph('health', 'detail', check=False, timeout=10).stdout
                      + self.module_log() + '\n' + self._mgr_diag())

    # ------------------------------------------------------------------ mgr control

    def active_mgr(self, timeout: float = 60) -> str:
        """Name of the active mgr (waits up to `timeout` for one to be available)."""
        def active() -> Optional[str]:
            dump = self._ceph_json('mgr', 'dump')
            if dump and dump.get('available') and dump.get('active_name'):
                return str(dump['active_name'])
            return None

        return self.wait_for(active, timeout=timeout, what='an active mgr', diag=self._mgr_diag)

    def standby_mgrs(self) -> List[str]:
        return [str(s['name']) for s in self.mgr_dump().get('standbys', [])]

    def kill_mgr(self, name: str, sig: int = signal.SIGKILL, wait: bool = True,
                 timeout: float = 30) -> int:
        """Send `sig` to mgr `name`; with wait=True wait until the process is gone.

        Returns the pid. The mon notices a killed active mgr only after `mon mgr beacon grace`
        (30 s by default) unless start_mgr() brings it back (then a standby takes over).
        """
        name = _mgr_name(name)
        found = self.mgr_pid(name)
        if found is None:
            raise DevClusterError(f'mgr.{name} is not running in {self.dir}')
        pid: int = found
        os.kill(pid, sig)
        if wait:
            self.wait_for(lambda: not _pid_alive(pid), timeout=timeout, interval=0.05,
                          what=f'mgr.{name} (pid {pid}) to exit')
        return pid

    def start_mgr(self, name: str, wait: bool = True, timeout: float = 60) -> int:
        """Start ceph-mgr `name` (creating its key if it is new); no-op if it already runs.

        With wait=True waits until it registered with the mon (as active or standby).
        Returns its pid.
        """
        name = _mgr_name(name)
        pid = self.mgr_pid(name)
        if pid is not None:
            return pid
        old_gid = self._mgr_gids().get(name)
        self._create_mgr(name)
        state = self._state()
        if name not in state.get('mgrs', []):
            state.setdefault('mgrs', []).append(name)
            self._save_state(state)
        if wait:
            def registered() -> bool:
                gid = self._mgr_gids().get(name)
                return gid is not None and gid != old_gid

            self.wait_for(registered, timeout=timeout, what=f'mgr.{name} to register',
                          diag=lambda: self._daemon_diag(f'mgr.{name}'))
        new_pid = self.mgr_pid(name)
        if new_pid is None:
            raise DevClusterError(f'mgr.{name} exited right after starting\n'
                                  + self._daemon_diag(f'mgr.{name}'))
        return new_pid

    def fail_mgr(self, wait_standby: bool = True, timeout: float = 60) -> str:
        """`ceph mgr fail <active>`; wait until a different mgr (gid) is active and available.

        The failed mgr respawns by itself; with wait_standby=True wait until every running
        mgr is in the map, before (so another one takes over) and after. Returns the new
        active mgr's name.
        """
        wanted = self._running_mgrs()
        if wait_standby:
            # An orderly failover moves to another mgr: one that failed a moment ago may
            # still be starting, and with no standby the mon keeps the failed one active.
            self.wait_mgrs(timeout=timeout, names=wanted)
        dump = self.mgr_dump()
        if not dump.get('available'):
            self.active_mgr(timeout=timeout)
            dump = self.mgr_dump()
        old_name, old_gid = str(dump['active_name']), int(dump['active_gid'])
        self.ceph('mgr', 'fail', old_name)

        def new_active() -> Optional[str]:
            d = self._ceph_json('mgr', 'dump')
            if d and d.get('available') and d.get('active_name') and \
                    int(d.get('active_gid', 0)) not in (0, old_gid):
                return str(d['active_name'])
            return None

        name = self.wait_for(new_active, timeout=timeout, interval=0.2,
                             what=f'a mgr other than {old_name} (gid {old_gid}) to be active',
                             diag=self._mgr_diag)
        if wait_standby:
            self.wait_mgrs(timeout=timeout, names=wanted)
        return name

    def restart_mgrs(self, timeout: float = 90) -> str:
        """Kill and restart every mgr (to load new module code); wait until all are back.

        If bgtasks is enabled, also wait until `ceph bgtask ls` answers. Returns the active.
        """
        names = self.mgr_names or sorted(self._running_mgrs())
        for name in names:
            if self.mgr_pid(name) is not None:
                self.kill_mgr(name, signal.SIGKILL)
        for name in names:
            self._spawn(f'mgr.{name}')
        active = self.wait_mgrs(timeout=timeout, names=names)
        ls = self._ceph_json('mgr', 'module', 'ls')
        if ls and MODULE_NAME in ls.get('enabled_modules', []):
            self.wait_module_answers(timeout=timeout)
            active = self.wait_mgrs(timeout=timeout, names=names)
        return active

    # ------------------------------------------------------------------ osd control

    def _osd_up(self, osd_id: int) -> Optional[bool]:
        dump = self._ceph_json('osd', 'dump')
        if not dump:
            return None
        for osd in dump.get('osds', []):
            if int(osd['osd']) == osd_id:
                return bool(osd.get('up'))
        raise DevClusterError(f'osd.{osd_id} is not in the OSD map')

    def stop_osd(self, osd_id: int, timeout: float = 60) -> None:
        """Stop osd.<id> cleanly (memstore data is kept) and wait until the map says down."""
        daemon = f'osd.{osd_id}'
        pids = self.daemon_pids().get(daemon, [])
        if pids:
            self._kill_pids(pids, grace=timeout / 2)
        if self._osd_up(osd_id):
            self.ceph('osd', 'down', daemon)
        self.wait_for(lambda: self._osd_up(osd_id) is False, timeout=timeout,
                      what=f'{daemon} down')

    def start_osd(self, osd_id: int, timeout: float = 60) -> int:
        """Start osd.<id> again and wait until it is up; returns its pid."""
        daemon = f'osd.{osd_id}'
        if self.daemon_pid(daemon) is None:
            if not (self.dir / 'osd' / str(osd_id) / 'keyring').exists():
                raise DevClusterError(f'{daemon} was never created in {self.dir}')
            self._spawn(daemon)
        self.wait_for(lambda: self._osd_up(osd_id), timeout=timeout, what=f'{daemon} up',
                      diag=lambda: self._daemon_diag(daemon))
        pid = self.daemon_pid(daemon)
        if pid is None:
            raise DevClusterError(f'{daemon} exited\n' + self._daemon_diag(daemon))
        return pid

    # ------------------------------------------------------------------ for a person

    def populate_demo(self) -> None:
        """An RBD pool of 8 PGs with a few images, two of them written, so that the web tab's
        pages show something real and a PG change moves real data."""
        if any(p['pool_name'] == DEMO_POOL for p in self.ceph('osd', 'dump', json_out=True)
               ['pools']):
            return
        self.ceph('osd', 'pool', 'create', DEMO_POOL, '8', '8')
        self.ceph('osd', 'pool', 'application', 'enable', DEMO_POOL, 'rbd')
        self.run(self.command('rbd', 'pool', 'init', DEMO_POOL))
        for image, size, written in DEMO_IMAGES:
            self.run(self.command('rbd', 'create', '--size', size, f'{DEMO_POOL}/{image}'))
            if written:
                self.run(self.command('rbd', 'bench', '--io-type', 'write', '--io-size', '4M',
                                      '--io-pattern', 'seq', '--io-total', written,
                                      f'{DEMO_POOL}/{image}'), timeout=120)

    def login(self) -> tuple[str, str]:
        """The dev cluster's REST admin (username, password), created on first call; the
        password is generated once and kept in the cluster folder."""
        path = self.dir / LOGIN_FILE
        try:
            saved = json.loads(path.read_text())
            return str(saved['username']), str(saved['password'])
        except (OSError, ValueError, KeyError):
            pass
        username, password = 'admin', secrets.token_urlsafe(12)
        pw_file = self.dir / 'tmp' / 'admin-password'
        pw_file.parent.mkdir(parents=True, exist_ok=True)
        pw_file.write_text(password)
        try:
            self.ceph('bgtask', 'user', 'create', username, 'admin', '-i', str(pw_file))
        finally:
            pw_file.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump({'username': username, 'password': password}, f)
        return username, password

    def url(self, timeout: float = 60) -> str:
        """The web tab's URL as `ceph mgr services` publishes it."""
        return self.wait_for(
            lambda: (self._ceph_json('mgr', 'services') or {}).get(MODULE_NAME),
            timeout=timeout, interval=0.5, what='bgtasks in `ceph mgr services`',
            diag=self.module_log)

    def version(self) -> str:
        """The Ceph version the cluster's mgrs run ('ceph version 20.2.4 (...) tentacle ...')."""
        mgrs = (self._ceph_json('versions') or {}).get('mgr', {})
        return ', '.join(sorted(mgrs)) or 'unknown'

    def welcome(self) -> List[str]:
        """What `dev/cluster start` and `status` print: how to reach the cluster and the tab."""
        username, password = self.login()
        tool = 'dev/cluster' if self.dir == DEFAULT_DIR.resolve() else \
            f'dev/cluster --dir {self.dir}'
        return [f'export CEPH_CONF={self.conf_path}',
                f'URL:      {self.url()}',
                f'username: {username}',
                f'password: {password}',
                f'try:      {tool} ceph bgtask test 10',
                f'          {tool} ceph bgtask set-pg-num {DEMO_POOL} 32',
                f'          {tool} ceph bgtask rbd-perf']

    def _module_on(self) -> bool:
        ls = self._ceph_json('mgr', 'module', 'ls')
        return bool(ls) and MODULE_NAME in ls.get('enabled_modules', [])

    def up(self, timeout: float = 10) -> bool:
        """Whether this folder's cluster runs and its mgr is available."""
        if not self.conf_path.exists() or not self.is_running():
            return False
        stat = self._ceph_json('mgr', 'stat', timeout=timeout)
        return bool(stat and stat.get('available'))

    # ------------------------------------------------------------------ summary

    def summary(self) -> str:
        dump = self.mgr_dump()
        stat = self.ceph('osd', 'stat', json_out=True)
        stat = stat.get('osdmap', stat)
        mgrs = len(dump.get('standbys', [])) + (1 if dump.get('available') else 0)
        mons = len(self.ceph('mon', 'dump', json_out=True).get('mons', []))
        return (f'cluster up: {mons} mon, {mgrs} mgr (active {dump.get("active_name")}), '
                f'{stat.get("num_up_osds")} osd in {self.dir}')


def _text(value: Any) -> str:
    if value is None:
        return ''
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


# ---------------------------------------------------------------------- CLI

def _default_dir() -> Path:
    return Path(os.environ.get('BGTASKS_DEV_DIR') or DEFAULT_DIR)


def _parse_option(text: str) -> tuple[str, str]:
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    key, value = text.split('=', 1)
    return key, value


def _split_ceph_args(argv: List[str]) -> tuple[List[str], Optional[List[str]]]:
    """Separate `[--dir D] ceph <anything>` so the ceph arguments are passed on verbatim."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--dir':
            i += 2
            continue
        if arg.startswith('-'):
            i += 1
            continue
        if arg == 'ceph':
            return argv[:i + 1], argv[i + 1:]
        break
    return argv, None


def _start(cluster: DevCluster, args: argparse.Namespace) -> int:
    if cluster.up():
        running = cluster.release.name
        if args.release and args.release != running:
            print(f'devcluster: the cluster in {cluster.dir} runs {running}, not '
                  f'{args.release}; `dev/cluster stop` it first', file=sys.stderr)
            return 1
        print(f'cluster already up in {cluster.dir} ({running}): {cluster.version()}',
              file=sys.stderr)
    else:
        t0 = time.monotonic()
        interrupted: List[int] = []

        def on_interrupt(signum: int, frame: Any) -> None:
            interrupted.append(signum)
            raise KeyboardInterrupt

        # A terminal's Ctrl-C also kills the `ceph` command running: whatever error that
        # raises first, an interrupt is an interrupt.
        signal.signal(signal.SIGINT, on_interrupt)
        try:
            cluster.start(mgrs=args.mgrs, osds=args.osds, enable_module=not args.no_module,
                          module_options=dict(args.module_option),
                          extra_modules=args.extra_module)
            if not args.bare:
                cluster.populate_demo()
        except BaseException:
            if not interrupted:
                raise
            # Daemons detach from the terminal: without this they would outlive the Ctrl-C.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print('\ninterrupted: stopping what was started', file=sys.stderr)
            cluster.stop()
            return 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f'started in {time.monotonic() - t0:.1f}s: {cluster.summary()}; '
              f'{cluster.version()}', file=sys.stderr)
    if cluster._module_on():
        print('\n'.join(cluster.welcome()))
    else:
        print(f'export CEPH_CONF={cluster.conf_path}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, ceph_args = _split_ceph_args(argv)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--dir', type=Path, default=argparse.SUPPRESS,
                        help='cluster folder (default: $BGTASKS_DEV_DIR or <repo>/.dev/cluster)')
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], parents=[common])
    sub = parser.add_subparsers(dest='command', required=True)
    p_start = sub.add_parser('start', parents=[common],
                             help='create and start the cluster (nothing to do if it is up)')
    p_start.add_argument('--release', choices=RELEASES, default=None,
                         help='Ceph to run: the host\'s pacific (default, or $BGTASKS_RELEASE) '
                              'or tentacle (a chroot, built the first time)')
    p_start.add_argument('--bare', action='store_true',
                         help='no demo pool and images')
    p_start.add_argument('--mgrs', type=int, default=2)
    p_start.add_argument('--osds', type=int, default=3)
    p_start.add_argument('--no-module', action='store_true', help='do not enable bgtasks')
    p_start.add_argument('--module-option', type=_parse_option, action='append', default=[],
                         metavar='KEY=VALUE', help='mgr/bgtasks/KEY set before enabling')
    p_start.add_argument('--extra-module', action='append', default=[], metavar='NAME',
                         help='another mgr module to enable (repeatable)')
    p_start.add_argument('-q', '--quiet', action='store_true')
    sub.add_parser('stop', parents=[common], help='kill all daemons and remove the folder')
    sub.add_parser('status', parents=[common], help='ceph -s')
    p_reinstall = sub.add_parser('reinstall', parents=[common],
                                 help='re-run the cmake install of the module')
    p_reinstall.add_argument('--restart', action='store_true',
                             help='restart the mgrs so they load the new code')
    sub.add_parser('ceph', parents=[common], help='run the ceph CLI against the cluster')
    args = parser.parse_args(argv)

    try:
        cluster = DevCluster(getattr(args, 'dir', None) or _default_dir(),
                             verbose=not getattr(args, 'quiet', False),
                             release=getattr(args, 'release', None))
    except ReleaseError as exc:
        print(f'devcluster: {exc}', file=sys.stderr)
        return 1
    try:
        if args.command == 'start':
            return _start(cluster, args)
        elif args.command == 'stop':
            if not cluster.dir.exists():
                print(f'no cluster in {cluster.dir}; nothing to stop')
                return 0
            cluster.stop()
            print(f'stopped and removed {cluster.dir}')
        elif args.command == 'status':
            if not cluster.conf_path.exists():
                print(f'no cluster in {cluster.dir}', file=sys.stderr)
                return 1
            proc = cluster.ceph('-s', check=False, timeout=30)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            if proc.returncode != 0:
                return int(proc.returncode)
            if cluster._module_on():
                print('\n'.join(cluster.welcome()))
        elif args.command == 'reinstall':
            path = cluster.reinstall_module(restart=args.restart)
            print(f'installed {path}')
        elif args.command == 'ceph':
            if not cluster.conf_path.exists():
                print(f'no cluster in {cluster.dir}', file=sys.stderr)
                return 1
            return subprocess.call(cluster.command('ceph', *(ceph_args or [])), env=cluster.env)
    except DevClusterError as exc:
        print(f'devcluster: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
