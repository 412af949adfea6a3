"""The ceph-mgr adapter: options, `ceph bgtask` commands, the serve() loop with its
web server, and the standby module that points browsers at the active mgr.

Everything a command does is a call into the engine's or the users' service
functions; this file only translates between the mgr and them (errors to errno in
one place).
"""
import errno
import functools
import inspect
import json
import subprocess
import threading
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlparse

from mgr_module import HandleCommandResult, MgrModule, MgrStandbyModule, NotifyType, Option
from mgr_util import build_url, get_default_addr

from .adapters import MgrCluster, MgrOmap, MgrStore
from .audit import AuditLog
from .clock import Clock
from .compat import CLIReadCommand, CLIWriteCommand, Commands, standby_cleanup
from .engine import Engine
from .errors import BgtaskError, Invalid
from .kind import Context
from .kinds import all_kinds
from .frontend import Frontend
from .metrics import render as render_metrics
from .progress import ProgressMirror
from .render import store_text, task_detail, task_table, user_table
from .rest import Request, Response, RestApi
from .server import WebServer
from .taskstore import TaskStore
from .tls import NoCertificate, certificate
from .users import Users

FORMATS = ('plain', 'json', 'json-pretty')
# The mgr does not tell a module which entity sent a command.
CLI_USER = 'cli'


SERVER_HEALTH = 'BGTASKS_SERVER_DOWN'
STORE_HEALTH = 'BGTASKS_STORE_WAITING'
UNREADABLE_HEALTH = 'BGTASKS_UNREADABLE_RECORDS'
FAILED_HEALTH = 'BGTASK_FAILED'
# Detail lines of a health check: enough to act on, not the whole history.
HEALTH_DETAIL_MAX = 20
# After a failover the old active may hold the port for a moment: retry soon.
RETRY_SECONDS = 2.0
STANDBY_RETRY_SECONDS = 10.0
HOUSEKEEPING_SECONDS = 5.0
# Step records go to the mon from these threads; two keep a commit in flight while
# the next is sent, without flooding the mon.
WRITER_THREADS = 2
# How long a step's record waits before it is written (a newer one replaces it meanwhile):
# what a failover could lose of a step's progress, and commits saved on short tasks.
WRITE_LINGER = 0.05

SERVER_OPTIONS = [
    Option('server_addr', type='str', default='', runtime=True,
           desc='address the REST server listens on (default: every address); '
                'mgr/bgtasks/<mgr id>/server_addr sets it for one mgr'),
    Option('server_port', type='int', default=8099, min=1, max=65535, runtime=True,
           desc='port of the REST server (mgr/bgtasks/<mgr id>/server_port for one mgr)'),
    Option('ssl', type='bool', default=True, runtime=True,
           desc='serve HTTPS (turn off only behind a TLS proxy)'),
]


def _listen_addr(module: Any) -> str:
    # Localized (mgr/bgtasks/<mgr id>/server_addr) first, like Ceph's other web modules:
    # mgrs sharing a host can be given addresses or ports of their own.
    return str(module.get_localized_module_option('server_addr') or get_default_addr())


def _listen_port(module: Any) -> int:
    return int(str(module.get_localized_module_option('server_port')))


def _is_listener(uri: str, addr: str, port: int) -> bool:
    """Whether `uri` points at addr:port (the active mgr on this very listener)."""
    parsed = urlparse(uri)
    return parsed.port == port and (parsed.hostname or '') in (addr, '127.0.0.1', 'localhost')


def _public_url(module: Any, addr: str, port: int, tls: bool) -> str:
    host = module.get_mgr_ip() if addr in ('', '::', '0.0.0.0') else addr
    return build_url(scheme='https' if tls else 'http', host=host, port=port, path='/')


def _output(value: Any, fmt: str, plain: Callable[[Any], str]) -> HandleCommandResult:
    if fmt == 'json':
        return HandleCommandResult(0, json.dumps(value), '')
    if fmt == 'json-pretty':
        return HandleCommandResult(0, json.dumps(value, indent=2), '')
    return HandleCommandResult(0, plain(value), '')


