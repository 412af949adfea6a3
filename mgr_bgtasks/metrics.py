"""Prometheus text exposition of the engine's counts."""
from typing import List

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
    return '\n'.join(lines) + '\n'
