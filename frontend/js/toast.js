// Toasts: short notices in the top right corner; failures stay longer and are announced.
import {h, icon} from './dom.js';

const MAX_VISIBLE = 5;

export function toast(kind, title, text = '', {seconds} = {}) {
  const box = document.getElementById('toasts');
  const close = h('button.icon-button', {type: 'button', 'aria-label': 'Dismiss'}, icon('close'));
  const el = h(`div.toast.toast-${kind}`, {role: kind === 'error' ? 'alert' : 'status'},
    h('span.toast-icon', null, icon(kind === 'error' ? 'fail' : kind === 'warning' ? 'warn' :
      kind === 'success' ? 'ok' : 'info')),
    h('div.toast-text', null, h('strong', null, title), text ? h('div', null, text) : null),
    close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  box.prepend(el);
  while (box.children.length > MAX_VISIBLE) box.lastElementChild.remove();
  setTimeout(remove, (seconds || (kind === 'error' ? 12 : 6)) * 1000);
  return el;
}

export function clearToasts() {
  document.getElementById('toasts').replaceChildren();
}
