"""The web tab (issue 6) in Debian's Chromium, driven by Playwright, against the real module on
the session's cluster: login and the top bar, the Background-Tasks dialog (tabs, keyboard,
live updates, filter, sort, detail, deleting with and without the warning, 1,000 tasks), the
pools page and its Set PGs form, the RBD page, a read-only user, session expiry, and the Ceph
dashboard's own task list showing a bgtasks task. Each flow saves a screenshot under
test-output/ (ui-*.png)."""
import concurrent.futures
import json
import re
import subprocess
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests
from conftest import (OUTPUT, PASSWORDS, REST_ADMIN, REST_READER, Bgtask, RestApi,
                      password_file)
from devcluster import DevCluster, free_port
from test_browser import SEED

try:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
except ImportError:     # reported by the `browser` fixture, with what to install
    pass

EXPIRED = 'Your session expired, please log in again'
DESKTOP = {'width': 1280, 'height': 800}
PHONE = {'width': 390, 'height': 844}
TOPBAR_BG = 'rgb(55, 66, 73)'         # the Ceph dashboard's #374249
MANY = 1000


class Ui:
    """One browser context on the module's origin, and what the tests do with it."""

    def __init__(self, browser: 'Browser', api: RestApi, viewport: Dict[str, int]) -> None:
        self.api = api
        self.context: 'BrowserContext' = browser.new_context(
            ignore_https_errors=True, viewport=viewport)
        self.context.set_default_timeout(15000)
        self.page: 'Page' = self.context.new_page()
        self.errors: List[str] = []
        self.page.on('pageerror', lambda e: self.errors.append(str(e)))

    def goto(self, fragment: str = '') -> None:
        res = self.page.goto(self.api.url('/') + fragment, wait_until='load')
        assert res is not None and res.status == 200

    def login(self, user: str = REST_ADMIN, fragment: str = '') -> None:
        self.goto(fragment)
        self.page.fill('#login-username', user)
        self.page.fill('#login-password', PASSWORDS[user])
        self.page.click('.login-card button[type=submit]')
        expect(self.page.locator('#user-name')).to_contain_text(user)
        # The first poll is in: the button knows the pending tasks.
        expect(self.page.locator('#bgtasks-button[data-pending]')).to_have_count(1)

    def shot(self, name: str, full_page: bool = False) -> None:
        self.page.screenshot(path=str(OUTPUT / f'ui-{name}.png'), full_page=full_page)

    def open_dialog(self) -> 'Locator':
        self.page.click('#bgtasks-button')
        dialog = self.page.locator('#tasks-dialog')
        expect(dialog).to_be_visible()
        expect(self.page.locator('#panel-pending[data-rendered]')).to_be_visible()
        return dialog

    def tab(self, state: str) -> None:
        self.page.click(f'#tab-{state}')
        expect(self.page.locator(f'#tab-{state}')).to_have_attribute('aria-selected', 'true')
        expect(self.page.locator(f'#panel-{state}[data-rendered]')).to_be_visible()

    def row(self, state: str, task_id: int) -> 'Locator':
        return self.page.locator(f'#panel-{state} tr.row[data-id="{task_id}"]')

    def headers(self, state: str) -> List[str]:
        return [str(t) for t in self.page.locator(
            f'#panel-{state} thead th:not(.col-select) button').evaluate_all(
            'bs => bs.map(b => b.firstChild.textContent.trim())')]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ui_factory(browser: 'Browser', api: RestApi) -> Iterator[Callable[..., Ui]]:
    made: List[Ui] = []

    def make(viewport: Optional[Dict[str, int]] = None) -> Ui:
        ui = Ui(browser, api, viewport or DESKTOP)
        made.append(ui)
        return ui

    yield make
    errors = [e for ui in made for e in ui.errors]
    for ui in made:
        ui.close()
    assert not errors, f'JavaScript errors on the page: {errors}'


@pytest.fixture
def ui(ui_factory: Callable[..., Ui]) -> Ui:
    return ui_factory()


def box(locator: 'Locator') -> Dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, f'{locator} is not visible'
    return found


def check_button_left_of_name(ui: Ui, width: int) -> None:
    button = box(ui.page.locator('#bgtasks-button'))
    name = box(ui.page.locator('#user-name'))
    right_of_button = button['x'] + button['width']
    assert right_of_button <= name['x'] + 0.5, (button, name)
    assert name['x'] - right_of_button <= 12, f'a gap of {name["x"] - right_of_button}px'
    centre = (button['y'] + button['height'] / 2, name['y'] + name['height'] / 2)
    assert abs(centre[0] - centre[1]) <= 3, (button, name)
    assert width - (name['x'] + name['width']) <= 24, f'the name is not at the right: {name}'
    top = box(ui.page.locator('.topbar'))
    assert top['y'] <= 8 and button['y'] >= top['y'] and \
        button['y'] + button['height'] <= top['y'] + top['height']
    assert ui.page.eval_on_selector('.topbar', 'e => getComputedStyle(e).backgroundColor') \
        == TOPBAR_BG


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 30,
               interval: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


