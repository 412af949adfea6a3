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


def task_detail(task: Dict[str, Any], result_text: Optional[str] = None) -> str:
    """Every field of the task; the result as `result_text`, if its kind renders one."""
    table = PrettyTable(['FIELD', 'VALUE'])
    table.align = 'l'
    for key, value in task.items():
        if value is None or value == {} or (key == 'result' and result_text is not None):
            continue
        table.add_row([key, value])
    text = table.get_string()
    return text if result_text is None else text + '\n' + result_text


def user_table(users: List[Dict[str, Any]]) -> str:
    table = PrettyTable(['USERNAME', 'ROLE'])
    table.align = 'l'
    for u in users:
        table.add_row([u['username'], u['role']])
    return table.get_string()


def store_text(where: Dict[str, Any]) -> str:
    """Where task records live, as `ceph bgtask store` prints it."""
    if where['backend'] == 'rados':
        place = f"RADOS pool '{where['pool']}', namespace '{where['namespace']}'"
    else:
        place = (f"the mon's key-value store, until pool '{where['waiting_for_pool']}' "
                 'exists')
    lines = [f'records in:       {place}',
             f"records:          {where['records']} ({where['bytes']} bytes)",
             f"largest record:   {where['max_record_bytes']} bytes",
             f"pending writes:   {where['pending_writes']}"]
    if where['unreadable']:
        lines.append(f"unreadable:       {', '.join(where['unreadable'])}")
    return '\n'.join(lines)
