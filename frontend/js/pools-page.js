// Pools: PG counts, targets and states, live; a pending PG task shows its target and progress
// at once. "Set PGs" opens the form that starts the task.
import {h} from './dom.js';
import {progressBar} from './task-columns.js';
import {openTaskDetail} from './task-detail.js';

const REFRESH_MS = 2000;

export function pendingPgTasks(store) {
  const byPool = new Map();
  for (const t of store.lists.pending || []) {
    if (t.kind === 'set_pg_num' && !byPool.has(t.params.pool)) byPool.set(t.params.pool, t);
  }
  return byPool;
}

function states(pgStates) {
  const entries = Object.entries(pgStates).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return h('span.muted', null, 'no PGs reported');
  return h('span.chips', null, entries.map(([state, n]) => h(
    `span.chip.${state === 'active+clean' ? 'chip-ok' : state === 'unknown' ? 'chip-muted'
      : 'chip-warn'}`, {title: `${n} PGs ${state}`}, `${n} ${state}`)));
}

export function mount(main, ctx) {
  const {api, store, user} = ctx;
  const admin = user.role === 'admin';
  const tbody = h('tbody');
  const error = h('p.alert.alert-danger', {role: 'alert', hidden: true});
  const table = h('table.data.stack#pools-table', {'aria-label': 'Pools'},
    h('thead', null, h('tr', null,
      h('th', {scope: 'col'}, 'Name'), h('th.hide-narrow', {scope: 'col'}, 'Applications'),
      h('th.num', {scope: 'col', title: 'pg_num / pgp_num'}, 'PGs'),
      h('th.num', {scope: 'col', title: 'pg_num_target / pgp_num_target'}, 'Target'),
      h('th.hide-narrow', {scope: 'col'}, 'Autoscale'),
      h('th', {scope: 'col'}, 'PG states'), h('th', {scope: 'col'}, 'Background task'),
      admin ? h('th', {scope: 'col'}, h('span.visually-hidden', null, 'Actions')) : null)),
    tbody);
  main.replaceChildren(h('div.page', null,
    h('div.page-head', null, h('h2', null, 'Pools'),
      h('p.muted', null, 'Number of PGs, their targets and states. Setting the number of PGs ' +
        'runs as a background task; the pool lists its new target at once.')),
    error, h('div.card', null, h('div.table-wrap', null, table))));

  let pools = null;
  const rows = new Map();
  let timer = 0;
  let alive = true;

  function row(p, task) {
    const sig = JSON.stringify([p, task && [task.id, task.percent, task.status]]);
    const cached = rows.get(p.name);
    if (cached && cached.sig === sig) return cached.tr;
    const target = task ? task.params.pg_num : p.pg_num_target;
    const targetCell = h('td.num.target', {dataset: {target, label: 'Target'}},
      task ? h('span.pending-target', {title: `Requested by task ${task.id}; ` +
        `the cluster's target is ${p.pg_num_target}`}, `${target}`) :
        `${p.pg_num_target} / ${p.pgp_num_target}`);
    const taskCell = h('td.task-cell', {dataset: {label: 'Background task'}});
    if (task) {
      taskCell.append(h('button.link', {type: 'button',
        onclick: () => openTaskDetail(ctx, store.get(task.id) || task)}, `Task ${task.id}`),
      progressBar(task));
    }
    let action = null;
    if (admin) {
      action = h('td.actions', {dataset: {label: ''}}, task
        ? h('button.btn.btn-sm', {type: 'button', disabled: true,
          title: 'A PG task is pending for this pool'}, 'Set PGs')
        : h('a.btn.btn-sm.btn-primary', {href: `#/pools/${encodeURIComponent(p.name)}/set-pgs`,
          'aria-label': `Set PGs of pool ${p.name}`}, 'Set PGs'));
    }
    const tr = h('tr', {dataset: {pool: p.name, pending: task ? task.id : ''}},
      h('th.name', {scope: 'row'}, p.name),
      h('td.hide-narrow', {dataset: {label: 'Applications'}}, p.applications.join(', ') || '—'),
      h('td.num.pgs', {dataset: {label: 'PGs'}}, `${p.pg_num} / ${p.pgp_num}`),
      targetCell,
      h('td.hide-narrow', {dataset: {label: 'Autoscale'}}, p.pg_autoscale_mode || '—'),
      h('td', {dataset: {label: 'PG states'}}, states(p.pg_states)),
      taskCell, action);
    rows.set(p.name, {sig, tr});
    return tr;
  }

  function render() {
    if (!pools) return;
    const tasks = pendingPgTasks(store);
    const trs = pools.map((p) => row(p, tasks.get(p.name)));
    if (!trs.length) {
      tbody.replaceChildren(h('tr', null, h('td.empty', {colSpan: 8}, 'No pools.')));
    } else if (tbody.children.length !== trs.length ||
        trs.some((tr, i) => tbody.children[i] !== tr)) {
      tbody.replaceChildren(...trs);
    }
    table.dataset.loaded = 'true';
  }

  async function load() {
    try {
      pools = await api.pools();
      error.hidden = true;
      render();
    } catch (err) {
      if (err.status === 401) return;
      error.hidden = false;
      error.textContent = `The pools could not be loaded: ${err.message}`;
    }
    if (alive) timer = setTimeout(load, REFRESH_MS);
  }

  const onChange = (ev) => { if (ev.detail.has('pending')) render(); };
  store.addEventListener('change', onChange);
  load();
  return {
    unmount() {
      alive = false;
      clearTimeout(timer);
      store.removeEventListener('change', onChange);
    },
  };
}