# ---------------------------------------------------------------- login, top bar


def test_login_top_bar_and_logout(ui: Ui, ui_factory: Callable[..., Ui]) -> None:
    ui.goto()
    expect(ui.page.locator('#login-username')).to_be_focused()
    ui.shot('login')
    ui.page.fill('#login-username', REST_ADMIN)
    ui.page.fill('#login-password', 'not the password')
    ui.page.click('.login-card button[type=submit]')
    expect(ui.page.locator('#login-message')).to_have_text('Wrong username or password.')

    ui.login(REST_ADMIN)
    expect(ui.page.locator('#bgtasks-button')).to_contain_text('Background-Tasks')
    check_button_left_of_name(ui, DESKTOP['width'])
    expect(ui.page.locator('#pools-table[data-loaded]')).to_be_visible()
    ui.shot('top-bar')

    # Reloading keeps the session (cookie); logging out ends it.
    ui.page.reload()
    expect(ui.page.locator('#user-name')).to_contain_text(REST_ADMIN)
    ui.page.click('#user-name')
    ui.page.click('#logout')
    expect(ui.page.locator('#login-message')).to_have_text('You have logged out.')
    assert not [c for c in ui.context.cookies() if c['name'] == 'bgtasks_session']

    # At 390 px the same bar, nothing wider than the screen.
    phone = ui_factory(PHONE)
    phone.login(REST_ADMIN)
    check_button_left_of_name(phone, PHONE['width'])
    expect(phone.page.locator('#pools-table[data-loaded]')).to_be_visible()
    assert phone.page.evaluate('document.documentElement.scrollWidth') <= PHONE['width']
    phone.shot('phone-pools')
    # The dialog takes the whole screen there, its table fits without sideways scrolling.
    task = phone.api.create_test(40)
    try:
        phone.open_dialog()
        expect(phone.row('pending', task['id'])).to_be_visible()
        dialog = box(phone.page.locator('#tasks-dialog'))
        assert dialog['x'] >= 0 and dialog['x'] + dialog['width'] <= PHONE['width'], dialog
        assert phone.page.eval_on_selector(
            '#panel-pending .table-scroll', 'e => e.scrollWidth <= e.clientWidth')
        expect(phone.row('pending', task['id']).locator('.percent')).to_be_visible()
        phone.shot('phone-dialog')
    finally:
        phone.api.delete(f'/api/taskqueue/{task["id"]}')


# ---------------------------------------------------------------- the dialog


def test_dialog_opens_on_pending_tabs_columns_and_keyboard(ui: Ui) -> None:
    task = ui.api.create_test(400)
    try:
        ui.login()
        page = ui.page
        dialog = ui.open_dialog()
        expect(page.locator('#tab-pending')).to_have_attribute('aria-selected', 'true')
        expect(page.locator('#tab-pending')).to_be_focused()
        expect(ui.row('pending', task['id'])).to_be_visible()
        assert ui.headers('pending') == ['Description', 'Created', 'Progress', 'ETA']
        expect(page.locator('[role=tablist] [role=tab]')).to_have_text(
            [re.compile(r'^Pending\s*\d+$'), re.compile(r'^Failed\s*\d+$'),
             re.compile(r'^Finished\s*\d+$')])
        ui.shot('dialog-pending')

        # Arrow keys move between the tabs (and wrap), each tab with its columns.
        page.keyboard.press('ArrowRight')
        expect(page.locator('#tab-failed')).to_be_focused()
        expect(page.locator('#tab-failed')).to_have_attribute('aria-selected', 'true')
        expect(page.locator('#panel-failed')).to_be_visible()
        expect(page.locator('#panel-pending')).to_be_hidden()
        assert ui.headers('failed') == ['Description', 'Reason', 'Created', 'Runtime',
                                        'Failed at']
        page.keyboard.press('ArrowRight')
        expect(page.locator('#tab-finished')).to_have_attribute('aria-selected', 'true')
        expect(page.locator('#panel-finished[data-rendered]')).to_be_visible()
        assert ui.headers('finished') == ['Description', 'Created', 'Runtime', 'Finished at']
        page.keyboard.press('ArrowRight')
        expect(page.locator('#tab-pending')).to_have_attribute('aria-selected', 'true')
        page.keyboard.press('End')
        expect(page.locator('#tab-finished')).to_be_focused()
        page.keyboard.press('Home')
        expect(page.locator('#tab-pending')).to_be_focused()
        page.keyboard.press('ArrowLeft')
        expect(page.locator('#tab-finished')).to_have_attribute('aria-selected', 'true')

        # Focus stays in the dialog, both ways round.
        for key in ['Tab'] * 25 + ['Shift+Tab'] * 25:
            page.keyboard.press(key)
            assert page.evaluate(
                "document.getElementById('tasks-dialog').contains(document.activeElement)"), \
                f'focus left the dialog after {key}'
        assert page.evaluate("document.getElementById('app').inert")

        # Esc closes it, focus returns to the button; it opens on Pending again.
        page.keyboard.press('Escape')
        expect(dialog).to_have_count(0)
        expect(page.locator('#bgtasks-button')).to_be_focused()
        page.keyboard.press('Enter')
        expect(page.locator('#tab-pending')).to_have_attribute('aria-selected', 'true')
        expect(page.locator('#panel-pending')).to_be_visible()
    finally:
        ui.api.delete(f'/api/taskqueue/{task["id"]}')


