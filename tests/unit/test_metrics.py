"""/metrics names what bgtasks costs: step CPU per kind and the mgr process's CPU."""
import re

from conftest import Harness

from mgr_bgtasks.metrics import render


def test_cpu_seconds_of_steps_and_of_the_mgr(h: Harness) -> None:
    h.engine.submit('test', {'times': 1}, 'u')
    h.engine.run_due()
    text = render(h.engine)
    assert '# TYPE bgtasks_mgr_cpu_seconds_total counter' in text
    cpu = re.search(r'^bgtasks_mgr_cpu_seconds_total (\S+)$', text, re.M)
    assert cpu is not None and float(cpu.group(1)) > 0
    step = re.search(r'^bgtasks_step_cpu_seconds_total\{kind="(\w+)"\} (\S+)$', text, re.M)
    assert step is not None and float(step.group(2)) >= 0
