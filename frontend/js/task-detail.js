// One task in full: every field, its params, result and error; live while it is pending.
import {h} from './dom.js';
import {fmtDuration, fmtEta, fmtTime, runtime} from './format.js';
import {openModal} from './modal.js';
import {deleteTasks} from './task-actions.js';
import {progressBar} from './task-columns.js';

const MAX_JSON = 20000;

function json(value) {
  let text = JSON.stringify(value, null, 2);
  if (text === undefined) text = 'null';
  if (text.length > MAX_JSON) text = `${text.slice(0, MAX_JSON)}\n… (${text.length} characters)`;
  return h('pre.json', null, text);
}

function fields(t) {
  const rows = [
    ['Description', t.description],
    ['Kind', t.kind],
    ['Status', t.status + (t.status_text ? ` — ${t.status_text}` : '')],
    ['Progress', t.state === 'pending' ? progressBar(t) : `${t.percent} %`],
    ['Created', `${fmtTime(t.created)} by ${t.created_by}`],
    ['Started', fmtTime(t.started)],
    ['Last modified', fmtTime(t.last_modified)],
  ];
  if (t.state === 'pending') {
    rows.push(['ETA', t.estimated ? `${fmtTime(t.estimated)} (${fmtEta(t.estimated)})` : '—']);
  }
  else rows.push([t.state === 'failed' ? 'Failed at' : 'Finished at', fmtTime(t.ended)]);
  rows.push(['Runtime', fmtDuration(runtime(t))]);
  return h('dl.fields', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function openTaskDetail(ctx, task) {
  const {store, user} = ctx;
  const id = task.id;
  let current = task;
  const body = h('div.task-detail');
  const del = user.role === 'admin'
    ? h('button.btn.btn-danger#detail-delete', {type: 'button'}, 'Delete') : null;
  const close = h('button.btn', {type: 'button'}, 'Close');
  let gone = false;

  function render() {
    const t = current;
    const parts = [fields(t), h('h3', null, 'Parameters'), json(t.params)];
    if (t.state === 'finished' || t.result !== null) {
      parts.push(h('h3', null, 'Result'), json(t.result));
    }
    if (t.error) parts.push(h('h3', null, 'Error'), h('pre.json.error-text', null, t.error));
    if (t.kind === 'rbd_perf' && t.state === 'finished') {
      parts.push(h('p', null, h('a', {href: `#/rbd/${encodeURIComponent(t.params.pool || '')}` +
        `?task=${t.id}`, onclick: () => modal.close()}, 'Show as table and charts')));
    }
    if (t.kind === 'rbd_du' && t.state === 'finished' && t.params.pool) {
      parts.push(h('p', null, h('a', {href: `#/rbd/${encodeURIComponent(t.params.pool)}`,
        onclick: () => modal.close()}, 'Show on the RBD images page')));
    }
    if (gone) parts.unshift(h('p.alert.alert-info', null, 'This task has been deleted.'));
    body.replaceChildren(...parts);
    body.dataset.state = t.state;
    if (del) del.hidden = gone;
  }

  const onChange = () => {
    const fresh = store.get(id);
    if (fresh && fresh !== current) { current = fresh; render(); }
  };
  store.addEventListener('change', onChange);
  const modal = openModal({
    title: `Task ${id}`, content: body, footer: [del, close], className: 'detail',
    id: 'task-detail', onClose: () => store.removeEventListener('change', onChange),
  });
  close.addEventListener('click', () => modal.close());
  if (del) {
    del.addEventListener('click', async () => {
      if (await deleteTasks(ctx, [current])) {
        if (current.state === 'pending') {
          ctx.api.task(id).then((t) => { current = t; render(); }, () => {});
        } else {
          gone = true;
          render();
        }
      }
    });
  }
  render();
  ctx.api.task(id).then((t) => { current = t; render(); }, (err) => {
    if (err.status === 404) { gone = true; render(); }
  });
  return modal;
}