def command(func: Callable[..., HandleCommandResult]) -> Callable[..., HandleCommandResult]:
    """Maps the engine's refusals to errno, the one place the CLI does so."""
    @functools.wraps(func)
    def wrapper(self: 'Module', *args: Any, **kwargs: Any) -> HandleCommandResult:
        fmt = kwargs.get('format', 'plain')
        if fmt not in FORMATS:
            return HandleCommandResult(-errno.EINVAL, '',
                                       f"format must be one of {', '.join(FORMATS)}")
        try:
            return func(self, *args, **kwargs)
        except BgtaskError as e:
            return HandleCommandResult(-e.errno, '', str(e))
    # CLICommand derives the command's arguments from the handler's signature.
    wrapper.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return wrapper


class Module(Commands, MgrModule):
    MODULE_OPTIONS: List[Option] = [
        Option('max_workers', type='int', default=4, min=1, max=64, runtime=True,
               desc='how many task steps may run at the same time'),
        Option('retention_days', type='float', default=7.0, min=0.0, runtime=True,
               desc='finished and failed tasks are removed after this many days'),
        Option('max_retained', type='int', default=10000, min=0, runtime=True,
               desc='at most this many finished and failed tasks are kept (oldest go first)'),
        Option('test_round_seconds', type='float', default=1.0, min=0.0, max=60.0,
               runtime=True, desc='length of one round of the test task'),
        Option('session_ttl', type='secs', default=28800, min=60, runtime=True,
               desc='REST sessions expire this long after login'),
        Option('login_max_failures', type='int', default=5, min=1, runtime=True,
               desc='failed logins in a row that lock a user'),
        Option('login_lockout_seconds', type='secs', default=300, min=1, runtime=True,
               desc='how long a user stays locked'),
        Option('warn_on_failed', type='bool', default=True, runtime=True,
               desc='raise BGTASK_FAILED while tasks that failed with an error are kept'),
    ] + SERVER_OPTIONS
    NOTIFY_TYPES = [NotifyType.osd_map]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        clock = Clock()
        self._cluster = MgrCluster(self)
        self._ctx = Context(cluster=self._cluster, clock=clock, options={})
        # Settings, users and the certificate stay in the key-value store; task records
        # live in RADOS once the mgr's pool is there.
        store = MgrStore(self)
        self._store = store
        omap = MgrOmap(self, self._cluster.pools)
        self._rados_lock = threading.Lock()
        self._records = TaskStore(store, omap, omap.pool,
                                  lambda failed: self.reset_rados(getattr(failed, 'handle', None)))
        self._audit_log = AuditLog(self._audit)
        kinds = all_kinds()
        self._progress = ProgressMirror(self.remote, kinds)
        self.engine = Engine(self._records, clock, kinds, self._ctx,
                             observer=self._progress, audit=self._audit_log,
                             writer_threads=WRITER_THREADS, write_linger=WRITE_LINGER)
        self._health: Dict[str, Dict[str, Any]] = {}
        self.users = Users(store, clock)
        self.api = RestApi(self.engine, self.users, lambda: render_metrics(self.engine),
                           Frontend())
        # Set by shutdown() and by a change of the server's options.
        self._wake = threading.Event()
        self._server_settings: Any = None
        self.config_notify()

    # ------------------------------------------------------------ mgr hooks

    def config_notify(self) -> None:
        for opt in self.MODULE_OPTIONS:
            self._ctx.options[opt['name']] = self.get_module_option(opt['name'])
        self.engine.max_workers = int(self._ctx.options['max_workers'])
        self.engine.retention_days = float(self._ctx.options['retention_days'])
        self.engine.max_retained = int(self._ctx.options['max_retained'])
        self.users.session_ttl = float(self._ctx.options['session_ttl'])
        self.users.max_failures = int(self._ctx.options['login_max_failures'])
        self.users.lockout_seconds = float(self._ctx.options['login_lockout_seconds'])
        if self._settings() != self._server_settings:
            self._wake.set()

    def _audit(self, message: str) -> None:
        self.log.info(message)
        self.cluster_log('audit', MgrModule.ClusterLogPrio.INFO, f'bgtasks: {message}')

    def _set_health(self, name: str, check: Optional[Dict[str, Any]]) -> None:
        """One of the module's checks; the mgr takes them all at once."""
        if check is None:
            if self._health.pop(name, None) is None:
                return
        elif self._health.get(name) == check:
            return
        else:
            self._health[name] = check
        self.set_health_checks(dict(self._health))

    def _check_failed_tasks(self) -> None:
        failed = self.engine.failed_with_error() if self.get_module_option('warn_on_failed') \
            else []
        if not failed:
            self._set_health(FAILED_HEALTH, None)
            return
        detail = [f"task {t['id']} ({t['description']}) failed: {t['error']}"
                  for t in failed[-HEALTH_DETAIL_MAX:]]
        self._set_health(FAILED_HEALTH, {
            'severity': 'warning', 'count': len(failed), 'detail': detail,
            'summary': f'{len(failed)} background task(s) failed; '
                       "see 'ceph bgtask ls failed', delete them to clear this"})

    def _check_store(self) -> None:
        """Moves task records into RADOS once the mgr's pool is there; says so until then,
        and names records that did not load."""
        try:
            moved = self._records.move()
        except Exception as e:
            self.log.error('moving task records into RADOS failed, will retry: %s', e)
            moved = self._records.in_rados
        if moved:
            self._set_health(STORE_HEALTH, None)
        else:
            pool = self._records.where()['waiting_for_pool']
            self._set_health(STORE_HEALTH, {
                'severity': 'warning', 'count': 1,
                'summary': f"bgtasks keeps task records in the mon until pool '{pool}' exists",
                'detail': [f"pool '{pool}' does not exist yet (or could not be opened); new "
                           'tasks are kept in the key-value store and moved once it does']})
        unreadable = self.engine.unreadable
        self._set_health(UNREADABLE_HEALTH, {
            'severity': 'warning', 'count': len(unreadable),
            'summary': f'{len(unreadable)} task record(s) could not be read; kept aside',
            'detail': [f'{key}: {error}' for key, error in
                       sorted(unreadable.items())[:HEALTH_DETAIL_MAX]]} if unreadable else None)

    def reset_rados(self, failed: Any) -> None:
        """Forget a blocklisted RADOS handle, once however many users met it; the `rados`
        property makes a new one. The task store moves over with no write in flight."""
        with self._rados_lock:
            if failed is None or getattr(self, '_rados', None) is not failed:
                return          # already replaced
            self._records.renew(lambda: MgrModule.shutdown(self))

    def _settings(self) -> Any:
        return (_listen_addr(self), _listen_port(self), self.get_module_option('ssl'))

    def notify(self, notify_type: NotifyType, notify_id: str) -> None:
        if notify_type == NotifyType.osd_map:
            self._cluster.map_changed()
        self.engine.wake(str(getattr(notify_type, 'value', notify_type)))

    def serve(self) -> None:
        # Before loading: records an older bgtasks kept in the key-value store (or a move
        # cut short) are loaded from RADOS with the rest.
        self._check_store()
        self.engine.load()
        self.users.load()
        self.engine.start()
        web = WebServer(self.api.handle)
        self.log.info('bgtasks serving')
        while not self._stop.is_set():
            self._wake.clear()
            up = self._start_web(web)
            self._check_failed_tasks()
            self._check_store()
            self._wake.wait(HOUSEKEEPING_SECONDS if up else RETRY_SECONDS)
            self.users.expire_sessions()
            if self._stop.is_set() or self._settings() != self._server_settings:
                web.stop()
        web.stop()
        self.engine.stop()
        self._cluster.close()
        self._progress.stop()
        self._audit_log.stop()
        self.log.info('bgtasks stopped')

    def _start_web(self, web: WebServer) -> bool:
        """(Re)binds the server if its settings changed; True when it serves."""
        settings = self._settings()
        if web.bound is not None and settings == self._server_settings:
            return True
        addr, port, tls = settings
        try:
            pem = certificate(self._store, may_create=True) if tls else None
            web.start(addr, int(port), pem)
        except (OSError, NoCertificate, subprocess.SubprocessError) as e:
            self.log.error('REST server not started: %s', e)
            # No URL for a server that is not there. It also hands the port back: a standby
            # on this host that took it (racing our rebind after a port change) stands aside
            # once no active URL is published, and our next try binds.
            self.set_uri('')
            self._set_health(SERVER_HEALTH, {
                'severity': 'warning', 'summary': 'bgtasks REST server is not running',
                'count': 1, 'detail': [str(e)]})
            return False
        self._server_settings = settings
        url = _public_url(self, addr, int(port), bool(tls))
        self.set_uri(url)
        self._set_health(SERVER_HEALTH, None)
        self.log.info('REST server listening on %s:%s, published as %s', addr, port, url)
        return True

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        super().shutdown()

    # ------------------------------------------------------------ commands

    @CLIReadCommand('bgtask ls')
    @command
    def _ls(self, state: str = 'pending', format: str = 'plain') -> HandleCommandResult:
        """List background tasks: pending (default), failed, finished or all"""
        if state not in ('pending', 'failed', 'finished', 'all'):
            raise Invalid(f'state must be pending, failed, finished or all, not {state!r}')
        tasks = self.engine.list(None if state == 'all' else state)
        return _output(tasks, format, task_table)

    @CLIReadCommand('bgtask store')
    @command
    def _store_status(self, format: str = 'plain') -> HandleCommandResult:
        """Where task records live (RADOS pool and namespace), how many, their bytes"""
        where = {**self._records.where(), 'pending_writes': self.engine.pending_writes(),
                 'unreadable': sorted(self.engine.unreadable)}
        return _output(where, format, store_text)

    def _detail(self, task: Dict[str, Any]) -> str:
        kind = self.engine.kinds.get(task['kind'])
        return task_detail(task, kind.render(task) if kind else None)

    @CLIReadCommand('bgtask show')
    @command
    def _show(self, task_id: int, format: str = 'plain') -> HandleCommandResult:
        """Show one background task"""
        return _output(self.engine.get(task_id), format, self._detail)

    @CLIWriteCommand('bgtask rm')
    @command
    def _rm(self, task_id: int, yes_i_really_mean_it: bool = False,
            format: str = 'plain') -> HandleCommandResult:
        """Delete a finished or failed task, or abort a pending one (--yes-i-really-mean-it)"""
        task = self.engine.delete(task_id, abort_pending=yes_i_really_mean_it,
                                  deleted_by=CLI_USER)
        if task is None:
            return HandleCommandResult(0, '', f'task {task_id} deleted')
        return _output(task, format, lambda t: f"task {t['id']} aborted; it is kept as failed")

    @CLIWriteCommand('bgtask test')
    @command
    def _test(self, times: int, format: str = 'plain') -> HandleCommandResult:
        """Start a test task that counts numbers for <times> rounds of about a second"""
        task, _ = self.engine.submit('test', {'times': times}, CLI_USER)
        return _output(task, format, self._detail)

    @CLIWriteCommand('bgtask set-pg-num')
    @command
    def _set_pg_num(self, pool: str, pg_num: int, autoscale: Optional[str] = None,
                    timeout: Optional[int] = None,
                    format: str = 'plain') -> HandleCommandResult:
        """Set the number of PGs of a pool; the task ends when the pool has settled"""
        params = {'pool': pool, 'pg_num': pg_num, 'autoscale': autoscale, 'timeout': timeout}
        task, _ = self.engine.submit('set_pg_num', params, CLI_USER)
        return _output(task, format, self._detail)

    @CLIWriteCommand('bgtask rbd-perf')
    @command
    def _rbd_perf(self, pool: Optional[str] = None, seconds: Optional[int] = None,
                  format: str = 'plain') -> HandleCommandResult:
        """Sample per-image RBD I/O over a window (default: every RBD pool, 30 s)"""
        task, _ = self.engine.submit('rbd_perf', {'pool': pool, 'seconds': seconds}, CLI_USER)
        return _output(task, format, self._detail)

    @CLIWriteCommand('bgtask rbd-du')
    @command
    def _rbd_du(self, pool: Optional[str] = None, image: Optional[str] = None,
                format: str = 'plain') -> HandleCommandResult:
        """Measure RBD images' provisioned and used bytes (default: every RBD pool)"""
        task, _ = self.engine.submit('rbd_du', {'pool': pool, 'image': image}, CLI_USER)
        return _output(task, format, self._detail)

    @CLIWriteCommand('bgtask user create')
    @command
    def _user_create(self, username: str, role: str, inbuf: Optional[str] = None,
                     format: str = 'plain') -> HandleCommandResult:
        """Create a REST user (role admin or read-only); the password comes from -i <file>"""
        user = self.users.create(username, role, _password(inbuf))
        return _output(user, format, lambda u: f"user {u['username']} created ({u['role']})")

    @CLIWriteCommand('bgtask user rm')
    @command
    def _user_rm(self, username: str, format: str = 'plain') -> HandleCommandResult:
        """Remove a REST user and end its sessions"""
        self.users.remove(username)
        return HandleCommandResult(0, '', f'user {username} removed')

    @CLIReadCommand('bgtask user ls')
    @command
    def _user_ls(self, format: str = 'plain') -> HandleCommandResult:
        """List REST users"""
        return _output(self.users.list(), format, user_table)

    @CLIWriteCommand('bgtask user set-password')
    @command
    def _user_set_password(self, username: str, inbuf: Optional[str] = None,
                           format: str = 'plain') -> HandleCommandResult:
        """Set a REST user's password from -i <file>; ends its sessions"""
        self.users.set_password(username, _password(inbuf))
        return HandleCommandResult(0, '', f'password of {username} set')


