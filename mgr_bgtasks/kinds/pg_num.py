"""Setting the number of PGs of a pool, done only when the pool has really settled.

`osd pool set <pool> pg_num N` only sets targets; the mgr then steps pg_num and
pgp_num towards them while keeping misplaced objects under 5 %. The pool has settled
when both counts are at N and every PG is active+clean on exactly the OSDs the
current map assigns to it: PG stats lag the map, and stale stats say active+clean for
the old placement while the last step is still peering, so counts alone report done
seconds early. A merge keeps the target PG where it was, so for a decrease each merged
PG's stats must also have been reported since its merge.
"""
from typing import Any, Dict, List, Optional, Tuple

from ..cluster import Cluster, MonCommandError, PgMapping
from ..errors import BgtaskError, Busy, Invalid, NotFound
from ..kind import Context, Continue, Finish, Outcome, TaskKind
from ..validators import Choice, Integer, Name

# The first look after the targets are set.
RECHECK_SECONDS = 1.0
# While the mgr still steps the counts, only a new OSD map can move them: a check on each
# epoch and otherwise this seldom (for the share of misplaced objects in the percent), so
# that a change that takes longer on a busier cluster does not take more checks; the pools'
# recovery may be this old then. Likewise while a PG still has a pg_temp, or the mgr's map
# is behind the mon's.
WAKE_ON = frozenset({'osd_map'})
MOVING_RECHECK_SECONDS = 3.0
# Once only the last PGs' stats are awaited, checked this often: the mgr notifies no
# new PG stats (pg_summary comes with the mon's digest, not with them).
SETTLING_RECHECK_SECONDS = 0.5
# The mgr takes in the OSDs' PG stats all at once each mgr_tick_period (and on a new
# epoch, which wakes a check anyway). So once a check saw new stats under the same map,
# the next cannot come before a tick after the look that still saw the old ones, and the
# checks in between are skipped: on a busy cluster the last PGs take seconds to settle.
TICK_OPTION = 'mgr_tick_period'
# A check whose inputs seem unchanged (no OSD map notified, the same PG stats) repeats the
# last one's answer without reading, and the per-PG check is skipped likewise, for at
# most this long: the stats' change signal is the mgr's, and a notification may be lost.
FULL_RECHECK_SECONDS = 2.0
# Share of the percent for pg_num, pgp_num and settled PGs.
WEIGHTS = (0.4, 0.4, 0.2)


