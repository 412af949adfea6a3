"""The engine's and the kinds' view of ceph-mgr: `MgrCluster` (the kinds' Cluster over
the mgr's maps, mon commands and librados), `MgrStore` (the module's key-value store) and
`MgrOmap` (the omap of the mgr's pool, where task records live)."""
import json
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import rados
import rbd
from mgr_module import MgrModule

from .clock import Clock
from .compat import mgr_pool
from .omapstore import NAMESPACE, RadosOmap
from .cluster import ImageGone, MonCommandError, PgMapping, PoolGone, find_pool
from .dataobjects import DataObjects
from .epochcache import EpochCache
from .pgreader import PgReader, Unavailable, pool_of
from .rbdusage import image_usage

# After the pool-sized PG read failed (no key, refused, mgr busy), the whole-cluster dump
# serves for this long before the next try.
READER_RETRY_SECONDS = 60
# The longest a read of the pools' recovery serves while the stats seem unchanged.
STATS_SECONDS = 2.0


class MgrCluster:
    """The task kinds' Cluster interface over the mgr's maps and mon commands."""

    # PG tasks woken by the same notification check within this long of each other; one
    # read of a map serves them all instead of one per task. Short against the 0.5 s
    # settling recheck, so a check never sees stats older than the previous check's.
    SNAPSHOT_SECONDS = 0.1
    # The OSD map's dump and the mon's counts of a pool are kept until the next epoch's
    # notification, or this long at the most.
    MAP_SECONDS = 10.0

    def __init__(self, module: MgrModule) -> None:
        self._m = module
        self._clock = Clock()
        self._snap_lock = threading.Lock()
        self._snaps: Dict[str, Tuple[float, Any]] = {}
        self._per_epoch = EpochCache(self._clock, self.MAP_SECONDS)
        self._recovery: Optional[Tuple[Any, float, Dict[int, Dict[str, Any]]]] = None
        # Per pool: the epoch and the mapping of its PGs under it.
        self._mappings: Dict[int, Tuple[int, PgMapping]] = {}
        self._reader = PgReader(self.mon_command, lambda: module.get('mon_map'),
                                module.log.warning)
        self._reader_retry_at = 0.0

    def _snapshot(self, what: str) -> Any:
        with self._snap_lock:
            now = self._clock.now()
            hit = self._snaps.get(what)
            if hit is not None and 0 <= now - hit[0] < self.SNAPSHOT_SECONDS:
                return hit[1]
            value = self._m.get(what)
            self._snaps[what] = (now, value)
            return value

    def _osd_map(self) -> Dict[str, Any]:
        return self._per_epoch.get('osd_map', lambda: self._m.get('osd_map'))

    def map_changed(self) -> None:
        self._per_epoch.changed()

    def _with_rados(self, op: Callable[[Any], Any]) -> Any:
        """Runs op(rados handle); once blocklisted (as failover does to the old active
        mgr's clients), drops the handle and retries on a new one instead of staying dead."""
        handle = self._m.rados
        try:
            return op(handle)
        except (rados.ConnectionShutdown, rbd.ConnectionShutdown):
            self._m.log.warning('RADOS client blocklisted or shut down; reconnecting')
            self._m.reset_rados(handle)
            return op(self._m.rados)

    def pools(self) -> List[Dict[str, Any]]:
        return list(self._osd_map()['pools'])

    def _ask_reader(self, ask: Callable[[PgReader], Any], instead: str) -> Tuple[bool, Any]:
        """(True, answer) from client.bgtasks' pool-sized read, or (False, None) while it
        fails and a whole-cluster read (`instead`) serves."""
        now = self._clock.now()
        if now >= self._reader_retry_at:
            try:
                return True, ask(self._reader)
            except Unavailable as e:
                self._m.log.warning('%s; reading %s instead for %d s', e, instead,
                                    READER_RETRY_SECONDS)
                self._reader_retry_at = now + READER_RETRY_SECONDS
        return False, None

    def pool_pg_stats(self, pool_id: int, pool_name: str) -> List[Dict[str, Any]]:
        answered, stats = self._ask_reader(lambda r: r.pool_pg_stats(pool_name),
                                           'every PG of the cluster')
        if answered:
            return list(stats)
        prefix = f'{pool_id}.'
        return [s for s in self._snapshot('pg_stats')['pg_stats']
                if s['pgid'].startswith(prefix)]

    def pool_counts(self, pool_name: str) -> Optional[Dict[str, Any]]:
        counts = self._per_epoch.get(('counts', pool_name),
                                     lambda: self._read_counts(pool_name))
        return None if counts is None else dict(counts)

    def _read_counts(self, pool_name: str) -> Optional[Dict[str, Any]]:
        answered, counts = self._ask_reader(lambda r: r.pool_counts(pool_name),
                                            "the mgr's OSD map")
        if answered:
            return counts
        pool = find_pool(self, pool_name)
        return None if pool is None else {'pool_id': pool['pool'], 'pg_num': pool['pg_num'],
                                          'pgp_num': pool['pg_placement_num'],
                                          'pg_autoscale_mode': pool.get('pg_autoscale_mode')}

    def pool_entry(self, pool_name: str,
                   epoch: Optional[int] = None) -> Optional[Dict[str, Any]]:
        # Not kept per epoch: the mon may be ahead of the mgr's notifications, and a
        # task asks once. The mgr keeps no older maps for a module; the mon does.
        answered, entry = self._ask_reader(lambda r: r.pool_entry(pool_name, epoch),
                                           "the mgr's OSD map")
        if answered:
            return entry
        if epoch is None:
            return pool_of(self._osd_map(), pool_name)
        try:
            out = self.mon_command({'prefix': 'osd dump', 'epoch': epoch, 'format': 'json'})
        except MonCommandError:
            return None
        return pool_of(json.loads(out), pool_name)

    def close(self) -> None:
        self._reader.close()

    def pool_recovery(self, max_age: float = 0.0) -> Dict[int, Dict[str, Any]]:
        # The mgr changes its PG stats all at once, and the small delta it recomputes
        # then (what pg_stats_version reads) changes with them: every pool's recovery is
        # read again only after that, or after STATS_SECONDS at the latest.
        with self._snap_lock:
            now, hit = self._clock.now(), self._recovery
            if hit is not None and 0 <= now - hit[1] < max_age:
                return hit[2]
        version = self.pg_stats_version()
        with self._snap_lock:
            if hit is not None and hit[0] == version and 0 <= now - hit[1] < STATS_SECONDS:
                return hit[2]
        recovery = {int(p['pool_id']): p.get('recovery') or {}
                    for p in self._snapshot('osd_pool_stats').get('pool_stats', [])}
        with self._snap_lock:
            self._recovery = (version, now, recovery)
        return recovery

    def pg_stats_version(self) -> Any:
        # The mgr notifies no PG stats update and tells no PG map version short of a
        # whole-cluster dump; the delta it recomputes on each update is small and moves.
        # Compared as returned, not serialised: most checks do little else.
        return self._snapshot('io_rate')

    def map_version(self) -> Any:
        return self._per_epoch.epochs

    def pool_pg_mapping(self, pool_id: int) -> Tuple[int, PgMapping]:
        # One map copy (no dump: Tentacle's scores every pool's PGs) and a call per PG of
        # the pool, as acting differs from up where the map holds a pg_temp, which only a
        # dump would list. An epoch maps the same way each time: the settling checks
        # between two epochs reuse it.
        osdmap = self._m.get_osdmap()
        epoch = osdmap.get_epoch()
        with self._snap_lock:
            hit = self._mappings.get(pool_id)
        if hit is not None and hit[0] == epoch:
            return hit
        prefix = f'{pool_id}.'
        mapping: PgMapping = {}
        for pgid in osdmap.map_pool_pgs_up(pool_id):
            seed = int(pgid[len(prefix):], 16)
            m = osdmap.pg_to_up_acting_osds(pool_id, seed)
            mapping[seed] = (list(m['up']), list(m['acting']))
        with self._snap_lock:
            self._mappings = {p: m for p, m in self._mappings.items() if m[0] == epoch}
            self._mappings[pool_id] = (epoch, mapping)
        return epoch, mapping

    def osds_down(self) -> int:
        # The mon's OSD_DOWN health check counts the OSDs in but down; the map's dump
        # would cost in proportion to the cluster.
        health = json.loads(self._snapshot('health').get('json') or '{}')
        summary = health.get('checks', {}).get('OSD_DOWN', {}).get('summary', {})
        if 'count' in summary:
            return int(summary['count'])
        words = str(summary.get('message', '0')).split()     # "2 osds down"
        return int(words[0]) if words and words[0].isdigit() else 0

    def pg_states_by_pool(self) -> Dict[int, Dict[str, int]]:
        by_pool = self._snapshot('pg_summary').get('by_pool', {})
        return {int(pool_id): dict(states) for pool_id, states in by_pool.items()}

    def rbd_images(self, pool: str) -> List[Dict[str, Any]]:
        def op(handle: Any) -> List[Dict[str, Any]]:
            images = []
            with handle.open_ioctx(pool) as ioctx:
                for entry in rbd.RBD().list2(ioctx):
                    try:
                        with rbd.Image(ioctx, image_id=entry['id'], read_only=True) as img:
                            size = img.size()
                    except rbd.ImageNotFound:
                        continue        # removed while we listed
                    images.append({'name': entry['name'], 'id': entry['id'], 'size': size})
            return images
        return list(self._with_rados(op))

    def option(self, name: str) -> Any:
        return self._m.get_ceph_option(name)

    def rbd_image_names(self, pool_id: int, namespace: str,
                        image_ids: List[str]) -> Dict[str, str]:
        # One open per id seen, not list2: a pool may hold tens of thousands of images.
        def op(handle: Any) -> Dict[str, str]:
            names = {}
            with handle.open_ioctx2(pool_id) as ioctx:
                ioctx.set_namespace(namespace)
                for image_id in image_ids:
                    try:
                        with rbd.Image(ioctx, image_id=image_id, read_only=True) as img:
                            names[image_id] = img.get_name()
                    except rbd.ImageNotFound:
                        continue        # deleted: stays unnamed, as before
            return names
        return dict(self._with_rados(op))

    def _pool_ioctx(self, handle: Any, pool_id: int) -> Any:
        try:
            return handle.open_ioctx2(pool_id)
        except rados.ObjectNotFound as e:
            raise PoolGone(f'pool {pool_id} was deleted') from e

    def rbd_image_specs(self, pool_id: int) -> List[Tuple[str, str, str]]:
        def op(handle: Any) -> List[Tuple[str, str, str]]:
            specs = []
            with self._pool_ioctx(handle, pool_id) as ioctx:
                for namespace in [''] + sorted(rbd.RBD().namespace_list(ioctx)):
                    ioctx.set_namespace(namespace)
                    try:
                        specs += [(namespace, e['id'], e['name'])
                                  for e in rbd.RBD().list2(ioctx)]
                    except rbd.ObjectNotFound:
                        continue        # a namespace removed while we listed
            return specs
        return list(self._with_rados(op))

    def rbd_image_id(self, pool_id: int, namespace: str, name: str) -> Optional[str]:
        def op(handle: Any) -> Optional[str]:
            with self._pool_ioctx(handle, pool_id) as ioctx:
                ioctx.set_namespace(namespace)
                try:
                    with rbd.Image(ioctx, name, read_only=True) as img:
                        return str(img.id())
                except (rbd.ImageNotFound, rbd.ObjectNotFound):
                    return None
        return self._with_rados(op)

    def rbd_disk_usage(self, pool_id: int, namespace: str, image_id: str,
                       created_before: float, stop: Any,
                       objects: Optional[DataObjects] = None) -> Optional[Dict[str, Any]]:
        def op(handle: Any) -> Optional[Dict[str, Any]]:
            with self._pool_ioctx(handle, pool_id) as ioctx:
                ioctx.set_namespace(namespace)
                objects_of = None if objects is None else (
                    lambda prefix: objects.indices(
                        pool_id, namespace, prefix,
                        lambda: (o.key for o in ioctx.list_objects())))
                try:
                    return image_usage(ioctx, pool_id, image_id, created_before, stop,
                                       objects_of)
                except ImageGone:
                    # A snapshot removed while we measured looks the same: a second
                    # look tells it from the image being gone.
                    return image_usage(ioctx, pool_id, image_id, created_before, stop,
                                       objects_of)
        return self._with_rados(op)

    def add_perf_query(self, query: Dict[str, Any]) -> Optional[int]:
        return self._m.add_osd_perf_query(query)

    def remove_perf_query(self, query_id: int) -> None:
        self._m.remove_osd_perf_query(query_id)

    def perf_counters(self, query_id: int) -> Dict[str, Any]:
        return dict(self._m.get_osd_perf_counters(query_id) or {})

    def mon_command(self, cmd: Dict[str, Any]) -> str:
        ret, out, err = self._m.mon_command(cmd)
        if ret != 0:
            raise MonCommandError(f"{cmd['prefix']} failed: {err or out} ({ret})")
        return str(out)


