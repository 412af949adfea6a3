"""The PG task against a fake cluster whose maps and stats the test moves by hand."""
import copy
import json
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import Harness

from mgr_bgtasks.cluster import MonCommandError, PgMapping
from mgr_bgtasks.errors import Busy, Invalid, NotFound


class FakeCluster:
    def __init__(self) -> None:
        self.pool_list: List[Dict[str, Any]] = []
        self.stats: List[Dict[str, Any]] = []
        self.mapping: Dict[Tuple[int, int], List[int]] = {}
        self.commands: List[Dict[str, Any]] = []
        self.down = 0
        self.fail_commands = False
        self.pg_stats_reads = 0
        self.recovery_max_ages: List[float] = []
        # Dumps of the whole map: the mgr's, and the mon's.
        self.map_reads = 0
        self.mon_dumps = 0
        # The mgr's map's epoch; the mon's counts, when a test puts them an epoch ahead.
        self.epoch = 10
        self.mon_counts: Dict[int, Tuple[int, int]] = {}
        # pg_temps: acting OSDs other than the up ones, per (pool, seed).
        self.temps: Dict[Tuple[int, int], List[int]] = {}
        # The mon's older maps' pools, by epoch.
        self.history: Dict[int, List[Dict[str, Any]]] = {}

    def add_pool(self, name: str, pool_id: int, pg: int, mode: str = 'off') -> None:
        self.pool_list.append({'pool': pool_id, 'pool_name': name, 'pg_num': pg,
                               'pg_placement_num': pg, 'pg_num_target': pg,
                               'pg_placement_num_target': pg, 'pg_autoscale_mode': mode})
        self.settle(pool_id, pg)

    def pool(self, pool_id: int) -> Dict[str, Any]:
        return next(p for p in self.pool_list if p['pool'] == pool_id)

    def settle(self, pool_id: int, pg: int, osds: Tuple[int, ...] = (0,)) -> None:
        """Counts at pg, every PG active+clean where the map puts it."""
        p = self.pool(pool_id)
        p.update(pg_num=pg, pg_placement_num=pg)
        self.stats = [s for s in self.stats if not s['pgid'].startswith(f'{pool_id}.')]
        for seed in range(pg):
            osd = [osds[seed % len(osds)]]
            self.mapping[(pool_id, seed)] = osd
            self.stats.append({'pgid': f'{pool_id}.{seed:x}', 'state': 'active+clean',
                               'up': osd, 'acting': osd, 'reported_epoch': self.epoch,
                               'stat_sum': {'num_objects': 10, 'num_objects_misplaced': 0}})
        self.history[self.epoch] = copy.deepcopy(self.pool_list)

    def merge(self, pool_id: int) -> None:
        """The mgr merges the pool's last PG into its parent in a new epoch; the target
        stays where it was, and its stats are not reported anew."""
        self.epoch += 1
        p = self.pool(pool_id)
        p['pg_num'] -= 1
        p['pg_placement_num'] = min(p['pg_placement_num'], p['pg_num'])
        p['last_pg_merge_meta'] = {'source_pgid': f"{pool_id}.{p['pg_num']:x}",
                                   'ready_epoch': self.epoch}
        self.stats = [s for s in self.stats if s['pgid'] != f"{pool_id}.{p['pg_num']:x}"]
        del self.mapping[(pool_id, p['pg_num'])]
        self.history[self.epoch] = copy.deepcopy(self.pool_list)

    def report(self, pool_id: int, seeds: List[int]) -> None:
        for s in self.stats:
            if s['pgid'] in [f'{pool_id}.{seed:x}' for seed in seeds]:
                s['reported_epoch'] = self.epoch

    # the Cluster interface
    def pools(self) -> List[Dict[str, Any]]:
        self.map_reads += 1
        return [dict(p) for p in self.pool_list]

    def pool_counts(self, pool_name: str) -> Optional[Dict[str, Any]]:
        entry = self._mon_entry(pool_name)
        return None if entry is None else {
            'pool_id': entry['pool'], 'pg_num': entry['pg_num'],
            'pgp_num': entry['pg_placement_num'],
            'pg_autoscale_mode': entry['pg_autoscale_mode']}

    def pool_entry(self, pool_name: str,
                   epoch: Optional[int] = None) -> Optional[Dict[str, Any]]:
        self.mon_dumps += 1
        if epoch is None:
            return self._mon_entry(pool_name)
        return next(({**p, 'epoch': epoch} for p in self.history.get(epoch, [])
                     if p['pool_name'] == pool_name), None)

    def _mon_entry(self, pool_name: str) -> Optional[Dict[str, Any]]:
        for p in self.pool_list:
            if p['pool_name'] == pool_name:
                ahead = p['pool'] in self.mon_counts
                pg_num, pgp_num = self.mon_counts.get(
                    p['pool'], (p['pg_num'], p['pg_placement_num']))
                return {**p, 'pg_num': pg_num, 'pg_placement_num': pgp_num,
                        'epoch': self.epoch + ahead}
        return None

    def pool_pg_stats(self, pool_id: int, pool_name: str) -> List[Dict[str, Any]]:
        assert self.pool(pool_id)['pool_name'] == pool_name
        self.pg_stats_reads += 1
        return [dict(s) for s in self.stats if s['pgid'].startswith(f'{pool_id}.')]

    def pool_recovery(self, max_age: float = 0.0) -> Dict[int, Dict[str, Any]]:
        self.recovery_max_ages.append(max_age)
        sums: Dict[int, Dict[str, int]] = {}
        for s in self.stats:
            pool = sums.setdefault(int(s['pgid'].split('.')[0]), {})
            for k, v in s['stat_sum'].items():
                pool[k] = pool.get(k, 0) + v
        # As the mgr's `osd pool stats` shows them (pools of size 1: a copy per object).
        out: Dict[int, Dict[str, Any]] = {}
        for pool_id, sum_ in sums.items():
            left = out.setdefault(pool_id, {})
            if sum_.get('num_objects_misplaced'):
                left['misplaced_objects'] = sum_['num_objects_misplaced']
                left['misplaced_ratio'] = sum_['num_objects_misplaced'] / sum_['num_objects']
        return out

    def pg_stats_version(self) -> Any:
        return json.dumps(self.stats, sort_keys=True)

    def map_version(self) -> Any:
        return json.dumps([self.epoch, self.pool_list, sorted(self.mapping.items())],
                          sort_keys=True)

    def pool_pg_mapping(self, pool_id: int) -> Tuple[int, PgMapping]:
        return self.epoch, {seed: (list(osd), list(self.temps.get((p, seed), osd)))
                            for (p, seed), osd in self.mapping.items()
                            if p == pool_id and seed < self.pool(pool_id)['pg_num']}

    def osds_down(self) -> int:
        return self.down

    def option(self, name: str) -> Any:
        return {'mon_max_pool_pg_num': 65536, 'mgr_stats_period': 5,
                'mgr_tick_period': 2}[name]

    def mon_command(self, cmd: Dict[str, Any]) -> str:
        if self.fail_commands:
            raise MonCommandError('osd pool set failed: (1) Operation not permitted')
        self.commands.append(cmd)
        if cmd['var'] in ('pg_num', 'pgp_num'):
            key = 'pg_num_target' if cmd['var'] == 'pg_num' else 'pg_placement_num_target'
            next(p for p in self.pool_list if p['pool_name'] == cmd['pool'])[key] = \
                int(cmd['val'])
        else:
            next(p for p in self.pool_list if p['pool_name'] == cmd['pool'])[
                'pg_autoscale_mode'] = cmd['val']
        return ''


