"""Prometheus text exposition of the engine's counts."""
import gc
from resource import RUSAGE_SELF, getrusage
from typing import List, Optional

from .engine import Engine


def _esc(value: str) -> str:
    return value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def render(engine: Engine) -> str:
    lines: List[str] = [
        '# HELP bgtasks_tasks Tasks kept by bgtasks, by kind and status.',
        '# TYPE bgtasks_tasks gauge',
    ]
    for (kind, status), n in sorted(engine.counts().items()):
        lines.append(f'bgtasks_tasks{{kind="{_esc(kind)}",status="{_esc(status)}"}} {n}')
    lines += ['# HELP bgtasks_step_seconds Time spent in task steps since the module started.',
              '# TYPE bgtasks_step_seconds summary']
    for kind in sorted(engine.step_count):
        lines.append(f'bgtasks_step_seconds_sum{{kind="{_esc(kind)}"}} '
                     f'{engine.step_seconds[kind]:.6f}')
        lines.append(f'bgtasks_step_seconds_count{{kind="{_esc(kind)}"}} '
                     f'{engine.step_count[kind]}')
    lines += ['# HELP bgtasks_step_cpu_seconds_total CPU of the steps\' own threads.',
              '# TYPE bgtasks_step_cpu_seconds_total counter']
    for kind in sorted(engine.step_count):
        lines.append(f'bgtasks_step_cpu_seconds_total{{kind="{_esc(kind)}"}} '
                     f'{engine.step_cpu_seconds.get(kind, 0.0):.6f}')
    lines += ['# HELP bgtasks_step_failures_total Steps that raised, since the module started.',
              '# TYPE bgtasks_step_failures_total counter']
    for kind in sorted(engine.step_count):
        lines.append(f'bgtasks_step_failures_total{{kind="{_esc(kind)}"}} '
                     f'{engine.failures.get(kind, 0)}')
    lines += ['# HELP bgtasks_held What task kinds hold on the cluster now (OSD perf queries).',
              '# TYPE bgtasks_held gauge']
    for kind in sorted(engine.kinds):
        for resource, n in sorted(engine.kinds[kind].held().items()):
            lines.append(f'bgtasks_held{{kind="{_esc(kind)}",resource="{_esc(resource)}"}} {n}')
    # Whether memory grows in this module (its interpreter's objects) or elsewhere in the
    # mgr process (the resident size): the soak watches both.
    lines += ['# HELP bgtasks_python_objects Objects tracked by the module interpreter\'s GC.',
              '# TYPE bgtasks_python_objects gauge',
              f'bgtasks_python_objects {len(gc.get_objects())}']
    # The whole process, all modules: the steps' own share is the step CPU above.
    usage = getrusage(RUSAGE_SELF)
    lines += ['# HELP bgtasks_mgr_cpu_seconds_total CPU seconds of the whole ceph-mgr.',
              '# TYPE bgtasks_mgr_cpu_seconds_total counter',
              f'bgtasks_mgr_cpu_seconds_total {usage.ru_utime + usage.ru_stime:.6f}']
    rss = resident_bytes()
    if rss is not None:
        lines += ['# HELP bgtasks_mgr_resident_bytes Resident memory of the whole ceph-mgr.',
                  '# TYPE bgtasks_mgr_resident_bytes gauge',
                  f'bgtasks_mgr_resident_bytes {rss}']
    return '\n'.join(lines) + '\n'


def resident_bytes() -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
