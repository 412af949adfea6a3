"""Headless Chromium (Debian's, driven by Playwright) on the module's own origin: log in
from the page, run openATTIC's seed snippet verbatim, and see its test task finish."""
import json
from typing import Any

from conftest import OUTPUT, PASSWORDS, REST_ADMIN, RestApi

# openATTIC's seed snippet, verbatim.
SEED = '''var createTestTask = function (time) {
  var xhr = new XMLHttpRequest();
  var url = "/openattic/api/taskqueue/test_task";
  xhr.open("post", url, true);
  xhr.setRequestHeader("Content-Type", "application/json");
  var data = JSON.stringify({times: time});
  xhr.send(data);
}'''

LOGIN = '''async ([username, password]) => {
  const res = await fetch("/api/auth/login", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username, password})});
  return {status: res.status, body: await res.text()};
}'''


def test_seed_snippet_creates_a_test_task_that_finishes(api: RestApi, browser: Any) -> None:
    before = max([t['id'] for t in api.get('/api/taskqueue').json()['results']], default=0)
    context = browser.new_context(ignore_https_errors=True, bypass_csp=True,
                                  viewport={'width': 1400, 'height': 800})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        res = page.goto(api.url('/'), wait_until='load', timeout=30000)
        assert res is not None and res.status == 200, res and res.status

        login: Any = page.evaluate(LOGIN, [REST_ADMIN, PASSWORDS[REST_ADMIN]])
        assert login['status'] == 200, login
        assert json.loads(login['body'])['username'] == REST_ADMIN
        assert any(c['httpOnly'] for c in context.cookies()), context.cookies()

        page.evaluate(SEED)
        with page.expect_response(lambda r: r.url.endswith('/test_task'),
                                  timeout=30000) as created:
            page.evaluate('createTestTask(3)')
        assert created.value.status == 201, created.value.text()
        task_id = created.value.json()['id']

        task = api.task(task_id)
        assert task_id > before
        assert task['kind'] == 'test' and task['params'] == {'times': 3}
        assert task['created_by'] == REST_ADMIN
        done = api.wait_task(task_id, lambda t: t['state'] == 'finished', timeout=60)
        assert done['status'] == 'Finished' and done['result'] == {'rounds': 3}

        page.reload(wait_until='load')
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUTPUT / 'browser-seed-task.png'), full_page=True)
        assert not errors, errors
    finally:
        context.close()
