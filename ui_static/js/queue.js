// The Queue panel: jobs in run order, cancel, priority, pause/resume, clear.
import { ApiError, api } from './api.js';
import { byId, formatTime, h, plural, toast } from './dom.js';

const REFRESH_ON = ['queued', 'started', 'completed', 'failed', 'cancelled', 'queue', 'deleted'];
const REFRESH_MS = 1000; // the most often job events make the panel ask for the queue
const PAGE = 100; // jobs the panel lists; the badge counts them all

/** Keeps the queue list in step with the daemon. */
export class QueuePanel {
  constructor({ events }) {
    this.paused = false;
    this.items = [];
    this.total = 0;
    this.waiting = 0; // queued jobs, not running ones
    this.timer = null;
    this.lastRefresh = 0;
    this.inFlight = null;
    byId('queue-toggle').addEventListener('click', () => this.togglePause());
    byId('queue-clear').addEventListener('click', () => this.clear());
    for (const type of REFRESH_ON) events.on(type, () => this.refreshSoon());
    // After a reconnect the live card catches up from the same answer: one GET /queue.
    this.onResync = null;
    // Every fresh answer (the live card shows whether the queue is paused, and its position).
    this.onChange = null;
    events.on('resync', async () => {
      const queue = await this.refresh();
      if (queue && this.onResync) this.onResync(queue);
    });
    events.on('progress', (e) => this.progress(e.job_id, e.data));
  }

  refreshSoon() {
    // Throttled: a steady stream of job events costs at most one request per REFRESH_MS,
    // and the last event of a burst is always followed by one.
    if (this.timer) return;
    const wait = Math.max(100, this.lastRefresh + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, wait);
  }

  /** Fetch and show the queue; returns it (null when the daemon is away). */
  async refresh() {
    // One request at a time: a call during one gets its answer, and another follows it.
    if (this.inFlight) {
      return this.inFlight.then((queue) => {
        this.refreshSoon();
        return queue;
      });
    }
    this.lastRefresh = Date.now();
    this.inFlight = (async () => {
      try {
        // The first page is what the panel shows; total counts the rest.
        const queue = await api(`/queue?limit=${PAGE}`);
        this.paused = queue.paused;
        this.items = queue.items;
        this.total = queue.total ?? queue.items.length;
        this.render();
        this.onChange?.(queue);
        return queue;
      } catch {
        return null; // Shown by the connection indicator.
      }
    })();
    try {
      return await this.inFlight;
    } finally {
      this.inFlight = null;
    }
  }

  render() {
    byId('queue-state').textContent = this.paused ? 'Paused' : 'Running';
    byId('queue-state').dataset.state = this.paused ? 'paused' : 'running';
    byId('queue-toggle').textContent = this.paused ? 'Resume queue' : 'Pause queue';
    const count = byId('queue-count');
    const total = Math.max(this.total, this.items.length);
    count.hidden = total === 0;
    count.textContent = String(total);
    count.setAttribute('aria-label', `${plural(total, 'job')} in the queue`);
    // The running jobs are all on the first page (they come first in run order).
    this.waiting = total - this.items.filter((job) => job.status === 'processing').length;
    const clear = byId('queue-clear');
    clear.disabled = this.waiting === 0;
    clear.title = this.waiting ? `Cancel the ${plural(this.waiting, 'waiting job')}; running ones go on` : 'Nothing is waiting';
    byId('queue-empty').hidden = this.items.length > 0;
    this.renderList();
  }

  /** Rows are updated in place and reordered, not rebuilt: a priority field being edited keeps
   * its focus and what was typed in it. The row holding the focus never moves (moving it would
   * blur the field, which commits a half-typed priority); the others move around it. */
  renderList() {
    const list = byId('queue-list');
    const existing = new Map([...list.children].map((li) => [li.dataset.job, li]));
    const rows = this.items.map((job) => {
      const li = existing.get(job.id);
      existing.delete(job.id);
      return li ? this.update(li, job) : this.row(job);
    });
    for (const li of existing.values()) li.remove();
    const still = rows.findIndex((li) => li.contains(document.activeElement));
    if (still < 0) {
      list.append(...rows);
      return;
    }
    rows[still].before(...rows.slice(0, still));
    rows[still].after(...rows.slice(still + 1));
  }