def test_live_percent_without_reload_button_badge_and_finish_toast(ui: Ui) -> None:
    ui.login()
    page = ui.page
    page.evaluate('window.__sameDocument = true')
    task = ui.api.create_test(12)           # 12 rounds of 0.5 s
    ui.open_dialog()
    row = ui.row('pending', task['id'])
    expect(row).to_be_visible(timeout=3000)
    button = page.locator('#bgtasks-button')
    expect(button.locator('.badge')).to_have_text(re.compile(r'^\d+ · \d+ %$'))
    row.evaluate('tr => { tr.__probe = 1; }')
    first = int(row.locator('.percent').inner_text().split()[0])
    started = time.monotonic()
    expect(row.locator('.percent')).not_to_have_text(f'{first} %', timeout=2500)
    assert time.monotonic() - started <= 2.5
    later = int(row.locator('.percent').inner_text().split()[0])
    assert later > first
    assert row.locator('[role=progressbar]').get_attribute('aria-valuenow') == str(later)
    # The same row element, updated in place; the same document (no reload).
    assert row.evaluate('tr => tr.__probe') == 1
    assert page.evaluate('window.__sameDocument') is True
    ui.shot('live-progress')

    # When it finishes: gone from Pending, a toast says so.
    expect(row).to_have_count(0, timeout=15000)
    toast = page.locator('.toast-success', has_text=task['description'])
    expect(toast).to_be_visible(timeout=3000)
    expect(toast).to_contain_text('Task finished')
    ui.tab('finished')
    expect(ui.row('finished', task['id'])).to_be_visible()
    ui.shot('finished-toast')


def test_delete_pending_warns_then_moves_to_failed(ui: Ui) -> None:
    task = ui.api.create_test(1000)
    ui.login()
    page = ui.page
    ui.open_dialog()
    row = ui.row('pending', task['id'])
    row.locator('.col-select input').check()
    expect(page.locator('#delete-selected')).to_have_text('Delete (1)')

    # Cancelled: nothing happens.
    page.click('#delete-selected')
    confirm = page.locator('#confirm-dialog')
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role('button', name='Cancel')).to_be_focused()
    page.keyboard.press('Escape')
    expect(confirm).to_have_count(0)
    expect(page.locator('#tasks-dialog')).to_be_visible()
    assert ui.api.task(task['id'])['state'] == 'pending'

    page.click('#delete-selected')
    text = confirm.locator('.warning-text').inner_text()
    for words in ('does not stop the step that is running', 'follow-up steps are cancelled',
                  'nothing it has done so far is undone', 'appear under Failed'):
        assert words in text, text
    expect(confirm).to_contain_text(task['description'])
    assert confirm.get_attribute('role') == 'alertdialog'
    ui.shot('delete-pending-warning')
    confirm.get_by_role('button', name='Delete pending task').click()
    expect(confirm).to_have_count(0)
    expect(row).to_have_count(0, timeout=3000)
    gone = ui.api.task(task['id'])
    assert (gone['state'], gone['status']) == ('failed', 'Aborted'), gone

    ui.tab('failed')
    failed = ui.row('failed', task['id'])
    expect(failed).to_be_visible(timeout=3000)
    expect(failed.locator('.col-reason')).to_contain_text('Aborted')
    expect(failed.locator('.col-reason')).to_contain_text(f'deleted while pending by {REST_ADMIN}')
    # Aborted here: no warning state for the user's own deletion.
    expect(page.locator('#bgtasks-button')).not_to_have_class(re.compile(r'\bwarning\b'))
    ui.shot('aborted-in-failed')

    # Failed tasks go without a question.
    failed.locator('.col-select input').check()
    page.click('#delete-selected')
    expect(failed).to_have_count(0, timeout=3000)
    assert page.locator('#confirm-dialog').count() == 0
    assert ui.api.get(f'/api/taskqueue/{task["id"]}').status_code == 404


