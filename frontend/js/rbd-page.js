// RBD images of a pool, with their used bytes from the latest rbd_du run ("Get disk usage"),
// and their performance over a window: "Get performance data" starts an rbd_perf task; its
// runs are listed, and a finished one is shown as a table and charts.
import {h} from './dom.js';
import {fmtBytes, fmtTime} from './format.js';
import {perfResult, sortableTable} from './rbd-results.js';
import {progressBar} from './task-columns.js';
import {toast} from './toast.js';

const NO_ROUTE = 'no such resource';

function runsOf(store, pool, kind = 'rbd_perf') {
  const runs = [];
  for (const state of ['pending', 'finished', 'failed']) {
    for (const t of store.lists[state] || []) {
      if (t.kind === kind && (!t.params.pool || t.params.pool === pool)) runs.push(t);
    }
  }
  return runs.sort((a, b) => b.id - a.id);
}

// The newest finished disk usage run covering the pool, and a pending one if any.
function usageRuns(store, pool) {
  const runs = runsOf(store, pool, 'rbd_du');
  return {done: runs.find((t) => t.state === 'finished'),
    pending: runs.find((t) => t.state === 'pending')};
}

function usageOf(run, pool) {
  const used = new Map();
  if (!run) return used;
  for (const i of run.result.images) {
    if (i.pool === pool && !i.namespace) used.set(i.id, i);
  }
  return used;
}

function runLabel(t) {
  const scope = t.params.pool ? '' : ' (all pools)';
  const secs = t.params.seconds ? `${t.params.seconds} s window` : 'window';
  const when = t.state === 'pending' ? `${t.status.toLowerCase()}, ${t.percent} %`
    : `${t.state} ${fmtTime(t.ended)}`;
  return `Task ${t.id}: ${secs}${scope}, ${when}`;
}

