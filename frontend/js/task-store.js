// What the browser knows of the task queue, kept fresh by polling once a second.
//
// Every poll asks for the pending tasks (they change) and for the first entry of the failed
// and finished lists (their count and newest id: a cheap signature). The failed list is kept
// loaded (it drives the button's warning state); the finished list only while someone looks
// at it. A task that leaves the pending list has finished or failed: that is what the toasts
// say. Listeners get a 'change' event naming the states whose lists changed.
import {toast} from './toast.js';

export const POLL_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const TOAST_SINGLY = 3;      // more tasks than this ending at once get one toast together

function signature(t) {
  return `${t.status}|${t.percent}|${t.estimated}|${t.status_text}|${t.last_modified}`;
}

export class TaskStore extends EventTarget {
  constructor(api, user) {
    super();
    this.api = api;
    this.user = user;
    this.lists = {pending: null, failed: null, finished: null};
    this.counts = {pending: 0, failed: 0, finished: 0};
    this.heads = {failed: null, finished: null};
    this.stale = {failed: true, finished: true};
    this.wanted = {failed: 1, finished: 0};
    // id -> {task, at}: tasks whose end we expect to see (pending, or just created here)
    this.watched = new Map();
    this.abortedHere = new Set();      // aborted from this page: no warning, no failure toast
    this.seenKey = `bgtasks.failedSeen.${user.username}`;
    this.seen = localStorage.getItem(this.seenKey) || '';
    this.unseenFailed = 0;
    this.online = true;
    this.generation = 0;
    this.timer = null;
    this.inflight = null;
    this.again = false;
    this.failures = 0;
  }

  start() {
    this.generation += 1;
    this.running = true;
    this.refresh();
  }

  stop() {
    this.running = false;
    this.generation += 1;
    clearTimeout(this.timer);
  }

  // Polls now (or right after the poll in flight); resolves when the data is in.
  refresh() {
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    clearTimeout(this.timer);
    const gen = this.generation;
    this.inflight = this.poll(gen).then(() => {
      this.failures = 0;
      if (!this.online) { this.online = true; this.emit(['online']); }
    }, (err) => {
      if (gen !== this.generation || err.status === 401) return;
      this.failures += 1;
      if (this.online) { this.online = false; this.emit(['online']); }
    }).finally(() => {
      this.inflight = null;
      if (!this.running || gen !== this.generation) return;
      if (this.again) { this.again = false; this.refresh(); return; }
      const wait = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(this.failures, 3));
      this.timer = setTimeout(() => this.refresh(), this.failures ? wait : POLL_MS);
    });
    return this.inflight;
  }

  // Keep the failed/finished list loaded while `on` (counted, so several views may ask).
  want(state, on) {
    this.wanted[state] = Math.max(0, this.wanted[state] + (on ? 1 : -1));
    if (on && this.stale[state]) this.refresh();
  }

  // A task this page just created or aborted: its end gets a toast even if it is quick.
  track(task) {
    if (!task || task.state !== 'pending') return;
    this.watched.set(task.id, {task, at: performance.now()});
    // Shown at once; the next poll brings its progress.
    const list = this.lists.pending;
    if (list && !list.some((t) => t.id === task.id)) {
      this.lists.pending = [task, ...list];
      this.emit(['pending']);
    }
  }

  markAborted(task) {
    this.abortedHere.add(task.id);
  }

  get(id) {
    for (const state of ['pending', 'failed', 'finished']) {
      const found = (this.lists[state] || []).find((t) => t.id === id);
      if (found) return found;
    }
    return null;
  }

  async poll(gen) {
    const api = this.api;
    const started = performance.now();
    const [pending, failedHead, finishedHead] = await Promise.all([
      api.tasks('pending'), api.tasks('failed', 1, 1), api.tasks('finished', 1, 1)]);
    if (gen !== this.generation) return;
    const changed = new Set();

    const before = this.lists.pending;
    const nowPending = new Set(pending.results.map((t) => t.id));
    const left = [];
    const young = [];
    for (const [id, seen] of this.watched) {
      if (nowPending.has(id)) continue;
      if (seen.at >= started) {
        young.push(seen.task);   // tracked after this poll was sent: its answer cannot know it
      } else {
        left.push(seen.task);
        this.watched.delete(id);
      }
    }
    for (const t of pending.results) this.watched.set(t.id, {task: t, at: 0});
    const next = young.length ? [...young, ...pending.results] : pending.results;
    if (!before || before.length !== next.length ||
        next.some((t, i) => before[i].id !== t.id || signature(before[i]) !== signature(t))) {
      changed.add('pending');
      this.lists.pending = next;
    }
    this.counts.pending = next.length;
    const firstLoad = before === null;

    for (const [state, head] of [['failed', failedHead], ['finished', finishedHead]]) {
      const sig = `${head.count}:${head.results.length ? head.results[0].id : ''}`;
      if (sig !== this.heads[state] || left.length) {
        this.heads[state] = sig;
        this.stale[state] = true;
        changed.add(`${state}-count`);
      }
      this.counts[state] = head.count;
    }
    for (const state of ['failed', 'finished']) {
      if (this.stale[state] && this.wanted[state] > 0) {
        const all = await api.tasks(state);
        if (gen !== this.generation) return;
        this.lists[state] = all.results;
        this.counts[state] = all.count;
        this.stale[state] = false;
        changed.add(state);
      }
    }
    if (changed.has('failed')) this.updateUnseen();
    if (!firstLoad && left.length) this.announce(left);
    if (changed.size) this.emit([...changed]);
  }

  announce(left) {
    const failed = new Map((this.lists.failed || []).map((t) => [t.id, t]));
    const failures = [];
    const finished = [];
    for (const t of left) {
      if (this.abortedHere.has(t.id)) continue;
      if (failed.has(t.id)) failures.push(failed.get(t.id));
      else finished.push(t);
    }
    if (finished.length > TOAST_SINGLY) {
      toast('success', `${finished.length} tasks finished`);
    } else {
      for (const t of finished) toast('success', 'Task finished', t.description);
    }
    if (failures.length > TOAST_SINGLY) {
      toast('error', `${failures.length} tasks failed`, 'See the Failed tab of Background-Tasks.');
    } else {
      for (const t of failures) {
        toast('error', t.status === 'Aborted' ? 'Task aborted' : 'Task failed',
          `${t.description}: ${t.error || t.status}`);
      }
    }
  }

  updateUnseen() {
    const list = this.lists.failed || [];
    this.unseenFailed = list.filter((t) => !this.abortedHere.has(t.id) &&
      (t.ended || '') > this.seen).length;
  }

  // The user has looked at the Failed tab: what failed so far no longer warns.
  markFailedSeen() {
    const list = this.lists.failed || [];
    const newest = list.reduce((max, t) => ((t.ended || '') > max ? t.ended : max), this.seen);
    if (newest !== this.seen) {
      this.seen = newest;
      localStorage.setItem(this.seenKey, newest);
    }
    if (this.unseenFailed) {
      this.updateUnseen();
      this.emit(['seen']);
    }
  }

  emit(states) {
    this.dispatchEvent(new CustomEvent('change', {detail: new Set(states)}));
  }
}
