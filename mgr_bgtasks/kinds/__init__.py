"""The task kinds bgtasks knows, by name."""
from typing import Dict

from ..kind import TaskKind
from .counting import CountingTask
from .pg_num import SetPgNum
from .rbd_du import RbdDu
from .rbd_perf import RbdPerf


def all_kinds() -> Dict[str, TaskKind]:
    kinds = [CountingTask(), SetPgNum(), RbdPerf(), RbdDu()]
    return {k.name: k for k in kinds}