export function mount(main, ctx, poolArg, taskArg) {
  const {api, store, user} = ctx;
  const admin = user.role === 'admin';
  let alive = true;
  const page = h('div.page#rbd-page');
  main.replaceChildren(page);
  page.append(h('div.page-head', null, h('h2', null, 'RBD images'),
    h('p.muted', null, 'Images per pool, and their performance measured over a window as a ' +
      'background task.')));
  const problem = h('p.alert.alert-danger', {role: 'alert', hidden: true});
  page.append(problem);
  const fail = (err) => {
    if (!alive || err.status === 401) return;
    problem.hidden = false;
    problem.textContent = err.message;
  };

  api.pools().then((pools) => {
    if (!alive) return;
    const rbdPools = pools.filter((p) => p.applications.includes('rbd')).map((p) => p.name);
    if (!rbdPools.length) {
      page.append(h('p.alert.alert-info', null, 'No pool has the rbd application yet ' +
        '(rbd pool init <pool>).'));
      return;
    }
    if (!poolArg || !rbdPools.includes(poolArg)) {
      if (poolArg) fail(new Error(`'${poolArg}' is not an RBD pool.`));
      location.replace(`#/rbd/${encodeURIComponent(rbdPools[0])}`);
      return;
    }
    build(rbdPools, poolArg);
  }, fail);

  let onChange = null;
  function build(rbdPools, pool) {
    const select = h('select#rbd-pool', {onchange: () => {
      location.hash = `#/rbd/${encodeURIComponent(select.value)}`;
    }}, rbdPools.map((p) => h('option', {value: p, selected: p === pool}, p)));
    page.querySelector('.page-head').append(h('div.inline-field', null,
      h('label', {for: 'rbd-pool'}, 'Pool'), select));

    const images = h('div.table-wrap', null, h('p.muted', null, 'Loading…'));
    const usageNote = h('p.muted#du-note');
    const imagesCard = h('section.card', {'aria-labelledby': 'images-title'},
      h('h3#images-title', null, `Images in ${pool}`));
    if (admin) imagesCard.append(usageForm(pool));
    imagesCard.append(usageNote, images);
    page.append(imagesCard);
    let imageList = null;
    let imagesSig = '';
    api.images(pool).then((list) => {
      if (!alive) return;
      imageList = list;
      drawImages();
    }, fail);

    function drawImages() {
      if (imageList === null) return;
      const {done, pending} = usageRuns(store, pool);
      const sig = `${done ? done.id : ''}|${pending ? pending.percent : ''}`;
      if (sig === imagesSig) return;
      imagesSig = sig;
      usageNote.textContent = pending ? `Measuring disk usage: ${pending.percent} % ` +
          `(${pending.status_text || pending.status})`
        : done ? `Used bytes as task ${done.id} measured them, ${fmtTime(done.ended)}.`
          : 'Used bytes: not measured yet.';
      const used = usageOf(done, pool);
      const usedOf = (i) => (used.has(i.id) ? used.get(i.id).used_bytes : -1);
      images.replaceChildren(imageList.length ? sortableTable({id: 'images-table',
        label: `RBD images in ${pool}`, rows: imageList, columns: [
          {label: 'Name', value: (i) => i.name, text: (i) => i.name},
          {label: 'Size', num: true, value: (i) => i.size, text: (i) => fmtBytes(i.size)},
          {label: 'Used', num: true, value: usedOf,
            text: (i) => (used.has(i.id) ? fmtBytes(used.get(i.id).used_bytes) : '–')},
          {label: 'ID', value: (i) => i.id, text: (i) => i.id}]})
        : h('p.muted', null, 'No images in this pool.'));
    }

    function usageForm(poolName) {
      const error = h('p#du-error.alert.alert-danger', {role: 'alert', hidden: true});
      const submit = h('button#du-submit.btn', {type: 'submit'}, 'Get disk usage');
      const form = h('form#du-form.inline-form', {novalidate: true}, submit, error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        try {
          const res = await api.create('rbd_du', {pool: poolName});
          store.track(res.data);
          toast('info', 'Task started', res.data.description);
          store.refresh();
        } catch (err) {
          if (err.status === 401) return;
          error.hidden = false;
          error.textContent = err.status === 404 && err.message.startsWith(NO_ROUTE)
            ? 'This bgtasks server cannot measure disk usage yet (no rbd_du task).'
            : err.message;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    }

    const perf = h('section.card#perf', {'aria-labelledby': 'perf-title'},
      h('h3#perf-title', null, 'Performance data'));
    page.append(perf);
    if (admin) perf.append(perfForm(pool));
    const runPick = h('select#perf-run');
    const runBox = h('div.inline-field', {hidden: true},
      h('label', {for: 'perf-run'}, 'Run'), runPick);
    const result = h('div#perf-result');
    perf.append(runBox, result);
    let chosen = taskArg ? Number(taskArg) : null;
    let shownSig = '';
    runPick.addEventListener('change', () => { chosen = Number(runPick.value); draw(); });

    function draw() {
      const runs = runsOf(store, pool);
      runBox.hidden = runs.length === 0;
      const options = runs.map((t) => [String(t.id), runLabel(t)]);
      const current = [...runPick.options].map((o) => [o.value, o.textContent]);
      if (JSON.stringify(options) !== JSON.stringify(current)) {
        runPick.replaceChildren(...options.map(([v, text]) => h('option', {value: v}, text)));
      }
      if (!runs.some((t) => t.id === chosen)) {
        const newest = runs.find((t) => t.state === 'finished') || runs[0];
        chosen = newest ? newest.id : null;
      }
      if (chosen !== null) runPick.value = String(chosen);
      const run = runs.find((t) => t.id === chosen);
      const sig = run ? `${run.id}|${run.state}|${run.percent}|${run.status_text}`
        : `none|${Boolean(store.lists.finished)}`;
      if (sig === shownSig) return;
      shownSig = sig;
      if (!run) {
        result.replaceChildren(h('p.muted', null, store.lists.finished
          ? 'No performance data yet for this pool.' : 'Loading…'));
      } else if (run.state === 'pending') {
        result.replaceChildren(h('div.run-pending', {dataset: {task: run.id}},
          h('p', null, run.description), progressBar(run),
          h('p.muted', null, run.status_text || run.status)));
      } else if (run.state === 'failed') {
        result.replaceChildren(h('p.alert.alert-danger', {dataset: {task: run.id}},
          `${run.status}: ${run.error || ''}`));
      } else {
        result.replaceChildren(perfResult(run));
      }
      result.dataset.state = run ? run.state : 'none';
    }

    function perfForm(poolName) {
      const secs = h('input#perf-seconds', {type: 'number', min: 5, max: 3600, step: 1,
        value: '30', required: true});
      const error = h('p#perf-error.alert.alert-danger', {role: 'alert', hidden: true});
      const submit = h('button#perf-submit.btn.btn-primary', {type: 'submit'},
        'Get performance data');
      const form = h('form#perf-form.inline-form', {novalidate: true},
        h('label', {for: 'perf-seconds'}, 'Window length (seconds)'), secs, submit, error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const n = Number(secs.value);
        if (!Number.isInteger(n) || n < 5 || n > 3600) {
          error.hidden = false;
          error.textContent = 'The window is 5 to 3600 seconds long.';
          secs.focus();
          return;
        }
        error.hidden = true;
        submit.disabled = true;
        try {
          const res = await api.create('rbd_perf', {pool: poolName, seconds: n});
          store.track(res.data);
          chosen = res.data.id;
          toast('info', 'Task started', res.data.description);
          store.refresh();
          draw();
        } catch (err) {
          if (err.status === 401) return;
          error.hidden = false;
          error.textContent = err.status === 404 && err.message.startsWith(NO_ROUTE)
            ? 'This bgtasks server cannot collect RBD performance data yet (no rbd_perf task).'
            : err.message;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    }

    onChange = () => { draw(); drawImages(); };
    store.addEventListener('change', onChange);
    store.want('finished', true);
    draw();
  }

  return {
    unmount() {
      alive = false;
      if (onChange) {
        store.removeEventListener('change', onChange);
        store.want('finished', false);
      }
    },
  };
}
