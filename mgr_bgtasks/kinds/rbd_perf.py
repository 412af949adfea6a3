"""RBD performance data: per-image I/O sampled over a window from the mgr's OSD perf
queries, kept with the task.

The query is keyed like rbd_support's (pool, namespace, image id from `rbd_data.`
object names) plus the OSD, because counters are deltas that arrive in chunks, one
per OSD report, every `mgr_stats_period`: the first chunk of each OSD covers only part
of a period, so it is dropped, and each later one covers the periods since that OSD's
previous report. Counting periods rather than timing arrivals makes each OSD's span
exact while we read only a few times a period. Queries live in the active mgr only:
after a failover a new one is registered and the window goes on as a new segment.
"""
import hashlib
import json
import math
from typing import Any, Dict, List, Optional, Tuple

from prettytable import PrettyTable

from ..clock import iso
from ..cluster import Cluster
from ..errors import BgtaskError
from ..kind import Context, Continue, Finish, Outcome, TaskKind
from ..validators import Integer, Name, rbd_pools

COUNTERS = ['write_ops', 'read_ops', 'write_bytes', 'read_bytes', 'write_latency',
            'read_latency']
RATES = {'write_ops/s': 0, 'read_ops/s': 1, 'write_bytes/s': 2, 'read_bytes/s': 3}
OBJECT_REGEX = '^(?:rbd|journal)_data\\.(?:([0-9]+)\\.)?([^.]+)\\.'
# Reads per stats period: the gap between two arrivals, measured to within a third of a
# period, is still a whole number of periods without doubt.
READS_PER_PERIOD = 3
MIN_READ_SECONDS = 0.5
# The state is stored at most this often: a failover loses at most this much of the
# window's coverage, and a record of thousands of images is not rewritten on every OSD
# report.
SAVE_SECONDS = 5.0
MIN_SECONDS, MAX_SECONDS, DEFAULT_SECONDS = 5, 3600, 30
MAX_IMAGES = 10000
SERIES_IMAGES = 8
# Quieter images beyond MAX_IMAGES are counted up to this many.
MAX_DROPPED = 1024
# The result's share of a record (records live in RADOS, up to 4 MiB each).
RESULT_BUDGET = 3 << 20
# Slots of an image's state list: closed segments' rate x seconds sums (write ops, read
# ops, write bytes, read bytes) and their seconds; the same for the current segment as
# rates; write latency ms sum and count, read latency ms sum and count; the name.
C_, U_, LAT, NAME = 0, 5, 10, 14


def query_for(pool_id: Optional[int]) -> Dict[str, Any]:
    return {
        'key_descriptor': [
            {'type': 'pool_id', 'regex': f'^({pool_id})$' if pool_id is not None else '^(.*)$'},
            {'type': 'namespace', 'regex': '^(.*)$'},
            {'type': 'object_name', 'regex': OBJECT_REGEX},
            {'type': 'osd_id', 'regex': '^(.*)$'},
        ],
        'performance_counter_descriptors': COUNTERS,
    }


class Segment:
    """What this mgr saw since it registered its query: per image and OSD, the first and
    last arrival and the sums of the chunks after the first."""

    def __init__(self, query_id: int, registered: float, period: float) -> None:
        self.query_id = query_id
        self.registered = registered
        self.period = period
        self.per_osd: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def add(self, image: str, osd: str, now: float, values: List[float]) -> None:
        track = self.per_osd.get((image, osd))
        if track is None:
            # Covers an unknown part of a period: kept apart, used only if nothing follows.
            self.per_osd[(image, osd)] = {'first': now, 'last': now, 'periods': 0,
                                          'sums': [0.0] * 4, 'first_sums': values[:4]}
            return
        # Periods with no I/O of this image on this OSD send no chunk: they count too.
        track['periods'] += max(1, round((now - track['last']) / self.period))
        track['last'] = now
        for i in range(4):
            track['sums'][i] += values[i]

    def summary(self) -> Dict[str, List[float]]:
        """image -> [rate x 4, seconds]: rates summed over OSDs, each over its own span."""
        out: Dict[str, List[float]] = {}
        for (image, _), t in self.per_osd.items():
            span = t['periods'] * self.period
            entry = out.setdefault(image, [0.0] * 5)
            sums = t['sums']
            if span <= 0:
                # One report only (a short window): it covers at most the time since the
                # query was registered, and at most one period: the best span there is.
                span = min(t['first'] - self.registered, self.period)
                sums = t['first_sums']
            if span > 0:
                for i in range(4):
                    entry[i] += sums[i] / span
                entry[4] = max(entry[4], span)
        return out


