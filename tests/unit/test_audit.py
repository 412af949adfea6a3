"""Audit lines leave on their own thread, in order, and a failing send loses only its line."""
import threading
from typing import List

from mgr_bgtasks.audit import AuditLog


def test_lines_are_sent_in_order_off_the_callers_thread() -> None:
    sent: List[str] = []
    threads = set()
    gate = threading.Event()

    def send(line: str) -> None:
        assert gate.wait(5)
        threads.add(threading.current_thread().name)
        if line == 'bad':
            raise RuntimeError('cluster log unavailable')
        sent.append(line)

    audit = AuditLog(send)
    for line in ('task 1 created by a', 'bad', 'task 1 deleted by b', 'task 2 created by a'):
        audit(line)                     # returns at once, though sending is held
    assert sent == []
    gate.set()
    audit.stop()
    assert sent == ['task 1 created by a', 'task 1 deleted by b', 'task 2 created by a']
    assert threads == {'bgtasks-audit'}
    audit('after a restart')            # a stopped log starts again when used
    audit.stop()
    assert sent[-1] == 'after a restart'
