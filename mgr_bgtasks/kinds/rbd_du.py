"""RBD disk usage: `rbd du` of every image of the RBD pools (or of one pool, or one image),
several images at once, resumable image by image.

A run measures the images there were when it began, in a fixed order (pool id,
namespace, image id): the state keeps the position reached and the sums so far, so a new
mgr lists the pools again and goes on after it, leaving out images made since. The
listing itself is kept in memory only (a pool may hold tens of thousands of images).
Images are measured by a few threads the kind shares between its tasks: librbd's diff
iteration waits on the OSDs without holding the GIL, so the mgr stays responsive.
"""
import bisect
import collections
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Deque, Dict, List, Optional, Tuple

from prettytable import PrettyTable

from ..cluster import Cluster, ImageGone, Interrupted, PoolGone
from ..dataobjects import DataObjects
from ..errors import BgtaskError, Invalid, NotFound
from ..kind import Context, Continue, Finish, Outcome, TaskKind
from ..validators import Name, rbd_pools

# Images measured at once, over every rbd_du task: a new one starts as soon as one ends.
PARALLEL = 4
# A step starts no new image after this long or this many, so that progress is saved (and
# a failover or an abort loses or waits for) about that much, plus the images in flight.
STEP_SECONDS = 0.5
STEP_IMAGES = 256
# Records live in RADOS (up to 4 MiB each): every image is kept up to these bounds; past
# them, the images using most, and the rest counted (the sums cover every image).
MAX_IMAGES = 10000
MAX_OTHERS = 50
RESULT_BUDGET = 3 << 20
DELETED = 'deleted during the run'

# (pool id, namespace, image id, name): the order a run goes through the images in.
Spec = Tuple[int, str, str, str]


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return f'{value:.0f} {unit}' if unit == 'B' else f'{value:.1f} {unit}'
        value /= 1024
    return f'{n} B'


def _total_used(image: Dict[str, Any]) -> int:
    return int(image['used_bytes']) + sum(s['used_bytes'] for s in image['snapshots'])


def result_table(result: Dict[str, Any]) -> str:
    """Per image (and snapshot) provisioned and used bytes, largest used first."""
    table = PrettyTable(['POOL', 'NAMESPACE', 'IMAGE', 'PROVISIONED', 'USED', 'FAST-DIFF',
                         'SECONDS'])
    table.align = 'r'
    for c in ('POOL', 'NAMESPACE', 'IMAGE', 'FAST-DIFF'):
        table.align[c] = 'l'  # type: ignore[index]
    for image in result['images']:
        for snap in image['snapshots']:
            table.add_row([image['pool'], image['namespace'], f"{image['name']}@{snap['name']}",
                           _bytes(snap['provisioned_bytes']), _bytes(snap['used_bytes']), '',
                           ''])
        table.add_row([image['pool'], image['namespace'], image['name'],
                       _bytes(image['provisioned_bytes']), _bytes(image['used_bytes']),
                       'yes' if image['fast_diff'] else 'no', f"{image['seconds']:.3f}"])
    for pool in result['pools']:
        table.add_row([pool['pool'], '', f"<{pool['images']} images>",
                       _bytes(pool['provisioned_bytes']), _bytes(pool['used_bytes']), '', ''])
    total = result['total']
    lines = [table.get_string(),
             f"total: {total['images']} images, {_bytes(total['provisioned_bytes'])} "
             f"provisioned, {_bytes(total['used_bytes'])} used, in {result['seconds']} s"]
    if result['other_images']:
        lines.append(f"{result['other_images']} smaller images counted in the sums only")
    for image in result['not_measured']:
        lines.append(f"{image['pool']}/{image['namespace'] + '/' if image['namespace'] else ''}"
                     f"{image['name']}: {image['reason']}")
    return '\n'.join(lines)


