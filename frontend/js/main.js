// The app: login, the shell (top bar, navigation), the pages by URL hash, session expiry.
import {Api} from './api.js';
import {h, icon} from './dom.js';
import {closeAllModals} from './modal.js';
import {loginPage} from './login-page.js';
import {TaskStore} from './task-store.js';
import {TaskButton} from './task-button.js';
import {TasksDialog} from './tasks-dialog.js';
import {clearToasts} from './toast.js';

export const EXPIRED = 'Your session expired, please log in again';

const api = new Api();
const app = document.getElementById('app');
let session = null;

const ROUTES = [
  [/^#\/pools\/([^/]+)\/set-pgs$/, () => import('./pg-form.js'), 'pools'],
  [/^#\/rbd(?:\/([^/?]+))?(?:\?task=(\d+))?$/, () => import('./rbd-page.js'), 'rbd'],
  [/^#\/pools$/, () => import('./pools-page.js'), 'pools'],
];

function showLogin(message, kind) {
  document.title = 'Log in · bgtasks';
  app.replaceChildren(loginPage({api, message, messageKind: kind, onLogin: startSession}));
}

function userMenu(user) {
  const menu = h('div#user-menu.menu', {role: 'menu', hidden: true},
    h('div.menu-info', null, `Role: ${user.role}`),
    h('button#logout.menu-item', {type: 'button', role: 'menuitem', onclick: logout}, 'Log out'));
  const name = h('button#user-name.user-name', {type: 'button', 'aria-haspopup': 'menu',
    'aria-expanded': 'false', 'aria-controls': 'user-menu'},
  icon('user'), h('span.user-label', null, user.username), icon('caret', 'icon caret'));
  const toggle = (open) => {
    menu.hidden = !open;
    name.setAttribute('aria-expanded', String(open));
    if (open) menu.querySelector('button').focus();
  };
  name.addEventListener('click', () => toggle(menu.hidden));
  menu.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { toggle(false); name.focus(); }
  });
  document.addEventListener('click', (ev) => {
    if (!menu.hidden && !ev.target.closest('.user-box')) toggle(false);
  });
  return h('div.user-box', null, name, menu);
}

function shell(user, button) {
  const offline = h('span#offline.offline', {hidden: true, role: 'status'},
    'Connection lost — retrying…');
  const nav = h('nav.sidebar', {'aria-label': 'Main'},
    h('a', {href: '#/pools', dataset: {section: 'pools'}}, icon('pools'), 'Pools'),
    h('a', {href: '#/rbd', dataset: {section: 'rbd'}}, icon('disk'), 'RBD images'));
  const main = h('main#main.content', {tabindex: -1});
  const top = h('header.topbar', null,
    h('a.brand', {href: '#/pools', 'aria-label': 'bgtasks home'}, icon('tasks', 'logo'),
      h('span.brand-name', null, 'bgtasks'), h('span.brand-sub', null, 'Ceph background tasks')),
    h('div.topbar-right', null, offline, button.el, userMenu(user)));
  return {el: h('div.shell', null, h('div.strip'), top, h('div.layout', null, nav, main)),
    main, nav, offline};
}

async function route() {
  if (!session) return;
  const hash = location.hash || '#/pools';
  const found = ROUTES.find(([re]) => re.test(hash));
  if (!found) { location.replace('#/pools'); return; }
  const [re, load, section] = found;
  const args = hash.match(re).slice(1).map((a) => (a === undefined ? a : decodeURIComponent(a)));
  const mine = session;
  const mod = await load();
  if (session !== mine) return;
  if (session.page) session.page.unmount();
  for (const a of session.shell.nav.querySelectorAll('a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  session.page = mod.mount(session.shell.main, session.ctx, ...args);
}

function startSession(user) {
  const store = new TaskStore(api, user);
  const ctx = {api, store, user};
  const dialog = new TasksDialog(ctx);
  const button = new TaskButton(store, () => dialog.open());
  const sh = shell(user, button);
  store.addEventListener('change', (ev) => {
    if (ev.detail.has('online')) sh.offline.hidden = store.online;
  });
  session = {user, store, ctx, dialog, shell: sh, page: null};
  ctx.dialog = dialog;
  app.replaceChildren(sh.el);
  document.title = 'bgtasks · Ceph background tasks';
  store.start();
  route();
}

function endSession() {
  if (!session) return;
  session.store.stop();
  closeAllModals();
  if (session.page) session.page.unmount();
  session = null;
  clearToasts();
}

async function logout() {
  try { await api.logout(); } catch { /* the session is gone either way */ }
  endSession();
  showLogin('You have logged out.', 'info');
}

api.onExpired = () => {
  if (!session) return;
  endSession();
  showLogin(EXPIRED, 'warning');
};

window.addEventListener('hashchange', route);

api.me().then(startSession, (err) => {
  showLogin(err.status === 401 ? '' : `The server did not answer: ${err.message}`, 'danger');
});