class Observation:
    """One look at the pool: how far it got, and what it still waits for.

    The pools' recovery costs a few fields per pool, the per-PG stats and mapping follow
    the pool's PGs. So a look starts from the recovery, and `look_closer` (the per-PG check
    that alone may say "settled") runs only once it allows it: counts at target and no
    object misplaced, degraded or unfound, which no active+clean PG has.
    """

    def __init__(self, cluster: Cluster, pool: Tuple[int, str], counts: Tuple[int, int],
                 counts_done: bool, target: int) -> None:
        (self.pool_id, self.pool_name), self.target = pool, target
        self.pg_num, self.pgp_num = counts
        self.counts_done = counts_done
        # Until the counts are done the recovery only moves the percent: as old as the
        # seldom recheck serves, not a read of every pool's on each new epoch.
        max_age = 0.0 if counts_done else MOVING_RECHECK_SECONDS
        left = cluster.pool_recovery(max_age=max_age).get(self.pool_id, {})
        misplaced = int(left.get('misplaced_objects', 0))
        self.misplaced_ratio = float(left.get('misplaced_ratio', 0.0)) if misplaced else 0.0
        self.degraded = int(left.get('degraded_objects', 0)) + \
            int(left.get('unfound_objects', 0))
        self.may_settle = self.counts_done and not misplaced and not self.degraded
        # PGs with stats: known from the per-PG check only.
        self.seen: Optional[int] = None
        # The epoch the mon showed the counts done in, while the mgr's map is older.
        self.map_behind: Optional[int] = None
        self.unclean: Dict[str, int] = {}
        self.stale = 0
        self.unmerged = 0
        # PGs the map still gives other acting OSDs than up ones (a pg_temp while they
        # backfill): no such PG is active+clean, so their stats need no reading yet.
        self.remapped = 0
        self.settled = False
        self.down = cluster.osds_down()

    @classmethod
    def of_pool(cls, cluster: Cluster, pool: Dict[str, Any], target: int) -> 'Observation':
        """From the pool's entry of an OSD map, which alone tells the targets."""
        counts = (pool['pg_num'], pool['pg_placement_num'])
        done = counts == (pool['pg_num_target'], pool['pg_placement_num_target']) == \
            (target, target)
        return cls(cluster, (pool['pool'], pool['pool_name']), counts, done, target)

    def look_closer(self, stats: List[Dict[str, Any]], mapping: PgMapping,
                    merged: Dict[int, int]) -> None:
        """Each PG active+clean on exactly the OSDs the map assigns, and reported since
        its merge (`merged`: per PG seed, that epoch): stale stats say active+clean for
        the old placement while the last step is still peering, and a merge target's
        placement does not change."""
        for s in stats:
            seed = _seed(s)
            if s['state'] != 'active+clean':
                self.unclean[s['state']] = self.unclean.get(s['state'], 0) + 1
            elif (list(s['up']), list(s['acting'])) != mapping.get(seed):
                self.stale += 1
            elif int(s['reported_epoch']) < merged.get(seed, 0):
                self.unmerged += 1
        self.seen = len(stats)
        self.settled = self.counts_done and self.seen == self.target and self.matching == \
            self.target

    def keep_closer_look(self, earlier: 'Observation') -> None:
        """What the last per-PG check saw, when nothing has changed since."""
        self.unclean, self.stale, self.seen = earlier.unclean, earlier.stale, earlier.seen
        self.unmerged = earlier.unmerged

    @property
    def awaits_map(self) -> bool:
        """Only a new epoch can change what this look saw."""
        return not self.counts_done or bool(self.remapped) or self.map_behind is not None

    @property
    def matching(self) -> int:
        if self.seen is None:
            return self.pg_num - self.remapped     # as far as the recovery tells
        return self.seen - sum(self.unclean.values()) - self.stale - self.unmerged

    @property
    def why(self) -> str:
        target = self.target
        parts: List[str] = []
        if self.pg_num != target or self.pgp_num != target:
            parts.append(f'pg_num {self.pg_num}, pgp_num {self.pgp_num} of {target}')
        if self.unclean:
            states = ', '.join(f'{n} {st}' for st, n in sorted(self.unclean.items()))
            parts.append(f'{sum(self.unclean.values())} PGs not active+clean ({states})')
        if self.misplaced_ratio:
            parts.append(f'{self.misplaced_ratio:.1%} objects misplaced')
        if self.degraded:
            parts.append(f'{self.degraded} objects degraded or unfound')
        if self.stale:
            parts.append(f'{self.stale} PGs not yet reported on their new OSDs')
        if self.unmerged:
            parts.append(f'{self.unmerged} PGs not yet reported since their merge')
        if self.remapped:
            parts.append(f'{self.remapped} PGs still mapped to a pg_temp')
        if self.seen is not None and self.seen != self.pg_num:
            parts.append(f'stats for {self.seen} of {self.pg_num} PGs')
        if self.map_behind is not None:
            parts.append(f"the mgr's OSD map not yet at epoch {self.map_behind}")
        if self.down:
            parts.append(f'{self.down} OSD{"s" if self.down > 1 else ""} down')
        return 'waiting: ' + '; '.join(parts) if parts else 'settled'

    def fraction(self, before: Tuple[int, int], target: int) -> float:
        def covered(now: int, start: int) -> float:
            return 1.0 if start == target else \
                max(0.0, min(1.0, (now - start) / (target - start)))
        placed = min(1.0, self.matching / max(self.pg_num, 1)) * (1.0 - self.misplaced_ratio)
        parts = (covered(self.pg_num, before[0]), covered(self.pgp_num, before[1]), placed)
        return sum(w * p for w, p in zip(WEIGHTS, parts))


