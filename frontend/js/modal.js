// Modal dialogs, stacked: the page and lower dialogs are inert, Tab cycles inside the top one,
// Esc closes it, and focus returns to what had it before.
import {focusable, h, icon} from './dom.js';

const stack = [];

function layers() {
  return [document.getElementById('app'), ...stack.map((m) => m.backdrop)];
}

function updateInert() {
  const all = layers();
  all.forEach((el, i) => { el.inert = i < all.length - 1; });
}

document.addEventListener('keydown', (ev) => {
  const top = stack[stack.length - 1];
  if (!top) return;
  if (ev.key === 'Escape') {
    ev.preventDefault();
    ev.stopPropagation();
    top.close();
  } else if (ev.key === 'Tab') {
    const items = focusable(top.dialog);
    if (!items.length) { ev.preventDefault(); return; }
    const first = items[0];
    const last = items[items.length - 1];
    const inside = top.dialog.contains(document.activeElement);
    if (ev.shiftKey && (document.activeElement === first || !inside)) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && (document.activeElement === last || !inside)) {
      ev.preventDefault();
      first.focus();
    }
  }
}, true);

// Opens `content` in a dialog; returns {dialog, close}. `onClose` runs once when it closes.
export function openModal({title, content, footer, className = '', role = 'dialog',
  onClose, initialFocus, id}) {
  const titleId = `modal-title-${stack.length}-${Date.now()}`;
  const closeBtn = h('button.icon-button.modal-close', {type: 'button', 'aria-label': 'Close'},
    icon('close'));
  const dialog = h(`section.modal${className ? '.' + className : ''}`,
    {role, 'aria-modal': 'true', 'aria-labelledby': titleId, id},
    h('header.modal-header', null, h('h2.modal-title', {id: titleId}, title), closeBtn),
    h('div.modal-body', null, content),
    footer ? h('footer.modal-footer', null, footer) : null);
  const backdrop = h('div.modal-backdrop', null, dialog);
  const returnTo = document.activeElement;
  const entry = {dialog, backdrop, closed: false, close};
  function close() {
    if (entry.closed) return;
    entry.closed = true;
    stack.splice(stack.indexOf(entry), 1);
    backdrop.remove();
    updateInert();
    if (onClose) onClose();
    if (returnTo && returnTo.isConnected && !returnTo.closest('[inert]')) returnTo.focus();
  }
  closeBtn.addEventListener('click', close);
  backdrop.addEventListener('mousedown', (ev) => { if (ev.target === backdrop) close(); });
  stack.push(entry);
  document.getElementById('modals').append(backdrop);
  updateInert();
  const target = (initialFocus && initialFocus()) || focusable(dialog)[0] || dialog;
  if (target === dialog) dialog.tabIndex = -1;
  target.focus();
  return entry;
}

export function closeAllModals() {
  while (stack.length) stack[stack.length - 1].close();
}

// A yes/no question; resolves true when confirmed. Cancel has the focus at first.
export function confirmDialog({title, message, confirmLabel = 'Delete', danger = true}) {
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h('button.btn', {type: 'button'}, 'Cancel');
    const ok = h(`button.btn${danger ? '.btn-danger' : '.btn-primary'}`, {type: 'button'},
      confirmLabel);
    const body = h('div.confirm-text', {id: 'confirm-text'}, message);
    const modal = openModal({
      title, content: body, footer: [cancel, ok], role: 'alertdialog', className: 'confirm',
      id: 'confirm-dialog', onClose: () => resolve(answer), initialFocus: () => cancel,
    });
    modal.dialog.setAttribute('aria-describedby', 'confirm-text');
    cancel.addEventListener('click', () => modal.close());
    ok.addEventListener('click', () => { answer = true; modal.close(); });
  });
}