def test_delete_finished_without_warning(ui: Ui) -> None:
    tasks = [ui.api.create_test(1) for _ in range(2)]
    for t in tasks:
        ui.api.wait_task(t['id'], lambda t: t['state'] == 'finished')
    ui.login()
    page = ui.page
    ui.open_dialog()
    ui.tab('finished')
    for t in tasks:
        ui.row('finished', t['id']).locator('.col-select input').check()
    expect(page.locator('#delete-selected')).to_have_text('Delete (2)')
    page.click('#delete-selected')
    for t in tasks:
        expect(ui.row('finished', t['id'])).to_have_count(0, timeout=3000)
    assert page.locator('#confirm-dialog').count() == 0
    expect(page.locator('.toast', has_text='2 tasks deleted')).to_be_visible()
    for t in tasks:
        assert ui.api.get(f'/api/taskqueue/{t["id"]}').status_code == 404
    ui.shot('deleted-finished')


def test_filter_sort_and_detail_view(ui: Ui) -> None:
    tasks = [ui.api.create_test(n) for n in (2, 3, 4)]
    for t in tasks:
        ui.api.wait_task(t['id'], lambda t: t['state'] == 'finished')
    aborted = ui.api.create_test(500)
    ui.api.delete(f'/api/taskqueue/{aborted["id"]}')
    ui.login()
    page = ui.page
    ui.open_dialog()
    ui.tab('finished')
    rows = page.locator('#panel-finished tr.row')

    page.fill('#task-filter', 'counting 3 rounds')
    expect(ui.row('finished', tasks[1]['id'])).to_be_visible()
    expect(ui.row('finished', tasks[0]['id'])).to_have_count(0)
    for text in rows.locator('.open-task').all_inner_texts():
        assert 'counting 3 rounds' in text
    expect(page.locator('.toolbar .shown')).to_contain_text('shown')
    page.fill('#task-filter', f'#{tasks[2]["id"]} ')
    page.fill('#task-filter', f'#{tasks[2]["id"]}')
    expect(ui.row('finished', tasks[2]['id'])).to_be_visible()
    page.fill('#task-filter', 'zz-matches-nothing')
    expect(page.locator('#panel-finished .empty')).to_have_text('No tasks match the filter.')
    page.fill('#task-filter', 'Test task counting')

    header = page.locator('#panel-finished th.col-description')
    header.locator('button').click()
    expect(header).to_have_attribute('aria-sort', 'ascending')
    names = rows.locator('.open-task').all_inner_texts()
    assert names == sorted(names, key=str.lower) and len(names) >= 3
    header.locator('button').click()
    expect(header).to_have_attribute('aria-sort', 'descending')
    names = rows.locator('.open-task').all_inner_texts()
    assert names == sorted(names, key=str.lower, reverse=True)
    created = page.locator('#panel-finished th.col-created')
    created.locator('button').click()
    expect(created).to_have_attribute('aria-sort', 'descending')
    ids = [int(i) for i in rows.evaluate_all('rs => rs.map(r => r.dataset.id)')]
    assert ids == sorted(ids, reverse=True)
    ui.shot('filter-sort')

    # The detail view: every field, params and result; Esc closes only it.
    page.fill('#task-filter', '')
    ui.row('finished', tasks[1]['id']).locator('.open-task').click()
    detail = page.locator('#task-detail')
    expect(detail).to_be_visible()
    expect(detail.locator('.modal-title')).to_have_text(f'Task {tasks[1]["id"]}')
    pres = detail.locator('pre.json')
    expect(pres.first).to_be_visible()
    assert json.loads(pres.nth(0).inner_text()) == {'times': 3}
    assert json.loads(pres.nth(1).inner_text()) == {'rounds': 3}
    expect(detail).to_contain_text('Finished at')
    expect(detail).to_contain_text(f'by {REST_ADMIN}')
    expect(detail.locator('.error-text')).to_have_count(0)
    ui.shot('detail-finished')
    page.keyboard.press('Escape')
    expect(detail).to_have_count(0)
    expect(page.locator('#tasks-dialog')).to_be_visible()

    ui.tab('failed')
    ui.row('failed', aborted['id']).click()
    expect(detail.locator('.error-text')).to_have_text(f'deleted while pending by {REST_ADMIN}')
    expect(detail).to_contain_text('Aborted')
    ui.shot('detail-failed')
    page.keyboard.press('Escape')
    ui.api.delete(f'/api/taskqueue/{aborted["id"]}')


def test_seed_snippet_from_the_console_shows_live(ui: Ui) -> None:
    ui.login()
    page = ui.page
    ui.open_dialog()
    page.evaluate(SEED)
    with page.expect_response(lambda r: r.url.endswith('/openattic/api/taskqueue/test_task')
                              ) as created:
        page.evaluate('createTestTask(6)')
    assert created.value.status == 201
    task = created.value.json()
    expect(ui.row('pending', task['id'])).to_be_visible(timeout=2500)
    expect(ui.row('pending', task['id'])).to_contain_text('Test task counting 6 rounds')
    ui.shot('console-snippet')
    ui.api.delete(f'/api/taskqueue/{task["id"]}')


