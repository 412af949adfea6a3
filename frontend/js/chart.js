// Line charts drawn as SVG: series over time, axes with round ticks, a legend, and a readout
// of the values under the pointer.
import {h, svg} from './dom.js';

const H = 200;
const PAD = {left: 66, right: 14, top: 12, bottom: 30};

// Round tick values from 0 to at least `max`; with base 1024 they are round in KiB, MiB, ...
export function niceTicks(max, count = 4, base = 10) {
  if (!(max > 0)) return [0, 1];
  const unit = base === 1024 ? 1024 ** Math.max(0, Math.floor(Math.log(max) / Math.log(1024)))
    : 1;
  const raw = max / unit / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) * unit;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

// Step lines: series of bucket averages. xs are the buckets' start times (seconds into the
// window), xEnd the window's end; each value holds until the next bucket starts.
// series: [{label, color, values: [y...]}]; format(y) -> text (tickFormat for the axis);
// base 1024 for bytes.
export function lineChart({title, xs, xEnd, series, format, tickFormat, label,
  base = 10}) {
  // Narrower drawings on phones, so the text keeps its size when the chart is scaled down.
  const W = window.matchMedia('(max-width: 700px)').matches ? 330 : 480;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const ends = xs.map((t, i) => (i + 1 < xs.length ? xs[i + 1] : Math.max(xEnd || 0, t + 1)));
  const xMax = Math.max(1, ends.length ? ends[ends.length - 1] : xEnd || 1);
  const yTicks = niceTicks(Math.max(0, ...series.flatMap((s) => s.values)), 4, base);
  const yMax = yTicks[yTicks.length - 1];
  const x = (v) => PAD.left + (v / xMax) * plotW;
  const y = (v) => PAD.top + plotH - (v / yMax) * plotH;

  const grid = yTicks.map((t) => svg('g', {class: 'tick'},
    svg('line', {x1: PAD.left, x2: W - PAD.right, y1: y(t), y2: y(t)}),
    svg('text', {x: PAD.left - 6, y: y(t) + 4, 'text-anchor': 'end'},
      (tickFormat || format)(t, yMax))));
  const xTicks = niceTicks(xMax, 5).filter((t) => t <= xMax * 1.0001);
  const xAxis = xTicks.map((t) => svg('text', {x: x(t), y: H - 10, 'text-anchor': 'middle',
    class: 'xtick'}, `${t} s`));
  const lines = series.map((s) => svg('polyline', {class: 'line', stroke: s.color,
    points: s.values.flatMap((v, i) => [`${x(xs[i]).toFixed(1)},${y(v).toFixed(1)}`,
      `${x(ends[i]).toFixed(1)},${y(v).toFixed(1)}`]).join(' ')}));
  const dots = series.map((s) => svg('circle', {r: 3.5, fill: s.color, class: 'dot',
    visibility: 'hidden'}));
  const cursor = svg('rect', {class: 'cursor', y: PAD.top, height: plotH, visibility: 'hidden'});
  const hit = svg('rect', {x: PAD.left, y: PAD.top, width: plotW, height: plotH,
    class: 'hit'});
  const chart = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'aria-label': label || title},
  svg('g', {class: 'grid'}, grid), cursor, svg('g', {class: 'axis'}, xAxis,
    svg('line', {x1: PAD.left, x2: W - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH})),
  lines, dots, hit);

  const legendValues = series.map(() => h('span.legend-value'));
  const readout = h('span.readout');
  const legend = h('div.legend', null, series.map((s, i) => h('span.legend-item', null,
    h('span.swatch', {dataset: {color: s.color}}), s.label, ' ', legendValues[i])), readout);
  legend.querySelectorAll('.swatch').forEach((el) => { el.style.background = el.dataset.color; });

  const show = (i) => {
    const on = i !== null;
    cursor.setAttribute('visibility', on ? 'visible' : 'hidden');
    dots.forEach((d) => d.setAttribute('visibility', on ? 'visible' : 'hidden'));
    if (!on) {
      legendValues.forEach((el) => { el.textContent = ''; });
      readout.textContent = '';
      return;
    }
    cursor.setAttribute('x', x(xs[i]));
    cursor.setAttribute('width', Math.max(1, x(ends[i]) - x(xs[i])));
    series.forEach((s, k) => {
      dots[k].setAttribute('cx', (x(xs[i]) + x(ends[i])) / 2);
      dots[k].setAttribute('cy', y(s.values[i]));
      legendValues[k].textContent = format(s.values[i]);
    });
    readout.textContent = `${xs[i]}–${ends[i]} s`;
  };
  hit.addEventListener('pointermove', (ev) => {
    if (!xs.length) return;
    const box = chart.getBoundingClientRect();
    const t = ((((ev.clientX - box.left) / box.width) * W - PAD.left) / plotW) * xMax;
    let i = xs.length - 1;
    while (i > 0 && xs[i] > t) i -= 1;
    show(i);
  });
  hit.addEventListener('pointerleave', () => show(null));
  return h('figure.chart-figure', null, h('figcaption', null, title), chart, legend);
}
