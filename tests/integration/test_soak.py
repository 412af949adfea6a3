"""The CI version of the soak (bench/soak.py): 90 s of mixed REST and CLI load with a
`ceph mgr fail` every 30 s, on a cluster of its own. Nothing may be lost."""
import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SOAK = os.path.join(REPO, 'bench', 'soak.py')


def test_soak_with_two_failovers_loses_nothing() -> None:
    proc = subprocess.run([sys.executable, SOAK, '--minutes', '1.5', '--fail-every', '0.5',
                           '--steady-minutes', '0', '--no-control'],
                          capture_output=True, text=True, timeout=900, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    print(proc.stdout)
    print(proc.stderr[-5000:], file=sys.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('SOAK_RESULT ')]
    assert lines, f'no SOAK_RESULT line (exit {proc.returncode})\n{proc.stderr[-3000:]}'
    result = json.loads(lines[-1][len('SOAK_RESULT '):])
    assert result['lost'] == 0, result['lost_ids']
    assert result['wrong_results'] == 0, result['wrong_result_ids']
    assert result['pending'] == 0, result['pending_ids']
    assert result['created'] > 100 and len(result['failovers']) == 2, result
    assert proc.returncode == 0