class MgrStore:
    """The engine's Store over the module's key-value store (mon config-key)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def get(self, key: str) -> Optional[str]:
        return self._module.get_store(key)

    def put(self, key: str, value: Optional[str]) -> None:
        self._module.set_store(key, value)

    def scan(self, prefix: str) -> Dict[str, str]:
        return self._module.get_store_prefix(prefix)


class MgrOmap:
    """Opens the omap task records live in: the mgr's own pool, namespace `bgtasks`, through
    the module's own RADOS handle (the one the mon blocklists when another mgr takes over)."""

    def __init__(self, module: Any, pools: Callable[[], List[Dict[str, Any]]]) -> None:
        self._m = module
        # MgrCluster.pools: the OSD map it already keeps per epoch, not a dump per look.
        self._pools = pools

    def pool(self) -> str:
        return mgr_pool(self._m)

    def __call__(self, fenced: bool) -> Optional[RadosOmap]:
        pool = self.pool()
        if not any(p['pool_name'] == pool for p in self._pools()):
            return None
        if fenced and not self._still_active():
            self._m.log.warning('task records: another mgr is active; this one writes none')
            return None
        handle = self._m.rados
        ioctx = handle.open_ioctx(pool)
        ioctx.set_namespace(NAMESPACE)
        return RadosOmap(ioctx, handle)

    def _still_active(self) -> bool:
        # The mon's word, not this mgr's own map, which a frozen old active has stale.
        ret, out, _ = self._m.mon_command({'prefix': 'mgr dump', 'format': 'json'})
        return ret == 0 and json.loads(out).get('active_name') == self._m.get_mgr_id()
