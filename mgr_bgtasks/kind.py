"""What a task kind is: validation, a description, and a sequence of resumable steps.

A step gets the state the previous step left and returns either `Continue` (the
next step's state, persisted before it runs) or `Finish` (the result). A step may
run twice (a mgr died while it ran), so steps must be idempotent.
"""
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Optional, Tuple, Union

from .clock import Clock
from .validators import Field, body_schema, check_fields


@dataclass
class Continue:
    state: Dict[str, Any]
    percent: float
    # Seconds until the next step; a wake event named in `wake_on` brings it forward.
    delay: float = 0.0
    wake_on: FrozenSet[str] = frozenset()
    status_text: Optional[str] = None
    # False: the store write may wait for a later step (the new state is shown at once).
    # For kinds whose state changes every few seconds and whose resumption copes with
    # a slightly older state, which is what a failover would find anyway.
    save: bool = True


@dataclass
class Finish:
    result: Any = None


Outcome = Union[Continue, Finish]


class Context:
    """What steps and validation may use: the cluster, the clock and the module's options."""

    def __init__(self, cluster: Any, clock: Clock, options: Dict[str, Any]) -> None:
        self.cluster = cluster
        self.clock = clock
        self.options = options


class TaskKind:
    """A kind says everything about itself that the interfaces show: `module.py` has one
    CLI command per kind, and the REST route, its body schema and the text of a result
    come from here."""
    name = ''
    # The REST route is POST /api/taskqueue/<rest_name> (`name` if empty).
    rest_name = ''
    summary = ''
    # The request's fields: validation and the REST body schema both come from them.
    fields: Tuple[Field, ...] = ()
    # What the checks against the cluster may refuse, by HTTP status, for the REST document.
    refusals: Dict[int, str] = {}
    # Kinds that act on the cluster are not queued twice with the same params.
    merge_identical = True

    @property
    def route(self) -> str:
        return self.rest_name or self.name

    def body_schema(self) -> Dict[str, Any]:
        return body_schema(self.fields)

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        """Check the request's shape and normalise it; raise errors.Invalid."""
        return check_fields(self.fields, ctx.cluster, params)

    def check(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        """Check the request against the cluster (errors.NotFound, Invalid, Busy); may
        add what it learnt (ids, counts before) to the params. Runs only when no
        identical task is pending, since a pending one may already have changed things."""
        return params

    def describe(self, params: Dict[str, Any]) -> str:
        raise NotImplementedError

    def first_state(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {}

    def conflicts(self, params: Dict[str, Any], other: Dict[str, Any]) -> bool:
        """True if a pending task with `other` params forbids queueing `params` (EBUSY)."""
        return False

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        raise NotImplementedError

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        """Release what steps hold on the cluster; called once the task is final, however,
        with the state of its last completed step."""

    def stopping(self) -> None:
        """The module stops: cut long steps short (a step keeps what it finished; a new
        mgr goes on from there). Called before the engine waits for steps in flight."""

    def shutdown(self, ctx: Context) -> None:
        """The module stops: release what this mgr holds for every task (a new mgr will
        take the tasks up again)."""

    def refs(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """What the task works on, for its progress event (as Ceph's own modules name
        it in theirs)."""
        return {key: params[key] for key in ('pool', 'image') if params.get(key) is not None}

    def render(self, task: Dict[str, Any]) -> Optional[str]:
        """The CLI's text of a finished task's result, if plain fields do not suit it."""
        return None

    def held(self) -> Dict[str, int]:
        """What this kind holds on the cluster now, by name (for /metrics)."""
        return {}