def test_failure_elsewhere_turns_the_button_to_warning_until_seen(ui: Ui) -> None:
    ui.login()
    page = ui.page
    button = page.locator('#bgtasks-button')
    ui.open_dialog()
    ui.tab('failed')          # whatever failed before has been seen now
    page.keyboard.press('Escape')
    expect(button).not_to_have_class(re.compile(r'\bwarning\b'))

    task = ui.api.create_test(500)
    ui.open_dialog()
    expect(ui.row('pending', task['id'])).to_be_visible()      # the page saw it pending
    page.keyboard.press('Escape')
    ui.api.delete(f'/api/taskqueue/{task["id"]}')      # someone else aborts it
    expect(button).to_have_class(re.compile(r'\bwarning\b'), timeout=3000)
    expect(button).to_have_attribute('data-failed', '1')
    toast = page.locator('.toast-error', has_text=task['description'])
    expect(toast).to_be_visible()
    expect(toast).to_contain_text('Task aborted')
    ui.shot('warning-button')

    # Looking at Pending is not enough; the Failed tab is.
    ui.open_dialog()
    page.keyboard.press('Escape')
    expect(button).to_have_class(re.compile(r'\bwarning\b'))
    ui.open_dialog()
    ui.tab('failed')
    expect(button).not_to_have_class(re.compile(r'\bwarning\b'))
    page.keyboard.press('Escape')
    ui.api.delete(f'/api/taskqueue/{task["id"]}')


# ---------------------------------------------------------------- pools, RBD


@pytest.fixture
def pg_pool(cluster: DevCluster) -> Iterator[str]:
    name = 'ui-pg'
    cluster.ceph('osd', 'pool', 'create', name, '8', '8')
    cluster.ceph('osd', 'pool', 'set', name, 'pg_autoscale_mode', 'off')
    yield name
    cluster.ceph('osd', 'pool', 'rm', name, name, '--yes-i-really-really-mean-it', check=False)


def test_set_pgs_returns_to_the_pool_list_with_the_new_target(ui: Ui, pg_pool: str) -> None:
    ui.login(fragment='#/pools')
    page = ui.page
    row = page.locator(f'#pools-table tr[data-pool="{pg_pool}"]')
    expect(row).to_be_visible(timeout=5000)
    expect(row.locator('.pgs')).to_have_text('8 / 8')
    expect(row.locator('.target')).to_have_text('8 / 8')
    expect(row).to_contain_text('off')
    row.get_by_role('link', name=f'Set PGs of pool {pg_pool}').click()
    expect(page.locator('#pg-form')).to_be_visible()
    ui.shot('set-pgs-form')
    page.fill('#pg-num', '16')
    with page.expect_response(lambda r: r.url.endswith('/api/taskqueue/set_pg_num')) as res:
        page.click('#pg-submit')
    assert res.value.status == 201, res.value.text()
    task = res.value.json()
    # At once back on the list: the new target and the pending task are there.
    expect(page).to_have_url(re.compile(r'#/pools$'), timeout=1000)
    expect(row.locator('.target')).to_have_attribute('data-target', '16', timeout=1500)
    expect(row.locator('.target')).to_contain_text('16')
    expect(row.locator('.task-cell')).to_contain_text(f'Task {task["id"]}')
    expect(row.get_by_role('button', name='Set PGs')).to_be_disabled()
    assert task['state'] == 'pending' and task['params']['pg_num'] == 16
    ui.shot('set-pgs-pending')
    ui.open_dialog()
    expect(ui.row('pending', task['id'])).to_contain_text(
        f"Setting number of PGs of pool '{pg_pool}' from 8 to 16")
    page.keyboard.press('Escape')
    done = ui.api.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=120)
    assert done['state'] == 'finished', done
    expect(row.locator('.pgs')).to_have_text('16 / 16', timeout=5000)
    expect(row.locator('.task-cell')).to_have_text('')


@pytest.fixture(scope='module')
def rbd_image(cluster: DevCluster) -> Iterator[str]:
    """An RBD pool with one image, for the module (a pool removed and made again under the
    same name lists no images in the mgr for a while)."""
    pool, image = 'ui-rbd', 'disk1'
    cluster.ceph('osd', 'pool', 'create', pool, '8', '8')
    cluster.ceph('osd', 'pool', 'set', pool, 'pg_autoscale_mode', 'off')
    cluster.run(cluster.command('rbd', 'pool', 'init', pool))
    cluster.run(cluster.command('rbd', 'create', '--size', '64M', f'{pool}/{image}'))
    yield f'{pool}/{image}'
    cluster.ceph('osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it', check=False)


def rbd_perf_route(api: RestApi) -> bool:
    return '/api/taskqueue/rbd_perf' in api.get('/api/openapi.json').json()['paths']


