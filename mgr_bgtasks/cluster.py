"""What task kinds may ask of the cluster: the interface, so kinds run in unit tests
against a fake, and `module.py` implements it over the mgr."""
from typing import Any, Dict, List, Optional, Protocol, Tuple

from .dataobjects import DataObjects


# Per PG seed of a pool: its (up, acting) OSDs.
PgMapping = Dict[int, Tuple[List[int], List[int]]]


class MonCommandError(Exception):
    pass


class ImageGone(Exception):
    """An RBD image was deleted since it was listed."""


class PoolGone(Exception):
    """A pool was deleted since the request named it."""


class Interrupted(Exception):
    """The module stops: a long read was given up half way."""


class Cluster(Protocol):
    def pools(self) -> List[Dict[str, Any]]:
        """The OSD map's pool entries (pool, pool_name, pg_num, pg_num_target, ...). A dump
        of the whole map: on Tentacle it scores the read balance of every pool's PGs, so
        its cost follows the cluster's PG count."""
        ...

    def pool_pg_stats(self, pool_id: int, pool_name: str) -> List[Dict[str, Any]]:
        """Per-PG stats of one pool as the mgr last heard them (pgid, state, up, acting,
        stat_sum); costs in proportion to the pool's PG count."""
        ...

    def pool_counts(self, pool_name: str) -> Optional[Dict[str, Any]]:
        """pool_id, pg_num, pgp_num and pg_autoscale_mode of one pool, from a source whose
        cost follows the one pool (the mon's, which may be an epoch ahead of the mgr's
        map); None if there is no such pool."""
        ...

    def pool_entry(self, pool_name: str,
                   epoch: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """One pool's entry of the OSD map (with pg_num_target and pgp's, which nothing
        pool-sized tells) as the mon has it now, or had it at `epoch`, and that map's
        `epoch`; None if there is no such pool or the mon no longer keeps that map. The
        mon dumps and scores the map; here only its pools are parsed, so call it once
        per task (and once per merge of a decrease), not per check."""
        ...

    def pool_recovery(self, max_age: float = 0.0) -> Dict[int, Dict[str, Any]]:
        """Per pool id, what is left to recover as `ceph osd pool stats` shows it:
        misplaced_objects, misplaced_ratio (of the object copies), degraded_objects and
        unfound_objects, each only if not 0. A few fields per pool, where the pools' stat
        sums would be some sixty. Values read up to max_age seconds ago may serve even if
        the mgr has newer ones."""
        ...

    def pg_stats_version(self) -> Any:
        """A cheap value that changes whenever the mgr takes in new PG stats."""
        ...

    def map_version(self) -> Any:
        """A cheap value that changes whenever the mgr tells of a new OSD map."""
        ...

    def pool_pg_mapping(self, pool_id: int) -> Tuple[int, PgMapping]:
        """The epoch of the mgr's current OSD map and, per PG seed of a pool, the (up,
        acting) OSDs it assigns."""
        ...

    def osds_down(self) -> int:
        """OSDs in but down, as the mon's health reports them."""
        ...

    def pg_states_by_pool(self) -> Dict[int, Dict[str, int]]:
        """PG counts by state, per pool id (the mgr's pg_summary)."""
        ...

    def rbd_images(self, pool: str) -> List[Dict[str, Any]]:
        """The RBD images of a pool: name, id, size."""
        ...

    def rbd_image_names(self, pool_id: int, namespace: str,
                        image_ids: List[str]) -> Dict[str, str]:
        """Image id -> name for those of image_ids that still exist in a pool's namespace;
        cost follows len(image_ids), not the pool's image count."""
        ...

    def rbd_image_specs(self, pool_id: int) -> List[Tuple[str, str, str]]:
        """(namespace, image id, name) of every image in every namespace of a pool;
        raises PoolGone."""
        ...

    def rbd_image_id(self, pool_id: int, namespace: str, name: str) -> Optional[str]:
        ...

    def rbd_disk_usage(self, pool_id: int, namespace: str, image_id: str,
                       created_before: float, stop: Any,
                       objects: Optional[DataObjects] = None) -> Optional[Dict[str, Any]]:
        """What `rbd du` says of one image: name, id, provisioned_bytes, used_bytes,
        snapshots (name, id, provisioned_bytes, used_bytes, oldest first), fast_diff,
        seconds; None if the image was created at or after `created_before`. Raises
        ImageGone, PoolGone, or Interrupted once `stop` (a threading.Event) is set.
        `objects` keeps a run's listings of the pool, used where they give the same."""
        ...

    def add_perf_query(self, query: Dict[str, Any]) -> Optional[int]:
        """Registers an OSD perf query with this mgr (gone after a failover)."""
        ...

    def remove_perf_query(self, query_id: int) -> None:
        ...

    def perf_counters(self, query_id: int) -> Dict[str, Any]:
        """{'counters': [{'k': key, 'c': [[sum, count], ...]}]}: deltas since the last read."""
        ...

    def option(self, name: str) -> Any:
        """A Ceph config option as the mgr sees it."""
        ...

    def mon_command(self, cmd: Dict[str, Any]) -> str:
        """Runs a mon command; raises MonCommandError with its message on failure."""
        ...


def find_pool(cluster: Cluster, name: str) -> Optional[Dict[str, Any]]:
    for pool in cluster.pools():
        if pool['pool_name'] == name:
            return pool
    return None
