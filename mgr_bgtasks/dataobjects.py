"""Which data objects of a pool's RBD images exist, from one listing of the pool.

Without a valid object map, `rbd du` asks the OSDs about every object an image could
have, written or not: 65,536 requests for a 256 GiB image. A listing of the pool answers
for every image at once, a PG at a time, and costs what the pool holds, not what its
images could hold. A run lists each pool namespace once, when the first image that can
use it is measured, and keeps only object numbers (8 bytes an object).
"""
import array
import threading
from typing import Callable, Dict, Iterable, Optional, Tuple

# A namespace holding more objects is not listed: its images are asked object by object.
MAX_OBJECTS = 1_000_000
DATA_PREFIX = 'rbd_data.'

Listing = Dict[str, 'array.array[int]']


class DataObjects:
    def __init__(self, max_objects: int = MAX_OBJECTS) -> None:
        self._max = max_objects
        self._lock = threading.Lock()
        self._listed: Dict[Tuple[int, str], Optional[Listing]] = {}

    def indices(self, pool_id: int, namespace: str, block_name_prefix: str,
                names: Callable[[], Iterable[str]]) -> Optional['array.array[int]']:
        """The object numbers of the image's data objects (`names` lists the namespace,
        called at most once per namespace), or None if the namespace holds too many
        objects to list."""
        key = (pool_id, namespace)
        with self._lock:        # one listing per namespace, the images using it wait for it
            if key not in self._listed:
                self._listed[key] = self._list(names())
            listing = self._listed[key]
        if listing is None:
            return None
        return listing.get(block_name_prefix, array.array('Q'))

    def _list(self, names: Iterable[str]) -> Optional[Listing]:
        listing: Listing = {}
        for count, name in enumerate(names):
            if count >= self._max:
                return None
            if not name.startswith(DATA_PREFIX):
                continue
            prefix, _, number = name.rpartition('.')
            try:
                n = int(number, 16)
            except ValueError:
                continue
            listing.setdefault(prefix, array.array('Q')).append(n)
        return listing


def used_bytes(indices: Iterable[int], size: int, object_size: int) -> int:
    """What `rbd du` counts for an image without snapshots whose data objects are these:
    each object within the image, whole, the last one only up to the image's end."""
    used = 0
    for n in indices:
        start = n * object_size
        if start < size:
            used += min(object_size, size - start)
    return used