def test_rbd_page_lists_images_and_offers_the_perf_form(ui: Ui, rbd_image: str) -> None:
    pool, image = rbd_image.split('/')
    ui.login(fragment=f'#/rbd/{pool}')
    page = ui.page
    table = page.locator('#images-table')
    expect(table).to_be_visible()
    expect(table.locator('tbody tr')).to_have_count(1)
    expect(table.locator('tbody tr')).to_contain_text(image)
    expect(table.locator('tbody tr')).to_contain_text('64.0 MiB')
    expect(page.locator('#rbd-pool')).to_have_value(pool)
    expect(page.locator('#perf-seconds')).to_have_value('30')
    expect(page.locator('#perf-submit')).to_have_text('Get performance data')
    ui.shot('rbd-images', full_page=True)
    # Out-of-range windows are refused in the form.
    page.fill('#perf-seconds', '2')
    page.click('#perf-submit')
    expect(page.locator('#perf-error')).to_contain_text('5 to 3600')


def test_rbd_perf_run_shows_a_table_and_charts(ui: Ui, rbd_image: str, cluster: DevCluster
                                               ) -> None:
    if not rbd_perf_route(ui.api):
        pytest.xfail('the rbd_perf task (POST /api/taskqueue/rbd_perf) is not in the server '
                     'yet; the page shows a clear message meanwhile')
    pool, image = rbd_image.split('/')
    ui.login(fragment=f'#/rbd/{pool}')
    page = ui.page
    page.fill('#perf-seconds', '10')     # each OSD reports every 5 s; the first is dropped
    bench = subprocess.Popen(cluster.command('rbd', 'bench', '--io-type', 'write', '--io-size',
                                             '4096', '--io-threads', '2', '--io-total', '256M',
                                             '--io-pattern', 'rand', rbd_image),
                             env=cluster.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        with page.expect_response(lambda r: r.url.endswith('/api/taskqueue/rbd_perf')) as res:
            page.click('#perf-submit')
        assert res.value.status == 201, res.value.text()
        task = res.value.json()
        expect(page.locator(f'.run-pending[data-task="{task["id"]}"]')).to_be_visible()
        ui.api.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=60)
    finally:
        bench.terminate()
        bench.wait(timeout=30)
    done = ui.api.task(task['id'])
    assert done['state'] == 'finished', done
    result = page.locator(f'.perf-result[data-task="{task["id"]}"]')
    expect(result).to_be_visible(timeout=5000)
    row = page.locator('#perf-table tbody tr', has_text=rbd_image)
    expect(row).to_have_count(1)
    chart = page.locator(f'.image-charts[data-image="{rbd_image}"]')
    expect(chart.locator('svg.chart')).to_have_count(2)
    assert chart.locator('polyline.line').count() == 4
    page.locator('#perf-table th', has_text='Write ops/s').locator('button').click()
    expect(page.locator('#perf-table th', has_text='Write ops/s')).to_have_attribute(
        'aria-sort', 'descending')
    ui.shot('rbd-perf', full_page=True)


def test_get_disk_usage_fills_the_used_column(ui: Ui, rbd_image: str,
                                              cluster: DevCluster) -> None:
    # An image of its own: the perf test's load fills the pool's other image.
    pool, image = rbd_image.split('/')[0], 'du8'
    spec = f'{pool}/{image}'
    cluster.run(cluster.command('rbd', 'create', '--size', '64M', spec))
    cluster.run(cluster.command('rbd', 'bench', '--io-type', 'write', '--io-size', '1M',
                                '--io-threads', '1', '--io-total', '8M', '--io-pattern', 'seq',
                                spec))
    du = json.loads(cluster.run(cluster.command('rbd', 'du', '--format', 'json',
                                                spec)).stdout)
    ui.login(fragment=f'#/rbd/{pool}')
    page = ui.page
    row = page.locator('#images-table tbody tr', has_text=image)
    expect(row).to_be_visible()
    expect(page.locator('#du-submit')).to_have_text('Get disk usage')
    with page.expect_response(lambda r: r.url.endswith('/api/taskqueue/rbd_du')) as res:
        page.click('#du-submit')
    assert res.value.status in (200, 201), res.value.text()
    task = res.value.json()
    done = ui.api.wait_task(task['id'], lambda t: t['state'] != 'pending', timeout=60)
    assert done['state'] == 'finished', done
    used = du['images'][0]['used_size']
    assert used == 8 << 20
    expect(row.locator('td[data-label="Used"]')).to_have_text('8.00 MiB', timeout=10000)
    expect(page.locator('#du-note')).to_contain_text(f"task {task['id']}")
    ui.shot('rbd-du', full_page=True)


# ---------------------------------------------------------------- users, sessions


