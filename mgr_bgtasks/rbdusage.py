"""`rbd du` of one image, computed as the rbd CLI computes it (DiskUsage.cc), so the
numbers are the same byte for byte: each user snapshot, oldest first, counts the bytes of
the objects that changed since the snapshot before it, and the image itself those that
changed since its last snapshot; whole objects, the parent left out. librbd's diff
iteration runs in C without the GIL and reads the object map where fast-diff is valid;
where it is not, it asks every object, as `rbd du` does, unless the image's data objects
are known from a listing of the pool (`dataobjects.py`): an image without snapshots,
parent or striping, whose used bytes are then the objects that exist.
"""
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional

import rbd

from .cluster import ImageGone, Interrupted
from .dataobjects import used_bytes

# The object numbers of an image's data objects, by its block name prefix; None when the
# pool is not listed.
ObjectsOf = Callable[[str], Optional[Iterable[int]]]


def _timestamp(value: datetime) -> float:
    # librbd's bindings give naive datetimes in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def _used(image: Any, size: int, since: Optional[str], stop: threading.Event) -> int:
    used = [0]

    def count(offset: int, length: int, exists: bool) -> int:
        if stop.is_set():
            raise Interrupted()
        if exists:
            used[0] += length
        return 0

    image.diff_iterate(0, size, since, count, include_parent=False, whole_object=True)
    return used[0]


def _listed_used(image: Any, pool_id: int, size: int,
                 objects_of: Optional[ObjectsOf]) -> Optional[int]:
    """Used bytes from the pool's listing, where they equal what the diff would say: no
    snapshot of any kind (an object could live on in a clone), no parent, objects in
    this pool, one object per stripe."""
    if objects_of is None or image.stripe_count() != 1 or image.data_pool_id() != pool_id:
        return None
    try:
        image.get_parent_image_spec()
        return None
    except rbd.ImageNotFound:
        pass
    indices = objects_of(image.block_name_prefix())
    if indices is None:
        return None
    return used_bytes(indices, size, 1 << int(image.stat()['order']))


def image_usage(ioctx: Any, pool_id: int, image_id: str, created_before: float,
                stop: threading.Event,
                objects_of: Optional[ObjectsOf] = None) -> Optional[Dict[str, Any]]:
    """The image's provisioned and used bytes and its snapshots', or None if it was
    created at or after `created_before` (a run measures the images there were when it
    began)."""
    began = time.monotonic()
    try:
        with rbd.Image(ioctx, image_id=image_id, read_only=True) as image:
            if _timestamp(image.create_timestamp()) > created_before:
                return None
            size = image.size()
            fast_diff = bool(image.features() & rbd.RBD_FEATURE_FAST_DIFF) \
                and not image.flags() & rbd.RBD_FLAG_FAST_DIFF_INVALID
            every_snap = list(image.list_snaps())
            snaps = sorted((s for s in every_snap
                            if s.get('namespace', rbd.RBD_SNAP_NAMESPACE_TYPE_USER)
                            == rbd.RBD_SNAP_NAMESPACE_TYPE_USER), key=lambda s: s['id'])
            listed = None if fast_diff or every_snap else \
                _listed_used(image, pool_id, size, objects_of)
            snapshots: List[Dict[str, Any]] = []
            since = None
            for snap in snaps:
                image.set_snap(snap['name'])
                snapshots.append({'name': snap['name'], 'id': snap['id'],
                                  'provisioned_bytes': snap['size'],
                                  'used_bytes': _used(image, snap['size'], since, stop)})
                since = snap['name']
            image.set_snap(None)
            used = _used(image, size, since, stop) if listed is None else listed
            return {'name': image.get_name(), 'id': image_id, 'provisioned_bytes': size,
                    'used_bytes': used, 'snapshots': snapshots, 'fast_diff': fast_diff,
                    'seconds': round(time.monotonic() - began, 3)}
    except (rbd.ImageNotFound, rbd.ObjectNotFound) as e:
        raise ImageGone(str(e)) from e
