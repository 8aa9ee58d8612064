// The Queue panel's "Failed recently": jobs that failed while you were away, with the reason,
// a Retry (the same request, queued again) and a Dismiss (the record is deleted).
import { api } from './api.js';
import { byId, formatTime, h, toast } from './dom.js';

const SHOWN = 5; // failed jobs listed, newest first
const REFRESH_MS = 1000; // the most often failure events make the list ask again

/** Keeps the list of recent failures in step with the daemon. */
export class FailedList {
  constructor({ events, onQueued }) {
    this.onQueued = onQueued;
    this.timer = null;
    for (const type of ['failed', 'deleted', 'resync']) events.on(type, () => this.refreshSoon());
  }

  refreshSoon() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, REFRESH_MS);
  }

  async refresh() {
    try {
      const page = await api(`/history?status=failed&limit=${SHOWN}`);
      this.render(page.items);
    } catch {
      // Shown by the connection indicator.
    }
  }

  render(jobs) {
    byId('failed-box').hidden = jobs.length === 0;
    byId('failed-list').replaceChildren(...jobs.map((job) => this.row(job)));
  }

  row(job) {
    const req = job.request || {};
    const what = req.prompt || job.id;
    return h('li', { class: 'queue-item failed', dataset: { job: job.id } },
      h('div', { class: 'q-main' },
        h('div', { class: 'q-top' },
          h('span', { class: 'status failed' }, 'Failed'),
          h('span', { class: 'q-prompt', title: req.prompt }, req.prompt || '(no prompt)')),
        h('div', { class: 'q-meta muted' },
          [req.model, req.width && `${req.width}×${req.height}`, formatTime(job.completed_at || job.created_at)]
            .filter(Boolean).join(' · ')),
        h('p', { class: 'q-error' }, job.error || 'no reason given')),
      h('div', { class: 'q-actions' },
        h('button', { type: 'button', class: 'btn', 'aria-label': `Retry: ${what}`, onclick: () => this.retry(job) }, 'Retry'),
        h('button', { type: 'button', class: 'btn ghost', 'aria-label': `Dismiss: ${what}`, onclick: () => this.dismiss(job.id) }, 'Dismiss')));
  }

  /** Queue the same request again (its images included, while the daemon still keeps them). */
  async retry(job) {
    try {
      const queued = await api('/generate', {
        method: 'POST', body: job.request, headers: { 'Idempotency-Key': crypto.randomUUID() },
      });
      this.onQueued?.(queued, job.request);
      toast('Queued again.');
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  async dismiss(jobId) {
    try {
      await api(`/generate/${jobId}`, { method: 'DELETE' });
    } catch (err) {
      toast(err.message, 'error');
    }
    this.refresh();
  }
}
