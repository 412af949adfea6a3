// A sortable, selectable table that renders only the rows in view (fixed row height, spacer
// rows above and below), and keeps each row's element across updates: a cell is rewritten
// only when what it shows changed.
import {h} from './dom.js';

const OVERSCAN = 8;

// columns: [{id, label, cls, value(task) -> sort value, sig(task) -> string,
//            render(td, task)}]
export class TaskTable {
  constructor({columns, label, selectable, sort, onOpen, onSelect, empty}) {
    this.columns = columns;
    this.selectable = selectable;
    this.onOpen = onOpen;
    this.onSelect = onSelect || (() => {});
    this.emptyText = empty;
    this.sort = sort;                     // {id, dir: 1 | -1}
    this.all = [];
    this.rows = [];
    this.cache = new Map();
    this.selected = new Set();
    this.rowHeight = 0;
    this.frame = 0;

    this.headCheck = selectable ? h('input', {type: 'checkbox', 'aria-label': 'Select all shown',
      onchange: () => this.selectAll(this.headCheck.checked)}) : null;
    this.heads = columns.map((c) => {
      const btn = h('button.sort', {type: 'button', onclick: () => this.sortBy(c.id)}, c.label,
        h('span.sort-mark', {'aria-hidden': 'true'}));
      return h(`th.col-${c.id}`, {scope: 'col', dataset: {col: c.id}}, btn);
    });
    // One cell each: a spanning cell would make columns of its own when some are hidden.
    this.topPad = h('td');
    this.bottomPad = h('td');
    this.topSpacer = h('tr.spacer', {'aria-hidden': 'true'}, this.topPad);
    this.bottomSpacer = h('tr.spacer', {'aria-hidden': 'true'}, this.bottomPad);
    this.tbody = h('tbody', null, this.topSpacer, this.bottomSpacer);
    this.table = h('table.grid', {'aria-label': label},
      h('thead', null, h('tr', {'aria-rowindex': 1},
        selectable ? h('th.col-select', {scope: 'col'}, this.headCheck) : null, this.heads)),
      this.tbody);
    this.empty = h('p.empty', {hidden: true});
    this.el = h('div.table-scroll', {tabindex: 0, role: 'region', 'aria-label': label},
      this.table, this.empty);
    this.el.addEventListener('scroll', () => this.schedule(), {passive: true});
    this.updateSortMarks();
  }

  schedule() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
    }
  }

  // The rows to show (already filtered); sorted here.
  setRows(tasks, filtered) {
    this.all = tasks;
    this.filtered = filtered;
    this.rows = this.sorted(tasks);
    const present = new Set(tasks.map((t) => t.id));
    let selectionChanged = false;
    for (const id of this.selected) {
      if (!present.has(id)) { this.selected.delete(id); selectionChanged = true; }
    }
    if (this.cache.size > 4 * this.rows.length + 200) {
      for (const id of this.cache.keys()) if (!present.has(id)) this.cache.delete(id);
    }
    this.render();
    if (selectionChanged) this.onSelect(this.selected);
  }

  sorted(tasks) {
    const col = this.columns.find((c) => c.id === this.sort.id);
    const dir = this.sort.dir;
    const keyed = tasks.map((t) => [col.value(t), t]);
    keyed.sort((a, b) => {
      const [x, y] = [a[0], b[0]];
      if (x === y) return (b[1].id - a[1].id);
      if (x === null || x === undefined || Number.isNaN(x)) return 1;
      if (y === null || y === undefined || Number.isNaN(y)) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    return keyed.map((k) => k[1]);
  }

  sortBy(id) {
    this.sort = {id, dir: this.sort.id === id ? -this.sort.dir : (id === 'description' ? 1 : -1)};
    this.updateSortMarks();
    this.rows = this.sorted(this.all);
    this.render();
  }

  updateSortMarks() {
    for (const th of this.heads) {
      const active = th.dataset.col === this.sort.id;
      th.setAttribute('aria-sort', active ? (this.sort.dir > 0 ? 'ascending' : 'descending')
        : 'none');
      th.querySelector('.sort-mark').textContent =
        active ? (this.sort.dir > 0 ? '▲' : '▼') : '';
    }
  }

  render() {
    const n = this.rows.length;
    this.table.setAttribute('aria-rowcount', n + 1);
    this.empty.hidden = n > 0;
    this.empty.textContent = this.filtered ? 'No tasks match the filter.' : this.emptyText;
    const rh = this.rowHeight || 44;
    const view = this.el.clientHeight || 600;
    const top = this.el.scrollTop;
    const first = Math.max(0, Math.floor(top / rh) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + view) / rh) + OVERSCAN);
    this.topPad.style.height = `${first * rh}px`;
    this.bottomPad.style.height = `${(n - last) * rh}px`;
    let cursor = this.topSpacer.nextSibling;
    for (let i = first; i < last; i += 1) {
      const tr = this.row(this.rows[i], i);
      if (cursor === tr) cursor = cursor.nextSibling;
      else this.tbody.insertBefore(tr, cursor);
    }
    while (cursor && cursor !== this.bottomSpacer) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    this.updateHeadCheck();
    if (!this.rowHeight && last > first) {
      this.rowHeight = this.topSpacer.nextSibling.getBoundingClientRect().height || 44;
      if (Math.abs(this.rowHeight - rh) > 0.5) this.render();
    }
  }

  row(task, index) {
    let entry = this.cache.get(task.id);
    if (!entry) entry = this.newRow(task);
    entry.task = task;
    const tr = entry.tr;
    this.columns.forEach((c, k) => {
      const sig = c.sig(task);
      if (sig !== entry.sigs[k]) {
        entry.sigs[k] = sig;
        const td = entry.cells[k];
        td.replaceChildren();
        c.render(td, task);
      }
    });
    tr.setAttribute('aria-rowindex', index + 2);
    const sel = this.selected.has(task.id);
    tr.classList.toggle('selected', sel);
    if (entry.check) entry.check.checked = sel;
    return tr;
  }

  newRow(task) {
    const id = task.id;
    const cells = this.columns.map((c) => h(`td.col-${c.id}`));
    const check = this.selectable ? h('input', {type: 'checkbox',
      'aria-label': `Select task ${id}`, onchange: () => this.toggle(id, check.checked)}) : null;
    const tr = h('tr.row', {dataset: {id}},
      check ? h('td.col-select', null, check) : null, cells);
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('.col-select')) return;
      if (ev.target.closest('button')) return;
      this.onOpen(this.cache.get(id).task);
    });
    const entry = {tr, cells, check, sigs: [], task};
    this.cache.set(id, entry);
    return entry;
  }

  toggle(id, on) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    const entry = this.cache.get(id);
    if (entry) entry.tr.classList.toggle('selected', on);
    this.updateHeadCheck();
    this.onSelect(this.selected);
  }

  selectAll(on) {
    this.selected = on ? new Set(this.rows.map((t) => t.id)) : new Set();
    this.render();
    this.onSelect(this.selected);
  }

  clearSelection() {
    this.selectAll(false);
  }

  updateHeadCheck() {
    if (!this.headCheck) return;
    const n = this.selected.size;
    this.headCheck.checked = n > 0 && n === this.rows.length;
    this.headCheck.indeterminate = n > 0 && n < this.rows.length;
  }

  selectedTasks() {
    return this.rows.filter((t) => this.selected.has(t.id));
  }
}
