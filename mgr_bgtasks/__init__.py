"""bgtasks: long cluster operations as background tasks, kept across mgr failover."""
try:
    # ceph_module exists only inside ceph-mgr; elsewhere (unit tests) only the engine is used.
    import ceph_module  # noqa: F401
except ImportError:
    pass
else:
    from .module import Module, StandbyModule  # noqa: F401
