// The columns of the three tabs: what each shows, sorts by, and when it must be redrawn.
import {h} from './dom.js';
import {fmtDuration, fmtEta, fmtTime, parseTime, runtime} from './format.js';

export function progressBar(t) {
  const bar = h('span.progress-fill');
  bar.style.width = `${t.percent}%`;
  return h('span.progress-cell', null,
    h('span.progress', {role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': t.percent, 'aria-label': `${t.percent} percent`,
      class: t.status === 'Running' ? 'progress running' : 'progress'}, bar),
    h('span.percent', null, `${t.percent} %`));
}

function time(key) {
  return {
    value: (t) => t[key] || null,
    sig: (t) => t[key] || '',
    render: (td, t) => {
      td.textContent = fmtTime(t[key]);
      if (t[key]) td.title = t[key];
    },
  };
}

const description = {
  id: 'description', label: 'Description',
  value: (t) => t.description.toLowerCase(),
  sig: (t) => `${t.description}|${t.status}|${t.status_text}`,
  render: (td, t) => {
    const sub = t.state === 'pending' ? (t.status_text || t.status)
      : `${t.kind} · by ${t.created_by}`;
    td.append(h('button.link.open-task', {type: 'button', title: t.description},
      t.description), h('span.sub', {title: sub}, `#${t.id} · ${sub}`));
  },
};

const runtimeCol = {
  id: 'runtime', label: 'Runtime',
  value: (t) => runtime(t),
  sig: (t) => `${t.started}|${t.ended}`,
  render: (td, t) => { td.textContent = fmtDuration(runtime(t)); },
};

export const COLUMNS = {
  pending: [
    description,
    {id: 'created', label: 'Created', ...time('created')},
    {id: 'progress', label: 'Progress', value: (t) => t.percent,
      sig: (t) => `${t.percent}|${t.status}`, render: (td, t) => td.append(progressBar(t))},
    {id: 'eta', label: 'ETA', value: (t) => (t.estimated ? parseTime(t.estimated) : null),
      sig: (t) => `${t.estimated}`,
      render: (td, t) => {
        td.textContent = t.estimated ? fmtEta(t.estimated)
          : t.status === 'Running' ? 'estimating…' : 'queued';
        if (t.estimated) td.title = fmtTime(t.estimated);
      }},
  ],
  failed: [
    description,
    {id: 'reason', label: 'Reason', value: (t) => `${t.status} ${t.error || ''}`.toLowerCase(),
      sig: (t) => `${t.status}|${t.error}`,
      render: (td, t) => {
        td.append(h(`span.tag.tag-${t.status.toLowerCase()}`, null, t.status),
          h('span.reason-text', null, t.error || ''));
        td.title = `${t.status}: ${t.error || ''}`;
      }},
    {id: 'created', label: 'Created', ...time('created')},
    runtimeCol,
    {id: 'ended', label: 'Failed at', ...time('ended')},
  ],
  finished: [
    description,
    {id: 'created', label: 'Created', ...time('created')},
    runtimeCol,
    {id: 'ended', label: 'Finished at', ...time('ended')},
  ],
};

// Case-insensitive text search over what a row says; "#12" finds task 12 alone.
export function matches(t, needle) {
  if (!needle) return true;
  if (/^#\d+$/.test(needle)) return t.id === Number(needle.slice(1));
  const text = `#${t.id} ${t.description} ${t.kind} ${t.status} ${t.status_text || ''} ` +
    `${t.error || ''} ${t.created_by}`;
  return text.toLowerCase().includes(needle);
}
