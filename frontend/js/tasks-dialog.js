// The Background-Tasks dialog: tabs Pending / Failed / Finished (Pending whenever it opens),
// a filter, sortable columns, multi-select delete and a detail view of one task.
import {h} from './dom.js';
import {openModal} from './modal.js';
import {deleteTasks} from './task-actions.js';
import {COLUMNS, matches} from './task-columns.js';
import {openTaskDetail} from './task-detail.js';
import {TaskTable} from './task-table.js';

const TABS = [
  {state: 'pending', label: 'Pending', empty: 'No pending tasks.'},
  {state: 'failed', label: 'Failed', empty: 'No failed tasks.'},
  {state: 'finished', label: 'Finished', empty: 'No finished tasks.'},
];

export class TasksDialog {
  constructor(ctx) {
    this.ctx = ctx;
    this.modal = null;
    this.renders = 0;
    this.onChange = (ev) => this.changed(ev.detail);
  }

  get isOpen() { return this.modal !== null; }

  open() {
    if (this.modal) return;
    const {store, user} = this.ctx;
    const admin = user.role === 'admin';
    this.filter = '';
    this.tabs = {};
    this.panels = {};
    this.tables = {};
    this.counts = {};
    this.active = null;
    const tablist = h('div.tablist', {role: 'tablist', 'aria-label': 'Task states',
      onkeydown: (ev) => this.tabKey(ev)});
    for (const tab of TABS) {
      this.counts[tab.state] = h('span.tab-count');
      const btn = h('button.tab', {type: 'button', role: 'tab', id: `tab-${tab.state}`,
        'aria-controls': `panel-${tab.state}`, 'aria-selected': 'false', tabindex: -1,
        dataset: {state: tab.state}, onclick: () => this.select(tab.state)},
      tab.label, this.counts[tab.state]);
      tablist.append(btn);
      this.tabs[tab.state] = btn;
      this.panels[tab.state] = h('div.tabpanel', {role: 'tabpanel', id: `panel-${tab.state}`,
        'aria-labelledby': `tab-${tab.state}`, hidden: true});
    }
    this.search = h('input#task-filter.filter', {type: 'search', placeholder: 'Filter tasks',
      'aria-label': 'Filter tasks', autocomplete: 'off',
      oninput: () => { this.filter = this.search.value.trim().toLowerCase(); this.refill(); }});
    this.shown = h('span.shown', {'aria-live': 'polite'});
    this.deleteBtn = admin ? h('button#delete-selected.btn.btn-danger', {type: 'button',
      disabled: true, onclick: () => this.deleteSelected()}, 'Delete') : null;
    this.content = h('div.tasks-dialog', null, tablist,
      h('div.toolbar', null, this.search, this.shown, this.deleteBtn),
      Object.values(this.panels));
    this.modal = openModal({
      title: 'Background-Tasks', content: this.content, className: 'tasks', id: 'tasks-dialog',
      onClose: () => this.closed(), initialFocus: () => this.tabs.pending,
    });
    store.addEventListener('change', this.onChange);
    this.select('pending', false);
    store.refresh();
  }

  close() {
    if (this.modal) this.modal.close();
  }

  closed() {
    this.ctx.store.removeEventListener('change', this.onChange);
    if (this.active === 'finished') this.ctx.store.want('finished', false);
    this.modal = null;
    this.active = null;
  }

  table(state) {
    if (!this.tables[state]) {
      const tab = TABS.find((t) => t.state === state);
      const t = new TaskTable({
        columns: COLUMNS[state], label: `${tab.label} tasks`, empty: tab.empty,
        selectable: this.ctx.user.role === 'admin',
        sort: {id: 'created', dir: -1},
        onOpen: (task) => openTaskDetail(this.ctx, task),
        onSelect: () => this.updateToolbar(),
      });
      t.el.addEventListener('click', (ev) => {
        const btn = ev.target.closest('button.open-task');
        if (btn) openTaskDetail(this.ctx, t.cache.get(Number(btn.closest('tr').dataset.id)).task);
      });
      this.panels[state].append(t.el);
      this.tables[state] = t;
    }
    return this.tables[state];
  }

  select(state, focus = true) {
    const {store} = this.ctx;
    if (this.active === state) return;
    if (this.active === 'finished') store.want('finished', false);
    this.active = state;
    for (const [s, btn] of Object.entries(this.tabs)) {
      const on = s === state;
      btn.setAttribute('aria-selected', String(on));
      btn.tabIndex = on ? 0 : -1;
      this.panels[s].hidden = !on;
    }
    if (focus) this.tabs[state].focus();
    if (state === 'finished') store.want('finished', true);
    if (state === 'failed') store.markFailedSeen();
    this.updateCounts();
    this.refill();
  }

  tabKey(ev) {
    const order = TABS.map((t) => t.state);
    const i = order.indexOf(this.active);
    const next = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: order.length - 1}[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    this.select(order[(next + order.length) % order.length]);
  }

  changed(states) {
    if (!this.modal) return;
    this.updateCounts();
    if (states.has(this.active)) this.refill();
    if (this.active === 'failed' && states.has('failed')) this.ctx.store.markFailedSeen();
  }

  updateCounts() {
    const {store} = this.ctx;
    for (const tab of TABS) {
      const n = tab.state === 'pending' && store.lists.pending ? store.lists.pending.length
        : store.counts[tab.state];
      this.counts[tab.state].textContent = String(n);
    }
  }

  // Fill the active tab from the store (filtered; the table sorts and draws what is in view).
  refill() {
    const state = this.active;
    const list = this.ctx.store.lists[state];
    const table = this.table(state);
    const panel = this.panels[state];
    if (!list) {
      panel.dataset.loading = 'true';
      this.shown.textContent = 'Loading…';
      return;
    }
    delete panel.dataset.loading;
    const rows = this.filter ? list.filter((t) => matches(t, this.filter)) : list;
    table.setRows(rows, Boolean(this.filter));
    this.shown.textContent = this.filter ? `${rows.length} of ${list.length} shown`
      : `${list.length} ${list.length === 1 ? 'task' : 'tasks'}`;
    this.updateToolbar();
    this.renders += 1;
    panel.dataset.rendered = String(this.renders);
  }

  updateToolbar() {
    if (!this.deleteBtn || !this.active) return;
    const n = this.table(this.active).selected.size;
    this.deleteBtn.disabled = n === 0;
    this.deleteBtn.textContent = n ? `Delete (${n})` : 'Delete';
  }

  async deleteSelected() {
    const table = this.table(this.active);
    const tasks = table.selectedTasks();
    if (!tasks.length) return;
    if (await deleteTasks(this.ctx, tasks)) table.clearSelection();
  }
}
