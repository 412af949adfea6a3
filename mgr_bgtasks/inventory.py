"""What there is to run tasks on: pools and RBD images, as the web tab lists them."""
from typing import Any, Dict, List

from .cluster import Cluster
from .validators import rbd_pool


def pools(cluster: Cluster) -> List[Dict[str, Any]]:
    states = cluster.pg_states_by_pool()
    return [{
        'name': p['pool_name'], 'id': p['pool'],
        'pg_num': p['pg_num'], 'pgp_num': p['pg_placement_num'],
        'pg_num_target': p['pg_num_target'], 'pgp_num_target': p['pg_placement_num_target'],
        'pg_autoscale_mode': p.get('pg_autoscale_mode'),
        'applications': sorted(p.get('application_metadata', {})),
        'pg_states': states.get(p['pool'], {}),
    } for p in sorted(cluster.pools(), key=lambda p: p['pool_name'])]


def rbd_images(cluster: Cluster, pool: str) -> List[Dict[str, Any]]:
    rbd_pool(cluster, pool)
    return sorted(cluster.rbd_images(pool), key=lambda i: i['name'])