  update(li, job) {
    const fresh = this.row(job);
    li.className = fresh.className;
    li.querySelector('.q-main').replaceWith(fresh.querySelector('.q-main'));
    const input = li.querySelector('.prio-input');
    if (input !== document.activeElement) input.value = String(job.priority);
    input.disabled = job.status === 'processing';
    const cancel = li.querySelector('.q-actions .btn.danger');
    cancel.setAttribute('aria-label', fresh.querySelector('.q-actions .btn.danger').getAttribute('aria-label'));
    return li;
  }

  row(job) {
    const req = job.request || {};
    const running = job.status === 'processing';
    const priority = h('input', {
      type: 'number', min: '-100', max: '100', step: '1', value: String(job.priority),
      id: `prio-${job.id}`, class: 'prio-input', disabled: running,
      onchange: (e) => this.setPriority(job.id, Number(e.target.value)),
    });
    return h('li', { class: `queue-item ${job.status}`, dataset: { job: job.id } },
      h('div', { class: 'q-main' },
        h('div', { class: 'q-top' },
          h('span', { class: `status ${job.status}` }, running ? 'Running' : `#${(job.position ?? 0) + 1}`),
          h('span', { class: 'q-prompt', title: req.prompt }, req.prompt || '(no prompt)')),
        h('div', { class: 'q-meta muted' },
          [req.model, req.width && `${req.width}×${req.height}`, req.steps && plural(req.steps, 'step'),
            req.batch_size > 1 && `×${req.batch_size}`, formatTime(job.created_at)].filter(Boolean).join(' · ')),
        running ? h('div', { class: 'progress small', role: 'progressbar', 'aria-label': 'Job progress',
          'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(Math.round(job.progress * 100)),
          style: `--value:${Math.round(job.progress * 100)}%` }, h('div', { class: 'progress-fill' })) : null),
      h('div', { class: 'q-actions' },
        h('label', { for: priority.id, class: 'prio-label' }, 'Priority'), priority,
        h('button', { type: 'button', class: 'btn danger', 'aria-label': `Cancel job: ${req.prompt || job.id}`,
          onclick: () => this.cancel(job.id) }, 'Cancel')));
  }

  progress(jobId, data) {
    const bar = byId('queue-list').querySelector(`[data-job="${CSS.escape(jobId || '')}"] .progress`);
    if (!bar || !data) return;
    const pct = Math.round((data.progress ?? 0) * 100);
    bar.style.setProperty('--value', `${pct}%`);
    bar.setAttribute('aria-valuenow', String(pct));
  }

  async setPriority(jobId, priority) {
    try {
      await api(`/generate/${jobId}`, { method: 'PATCH', body: { priority } });
    } catch (err) {
      toast(err instanceof ApiError && err.status === 409 ? 'Only queued jobs can change priority.' : err.message, 'error');
    }
    this.refresh();
  }

  async cancel(jobId) {
    try {
      await api(`/generate/${jobId}/cancel`, { method: 'POST' });
    } catch (err) {
      toast(err.message, 'error');
    }
    this.refresh();
  }

  /** Cancel every waiting job (POST /queue/clear); a running job goes on. */
  async clear() {
    const n = this.waiting;
    const what = n === 1 ? '1 waiting job' : `${n} waiting jobs`;
    if (!window.confirm(`Cancel ${what}? A running job goes on.`)) return;
    try {
      const res = await api('/queue/clear', { method: 'POST' });
      const count = res.cancelled.length;
      toast(`Cancelled ${count} queued ${count === 1 ? 'job' : 'jobs'}.`);
    } catch (err) {
      toast(err.message, 'error');
    }
    this.refresh();
  }

  async togglePause() {
    try {
      const res = await api(this.paused ? '/queue/resume' : '/queue/pause', { method: 'POST' });
      this.paused = res.paused;
      this.render();
    } catch (err) {
      toast(err.message, 'error');
    }
  }
}
