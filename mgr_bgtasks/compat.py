"""What differs between the Ceph releases bgtasks runs on (Pacific 16.2, Tentacle 20.2),
found by feature at import, never by version number. Nothing else in the module knows.
"""
from typing import Any

try:
    # Up to Reef every module registers its commands in one registry of mgr_module.
    from mgr_module import CLIReadCommand, CLIWriteCommand
    CommandRegistry: Any = None
except ImportError:
    # Tentacle: each module owns a registry and names it in its class.
    from mgr_module import CLICommandBase
    CommandRegistry = CLICommandBase.make_registry_subtype('BgtasksCLICommand')
    CLIReadCommand = CommandRegistry.Read
    CLIWriteCommand = CommandRegistry.Write


class Commands:
    """Mixed into the module class ahead of MgrModule: names our registry where the mgr
    looks for one, and is empty where commands share the global one."""
    if CommandRegistry is not None:
        CLICommand = CommandRegistry


def mgr_pool(module: Any) -> str:
    """The pool the mgr keeps its modules' data in: `.mgr` from Quincy on; on Pacific the
    devicehealth module's pool (its option pool_name), which an upgrade renames to `.mgr`."""
    name = getattr(module, 'MGR_POOL_NAME', None)
    if name:
        return str(name)
    return str(module.get_module_option_ex('devicehealth', 'pool_name',
                                           'device_health_metrics'))


def standby_cleanup(module: Any) -> None:
    """What a standby module frees when it goes, without its logging: Pacific's
    MgrStandbyModule.__del__ also strips the root logger, which the active module made in the
    same interpreter after a takeover; Tentacle has no such clean-up at all."""
    cleanup = getattr(module, '_cleanup', None)
    if cleanup is not None:
        cleanup()


__all__ = ['CLIReadCommand', 'CLIWriteCommand', 'Commands', 'mgr_pool', 'standby_cleanup']
