// The login page; `message` is shown above the form (session expired, logged out).
import {h, icon} from './dom.js';

export function loginPage({api, message, messageKind = 'info', onLogin}) {
  const user = h('input#login-username', {name: 'username', autocomplete: 'username',
    required: true, autocapitalize: 'off', spellcheck: 'false'});
  const pass = h('input#login-password', {name: 'password', type: 'password', required: true,
    autocomplete: 'current-password'});
  const alert = h('p#login-message.alert', {role: 'alert', hidden: !message});
  const submit = h('button.btn.btn-primary.btn-block', {type: 'submit'}, 'Log in');
  const show = (text, kind) => {
    alert.hidden = !text;
    alert.textContent = text || '';
    alert.className = `alert alert-${kind}`;
  };
  show(message, messageKind);
  const form = h('form.login-card', {novalidate: true, 'aria-labelledby': 'login-title'},
    h('div.login-brand', null, icon('tasks', 'logo'),
      h('h1#login-title', null, 'bgtasks'), h('span.login-sub', null, 'Ceph background tasks')),
    alert,
    h('label', {for: 'login-username'}, 'Username'), user,
    h('label', {for: 'login-password'}, 'Password'), pass,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!user.value || !pass.value) {
      show('Enter your username and password.', 'danger');
      (user.value ? pass : user).focus();
      return;
    }
    submit.disabled = true;
    try {
      const session = await api.login(user.value, pass.value);
      onLogin({username: session.username, role: session.role});
    } catch (err) {
      show(err.status === 401 ? 'Wrong username or password.' : err.message, 'danger');
      pass.select();
      submit.disabled = false;
    }
  });
  const page = h('div.login-page', null, h('main', null, form));
  requestAnimationFrame(() => (user.value ? pass : user).focus());
  return page;
}
