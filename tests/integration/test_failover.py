"""Tasks survive a module restart and a mgr failover, and resume from their last round."""
from typing import Callable

from conftest import Bgtask, no_module_error


def resumes_across(bg: Bgtask, disrupt: Callable[[], None]) -> None:
    bg.set_option('test_round_seconds', '1.0')
    try:
        task = bg.json('test', '25')
        before = bg.wait_task(task['id'], lambda t: t['percent'] >= 16)
        disrupt()
        after = bg.wait_task(task['id'], lambda t: t['status'] == 'Running', timeout=90)
        # Resumed from the persisted round: never back to 0, and started kept.
        assert after['percent'] >= before['percent'] > 0
        assert after['started'] == before['started']
        done = bg.wait_task(task['id'], lambda t: t['state'] == 'finished', timeout=90)
        assert done['result'] == {'rounds': 25}
        assert no_module_error(bg.cluster)
    finally:
        bg.set_option('test_round_seconds', '0.5')


def test_task_survives_module_disable_enable(bg: Bgtask) -> None:
    def bounce() -> None:
        bg.cluster.ceph('mgr', 'module', 'disable', 'bgtasks')
        bg.cluster.ceph('mgr', 'module', 'enable', 'bgtasks')
    resumes_across(bg, bounce)


def test_task_survives_mgr_failover(bg: Bgtask) -> None:
    first = bg.cluster.active_mgr()
    resumes_across(bg, bg.cluster.fail_mgr)
    assert bg.cluster.active_mgr() != first