class RbdDu(TaskKind):
    name = 'rbd_du'
    summary = ("Measure RBD images' provisioned and used bytes, as `rbd du` does, "
               'several images at once')
    fields = (Name('pool', what='a pool name'),
              Name('image', what='an image name (or namespace/name)'))
    refusals = {404: 'no such pool or image'}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: Optional[ThreadPoolExecutor] = None
        self._stop = threading.Event()
        # task key -> the images to measure, in order
        self._listings: Dict[str, List[Spec]] = {}
        # task key -> its listings of the pools' objects (a run over whole pools only)
        self._objects: Dict[str, DataObjects] = {}

    # ------------------------------------------------------------ request

    def check(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        if params['image'] is not None and params['pool'] is None:
            raise Invalid('an image needs its pool: rbd-du <pool> --image <name>')
        pools = rbd_pools(ctx.cluster, params['pool'])
        out = {**params, 'pools': {str(p['pool']): p['pool_name'] for p in pools}}
        if params['image'] is not None:
            namespace, _, name = params['image'].rpartition('/')
            image_id = ctx.cluster.rbd_image_id(pools[0]['pool'], namespace, name)
            if image_id is None:
                raise NotFound(f"image '{params['image']}' not found in pool "
                               f"'{params['pool']}'")
            out['image_id'] = image_id
        return out

    def describe(self, params: Dict[str, Any]) -> str:
        if params['image']:
            return f"Getting RBD disk usage of image '{params['pool']}/{params['image']}'"
        where = f"pool '{params['pool']}'" if params['pool'] else 'every RBD pool'
        return f'Getting RBD disk usage of {where}'

    def render(self, task: Dict[str, Any]) -> Optional[str]:
        return result_table(task['result']) if task['state'] == 'finished' else None

    # ------------------------------------------------------------ steps

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        now = ctx.clock.now()
        if not state:
            state = {'start': now, 'after': None, 'images': [], 'others': 0,
                     'not_measured': [], 'sums': {}, 'done': 0, 'measured': 0,
                     'seconds': 0.0}
        self._pools_exist(ctx.cluster, params)
        todo = self._todo(ctx.cluster, params, state)
        if not todo:
            return Finish(self._result(params, state, now))
        done = self._measure(ctx.cluster, params, state, todo)
        if done == len(todo):
            return Finish(self._result(params, state, ctx.clock.now()))
        total = state['done'] + len(todo) - done
        sums = _sum(state['sums'].values())
        return Continue(state, percent=100.0 * state['done'] / max(1, total),
                        status_text=f"{state['done']} of {total} images measured: "
                                    f"{_bytes(sums[2])} used of {_bytes(sums[1])} "
                                    'provisioned so far')

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        if state:
            self._listings.pop(_key(state), None)
            self._objects.pop(_key(state), None)

    def shutdown(self, ctx: Context) -> None:
        self._listings.clear()
        self._objects.clear()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._stop.clear()

    def stopping(self) -> None:
        self._stop.set()

    def held(self) -> Dict[str, int]:
        return {'rbd_du_listings': len(self._listings),
                'rbd_du_object_listings': len(self._objects)}

    def _pools_exist(self, cluster: Cluster, params: Dict[str, Any]) -> None:
        there = {str(p['pool']): p['pool_name'] for p in cluster.pools()}
        for pool_id, name in params['pools'].items():
            if there.get(pool_id) != name:
                raise BgtaskError(f"pool '{name}' was deleted")

    def _todo(self, cluster: Cluster, params: Dict[str, Any],
              state: Dict[str, Any]) -> List[Spec]:
        key = _key(state)
        listing = self._listings.get(key)
        if listing is None:
            # First step of the run on this mgr.
            listing = self._listings[key] = self._list(cluster, params)
            if not params.get('image_id'):
                # Listing a pool's objects for one image would cost what the pool holds.
                self._objects[key] = DataObjects()
            state['runs'] = state.get('runs', 0) + 1
        if state['after'] is None:
            return listing
        at = bisect.bisect_right(listing, (*state['after'], chr(0x10ffff)))
        return listing[at:]

    def _list(self, cluster: Cluster, params: Dict[str, Any]) -> List[Spec]:
        if params.get('image_id'):
            namespace, _, name = params['image'].rpartition('/')
            return [(int(next(iter(params['pools']))), namespace, params['image_id'], name)]
        specs: List[Spec] = []
        for pool_id in sorted(int(p) for p in params['pools']):
            try:
                specs += [(pool_id, *spec) for spec in cluster.rbd_image_specs(pool_id)]
            except PoolGone:
                raise BgtaskError(f"pool '{params['pools'][str(pool_id)]}' was deleted")
        return sorted(specs)

    def _measure(self, cluster: Cluster, params: Dict[str, Any], state: Dict[str, Any],
                 todo: List[Spec]) -> int:
        """Measures images in order, PARALLEL at a time, and adds them to the state in
        that order, so that the position reached is always a prefix of the listing.
        Returns how many were added."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=PARALLEL,
                                                    thread_name_prefix='bgtasks-rbd-du')
            executor = self._executor
        objects = self._objects.get(_key(state))
        began = time.monotonic()
        window: Deque[Tuple[Spec, Future]] = collections.deque()
        submitted = done = 0

        def more() -> bool:
            return (submitted < min(len(todo), STEP_IMAGES) and len(window) < PARALLEL
                    and time.monotonic() - began < STEP_SECONDS)

        try:
            while True:
                while more():
                    pool_id, namespace, image_id, _ = todo[submitted]
                    window.append((todo[submitted], executor.submit(
                        cluster.rbd_disk_usage, pool_id, namespace, image_id,
                        state['start'], self._stop, objects)))
                    submitted += 1
                if not window:
                    return done
                spec, future = window.popleft()
                try:
                    outcome: Any = future.result()
                except Exception as e:
                    outcome = e
                if isinstance(outcome, Interrupted):
                    return done     # the module stops: a new mgr measures the rest
                if isinstance(outcome, PoolGone):
                    raise BgtaskError(f"pool '{params['pools'][str(spec[0])]}' was deleted")
                self._add(params, state, spec, outcome)
                state['after'] = list(spec[:3])
                state['done'] += 1
                done += 1
        finally:
            # Nothing of this step outlives it: what is left is measured again later.
            for _, future in window:
                future.cancel()
            wait([f for _, f in window])

    def _add(self, params: Dict[str, Any], state: Dict[str, Any], spec: Spec,
             outcome: Any) -> None:
        pool_id, namespace, image_id, name = spec
        pool = params['pools'][str(pool_id)]
        if outcome is None:
            return          # created after the run began
        if isinstance(outcome, Exception):
            reason = DELETED if isinstance(outcome, ImageGone) else \
                f'{type(outcome).__name__}: {outcome}'
            if len(state['not_measured']) < MAX_OTHERS:
                state['not_measured'].append({'pool': pool, 'namespace': namespace,
                                              'name': name, 'id': image_id,
                                              'reason': reason})
            return
        state['measured'] += 1
        state['seconds'] = round(state['seconds'] + outcome['seconds'], 3)
        image = {'pool': pool, 'namespace': namespace, **outcome, 'run': state['runs']}
        sums = state['sums'].setdefault(str(pool_id), [0, 0, 0])
        sums[0] += 1
        sums[1] += image['provisioned_bytes']
        sums[2] += _total_used(image)
        images = state['images']
        images.append(image)
        if len(images) > MAX_IMAGES or len(json.dumps(images)) > RESULT_BUDGET:
            images.sort(key=lambda i: -_total_used(i))
            images.pop()
            state['others'] += 1

    def _result(self, params: Dict[str, Any], state: Dict[str, Any], now: float) -> Any:
        images = sorted(state['images'], key=lambda i: (-_total_used(i), i['pool'],
                                                        i['namespace'], i['name']))
        pools = []
        for pool_id, sums in sorted(state['sums'].items(), key=lambda kv: int(kv[0])):
            pools.append({'pool': params['pools'][pool_id], 'images': sums[0],
                          'provisioned_bytes': sums[1], 'used_bytes': sums[2]})
        count, provisioned, used = _sum(state['sums'].values())
        return {'images': images, 'pools': pools,
                'total': {'images': count, 'provisioned_bytes': provisioned,
                          'used_bytes': used},
                'not_measured': state['not_measured'], 'other_images': state['others'],
                'measurements': state['measured'], 'runs': state['runs'],
                'seconds': round(now - state['start'], 3)}


def _key(state: Dict[str, Any]) -> str:
    return str(state['start'])


def _sum(sums: Any) -> Tuple[int, int, int]:
    count = provisioned = used = 0
    for s in sums:
        count, provisioned, used = count + s[0], provisioned + s[1], used + s[2]
    return count, provisioned, used
