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


def standby_cleanup(module: Any) -> None:
    """What a standby module frees when it goes, without its logging: Pacific's
    MgrStandbyModule.__del__ also strips the root logger, which the active module made in the
    same interpreter after a takeover; Tentacle has no such clean-up at all."""
    cleanup = getattr(module, '_cleanup', None)
    if cleanup is not None:
        cleanup()


__all__ = ['CLIReadCommand', 'CLIWriteCommand', 'Commands', 'standby_cleanup']
