"""The ceph-mgr adapter: options, `ceph bgtask` commands and the serve() loop.

Everything a command does is a call into the engine's service functions; this file
only translates between the mgr and them (errors to errno in one place).
"""
import errno
import functools
import inspect
import json
import threading
from typing import Any, Callable, Dict, Optional

from mgr_module import (CLIReadCommand, CLIWriteCommand, HandleCommandResult, MgrModule,
                        NotifyType, Option)

from .clock import Clock
from .engine import Engine
from .errors import BgtaskError, Invalid
from .kind import Context
from .kinds import all_kinds
from .progress import ProgressMirror
from .render import task_detail, task_table

FORMATS = ('plain', 'json', 'json-pretty')
# The mgr does not tell a module which entity sent a command.
CLI_USER = 'cli'


class MgrStore:
    """The engine's Store over the module's key-value store (mon config-key)."""

    def __init__(self, module: MgrModule) -> None:
        self._module = module

    def get(self, key: str) -> Optional[str]:
        return self._module.get_store(key)

    def put(self, key: str, value: Optional[str]) -> None:
        self._module.set_store(key, value)

    def scan(self, prefix: str) -> Dict[str, str]:
        return self._module.get_store_prefix(prefix)


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


class Module(MgrModule):
    MODULE_OPTIONS = [
        Option('max_workers', type='int', default=4, min=1, max=64, runtime=True,
               desc='how many task steps may run at the same time'),
        Option('retention_days', type='float', default=7.0, min=0.0, runtime=True,
               desc='finished and failed tasks are removed after this many days'),
        Option('max_retained', type='int', default=10000, min=0, runtime=True,
               desc='at most this many finished and failed tasks are kept (oldest go first)'),
        Option('test_round_seconds', type='float', default=1.0, min=0.0, max=60.0,
               runtime=True, desc='length of one round of the test task'),
    ]
    NOTIFY_TYPES = [NotifyType.osd_map, NotifyType.pg_summary]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        clock = Clock()
        self._ctx = Context(cluster=self, clock=clock, options={})
        self.engine = Engine(MgrStore(self), clock, all_kinds(), self._ctx,
                             observer=ProgressMirror(self.remote))
        self.config_notify()

    # ------------------------------------------------------------ mgr hooks

    def config_notify(self) -> None:
        for opt in self.MODULE_OPTIONS:
            self._ctx.options[opt['name']] = self.get_module_option(opt['name'])
        self.engine.max_workers = int(self._ctx.options['max_workers'])
        self.engine.retention_days = float(self._ctx.options['retention_days'])
        self.engine.max_retained = int(self._ctx.options['max_retained'])

    def notify(self, notify_type: NotifyType, notify_id: str) -> None:
        self.engine.wake(str(getattr(notify_type, 'value', notify_type)))

    def serve(self) -> None:
        self.engine.load()
        self.engine.start()
        self.log.info('bgtasks serving')
        self._stop.wait()
        self.engine.stop()
        self.log.info('bgtasks stopped')

    def shutdown(self) -> None:
        self._stop.set()
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

    @CLIReadCommand('bgtask show')
    @command
    def _show(self, task_id: int, format: str = 'plain') -> HandleCommandResult:
        """Show one background task"""
        return _output(self.engine.get(task_id), format, task_detail)

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
        return _output(task, format, task_detail)
