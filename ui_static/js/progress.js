// The live panel: the running job's step, percentage, ETA and preview; cancel; final images.
import { ApiError, api, withToken } from './api.js';
import { byId, formatDuration, h, toast } from './dom.js';

/** Follows the job that is running now (or the one this page just queued). */
export class LiveProgress {
  constructor({ events, onResults, onOpen }) {
    this.onResults = onResults;
    this.onOpen = onOpen;
    this.current = null;
    this.mine = new Set();
    this.timing = null;
    this.previews = 0;
    this.card = byId('live');
    byId('live-cancel').addEventListener('click', () => this.cancel());
    events.on('queued', (e) => this.mine.has(e.job_id) && this.current === e.job_id && this.setQueued(e.data));
    events.on('started', (e) => this.start(e.job_id));
    events.on('progress', (e) => this.progress(e.job_id, e.data));
    events.on('completed', (e) => this.finish(e.job_id, 'completed', e.data));
    events.on('failed', (e) => this.finish(e.job_id, 'failed', e.data));
    events.on('cancelled', (e) => this.finish(e.job_id, 'cancelled', e.data));
  }

  /** Pick up a job that was already running when the page opened, from GET /queue's answer. */
  async load(queue) {
    if (!queue) return;
    try {
      const running = queue.items.find((j) => j.status === 'processing');
      if (running) {
        this.start(running.id);
        if (running.total_steps) {
          this.progress(running.id, { step: running.current_step, total: running.total_steps, progress: running.progress });
        }
      } else if (this.current) {
        // The job we showed ended while we were away: show how it ended.
        const job = await api(`/generate/${this.current}`);
        if (job.status !== 'processing' && job.status !== 'queued') {
          this.finish(job.id, job.status, { results: job.results, error: job.error });
        }
      }
    } catch {
      // The connection indicator already says the daemon is away.
    }
  }

  /** A job this page submitted: show it as queued until it starts. */
  track(job) {
    this.mine.add(job.id);
    if (this.card.dataset.state === 'running') return;
    // A short job's events can overtake the answer to its POST: the card already shows it
    // running or ended, and "queued" would be a step back.
    if (this.current === job.id) return;
    this.current = job.id;
    this.setState('queued', 'Queued', job.position ? `Position ${job.position + 1} in the queue` : 'Starting next…');
    this.setBar(0);
    byId('live-cancel').hidden = false;
    // On one-column layouts the output sits below the form; bring it into view.
    if (window.matchMedia('(max-width: 900px)').matches) this.card.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  setQueued(data) {
    if (data && Number.isInteger(data.position)) byId('live-sub').textContent = `Position ${data.position + 1} in the queue`;
  }

  start(jobId) {
    if (this.current === jobId && this.card.dataset.state === 'running') return;
    this.current = jobId;
    this.timing = null;
    this.previews = 0;
    this.card.dataset.previews = '0';
    this.card.dataset.job = jobId;
    this.setState('running', 'Generating…', '');
    byId('live-cancel').hidden = false;
    byId('live-step').textContent = 'Step –';
    byId('live-eta').textContent = 'ETA –';
    this.setBar(0);
    api(`/generate/${jobId}`).then((job) => {
      if (this.current === jobId && job.request) byId('live-sub').textContent = job.request.prompt;
    }).catch(() => {});
  }

  progress(jobId, data) {
    if (this.current !== jobId || this.card.dataset.state !== 'running') this.start(jobId);
    const { step = 0, total = 0, progress = total ? step / total : 0 } = data || {};
    this.setBar(progress);
    byId('live-step').textContent = `Step ${step} / ${total}`;
    const now = performance.now();
    if (!this.timing || step < this.timing.step) this.timing = { t: now, step };
    else if (step > this.timing.step && total) {
      const perStep = (now - this.timing.t) / 1000 / (step - this.timing.step);
      byId('live-eta').textContent = `ETA ${formatDuration(perStep * (total - step))}`;
    }
    if (data?.preview) {
      const img = byId('live-preview');
      img.src = data.preview;
      img.hidden = false;
      byId('results').replaceChildren();
      byId('stage-empty').hidden = true;
      this.previews += 1;
      this.card.dataset.previews = String(this.previews);
    }
  }

  finish(jobId, status, data) {
    if (this.current !== jobId && !this.mine.has(jobId)) return;
    this.current = jobId;
    byId('live-cancel').hidden = true;
    byId('live-eta').textContent = 'ETA –';
    if (status === 'completed') {
      const results = data?.results || [];
      this.setBar(1);
      this.setState('completed', 'Done', `${results.length} image${results.length === 1 ? '' : 's'}`);
      this.showResults(jobId, results);
      this.onResults?.(jobId, results);
    } else if (status === 'failed') {
      this.setState('failed', 'Failed', data?.error || 'The job failed.');
    } else {
      this.setState('cancelled', 'Cancelled', 'The job was cancelled.');
    }
  }

  showResults(jobId, results) {
    const box = byId('results');
    box.dataset.job = jobId;
    box.dataset.count = String(results.length);
    box.replaceChildren(...results.map((r, i) => h('button', {
      type: 'button', class: 'result', 'aria-label': `Open image ${i + 1} (seed ${r.seed})`,
      onclick: () => this.onOpen?.(jobId, r.index),
    }, h('img', { src: withToken(r.url), alt: `Generated image ${i + 1}, seed ${r.seed}`, width: r.width, height: r.height }))));
    box.classList.toggle('many', results.length > 1);
    byId('live-preview').hidden = true;
    byId('stage-empty').hidden = results.length > 0;
  }

  async cancel() {
    if (!this.current) return;
    const button = byId('live-cancel');
    button.disabled = true;
    try {
      await api(`/generate/${this.current}/cancel`, { method: 'POST' });
      byId('live-sub').textContent = 'Cancelling…';
    } catch (err) {
      toast(err instanceof ApiError && err.status === 409 ? 'That job has already finished.' : err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  setState(state, title, sub) {
    this.card.dataset.state = state;
    byId('live-title').textContent = title;
    byId('live-sub').textContent = sub;
  }

  setBar(fraction) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    const bar = byId('live-bar');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.style.setProperty('--value', `${pct}%`);
    byId('live-pct').textContent = `${pct}%`;
  }
}
