import os
import sys
from typing import Any, Dict, List

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from mgr_bgtasks.clock import Clock  # noqa: E402
from mgr_bgtasks.engine import Engine  # noqa: E402
from mgr_bgtasks.kind import Context  # noqa: E402
from mgr_bgtasks.kinds import all_kinds  # noqa: E402
from mgr_bgtasks.store import MemoryStore  # noqa: E402


class FakeClock(Clock):
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Recorder:
    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []

    def task_changed(self, task: Dict[str, Any]) -> None:
        self.events.append(task)


class Harness:
    """An engine over an in-memory store and a fake clock; `restart()` is a mgr failover."""

    def __init__(self, **engine_args: Any) -> None:
        self.store = MemoryStore()
        self.clock = FakeClock()
        self.kinds = all_kinds()
        self.options: Dict[str, Any] = {'test_round_seconds': 1.0}
        self.observer = Recorder()
        self.engine_args = engine_args
        self.engine = self._new_engine()

    def _new_engine(self) -> Engine:
        ctx = Context(cluster=None, clock=self.clock, options=self.options)
        engine = Engine(self.store, self.clock, self.kinds, ctx, observer=self.observer,
                        **self.engine_args)
        engine.load()
        return engine

    def restart(self) -> Engine:
        # A new mgr has new kind objects: nothing held in memory survives.
        fresh = all_kinds()
        self.kinds = {**self.kinds, **fresh}
        self.engine = self._new_engine()
        return self.engine

    def tick(self, seconds: float = 1.0) -> int:
        self.clock.advance(seconds)
        return self.engine.run_due()


@pytest.fixture
def h() -> Harness:
    return Harness()