def _password(inbuf: Optional[str]) -> str:
    # Editors end files with a newline that is no part of the password.
    return (inbuf or '').rstrip('\r\n')


class StandbyModule(MgrStandbyModule):
    """A standby mgr sends browsers and scripts to the active one."""
    MODULE_OPTIONS = SERVER_OPTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()

    def __del__(self) -> None:
        standby_cleanup(self)

    def _redirect(self, req: Request) -> Response:
        active = self.get_active_uri()
        if not active:
            return Response(503, {'detail': 'no active mgr serves bgtasks yet; retry'})
        target = active.rstrip('/') + req.path
        return Response(303, {'detail': f'see the active mgr: {target}'},
                        headers=[('Location', target)])

    def serve(self) -> None:
        web = WebServer(self._redirect)
        bound_with = None
        while not self._stop.is_set():
            settings = (_listen_addr(self), _listen_port(self), bool(self.get_module_option('ssl')))
            # With both mgrs on one host the port is the active one's. A standby that took it
            # while the active restarted would keep it out for good: the active publishes no
            # URL until it binds, so the standby could only answer 503. Without an active URL
            # to send people to, or when that URL is our own listener, stand aside.
            active = self.get_active_uri()
            stand_aside = not active or _is_listener(active, settings[0], settings[1])
            if web.bound is not None and (settings != bound_with or stand_aside):
                web.stop()
            if web.bound is None and not stand_aside:
                addr, port, tls = settings
                try:
                    # A standby never makes a certificate: the active mgr does, once.
                    crt, key = self.get_store('crt'), self.get_store('key')
                    pem = (crt, key) if tls and crt and key else None
                    if tls and pem is None:
                        raise NoCertificate('no certificate stored yet')
                    web.start(addr, port, pem)
                    bound_with = settings
                except (OSError, NoCertificate) as e:
                    # Two mgrs on one host share the address: the active one has the port.
                    self.log.info('standby redirect server not started: %s', e)
            self._stop.wait(STANDBY_RETRY_SECONDS)
        web.stop()

    def shutdown(self) -> None:
        self._stop.set()
