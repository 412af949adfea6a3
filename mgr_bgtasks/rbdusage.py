"""`rbd du` of one image, computed as the rbd CLI computes it (DiskUsage.cc), so the
numbers are the same byte for byte: each user snapshot, oldest first, counts the bytes of
the objects that changed since the snapshot before it, and the image itself those that
changed since its last snapshot; whole objects, the parent left out. librbd's diff
iteration runs in C without the GIL and reads the object map where fast-diff is valid;
where it is not, it asks every object, as `rbd du` does.
"""
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import rbd

from .cluster import ImageGone, Interrupted


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


def image_usage(ioctx: Any, image_id: str, created_before: float,
                stop: threading.Event) -> Optional[Dict[str, Any]]:
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
            snaps = sorted((s for s in image.list_snaps()
                            if s.get('namespace', rbd.RBD_SNAP_NAMESPACE_TYPE_USER)
                            == rbd.RBD_SNAP_NAMESPACE_TYPE_USER), key=lambda s: s['id'])
            snapshots: List[Dict[str, Any]] = []
            since = None
            for snap in snaps:
                image.set_snap(snap['name'])
                snapshots.append({'name': snap['name'], 'id': snap['id'],
                                  'provisioned_bytes': snap['size'],
                                  'used_bytes': _used(image, snap['size'], since, stop)})
                since = snap['name']
            image.set_snap(None)
            used = _used(image, size, since, stop)
            return {'name': image.get_name(), 'id': image_id, 'provisioned_bytes': size,
                    'used_bytes': used, 'snapshots': snapshots, 'fast_diff': fast_diff,
                    'seconds': round(time.monotonic() - began, 3)}
    except (rbd.ImageNotFound, rbd.ObjectNotFound) as e:
        raise ImageGone(str(e)) from e
