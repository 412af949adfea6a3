// A finished RBD performance run: a sortable table of its images and, per image, charts of
// operations and bytes per second over the window.
import {h} from './dom.js';
import {fmtBytes, fmtCompact, fmtDuration, fmtNum, fmtTime} from './format.js';
import {lineChart} from './chart.js';

const READ = '#2b99a8';
const WRITE = '#ef8d2f';
const CHARTS_AT_FIRST = 12;

export function imageSpec(img) {
  return [img.pool, img.namespace, img.image || `id ${img.image_id}`].filter(Boolean).join('/');
}

const COLUMNS = [
  {label: 'Image', value: (r) => imageSpec(r).toLowerCase(), text: (r) => imageSpec(r)},
  {label: 'Read ops/s', key: 'read_ops/s', fmt: fmtNum},
  {label: 'Write ops/s', key: 'write_ops/s', fmt: fmtNum},
  {label: 'Read bytes/s', key: 'read_bytes/s', fmt: (v) => fmtBytes(v, '/s')},
  {label: 'Write bytes/s', key: 'write_bytes/s', fmt: (v) => fmtBytes(v, '/s')},
  {label: 'Read latency', key: 'read_latency_ms', fmt: (v) => `${fmtNum(v, 2)} ms`},
  {label: 'Write latency', key: 'write_latency_ms', fmt: (v) => `${fmtNum(v, 2)} ms`},
].map((c) => (c.key ? {...c, num: true, value: (r) => r.total[c.key] ?? 0,
  text: (r) => c.fmt(r.total[c.key])} : c));

export function sortableTable({columns, rows, label, id, initial = 0, dir = 1}) {
  const tbody = h('tbody');
  let sort = {i: initial, dir};
  const heads = columns.map((c, i) => h(`th${c.num ? '.num' : ''}`, {scope: 'col'},
    h('button.sort', {type: 'button', onclick: () => {
      sort = {i, dir: sort.i === i ? -sort.dir : (c.num ? -1 : 1)};
      draw();
    }}, c.label, h('span.sort-mark', {'aria-hidden': 'true'}))));
  function draw() {
    const col = columns[sort.i];
    const sorted = [...rows].sort((a, b) => {
      const [x, y] = [col.value(a), col.value(b)];
      return x === y ? 0 : (x < y ? -1 : 1) * sort.dir;
    });
    heads.forEach((th, i) => {
      th.setAttribute('aria-sort', i === sort.i ? (sort.dir > 0 ? 'ascending' : 'descending')
        : 'none');
      th.querySelector('.sort-mark').textContent =
        i === sort.i ? (sort.dir > 0 ? '▲' : '▼') : '';
    });
    tbody.replaceChildren(...sorted.map((r) => h('tr', null, columns.map((c, k) => (k === 0
      ? h('th', {scope: 'row'}, c.text(r))
      : h(`td${c.num ? '.num' : ''}`, {dataset: {label: c.label}}, c.text(r)))))));
  }
  draw();
  return h('table.data.stack', {id, 'aria-label': label}, h('thead', null, h('tr', null, heads)),
    tbody);
}

function imageCharts(img, xEnd) {
  const xs = img.series.map((p) => p.t);
  const pick = (key) => img.series.map((p) => p[key] ?? 0);
  const spec = imageSpec(img);
  return h('section.image-charts', {dataset: {image: spec}},
    h('h4', null, spec),
    h('div.chart-pair', null,
      lineChart({title: 'Operations per second', xs, xEnd, format: (v) => fmtNum(v),
        tickFormat: fmtCompact,
        label: `Read and write operations per second of ${spec}`,
        series: [{label: 'read', color: READ, values: pick('read_ops/s')},
          {label: 'write', color: WRITE, values: pick('write_ops/s')}]}),
      lineChart({title: 'Bytes per second', xs, xEnd, format: (v) => fmtBytes(v, '/s'), base: 1024,
        tickFormat: (v, max) => fmtBytes(v, '/s', max),
        label: `Read and write bytes per second of ${spec}`,
        series: [{label: 'read', color: READ, values: pick('read_bytes/s')},
          {label: 'write', color: WRITE, values: pick('write_bytes/s')}]})));
}

export function perfResult(task) {
  const r = task.result || {};
  const images = r.images || [];
  const win = r.window || {};
  const summary = h('p.run-summary', null,
    `Window ${fmtTime(win.start)} – ${fmtTime(win.end)} (${fmtDuration(win.seconds)}), ` +
    `${r.samples ?? 0} samples, ${images.length} ${images.length === 1 ? 'image' : 'images'}` +
    (r.other_images ? `; ${r.other_images} more images had less traffic and are not listed` : ''));
  if (!images.length) {
    return h('div.perf-result', null, summary,
      h('p.muted', null, 'No image had any I/O in this window.'));
  }
  // The server keeps a series for the busiest images only.
  const charted = images.filter((img) => img.series && img.series.length);
  const charts = h('div.charts');
  const more = h('button.btn', {type: 'button'}, `Show charts of all ${charted.length} images`);
  const drawCharts = (n) => {
    charts.replaceChildren(...charted.slice(0, n).map((img) => imageCharts(img, win.seconds)));
    more.hidden = charted.length <= n;
  };
  more.addEventListener('click', () => drawCharts(charted.length));
  drawCharts(CHARTS_AT_FIRST);
  const note = charted.length < images.length ? h('p.muted', null, `Charts of the ` +
    `${charted.length} busiest images; the others are in the table only.`) : null;
  return h('div.perf-result', {dataset: {task: task.id}}, summary,
    h('div.table-wrap', null, sortableTable({columns: COLUMNS, rows: images, id: 'perf-table',
      label: 'Performance per image', initial: 1, dir: -1})),
    h('h3', null, 'Over the window'), note, charts, more);
}