def test_read_only_user_sees_no_create_or_delete_controls(ui: Ui, rbd_image: str) -> None:
    task = ui.api.create_test(300)
    try:
        ui.login(REST_READER, fragment='#/pools')
        page = ui.page
        expect(page.locator('#pools-table[data-loaded]')).to_be_visible()
        expect(page.locator('#pools-table tbody tr').first).to_be_visible()
        assert page.get_by_text('Set PGs').count() == 0
        ui.open_dialog()
        expect(ui.row('pending', task['id'])).to_be_visible()
        assert page.locator('#tasks-dialog input[type=checkbox]').count() == 0
        assert page.locator('#delete-selected').count() == 0
        ui.shot('read-only-dialog')
        ui.row('pending', task['id']).locator('.open-task').click()
        expect(page.locator('#task-detail')).to_be_visible()
        assert page.locator('#detail-delete').count() == 0
        page.keyboard.press('Escape')
        page.keyboard.press('Escape')
        pool = rbd_image.split('/')[0]
        page.goto(ui.api.url('/') + f'#/rbd/{pool}')
        expect(page.locator('#images-table')).to_be_visible()
        assert page.locator('#perf-form').count() == 0
        page.goto(ui.api.url('/') + f'#/pools/{pool}/set-pgs')
        expect(page.get_by_text('Read-only users cannot change pools.')).to_be_visible()
        assert page.locator('#pg-form').count() == 0
        # And the server refuses anyway, from this very page.
        status = page.evaluate('''async () => (await fetch('/api/taskqueue/test_task', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({times: 1})})).status''')
        assert status == 403
    finally:
        ui.api.delete(f'/api/taskqueue/{task["id"]}')


def test_session_expiry_returns_to_login_with_a_message(ui: Ui) -> None:
    ui.login()
    page = ui.page
    ui.open_dialog()
    token = next(c['value'] for c in ui.context.cookies() if c['name'] == 'bgtasks_session')
    res = ui.api.request('POST', '/api/auth/logout', token=token, json={})
    assert res.status_code == 204, res.text
    expect(page.locator('#login-message')).to_have_text(EXPIRED, timeout=4000)
    expect(page.locator('#tasks-dialog')).to_have_count(0)
    expect(page.locator('#bgtasks-button')).to_have_count(0)
    ui.shot('session-expired')
    page.fill('#login-username', REST_ADMIN)
    page.fill('#login-password', PASSWORDS[REST_ADMIN])
    page.click('.login-card button[type=submit]')
    expect(page.locator('#user-name')).to_contain_text(REST_ADMIN)


# ---------------------------------------------------------------- 1,000 tasks


def create_many(api: RestApi, n: int, workers: int = 8) -> List[int]:
    token = api.token(REST_ADMIN)
    local = threading.local()

    def one(_: int) -> int:
        if not hasattr(local, 's'):
            local.s = api.session()
            local.s.headers['Authorization'] = f'Bearer {token}'
        r = local.s.post(api.url('/api/taskqueue/test_task'), json={'times': 1}, timeout=30)
        assert r.status_code == 201, r.text
        return int(r.json()['id'])

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def test_a_thousand_tasks_in_the_dialog(ui: Ui, cluster: DevCluster) -> None:
    api = ui.api
    cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/test_round_seconds', '0.01')
    try:
        ids = create_many(api, MANY)
    finally:
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/test_round_seconds', '0.5')
    ours = set(ids)

    def all_finished() -> bool:
        listed = api.get('/api/taskqueue?state=finished').json()['results']
        return ours <= {t['id'] for t in listed}
    wait_until('1,000 test tasks to finish', all_finished, timeout=90, interval=1)

    ui.login()
    page = ui.page
    ui.open_dialog()
    started = time.monotonic()
    ui.tab('finished')
    expect(ui.row('finished', max(ids))).to_be_visible()
    took = time.monotonic() - started
    assert took < 2.0, f'the Finished tab took {took:.2f} s with {MANY} tasks'
    assert int(page.locator('#tab-finished .tab-count').inner_text()) >= MANY
    rows = page.locator('#panel-finished tr.row')
    assert rows.count() <= 80, f'{rows.count()} rows in the DOM: not only what is in view'
    assert int(page.locator('#panel-finished table').get_attribute('aria-rowcount') or 0) > MANY

    # Scrolling to the end shows the oldest; filtering finds one among them.
    listed = api.get('/api/taskqueue?state=finished').json()['results']
    oldest = min(listed, key=lambda t: (t['created'], t['id']))
    page.locator('#panel-finished .table-scroll').evaluate('e => { e.scrollTop = 1e9; }')
    expect(ui.row('finished', oldest['id'])).to_be_visible()
    assert rows.count() <= 80
    ui.shot('thousand-scrolled')
    page.fill('#task-filter', f'#{ids[500]}')
    expect(rows).to_have_count(1)
    page.fill('#task-filter', '')

    # Multi-select: all of them at once, without a warning (all finished).
    page.fill('#task-filter', 'counting 1 round')
    page.locator('#panel-finished thead input[type=checkbox]').check()
    label = page.locator('#delete-selected').inner_text()
    assert int(re.sub(r'\D', '', label)) >= MANY, label
    ui.shot('thousand-selected')
    page.click('#delete-selected')
    assert page.locator('#confirm-dialog').count() == 0
    expect(page.locator('#panel-finished .empty')).to_be_visible(timeout=60000)
    left = ours & {t['id'] for t in api.get('/api/taskqueue?state=finished').json()['results']}
    assert not left, f'{len(left)} not deleted'


