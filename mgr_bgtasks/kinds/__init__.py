"""The task kinds bgtasks knows, by name."""
from typing import Dict

from ..kind import TaskKind
from .counting import CountingTask
from .pg_num import SetPgNum
from .rbd_perf import RbdPerf


def all_kinds() -> Dict[str, TaskKind]:
    kinds = [CountingTask(), SetPgNum(), RbdPerf()]
    return {k.name: k for k in kinds}
