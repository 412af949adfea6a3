"""Plain-text rendering of tasks for the CLI (JSON needs none)."""
from typing import Any, Dict, List, Optional

from prettytable import PrettyTable


def _short_time(value: Optional[str]) -> str:
    # '2026-11-28T07:01:02.123456Z' -> '2026-11-28 07:01:02'
    return value[:19].replace('T', ' ') if value else '-'


def task_table(tasks: List[Dict[str, Any]]) -> str:
    table = PrettyTable(['ID', 'DESCRIPTION', 'STATUS', 'PERCENT', 'CREATED',
                         'ESTIMATED/ENDED'])
    table.align = 'l'
    for t in sorted(tasks, key=lambda t: t['id']):
        table.add_row([t['id'], t['description'], t['status'], f"{t['percent']}%",
                       _short_time(t['created']),
                       _short_time(t['ended'] if t['ended'] else t['estimated'])])
    return table.get_string()


def task_detail(task: Dict[str, Any]) -> str:
    table = PrettyTable(['FIELD', 'VALUE'])
    table.align = 'l'
    rbd_result = task['kind'] == 'rbd_perf' and task['state'] == 'finished'
    for key, value in task.items():
        if value is None or value == {} or (key == 'result' and rbd_result):
            continue
        table.add_row([key, value])
    text = table.get_string()
    return text + '\n' + rbd_perf_table(task['result']) if rbd_result else text


RBD_COLUMNS = ['read_ops/s', 'write_ops/s', 'read_bytes/s', 'write_bytes/s',
               'read_latency_ms', 'write_latency_ms']


def rbd_perf_table(result: Dict[str, Any]) -> str:
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


def user_table(users: List[Dict[str, Any]]) -> str:
    table = PrettyTable(['USERNAME', 'ROLE'])
    table.align = 'l'
    for u in users:
        table.add_row([u['username'], u['role']])
    return table.get_string()