# ---------------------------------------------------------------- the Ceph dashboard


DASHBOARD_USER = 'ui-dash'
DASHBOARD_PASSWORD = 'Dash-b0ard-pass!'
DASHBOARD_ACCEPT = 'application/vnd.ceph.api.v1.0+json'


def settle(cluster: DevCluster, api: RestApi) -> None:
    """Wait for bgtasks (CLI and REST) after a mgr restart (enabling a module restarts it)."""
    cluster.wait_module_answers(timeout=60)
    api.wait_answers(timeout=60)


@pytest.fixture
def dashboard(cluster: DevCluster, api: RestApi) -> Iterator[str]:
    """The Ceph dashboard on the session's cluster (plain HTTP on 127.0.0.1); each mgr gets a
    port of its own, so the standby's "I am only a standby" page never takes the active's."""
    # dev/install-deps.sh installs it: missing is a broken setup, not a reason to skip
    assert cluster.release.host_path('/usr/share/ceph/mgr/dashboard').is_dir(), \
        f'ceph-mgr-dashboard is not installed for {cluster.release.name}'
    cluster.ceph('config', 'set', 'mgr', 'mgr/dashboard/ssl', 'false')
    cluster.ceph('config', 'set', 'mgr', 'mgr/dashboard/server_addr', '127.0.0.1')
    for name in cluster.mgr_names:
        cluster.ceph('config', 'set', 'mgr', f'mgr/dashboard/{name}/server_port',
                     str(free_port()))
    cluster.enable_module('dashboard')
    try:
        settle(cluster, api)

        def url() -> Optional[str]:
            found = cluster.ceph('mgr', 'services', json_out=True).get('dashboard')
            return str(found).rstrip('/') if found else None
        base = cluster.wait_for(url, timeout=90, interval=1, what='the dashboard URL')
        pwfile = password_file(cluster, DASHBOARD_USER, DASHBOARD_PASSWORD)
        cluster.wait_for(lambda: cluster.ceph('dashboard', 'ac-user-create', DASHBOARD_USER,
                                              '-i', pwfile, 'administrator', check=False
                                              ).returncode in (0, 17),
                         timeout=90, interval=2, what='dashboard ac-user-create')
        yield base
    finally:
        cluster.ceph('mgr', 'module', 'disable', 'dashboard', check=False)
        settle(cluster, api)


def dashboard_session(base: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers['Accept'] = DASHBOARD_ACCEPT

    def login() -> Optional[str]:
        try:
            r = s.post(f'{base}/api/auth', timeout=10, allow_redirects=False,
                       json={'username': DASHBOARD_USER, 'password': DASHBOARD_PASSWORD})
        except requests.RequestException:
            return None
        return str(r.json()['token']) if r.status_code in (200, 201) else None

    token = wait_until('a dashboard login', login, timeout=90, interval=1)
    s.headers['Authorization'] = f'Bearer {token}'
    return s


def test_the_ceph_dashboard_lists_a_bgtasks_task_then_finished(dashboard: str,
                                                               bg: Bgtask) -> None:
    dash = dashboard_session(dashboard)
    task = bg.json('test', '16')            # 16 rounds of 0.5 s
    name = f'progress/{task["description"]}'

    def tasks() -> Dict[str, Any]:
        r = dash.get(f'{dashboard}/api/task', timeout=10, allow_redirects=False)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def executing() -> Optional[Dict[str, Any]]:
        return next((t for t in tasks()['executing_tasks'] if t['name'] == name), None)

    running = wait_until(f'{name} among executing_tasks', executing, timeout=20, interval=0.5)
    assert running['metadata']['origin'] == 'bgtasks'
    assert running['metadata']['task_id'] == task['id']
    bg.wait_task(task['id'], lambda t: t['state'] == 'finished', timeout=60)

    def finished() -> Optional[Dict[str, Any]]:
        now = tasks()
        if any(t['name'] == name for t in now['executing_tasks']):
            return None
        return next((t for t in now['finished_tasks'] if t['name'] == name), None)

    done = wait_until(f'{name} among finished_tasks', finished, timeout=20, interval=0.5)
    assert done['success'] is True and done['progress'] == 100
    OUTPUT.mkdir(exist_ok=True)         # this test needs no browser, whose fixture makes it
    (OUTPUT / 'ui-dashboard-task.json').write_text(json.dumps(
        {'executing': running, 'finished': done}, indent=2))