Seen = Dict[str, Tuple[Any, float, Observation]]


def _seed(stat: Dict[str, Any]) -> int:
    return int(stat['pgid'].split('.', 1)[1], 16)


def merge_epochs(cluster: Cluster, params: Dict[str, Any], entry: Dict[str, Any],
                 stats: List[Dict[str, Any]]) -> Dict[int, int]:
    """Per PG seed, the epoch of its last merge as a target in this decrease.

    A map keeps only its last merge (its source, and as ready_epoch the epoch that
    merged it); the map of the epoch before holds the one before that. So the walk
    goes back a map per merge, and stops where the merges predate every PG's stats
    (older ones cannot be stale then), where they predate the task, or where the mon
    no longer keeps the map.
    """
    merged: Dict[int, int] = {}
    oldest_report = min((int(s['reported_epoch']) for s in stats), default=0)
    while True:
        meta, pg_num = entry.get('last_pg_merge_meta') or {}, entry['pg_num']
        pool, _, source = str(meta.get('source_pgid', '')).partition('.')
        epoch = int(meta.get('ready_epoch', 0))
        if not (epoch and pool == str(params['pool_id']) and source and
                int(source, 16) == pg_num < params['pg_num_before']):
            return merged
        seed = int(source, 16)
        merged.setdefault(seed & ~(1 << (seed.bit_length() - 1)), epoch)
        if oldest_report >= epoch:
            return merged
        older = cluster.pool_entry(params['pool'], epoch=epoch - 1)
        if older is None or older['pool'] != params['pool_id']:
            return merged
        entry = older


def _seen_under(seen: Seen, key: str, inputs: Any, now: float) -> Optional[Observation]:
    """What the task's last look saw, if it read under the same inputs and recently."""
    last = seen.get(key)
    if last is not None and last[0] == inputs and 0 <= now - last[1] < FULL_RECHECK_SECONDS:
        return last[2]
    return None


def _tick_seconds(cluster: Cluster) -> float:
    # Unreadable: as if a tick could come at any time, so that no check is skipped.
    try:
        return float(str(cluster.option(TICK_OPTION)).rstrip('s'))
    except (TypeError, ValueError):
        return 0.0


def _key(params: Dict[str, Any], state: Dict[str, Any]) -> str:
    return f"{params['pool_id']}:{state['issued']}"


def _deleted(params: Dict[str, Any]) -> BgtaskError:
    # A pool of the same name but another id was made anew: not the pool asked about.
    return BgtaskError(f"pool '{params['pool']}' was deleted")


