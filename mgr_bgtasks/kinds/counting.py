"""The test task of openATTIC's user page: counts numbers for a number of rounds.

Each round counts a little, then waits out the rest of its round in the scheduler,
not in a worker: every module shares the mgr's GIL, so spinning would slow them all.
"""
from typing import Any, Dict

from ..errors import Invalid
from ..kind import Context, Continue, Finish, Outcome, TaskKind

MAX_TIMES = 100000
NUMBERS_PER_ROUND = 10000


def check_times(value: Any) -> int:
    # bool is an int subclass; JSON true must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMES:
        raise Invalid(f'times must be an integer from 1 to {MAX_TIMES}, not {value!r}')
    return value


class CountingTask(TaskKind):
    name = 'test'
    merge_identical = False   # users start several on purpose to watch the queue

    def validate(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        return {'times': check_times(params.get('times'))}

    def describe(self, params: Dict[str, Any]) -> str:
        times = params['times']
        return f"Test task counting {times} round{'' if times == 1 else 's'}"

    def first_state(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {'done': 0, 'counting': False}

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        times = params['times']
        # This step runs once the previous round was waited out, so that round is done.
        done = state['done'] + (1 if state['counting'] else 0)
        if done >= times:
            return Finish({'rounds': done})
        begin = ctx.clock.now()
        total = sum(range(NUMBERS_PER_ROUND))
        spent = ctx.clock.now() - begin
        round_seconds = float(ctx.options.get('test_round_seconds', 1.0))
        return Continue({'done': done, 'counting': True, 'last_sum': total},
                        percent=100.0 * done / times,
                        delay=max(0.0, round_seconds - spent),
                        status_text=f'round {done + 1} of {times}')
