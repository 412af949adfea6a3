// Deleting tasks: pending ones are aborted, and only after the user read what that means.
import {h} from './dom.js';
import {confirmDialog} from './modal.js';
import {plural} from './format.js';
import {toast} from './toast.js';

export const ABORT_WARNING = 'Deleting a pending task does not stop the step that is running ' +
  'now; its follow-up steps are cancelled, and nothing it has done so far is undone. ' +
  'The task will then appear under Failed.';

export async function deleteTasks({api, store}, tasks) {
  const pending = tasks.filter((t) => t.state === 'pending');
  if (pending.length) {
    const title = tasks.length === 1 ? 'Delete a pending task?'
      : `Delete ${tasks.length} tasks, ${pending.length} of them pending?`;
    const names = pending.slice(0, 5).map((t) => h('li', null, t.description));
    if (pending.length > 5) names.push(h('li', null, `and ${pending.length - 5} more`));
    const ok = await confirmDialog({
      title, confirmLabel: pending.length === tasks.length && pending.length === 1
        ? 'Delete pending task' : 'Delete',
      message: [h('p.warning-text', null, ABORT_WARNING), h('ul.task-names', null, names)],
    });
    if (!ok) return false;
  }
  let aborted = 0;
  let deleted = 0;
  const errors = [];
  const queue = [...tasks];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      if (t.state === 'pending') store.markAborted(t);
      try {
        const res = await api.deleteTask(t.id);
        if (res.status === 200) aborted += 1;
        else deleted += 1;
      } catch (err) {
        if (err.status === 404) deleted += 1;
        else errors.push(`${t.description}: ${err.message}`);
      }
    }
  };
  await Promise.all(Array.from({length: Math.min(8, tasks.length)}, worker));
  if (aborted) {
    toast('warning', `${plural(aborted, 'pending task')} aborted`,
      'Listed under Failed now; what was done so far stays done.');
  }
  if (deleted) toast('success', `${plural(deleted, 'task')} deleted`);
  if (errors.length) toast('error', 'Could not delete', errors.slice(0, 3).join('\n'));
  await store.refresh();
  return true;
}