RBD_COLUMNS = ['read_ops/s', 'write_ops/s', 'read_bytes/s', 'write_bytes/s',
               'read_latency_ms', 'write_latency_ms']


def result_table(result: Dict[str, Any]) -> str:
    """Per-image totals over the window, busiest first."""
    table = PrettyTable(['POOL', 'NAMESPACE', 'IMAGE'] + [c.upper() for c in RBD_COLUMNS])
    table.align = 'r'
    for c in ('POOL', 'NAMESPACE', 'IMAGE'):
        table.align[c] = 'l'  # type: ignore[index]
    for image in result['images']:
        table.add_row([image['pool'], image['namespace'], image['image'] or image['image_id']]
                      + [f"{image['total'][c]:.1f}" for c in RBD_COLUMNS])
    window = result['window']
    return (f"{table.get_string()}\nwindow {window['start']} .. {window['end']} "
            f"({window['seconds']} s), {result['samples']} OSD reports"
            + (f", {result['other_images']} more images" if result['other_images'] else ''))


class RbdPerf(TaskKind):
    name = 'rbd_perf'
    summary = 'Sample per-image RBD I/O over a window, from the OSD perf queries'
    fields = (Name('pool', what='a pool name'),
              Integer('seconds', low=MIN_SECONDS, high=MAX_SECONDS, default=DEFAULT_SECONDS))
    refusals = {404: 'no such pool'}

    def __init__(self) -> None:
        # task key (start time + pool) -> this mgr's live segment
        self._live: Dict[str, Segment] = {}

    # ------------------------------------------------------------ request

    def render(self, task: Dict[str, Any]) -> Optional[str]:
        return result_table(task['result']) if task['state'] == 'finished' else None

    def check(self, ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
        pools = rbd_pools(ctx.cluster, params['pool'])
        return {**params, 'pools': {str(p['pool']): p['pool_name'] for p in pools}}

    def describe(self, params: Dict[str, Any]) -> str:
        where = f"pool '{params['pool']}'" if params['pool'] else 'every RBD pool'
        return f"Getting RBD performance data of {where} for {params['seconds']} s"

    # ------------------------------------------------------------ steps

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        now = ctx.clock.now()
        if not state:
            # Per image, one flat list (a record holds thousands of images):
            # see C_, U_, LAT and NAME for what its slots hold.
            state = {'start': now, 'end': now + params['seconds'], 'img': {}, 'series': {},
                     'chunks': 0, 'segments': 0, 'dropped': [], 'last_arrival': None}
        if 'period' not in state:
            # Also for a task an older version of the module began.
            state['period'] = float(ctx.cluster.option('mgr_stats_period') or 5)
        segment = self._segment(ctx.cluster, params, state, now)
        arrived = self._read(ctx.cluster, params, state, segment, now)
        if arrived:
            for image, summary in segment.summary().items():
                if image in state['img']:
                    state['img'][image][U_:U_ + 5] = [_num(v) for v in summary]
            self._resolve_names(ctx.cluster, state)
        if now >= state['end']:
            return Finish(self._result(params, state, now))
        seen = state['last_arrival'] or state['start']
        percent = math.floor(100.0 * (seen - state['start']) / params['seconds'])
        save = state['segments'] > state.get('saved_segments', 0) \
            or (arrived and now - state.get('saved', state['start']) >= SAVE_SECONDS)
        if save:
            state['saved'], state['saved_segments'] = now, state['segments']
        return Continue(state, percent=percent, save=save,
                        delay=min(max(MIN_READ_SECONDS, state['period'] / READS_PER_PERIOD),
                                  max(0.0, state['end'] - now)),
                        status_text=f"{state['chunks']} reports from OSDs so far")

    def ended(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> None:
        segment = self._live.pop(_key(params, state), None) if state else None
        if segment is not None:
            ctx.cluster.remove_perf_query(segment.query_id)

    def shutdown(self, ctx: Context) -> None:
        for segment in self._live.values():
            ctx.cluster.remove_perf_query(segment.query_id)
        self._live.clear()

    def held(self) -> Dict[str, int]:
        return {'osd_perf_queries': len(self._live)}

    def _segment(self, cluster: Cluster, params: Dict[str, Any],
                 state: Dict[str, Any], now: float) -> Segment:
        key = _key(params, state)
        segment = self._live.get(key)
        if segment is not None:
            return segment
        # New here (first step, or a new mgr): what an earlier segment saw is kept.
        _fold(state)
        pool_id = None if params['pool'] is None else int(next(iter(params['pools'])))
        query_id = cluster.add_perf_query(query_for(pool_id))
        if query_id is None:
            raise BgtaskError('the mgr refused the OSD perf query')
        segment = self._live[key] = Segment(query_id, now, state['period'])
        state['segments'] += 1
        return segment

    def _read(self, cluster: Cluster, params: Dict[str, Any], state: Dict[str, Any],
              segment: Segment, now: float) -> bool:
        counters = cluster.perf_counters(segment.query_id).get('counters', [])
        bucket = str(int((now - state['start']) // _bucket_seconds(params['seconds'])))
        arrived = False
        for c in counters:
            k = c['k']
            pool_id = k[2][0] or k[0][0]
            if str(pool_id) not in params['pools']:
                continue
            image = f'{pool_id}/{k[1][0]}/{k[2][1]}'
            values = [float(v[0]) for v in c['c']]
            counts = [float(v[1]) for v in c['c']]
            segment.add(image, str(k[3][0]), now, values)
            entry = state['img'].setdefault(image, [0] * NAME + [None])
            # Latency sums in ms: nanosecond sums make long numbers.
            for slot, value in zip(range(LAT, LAT + 4),
                                   (values[4] / 1e6, counts[4], values[5] / 1e6, counts[5])):
                entry[slot] = _num(entry[slot] + value)
            series = state['series'].setdefault(image, {})
            sums = series.setdefault(bucket, [0] * 4)
            for i in range(4):
                sums[i] = _num(sums[i] + values[i])
            arrived = True
        if arrived:
            state['chunks'] += 1
            state['last_arrival'] = now
            _keep_busiest(state)
        return arrived

    def _resolve_names(self, cluster: Cluster, state: Dict[str, Any]) -> None:
        # Named as soon as seen: an image deleted later in the window keeps its name.
        missing: Dict[Tuple[str, str], List[str]] = {}
        for key, entry in state['img'].items():
            if entry[NAME] is None:
                pool_id, namespace, image_id = key.split('/', 2)
                missing.setdefault((pool_id, namespace), []).append(image_id)
        for (pool_id, namespace), ids in missing.items():
            try:
                names = cluster.rbd_image_names(int(pool_id), namespace, ids)
            except Exception:
                continue        # pool gone meanwhile: ids stay unnamed
            for image_id, name in names.items():
                entry = state['img'].get(f'{pool_id}/{namespace}/{image_id}')
                if entry is not None:
                    entry[NAME] = name

    def _result(self, params: Dict[str, Any], state: Dict[str, Any], now: float) -> Any:
        _fold(state)
        bucket = _bucket_seconds(params['seconds'])
        images = []
        for image, entry in state['img'].items():
            pool_id, namespace, image_id = image.split('/', 2)
            closed, lat = entry[C_:C_ + 5], entry[LAT:LAT + 4]
            seconds = closed[4]
            total = {name: (closed[i] / seconds if seconds else 0.0)
                     for name, i in RATES.items()}
            total['write_latency_ms'] = lat[0] / lat[1] if lat[1] else 0.0
            total['read_latency_ms'] = lat[2] / lat[3] if lat[3] else 0.0
            images.append({
                'pool': params['pools'].get(pool_id, pool_id), 'namespace': namespace,
                'image': entry[NAME], 'image_id': image_id,
                'total': {k: _num(v, 1) for k, v in total.items()},
                'series': [_point(int(b) * bucket, sums, bucket)
                           for b, sums in sorted(state['series'].get(image, {}).items(),
                                                 key=lambda kv: int(kv[0]))],
            })
        images.sort(key=lambda i: -(i['total']['read_ops/s'] + i['total']['write_ops/s']))
        result = {
            'window': {'start': iso(state['start']), 'end': iso(now),
                       'seconds': round(now - state['start'], 3)},
            'samples': state['chunks'], 'segments': state['segments'],
            'images': images[:MAX_IMAGES],
            'other_images': len(state['dropped']) + max(0, len(images) - MAX_IMAGES),
        }
        return _fit(result)


def _key(params: Dict[str, Any], state: Dict[str, Any]) -> str:
    return f"{state['start']}:{params['pool']}"


def _bucket_seconds(window: int) -> int:
    # At most about 60 points per image, never finer than one OSD report period.
    return max(5, math.ceil(window / 60))


def _fold(state: Dict[str, Any]) -> None:
    """Adds the current segment's rates, weighted by its length, to the closed ones."""
    for entry in state['img'].values():
        seconds = entry[U_ + 4]
        for i in range(4):
            entry[C_ + i] = _num(entry[C_ + i] + entry[U_ + i] * seconds)
        entry[C_ + 4] = _num(entry[C_ + 4] + seconds)
        entry[U_:U_ + 5] = [0] * 5


def _point(t: int, sums: List[float], bucket: int) -> Dict[str, float]:
    point: Dict[str, float] = {'t': t}
    for name, i in RATES.items():
        point[name] = _num(sums[i] / bucket, 1)
    return point


def _ops(entry: List[Any]) -> float:
    """Ops seen so far, first chunks included (the latency counts count every op)."""
    return float(entry[LAT + 1] + entry[LAT + 3])


def _num(value: float, decimals: int = 3) -> float:
    """Short in JSON: whole numbers as ints, others rounded."""
    value = round(value, decimals)
    return int(value) if value == int(value) else value


def _keep_busiest(state: Dict[str, Any]) -> None:
    """Past MAX_IMAGES, only the busiest images are kept (and only the busiest few with a
    series), so a record stays within its bound. The others are counted."""
    images = state['img']
    if len(images) > MAX_IMAGES:
        busy = sorted(images, key=lambda i: -_ops(images[i]))
        dropped = set(state['dropped'])
        for image in busy[MAX_IMAGES:]:
            del images[image]
            state['series'].pop(image, None)
            # Short digests tell images apart in the count without taking much room.
            dropped.add(hashlib.sha1(image.encode()).hexdigest()[:8])
        state['dropped'] = sorted(dropped)[:MAX_DROPPED]
    series = state['series']
    if len(series) > SERIES_IMAGES:
        busy = sorted(series, key=lambda i: -_ops(images[i]) if i in images else 0)
        for image in busy[SERIES_IMAGES:]:
            del series[image]


def _fit(result: Dict[str, Any]) -> Dict[str, Any]:
    while len(json.dumps(result)) > RESULT_BUDGET:
        with_series = [i for i in result['images'] if i['series']]
        if with_series:
            with_series[-1]['series'] = []
        else:
            result['other_images'] += 1
            result['images'].pop()
    return result
