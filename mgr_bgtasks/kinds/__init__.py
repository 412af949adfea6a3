"""The task kinds bgtasks knows, by name."""
from typing import Dict

from ..kind import TaskKind
from .counting import CountingTask
from .pg_num import SetPgNum


def all_kinds() -> Dict[str, TaskKind]:
    kinds = [CountingTask(), SetPgNum()]
    return {k.name: k for k in kinds}
