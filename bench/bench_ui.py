"""The web tab with 1,000 pending tasks: the time from clicking "Background-Tasks" to the
Pending tab rendered, and the bytes the page loads, in Debian's headless Chromium.

Starts its own cluster (1 mon, 1 mgr, 1 OSD; bgtasks on 127.0.0.1, plain HTTP), then:
  1  cold loads of the logged-in page in fresh browser contexts (no cache) with an empty
     queue: the bytes of every response, split into the page itself (HTML, CSS, JavaScript,
     icons) and its API data;
  2  creates --tasks (1,000) test tasks that stay pending (100 rounds of 60 s each);
  3  --runs (10) times: in the page, performance.now() before the click, then until the
     Pending tab has drawn its rows (the dialog marks the panel data-rendered) and until the
     frame after that (painted); also the same from Playwright's side of the browser
     protocol. Prints medians against the goals (<= 300 ms, <= 200 KB).

Usage: python bench/bench_ui.py [--tasks 1000] [--runs 10] [--release pacific|tentacle]
(a Python with playwright: the tox integration env, or a venv made with
--system-site-packages)
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'dev'))
from devcluster import DevCluster, free_port  # noqa: E402
from release import DEFAULT_RELEASE, RELEASES  # noqa: E402

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']
USER = 'bench'
PASSWORD = 'Bench-pass-w0rd!'
GOAL_OPEN_MS = 300.0
GOAL_PAGE_KB = 200.0
STATIC_TYPES = ('document', 'stylesheet', 'script', 'image', 'font')

# Runs in the page: click the button, then wait for the rendered marker and the next frame.
MEASURE = '''async () => {
  const button = document.getElementById('bgtasks-button');
  const t0 = performance.now();
  button.click();
  const rendered = () => document.querySelector('#panel-pending[data-rendered]');
  while (!rendered()) await new Promise((r) => setTimeout(r, 0));
  const t1 = performance.now();
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const t2 = performance.now();
  const rows = document.querySelectorAll('#panel-pending tr.row').length;
  const count = document.querySelector('#tab-pending .tab-count').textContent;
  return {dom: t1 - t0, painted: t2 - t0, rows, count};
}'''


def http_json(port: int, method: str, path: str, body: Any = None,
              token: str = '') -> Tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f'http://127.0.0.1:{port}{path}', data=data, method=method)
    req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('Authorization', f'Bearer {token}')
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as res:
        raw = res.read()
        return res.status, json.loads(raw) if raw else None


def start_cluster(cluster: DevCluster) -> int:
    """Starts it; returns the REST port. Test tasks of 100 rounds of 60 s stay pending."""
    port = free_port()
    cluster.start(mgrs=1, osds=1, module_options={
        'server_addr': '127.0.0.1', 'server_port': port, 'ssl': False,
        'test_round_seconds': 60, 'max_retained': 100000})
    pwfile = cluster.dir / 'tmp' / 'bench-password'
    pwfile.write_text(PASSWORD)
    cluster.ceph('bgtask', 'user', 'create', USER, 'admin', '-i', str(pwfile))

    def answers() -> bool:
        try:
            return http_json(port, 'GET', '/api/openapi.json')[0] == 200
        except OSError:
            return False
    cluster.wait_for(answers, timeout=90, interval=0.5, what='the bgtasks REST server')
    return port


def create_tasks(port: int, token: str, n: int, clients: int = 8) -> float:
    def one(_: int) -> None:
        status, _task = http_json(port, 'POST', '/api/taskqueue/test_task', {'times': 100},
                                  token)
        assert status == 201, status

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def login(page: Any, base: str) -> None:
    page.goto(base + '/', wait_until='load')
    page.fill('#login-username', USER)
    page.fill('#login-password', PASSWORD)
    page.click('.login-card button[type=submit]')
    page.wait_for_selector('#bgtasks-button[data-pending]')


def cold_load(browser: Any, base: str) -> Dict[str, int]:
    """Bytes of a cold load of the logged-in page (session cookie set, empty cache)."""
    context = browser.new_context(viewport={'width': 1280, 'height': 800})
    try:
        page = context.new_page()
        login(page, base)             # sets the cookie; this load is not counted
        page.close()
        page = context.new_page()
        sizes: Dict[str, int] = {'page': 0, 'data': 0, 'requests': 0}
        seen: List[Any] = []
        page.on('requestfinished', lambda r: seen.append(r))
        page.route('**/*', lambda route: route.continue_())    # no HTTP cache in the way
        page.goto(base + '/', wait_until='networkidle')
        page.wait_for_selector('#pools-table[data-loaded]')
        page.wait_for_timeout(300)
        for req in seen:
            s = req.sizes()
            total = s['responseBodySize'] + s['responseHeadersSize']
            key = 'page' if req.resource_type in STATIC_TYPES else 'data'
            sizes[key] += total
            sizes['requests'] += 1
        return sizes
    finally:
        context.close()


def frontend_bytes() -> int:
    total = 0
    for root, _, files in os.walk(os.path.join(REPO, 'frontend')):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def measure(browser: Any, base: str, runs: int, expect: int) -> Dict[str, Any]:
    context = browser.new_context(viewport={'width': 1280, 'height': 800})
    try:
        page = context.new_page()
        login(page, base)
        page.wait_for_function(
            f"document.getElementById('bgtasks-button').dataset.pending >= {expect}",
            timeout=60000)
        dom: List[float] = []
        painted: List[float] = []
        outside: List[float] = []
        rows = 0
        for _ in range(runs):
            got = page.evaluate(MEASURE)
            dom.append(got['dom'])
            painted.append(got['painted'])
            rows = got['rows']
            assert int(got['count']) >= expect, got
            page.keyboard.press('Escape')
            page.wait_for_selector('#tasks-dialog', state='detached')
            page.wait_for_timeout(300)
            t0 = time.perf_counter()
            page.click('#bgtasks-button')
            page.wait_for_selector('#panel-pending[data-rendered]')
            outside.append((time.perf_counter() - t0) * 1000)
            page.keyboard.press('Escape')
            page.wait_for_selector('#tasks-dialog', state='detached')
            page.wait_for_timeout(300)
        return {'dom': dom, 'painted': painted, 'outside': outside, 'rows': rows}
    finally:
        context.close()


def line(label: str, value: str, goal: str = '') -> None:
    print(f'{label:46s} {value:>12s}  {goal}')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tasks', type=int, default=1000)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--release', choices=RELEASES,
                    default=os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE,
                    help='Ceph release of the cluster (default: $BGTASKS_RELEASE, else pacific)')
    args = ap.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit('needs the Python package playwright (pip install playwright; '
                         'it uses Debian\'s /usr/bin/chromium, no browser download)')
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f'{CHROMIUM} missing: bash dev/install-deps.sh')
    cluster = DevCluster(tempfile.mkdtemp(prefix='bgtasks-bench-ui-'), release=args.release)
    try:
        t0 = time.monotonic()
        port = start_cluster(cluster)
        base = f'http://127.0.0.1:{port}'
        print(f'cluster up in {time.monotonic() - t0:.0f}s; bgtasks on {base}', flush=True)
        token = http_json(port, 'POST', '/api/auth/login',
                          {'username': USER, 'password': PASSWORD})[1]['token']
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         headless=True)
            try:
                cold = [cold_load(browser, base) for _ in range(3)]
                took = create_tasks(port, token, args.tasks)
                print(f'{args.tasks} tasks created in {took:.1f}s', flush=True)
                loaded = cold_load(browser, base)
                timing = measure(browser, base, args.runs, args.tasks)
            finally:
                browser.close()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.dir, ignore_errors=True)

    page_kb = statistics.median(c['page'] for c in cold) / 1024
    painted = statistics.median(timing['painted'])
    print(f'\n== cold load of the logged-in page (no cache), headless Chromium; '
          f'{len(cold)} loads, median')
    line('page: HTML, CSS, JavaScript, icons (KB)', f'{page_kb:.1f}',
         f'goal <= {GOAL_PAGE_KB:.0f} KB: {"met" if page_kb <= GOAL_PAGE_KB else "MISSED"}')
    line('API data, empty queue (KB)', f'{statistics.median(c["data"] for c in cold) / 1024:.1f}')
    line('requests', f'{cold[0]["requests"]}')
    line(f'page with {args.tasks} pending tasks (KB)', f'{loaded["page"] / 1024:.1f}')
    line(f'API data with {args.tasks} pending tasks (KB)', f'{loaded["data"] / 1024:.1f}')
    line('every file of frontend/, lazy pages too (KB)', f'{frontend_bytes() / 1024:.1f}')
    print(f'\n== click "Background-Tasks" -> Pending tab with {args.tasks} tasks, '
          f'{args.runs} runs (ms)')
    for key, label in (('dom', 'in the page: rows in the DOM'),
                       ('painted', 'in the page: next frame painted'),
                       ('outside', 'from Playwright (click -> marker seen)')):
        v = timing[key]
        line(f'{label}, median', f'{statistics.median(v):.1f}',
             f'min {min(v):.1f}, max {max(v):.1f}')
    line('rows drawn (only those in view)', f'{timing["rows"]}')
    line('goal', f'{GOAL_OPEN_MS:.0f}',
         f'painted median {"met" if painted <= GOAL_OPEN_MS else "MISSED"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
