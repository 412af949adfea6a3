// "Set PGs" of one pool: starts the set_pg_num task and returns to the pool list at once.
import {h} from './dom.js';
import {toast} from './toast.js';

const isPowerOfTwo = (n) => n > 0 && (n & (n - 1)) === 0;

export function mount(main, ctx, poolName) {
  const {api, store, user} = ctx;
  const page = h('div.page');
  main.replaceChildren(page);
  let alive = true;

  const back = () => { location.hash = '#/pools'; };
  if (user.role !== 'admin') {
    page.append(h('p.alert.alert-info', null, 'Read-only users cannot change pools.'),
      h('a', {href: '#/pools'}, 'Back to the pools'));
    return {unmount() {}};
  }

  api.pools().then((pools) => {
    if (!alive) return;
    const pool = pools.find((p) => p.name === poolName);
    if (!pool) {
      page.append(h('p.alert.alert-danger', {role: 'alert'}, `Pool '${poolName}' not found.`),
        h('a', {href: '#/pools'}, 'Back to the pools'));
      return;
    }
    build(pool);
  }, (err) => {
    if (alive && err.status !== 401) {
      page.append(h('p.alert.alert-danger', {role: 'alert'}, err.message));
    }
  });

  function build(pool) {
    const suggested = Math.max(1, pool.pg_num_target * 2);
    const input = h('input#pg-num', {type: 'number', min: 1, step: 1, required: true,
      value: String(suggested), 'aria-describedby': 'pg-num-hint'});
    const hint = h('p#pg-num-hint.hint');
    const autoscaleOn = pool.pg_autoscale_mode === 'on';
    const autoscale = autoscaleOn ? h('input#autoscale-off', {type: 'checkbox', checked: true})
      : null;
    const error = h('p#pg-form-error.alert.alert-danger', {role: 'alert', hidden: true});
    const submit = h('button#pg-submit.btn.btn-primary', {type: 'submit'}, 'Set PGs');
    const updateHint = () => {
      const n = Number(input.value);
      hint.textContent = Number.isInteger(n) && n > 0 && !isPowerOfTwo(n)
        ? `${n} is not a power of two: PGs will differ in size.`
        : 'A power of two keeps PGs the same size. You return to the pool list at once; ' +
          'the change runs as a background task.';
      hint.classList.toggle('hint-warn', Number.isInteger(n) && n > 0 && !isPowerOfTwo(n));
    };
    input.addEventListener('input', updateHint);
    updateHint();
    const form = h('form#pg-form.card.form-card', {novalidate: true},
      h('dl.facts', null,
        h('dt', null, 'PGs now'), h('dd', null, `${pool.pg_num} (pgp_num ${pool.pgp_num})`),
        h('dt', null, 'Target now'), h('dd', null, String(pool.pg_num_target)),
        h('dt', null, 'Autoscaler'), h('dd', null, pool.pg_autoscale_mode || '—')),
      h('label', {for: 'pg-num'}, 'New number of PGs'), input, hint,
      autoscale ? h('label.check', null, autoscale,
        ' Turn the PG autoscaler off for this pool (it would undo the change otherwise)') : null,
      error,
      h('div.form-actions', null, submit,
        h('a.btn', {href: '#/pools'}, 'Cancel')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const n = Number(input.value);
      if (!Number.isInteger(n) || n < 1) {
        error.hidden = false;
        error.textContent = 'Enter a whole number of at least 1.';
        input.focus();
        return;
      }
      const body = {pool: pool.name, pg_num: n};
      if (autoscale && autoscale.checked) body.autoscale = 'off';
      submit.disabled = true;
      try {
        const res = await api.create('set_pg_num', body);
        store.track(res.data);
        store.refresh();
        toast('info', res.status === 201 ? 'Task started' : 'Already pending',
          res.data.description);
        back();
      } catch (err) {
        if (!alive) return;
        submit.disabled = false;
        error.hidden = false;
        error.textContent = err.message;
      }
    });
    page.append(h('div.page-head', null, h('h2', null, `Set PGs of pool ${pool.name}`),
      h('p', null, h('a', {href: '#/pools'}, '← Pools'))), form);
    input.focus();
    input.select();
  }

  return {unmount() { alive = false; }};
}
