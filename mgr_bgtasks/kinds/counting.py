"""The test task of openATTIC's user page: counts numbers for a number of rounds.

Each round counts a little, then waits out the rest of its round in the scheduler,
not in a worker: every module shares the mgr's GIL, so spinning would slow them all.
"""
from typing import Any, Dict

from ..kind import Context, Continue, Finish, Outcome, TaskKind
from ..validators import Integer

MAX_TIMES = 100000
NUMBERS_PER_ROUND = 10000


class CountingTask(TaskKind):
    name = 'test'
    rest_name = 'test_task'     # openATTIC's path
    summary = 'Start a test task counting `times` rounds of about a second'
    fields = (Integer('times', required=True, low=1, high=MAX_TIMES),)
    merge_identical = False   # users start several on purpose to watch the queue

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