class SetPgNum(TaskKind):
    name = 'set_pg_num'
    summary = "Set a pool's number of PGs; done when the pool has settled"
    fields = (Name('pool', required=True, what='a pool name'),
              Integer('pg_num', required=True, low=1,
                      high=lambda cluster: int(cluster.option('mon_max_pool_pg_num'))),
              Choice('autoscale', choices=('off',)),
              Integer('timeout', low=1))
    refusals = {404: 'no such pool',
                409: 'the pool has a pending PG task, or its autoscaler is on'}

    def __init__(self) -> None:
        # Per task: what the last check saw, with the map and stats versions it read
        # under, and when.
        self._last: Seen = {}
        # Per task: what the last per-PG check saw, with the stats version and the pool's
        # mapping it saw them under, and when.
        self._closer: Seen = {}
        # Per task whose counts and targets an OSD map showed done: the pool's entry in
        # it. The mon's counts serve from then on, without another dump, and the PGs are
        # checked against the mgr's map once it is at least that new.
        self._settling: Dict[str, Dict[str, Any]] = {}
        # Per task that decreased, once its PGs are looked at: `merge_epochs`.
        self._merged: Dict[str, Dict[int, int]] = {}
        # Per settling task: when it last looked, and before when no new stats can come.
        self._looked: Dict[str, float] = {}
        self._stats_due: Dict[str, float] = {}

    def check(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        name, target = params['pool'], params['pg_num']
        pool = ctx.cluster.pool_entry(name)
        if pool is None:
            raise NotFound(f"pool '{name}' not found")
        if pool['pg_num_target'] == target:
            raise Invalid(f"pg_num of pool '{name}' is already {target}")
        if pool.get('pg_autoscale_mode') == 'on' and params['autoscale'] != 'off':
            raise Busy(f"the PG autoscaler is on for pool '{name}' and would undo this; "
                       "ask with autoscale off (CLI: --autoscale off) to turn it off first")
        facts = {'pool_id': pool['pool'], 'pg_num_before': pool['pg_num'],
                 'pgp_num_before': pool['pg_placement_num']}
        if target & (target - 1):
            facts['warning'] = f'{target} is not a power of two; PGs will differ in size'
        return {**params, **facts}

    def describe(self, params: Dict[str, Any]) -> str:
        return (f"Setting number of PGs of pool '{params['pool']}' "
                f"from {params['pg_num_before']} to {params['pg_num']}")

    def conflicts(self, params: Dict[str, Any], other: Dict[str, Any]) -> bool:
        return params['pool'] == other['pool']

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        if not state:
            return self._set_targets(ctx, params)
        target = params['pg_num']
        seen = self._look(ctx, params, state)
        elapsed = ctx.clock.now() - state['issued']
        if seen.settled:
            result = {'pool': params['pool'], 'pg_num_before': params['pg_num_before'],
                      'pgp_num_before': params['pgp_num_before'], 'pg_num_after': seen.pg_num,
                      'pgp_num_after': seen.pgp_num, 'seconds': round(elapsed, 3)}
            if 'warning' in params:
                result['warning'] = params['warning']
            return Finish(result)
        if params.get('timeout') and elapsed > params['timeout']:
            raise BgtaskError(f"timed out after {params['timeout']} s; last seen: {seen.why}")
        before = (params['pg_num_before'], params['pgp_num_before'])
        if seen.awaits_map:
            delay = MOVING_RECHECK_SECONDS
        else:
            due = self._stats_due.get(_key(params, state), 0.0) - ctx.clock.now()
            delay = max(SETTLING_RECHECK_SECONDS, due)
        return Continue(state, percent=min(99.0, 100.0 * seen.fraction(before, target)),
                        delay=delay, wake_on=WAKE_ON, status_text=seen.why)

    def _look(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Observation:
        # While the last PGs' stats are awaited most checks come between two of the mgr's
        # stats updates (each tick, each epoch) and would read the same again. Never
        # early: an answer that said settled ended the task. While the counts move, a new
        # epoch is what wakes a check: asking what changed would only cost more.
        key, now = _key(params, state), ctx.clock.now()
        if key not in self._settling:
            return self._read(ctx, params, key)
        looked, self._looked[key] = self._looked.get(key), now
        inputs = (ctx.cluster.map_version(), ctx.cluster.pg_stats_version())
        last = _seen_under(self._last, key, inputs, now)
        if last is not None:
            return last
        before = self._last.get(key)
        seen = self._read(ctx, params, key)
        self._last[key] = (inputs, now, seen)
        if looked is not None and before is not None and before[0][0] == inputs[0] and \
                before[0][1] != inputs[1]:
            self._stats_due[key] = looked + _tick_seconds(ctx.cluster)
        return seen

    def _read(self, ctx: Context, params: Dict[str, Any], key: str) -> Observation:
        # The mon's counts of the one pool, not a dump of the whole OSD map on each epoch
        # (in proportion to the pools; on Tentacle to every PG of the cluster): the dump
        # only once, when they reach the target, for the targets and their epoch.
        target = params['pg_num']
        pool = (params['pool_id'], params['pool'])
        counts = self._counts(ctx.cluster, params)
        now_counts = (counts['pg_num'], counts['pgp_num'])
        if now_counts != (target, target):
            self._settling.pop(key, None)
            self._merged.pop(key, None)
            seen = Observation(ctx.cluster, pool, now_counts, False, target)
        elif key in self._settling:
            seen = Observation(ctx.cluster, pool, now_counts, True, target)
        else:
            entry = ctx.cluster.pool_entry(params['pool'])
            if entry is None or entry['pool'] != params['pool_id']:
                raise _deleted(params)
            seen = Observation.of_pool(ctx.cluster, entry, target)
            if seen.counts_done:
                self._settling[key] = entry
        if not seen.may_settle:
            return seen
        # The mon may be ahead of the mgr, whose map of an older epoch could assign the
        # PGs where their stale stats still put them: the PGs wait for the mgr's epoch.
        epoch, mapping = ctx.cluster.pool_pg_mapping(params['pool_id'])
        if epoch < self._settling[key]['epoch']:
            seen.map_behind = self._settling[key]['epoch']
            return seen
        seen.remapped = sum(1 for up, acting in mapping.values() if up != acting)
        if seen.remapped:
            return seen
        # Per-PG stats only when new stats or a new map came in since the last per-PG
        # check (on a mgr restart: once), so settling costs a few such reads.
        changes = (ctx.cluster.pg_stats_version(), sorted(mapping.items()))
        now = ctx.clock.now()
        closer = _seen_under(self._closer, key, changes, now)
        if closer is not None:
            seen.keep_closer_look(closer)
        else:
            stats = ctx.cluster.pool_pg_stats(params['pool_id'], params['pool'])
            if key not in self._merged:
                self._merged[key] = merge_epochs(ctx.cluster, params, self._settling[key],
                                                 stats)
            seen.look_closer(stats, mapping, self._merged[key])
            self._closer[key] = (changes, now, seen)
        return seen

    def _per_task(self) -> Tuple[Dict[str, Any], ...]:
        return (self._last, self._closer, self._settling, self._merged, self._looked,
                self._stats_due)

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        if state:
            for kept in self._per_task():
                kept.pop(_key(params, state), None)

    def shutdown(self, ctx: Context) -> None:
        for kept in self._per_task():
            kept.clear()

    def _counts(self, cluster: Cluster, params: Dict[str, Any]) -> Dict[str, Any]:
        counts = cluster.pool_counts(params['pool'])
        if counts is None or counts['pool_id'] != params['pool_id']:
            raise _deleted(params)
        return counts

    def _set_targets(self, ctx: Context, params: Dict[str, Any]) -> Outcome:
        # Idempotent: a mgr that died after this step runs it again to the same effect.
        name, target = params['pool'], str(params['pg_num'])
        counts = self._counts(ctx.cluster, params)
        try:
            if params['autoscale'] == 'off' and counts.get('pg_autoscale_mode') != 'off':
                ctx.cluster.mon_command({'prefix': 'osd pool set', 'pool': name,
                                         'var': 'pg_autoscale_mode', 'val': 'off'})
            ctx.cluster.mon_command({'prefix': 'osd pool set', 'pool': name,
                                     'var': 'pg_num', 'val': target})
            ctx.cluster.mon_command({'prefix': 'osd pool set', 'pool': name,
                                     'var': 'pgp_num', 'val': target})
        except MonCommandError as e:
            self._counts(ctx.cluster, params)   # deleted meanwhile: say so plainly
            raise BgtaskError(str(e))
        return Continue({'issued': ctx.clock.now()}, percent=0.0, delay=RECHECK_SECONDS,
                        wake_on=WAKE_ON, status_text='targets set; waiting for the mgr')
