// The "Background-Tasks" button of the top bar: pending tasks, their average percent, and a
// warning look while tasks failed that the user has not seen in the Failed tab yet.
import {h, icon} from './dom.js';

export class TaskButton {
  constructor(store, onClick) {
    this.store = store;
    this.badge = h('span.badge', {hidden: true});
    this.warn = h('span.warn-mark', {hidden: true}, icon('warn'));
    this.sr = h('span.visually-hidden');
    this.el = h('button#bgtasks-button.tasks-button', {type: 'button', onclick: onClick,
      'aria-haspopup': 'dialog'},
    icon('tasks'), h('span.label', null, 'Background-Tasks'), this.badge, this.warn, this.sr);
    store.addEventListener('change', () => this.update());
    this.update();
  }

  update() {
    const pending = this.store.lists.pending || [];
    const n = pending.length;
    const avg = n ? Math.round(pending.reduce((s, t) => s + t.percent, 0) / n) : 0;
    const failed = this.store.unseenFailed;
    this.badge.hidden = n === 0;
    this.badge.textContent = n ? `${n} · ${avg} %` : '';
    this.warn.hidden = failed === 0;
    this.el.classList.toggle('warning', failed > 0);
    this.el.classList.toggle('busy', n > 0);
    this.el.dataset.pending = String(n);
    this.el.dataset.percent = String(avg);
    this.el.dataset.failed = String(failed);
    let text = n ? `: ${n} pending, ${avg} % done on average` : ': none pending';
    if (failed) text += `; ${failed} failed since you last looked`;
    this.sr.textContent = text;
    this.el.title = `Background-Tasks${text}`;
  }
}
