// Numbers, sizes, times and durations as the tables show them.

const pad = (n) => String(n).padStart(2, '0');

export function parseTime(iso) {
  return iso ? Date.parse(iso) : NaN;
}

export function fmtTime(iso) {
  const ms = parseTime(iso);
  if (Number.isNaN(ms)) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  if (seconds < 0) seconds = 0;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// Seconds a task ran: from start (or creation) to its end, or to now while pending.
export function runtime(task, now = Date.now()) {
  const start = parseTime(task.started || task.created);
  const end = task.ended ? parseTime(task.ended) : now;
  return Number.isNaN(start) ? NaN : (end - start) / 1000;
}

export function fmtEta(iso, now = Date.now()) {
  const ms = parseTime(iso);
  if (Number.isNaN(ms)) return '—';
  const left = (ms - now) / 1000;
  return left <= 1 ? 'any moment' : `in ${fmtDuration(left)}`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// `scale` picks the unit (an axis gives its largest tick, so all its labels share one).
export function fmtBytes(n, suffix = '', scale = n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  let i = 0;
  let v = Math.abs(n);
  for (let s = Math.abs(scale); s >= 1024 && i < UNITS.length - 1; s /= 1024) {
    v /= 1024;
    i += 1;
  }
  const digits = i === 0 || v === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${n < 0 ? '-' : ''}${v.toFixed(digits)} ${UNITS[i]}${suffix}`;
}

export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(digits)} M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(digits)} k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

// Short axis labels: 2500 -> "2.5 k", 10000 -> "10 k".
export function fmtCompact(n) {
  const trim = (v) => String(Number(v.toFixed(1)));
  if (Math.abs(n) >= 1e6) return `${trim(n / 1e6)} M`;
  if (Math.abs(n) >= 1e3) return `${trim(n / 1e3)} k`;
  return trim(n);
}

export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}