@pytest.fixture
def pg() -> Tuple[Harness, FakeCluster]:
    h = Harness()
    cluster = FakeCluster()
    cluster.add_pool('rbd', 2, 8)
    h.engine._ctx.cluster = cluster
    return h, cluster


def submit(h: Harness, **params: Any) -> Dict[str, Any]:
    task, created = h.engine.submit('set_pg_num', params, 'u')
    assert created
    return task


def test_validation(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    with pytest.raises(NotFound, match="pool 'nope' not found"):
        h.engine.submit('set_pg_num', {'pool': 'nope', 'pg_num': 16}, 'u')
    for bad in (0, -1, 65537, True, '16', 2.0, None):
        with pytest.raises(Invalid, match='pg_num must be an integer from 1 to 65536'):
            h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': bad}, 'u')
    with pytest.raises(Invalid, match="pg_num of pool 'rbd' is already 8"):
        h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': 8}, 'u')
    with pytest.raises(Invalid, match='pool must be'):
        h.engine.submit('set_pg_num', {'pg_num': 8}, 'u')
    with pytest.raises(Invalid, match="autoscale may only be 'off'"):
        h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': 16, 'autoscale': 'on'}, 'u')
    with pytest.raises(Invalid, match='timeout'):
        h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': 16, 'timeout': 0}, 'u')
    assert h.engine.list(None) == [] and cluster.commands == []


def test_autoscaler_on_is_busy_unless_turned_off(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    cluster.add_pool('auto', 3, 8, mode='on')
    with pytest.raises(Busy, match='autoscaler is on'):
        h.engine.submit('set_pg_num', {'pool': 'auto', 'pg_num': 16}, 'u')
    submit(h, pool='auto', pg_num=16, autoscale='off')
    h.engine.run_due()
    assert cluster.commands[0] == {'prefix': 'osd pool set', 'pool': 'auto',
                                   'var': 'pg_autoscale_mode', 'val': 'off'}


def test_second_task_on_a_pool_is_busy_identical_one_is_merged(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=32)
    assert task['description'] == "Setting number of PGs of pool 'rbd' from 8 to 32"
    h.engine.run_due()                               # targets now at 32 already
    same, created = h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': 32}, 'v')
    assert not created and same['id'] == task['id']
    with pytest.raises(Busy, match=f"task {task['id']} "):
        h.engine.submit('set_pg_num', {'pool': 'rbd', 'pg_num': 64}, 'u')


def test_done_only_when_stats_match_the_map(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=32)
    h.engine.run_due()
    assert [(c['var'], c['val']) for c in cluster.commands] == [('pg_num', '32'),
                                                                ('pgp_num', '32')]
    h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending' and 'pg_num 8, pgp_num 8 of 32' in t['status_text']
    assert t['percent'] == 20                        # all PGs placed, no count moved yet

    cluster.settle(2, 32)                            # counts and stats at 32 ...
    cluster.mapping[(2, 5)] = [1]                    # ... but one PG's map moved on
    h.engine.wake('osd_map')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending'
    assert t['status_text'] == 'waiting: 1 PGs not yet reported on their new OSDs'
    assert t['percent'] == 99

    cluster.settle(2, 32, osds=(0,))
    cluster.mapping[(2, 5)] = [0]
    h.engine.wake('osd_map')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished'
    assert t['result']['pg_num_before'] == 8 and t['result']['pg_num_after'] == 32
    assert t['result']['pgp_num_after'] == 32 and t['result']['seconds'] >= 1.0


def test_unclean_pgs_and_down_osds_are_named(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    cluster.settle(2, 16)
    cluster.stats[0]['state'] = 'peering'
    cluster.stats[1]['state'] = 'active+remapped+backfilling'
    cluster.stats[1]['stat_sum']['num_objects_misplaced'] = 16
    cluster.down = 1
    h.tick(1.0)
    text = h.engine.get(task['id'])['status_text']
    assert text == 'waiting: 10.0% objects misplaced; 1 OSD down'
    # Backfill done, one PG still peering: only the per-PG check can tell which.
    cluster.stats[1]['state'] = 'active+clean'
    cluster.stats[1]['stat_sum']['num_objects_misplaced'] = 0
    h.tick(1.0)
    text = h.engine.get(task['id'])['status_text']
    assert text == 'waiting: 1 PGs not active+clean (1 peering); 1 OSD down'


def test_per_pg_stats_read_only_when_the_pool_may_have_settled(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=32)
    h.engine.run_due()
    for pgs in (12, 16, 24):                         # the mgr steps the counts up
        cluster.settle(2, pgs)
        h.tick(3.0)
    cluster.settle(2, 32)
    cluster.stats[3]['stat_sum']['num_objects_misplaced'] = 5
    h.tick(3.0)
    assert cluster.pg_stats_reads == 0               # counts or recovery said "not yet"
    cluster.stats[3]['stat_sum']['num_objects_misplaced'] = 0
    cluster.mapping[(2, 5)] = [1]                    # the last step's stats lag the map
    h.tick(0.5)
    assert cluster.pg_stats_reads == 1
    for _ in range(3):                               # nothing new: the same verdict
        h.tick(0.5)
    assert cluster.pg_stats_reads == 1
    assert 'not yet reported on their new OSDs' in h.engine.get(task['id'])['status_text']
    h.tick(0.5)                                      # ... yet looked at again in 2 s
    assert cluster.pg_stats_reads == 2
    cluster.settle(2, 32, osds=(0,))                 # new stats: read at once
    cluster.mapping[(2, 5)] = [0]
    h.tick(0.5)
    assert cluster.pg_stats_reads == 3
    assert h.engine.get(task['id'])['state'] == 'finished'


def test_pgs_mapped_to_a_pg_temp_are_not_read(pg: Tuple[Harness, FakeCluster]) -> None:
    """A PG whose acting OSDs the map still sets apart from its up ones is remapped, not
    active+clean: the map alone says "not yet"."""
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    cluster.settle(2, 16)
    cluster.temps[(2, 3)] = [1]
    h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['status_text'] == 'waiting: 1 PGs still mapped to a pg_temp'
    assert cluster.pg_stats_reads == 0
    del cluster.temps[(2, 3)]
    cluster.epoch += 1
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['state'] == 'finished'
    assert cluster.pg_stats_reads == 1


def test_while_the_counts_move_a_check_per_epoch_not_per_second(
        pg: Tuple[Harness, FakeCluster]) -> None:
    """A change that takes longer on a busier cluster takes no more checks for it."""
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=32)
    h.engine.run_due()
    h.tick(1.0)                                      # the first look after the targets
    checks, map_reads = h.engine.step_count['set_pg_num'], cluster.map_reads
    for _ in range(5):
        h.tick(1.0)
    h.engine.wake('pg_summary')
    h.engine.run_due()
    assert h.engine.step_count['set_pg_num'] == checks + 1      # every 3 s, not per stats
    assert cluster.recovery_max_ages[-1] == 3.0      # that old moves only the percent
    cluster.settle(2, 16)                            # the mgr stepped the counts: new epoch
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.step_count['set_pg_num'] == checks + 2
    assert 'pg_num 16, pgp_num 16 of 32' in h.engine.get(task['id'])['status_text']
    assert cluster.map_reads == map_reads            # the pool's counts alone, not the map
    cluster.settle(2, 32)
    cluster.stats[0]['state'] = 'peering'
    h.engine.wake('osd_map')
    h.engine.run_due()                               # counts done: fresh recovery, checks
    assert cluster.recovery_max_ages[-1] == 0.0      # twice a second, not per digest
    assert cluster.mon_dumps == 2                    # the request's, and the targets'
    checks = h.engine.step_count['set_pg_num']
    h.engine.wake('pg_summary')
    h.engine.run_due()
    assert h.engine.step_count['set_pg_num'] == checks
    h.tick(0.5)
    assert h.engine.step_count['set_pg_num'] == checks + 1
    assert (cluster.map_reads, cluster.mon_dumps) == (map_reads, 2)
    assert map_reads == 0                            # the mgr's dump never


def test_counts_done_by_the_mon_wait_for_the_mgrs_map(pg: Tuple[Harness, FakeCluster]) -> None:
    """The mon may be an epoch ahead of the mgr, whose map the PGs are checked against."""
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=32)
    h.engine.run_due()
    h.tick(1.0)
    cluster.settle(2, 32)                            # stats as if at 32 already ...
    cluster.pool(2).update(pg_num=32, pg_placement_num=24)     # ... the mgr's map behind
    cluster.mon_counts[2] = (32, 32)
    h.engine.wake('osd_map')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending'
    assert "the mgr's OSD map not yet at epoch 11" in t['status_text']
    assert cluster.pg_stats_reads == 0
    h.tick(0.5)
    assert h.engine.get(task['id'])['state'] == 'pending'
    assert cluster.mon_dumps == 2                    # the targets once, not per check
    cluster.pool(2).update(pg_placement_num=32)      # the mgr gets the epoch
    cluster.mon_counts.clear()
    cluster.epoch += 1
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['state'] == 'finished'


def test_pool_deleted_fails_the_task(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    cluster.pool_list.clear()
    h.engine.wake('osd_map')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['status'] == 'Exception' and t['error'] == "pool 'rbd' was deleted"


def test_pool_recreated_under_the_same_name_counts_as_deleted(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    cluster.pool_list.clear()
    cluster.add_pool('rbd', 9, 8)
    h.tick(1.0)
    assert h.engine.get(task['id'])['error'] == "pool 'rbd' was deleted"


def test_timeout_fails_with_the_last_state(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16, timeout=5)
    h.engine.run_due()
    for _ in range(7):                               # looks at 1, 4 and 7 s
        h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['status'] == 'Exception'
    assert t['error'].startswith('timed out after 5 s; last seen: waiting: pg_num 8')


def test_mon_refusal_fails_the_task(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    cluster.fail_commands = True
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    assert 'Operation not permitted' in h.engine.get(task['id'])['error']


def test_pool_deleted_before_the_first_step(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    cluster.pool_list.clear()
    cluster.fail_commands = True
    h.engine.run_due()
    assert h.engine.get(task['id'])['error'] == "pool 'rbd' was deleted"


def test_non_power_of_two_is_accepted_with_a_warning(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=12)
    assert 'not a power of two' in task['params']['warning']
    h.engine.run_due()
    cluster.settle(2, 12)
    h.tick(1.0)
    assert 'not a power of two' in h.engine.get(task['id'])['result']['warning']


def test_resumes_watching_after_failover_without_resetting_targets(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    h.tick(1.0)
    sent = len(cluster.commands)
    h.restart()
    h.engine._ctx.cluster = cluster
    h.engine.run_due()
    assert len(cluster.commands) == sent              # watching, not setting again
    cluster.settle(2, 16)
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['state'] == 'finished'


def test_abort_sets_no_new_targets(pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.delete(task['id'], abort_pending=True, deleted_by='u')
    h.tick(1.0)
    assert cluster.commands == []
    assert h.engine.get(task['id'])['status'] == 'Aborted'


def test_watch_steps_that_see_nothing_new_cost_no_write(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    h.tick(1.0)
    writes = h.store.writes
    for _ in range(5):
        h.tick(1.0)
    assert h.store.writes == writes


def settling_but_one_pg_peering(h: Harness, cluster: FakeCluster) -> Dict[str, Any]:
    """A task on 'rbd' whose counts are done, read once since, with one PG peering."""
    task = submit(h, pool='rbd', pg_num=32)
    h.engine.run_due()
    cluster.settle(2, 32)
    cluster.stats[0]['state'] = 'peering'
    h.engine.wake('osd_map')
    h.engine.run_due()                               # the counts done: settling from here
    h.tick(0.5)                                      # a read, and the inputs it read under
    return task


def test_a_check_with_nothing_new_repeats_the_last_answer(
        pg: Tuple[Harness, FakeCluster]) -> None:
    """Between two of the mgr's stats updates (each tick, each epoch) a check reads
    nothing; after 2 s it reads again anyway, and at once on new stats."""
    h, cluster = pg
    task = settling_but_one_pg_peering(h, cluster)
    assert cluster.pg_stats_reads == 1
    reads, checks = len(cluster.recovery_max_ages), h.engine.step_count['set_pg_num']
    for _ in range(3):
        h.tick(0.5)
    assert h.engine.step_count['set_pg_num'] == checks + 3
    assert (len(cluster.recovery_max_ages), cluster.pg_stats_reads) == (reads, 1)
    assert 'not active+clean (1 peering)' in h.engine.get(task['id'])['status_text']
    h.tick(0.5)
    assert (len(cluster.recovery_max_ages), cluster.pg_stats_reads) == (reads + 1, 2)
    h.tick(0.5)
    assert (len(cluster.recovery_max_ages), cluster.pg_stats_reads) == (reads + 1, 2)
    cluster.stats[0]['state'] = 'active+clean'
    h.tick(0.5)
    assert cluster.pg_stats_reads == 3
    assert h.engine.get(task['id'])['state'] == 'finished'


def test_after_new_stats_the_next_look_waits_for_the_mgrs_next_tick(
        pg: Tuple[Harness, FakeCluster]) -> None:
    """The mgr takes in PG stats once per mgr_tick_period: once a look saw new ones, the
    next comes a tick after the look that still saw the old ones; a new epoch wakes one
    at once all the same."""
    h, cluster = pg
    task = settling_but_one_pg_peering(h, cluster)
    checks, reads = h.engine.step_count['set_pg_num'], cluster.pg_stats_reads
    cluster.stats[0]['state'] = 'activating'         # the mgr's tick
    h.tick(0.5)
    assert (h.engine.step_count['set_pg_num'], cluster.pg_stats_reads) == \
        (checks + 1, reads + 1)
    assert '1 activating' in h.engine.get(task['id'])['status_text']
    for _ in range(2):                               # 1.5 s since the last look saw new stats
        h.tick(0.5)
    assert h.engine.step_count['set_pg_num'] == checks + 1
    h.tick(0.5)                                      # a tick after the look before
    assert h.engine.step_count['set_pg_num'] == checks + 2
    h.tick(0.5)                                      # none came: looks every 0.5 s again
    assert h.engine.step_count['set_pg_num'] == checks + 3

    reads = cluster.pg_stats_reads
    cluster.stats[0]['state'] = 'peering'            # the next tick: seen at once
    h.tick(0.5)
    assert (h.engine.step_count['set_pg_num'], cluster.pg_stats_reads) == \
        (checks + 4, reads + 1)
    h.tick(0.5)
    assert h.engine.step_count['set_pg_num'] == checks + 4
    cluster.stats[0]['state'] = 'active+clean'
    cluster.epoch += 1                               # a new epoch wakes a look at once
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['state'] == 'finished'


def test_pgs_without_stats_keep_the_task_waiting(pg: Tuple[Harness, FakeCluster]) -> None:
    """The recovery tells nothing of PGs the mgr has no stats for yet: the per-PG check
    counts them."""
    h, cluster = pg
    task = submit(h, pool='rbd', pg_num=16)
    h.engine.run_due()
    cluster.settle(2, 16)
    del cluster.stats[-1]                            # a new PG not yet reported
    h.tick(1.0)
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending' and t['status_text'] == 'waiting: stats for 15 of 16 PGs'
    cluster.settle(2, 16)
    h.tick(0.5)
    assert h.engine.get(task['id'])['state'] == 'finished'


def decrease_by_merges(h: Harness, cluster: FakeCluster, pg_num: int) -> Dict[str, Any]:
    """A task from 8 PGs to pg_num, and the mgr's merges to it, the last PG first."""
    task = submit(h, pool='rbd', pg_num=pg_num)
    h.engine.run_due()
    h.tick(1.0)
    for _ in range(8 - pg_num):
        cluster.merge(2)
    return task


def test_a_decrease_waits_for_each_merged_pg_reported_since_its_merge(
        pg: Tuple[Harness, FakeCluster]) -> None:
    """A merge leaves the target where it was: its stats from before the merge say
    active+clean on the OSDs the map assigns, while it still has to peer."""
    h, cluster = pg
    task = decrease_by_merges(h, cluster, 4)         # 7 -> 3, 6 -> 2, 5 -> 1, 4 -> 0
    cluster.report(2, [3])                           # the first merge's target reported
    h.engine.wake('osd_map')
    h.engine.run_due()
    t = h.engine.get(task['id'])
    assert t['state'] == 'pending'
    assert t['status_text'] == 'waiting: 3 PGs not yet reported since their merge'
    assert cluster.mon_dumps == 2 + 4                # a map back per merge, to the task's
    cluster.report(2, [0, 1])
    h.tick(0.5)
    assert h.engine.get(task['id'])['status_text'] == \
        'waiting: 1 PGs not yet reported since their merge'
    cluster.report(2, [2])
    h.tick(0.5)
    t = h.engine.get(task['id'])
    assert t['state'] == 'finished' and t['result']['pg_num_after'] == 4
    assert cluster.mon_dumps == 2 + 4                # walked once


def test_merges_older_than_every_pgs_stats_are_not_walked(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = decrease_by_merges(h, cluster, 4)
    cluster.report(2, [0, 1, 2, 3])
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['state'] == 'finished'
    assert cluster.mon_dumps == 2                    # the last merge's map told enough


def test_merges_the_mon_no_longer_keeps_end_the_walk(
        pg: Tuple[Harness, FakeCluster]) -> None:
    h, cluster = pg
    task = decrease_by_merges(h, cluster, 6)
    del cluster.history[11]                          # trimmed
    h.engine.wake('osd_map')
    h.engine.run_due()
    assert h.engine.get(task['id'])['status_text'] == \
        'waiting: 1 PGs not yet reported since their merge'
    cluster.report(2, [2])
    h.tick(0.5)
    assert h.engine.get(task['id'])['state'] == 'finished'
