// The live panel: this tab's job (step, percentage, ETA, preview, cancel, final images), one line
// for jobs from elsewhere, the paused queue, and what the card shows while the daemon is away.
import { ApiError, api, withToken } from './api.js';
import { byId, formatDuration, h, plural, toast } from './dom.js';
import { loadTab, saveTab } from './state.js';

const KEPT_JOBS = 100; // own job ids remembered across reloads
const BUFFERED_JOBS = 50; // jobs from elsewhere whose events are kept, in case they are ours
const ACTIVE = ['queued', 'running', 'offline'];

/** Follows the jobs this tab submitted; other clients' jobs never take the card. */
export class LiveProgress {
  constructor({ events, onResults, onOpen }) {
    this.onResults = onResults;
    this.onOpen = onOpen;
    const tab = loadTab();
    this.mine = new Set(Array.isArray(tab.mine) ? tab.mine : []);
    this.current = this.mine.has(tab.current) ? tab.current : null;
    this.others = new Map(); // running jobs of other clients: id -> {step, total, progress}
    // Events of jobs not (yet) known as ours: a short job's events can overtake the answer to
    // its POST, and are replayed once track() learns its id.
    this.buffered = new Map();
    this.paused = false;
    this.position = null;
    this.timing = null;
    this.previews = 0;
    this.card = byId('live');
    byId('live-cancel').addEventListener('click', () => this.cancel());
    byId('live-resume').addEventListener('click', () => this.resume());
    const on = (type, fn) => events.on(type, (e) => this.dispatch(type, e.job_id, e.data, fn));
    on('queued', (id, data) => this.queued(id, data));
    on('started', (id) => this.start(id));
    on('progress', (id, data) => this.progress(id, data));
    on('completed', (id, data) => this.finish(id, 'completed', data));
    on('failed', (id, data) => this.finish(id, 'failed', data));
    on('cancelled', (id, data) => this.finish(id, 'cancelled', data));
    events.on('deleted', (e) => this.deleted(e.job_id));
    events.on('queue', (e) => this.setPaused(Boolean(e.data?.paused)));
    events.on('state', (state) => state === 'offline' && this.daemonAway());
  }

  /** Route a job event: ours to the card, another client's to the one-line summary. */
  dispatch(type, jobId, data, handle) {
    if (this.mine.has(jobId)) {
      handle(jobId, data);
      return;
    }
    if (!this.buffered.has(jobId)) {
      this.buffered.set(jobId, []);
      if (this.buffered.size > BUFFERED_JOBS) this.buffered.delete(this.buffered.keys().next().value);
    }
    // Previews are large and only the latest matters.
    this.buffered.get(jobId).push([type, data?.preview ? { ...data, preview: undefined } : data, handle]);
    if (type === 'started' || type === 'progress') this.others.set(jobId, data || {});
    else this.others.delete(jobId);
    this.renderOthers();
  }

  save() {
    saveTab({ mine: [...this.mine].slice(-KEPT_JOBS), current: this.current });
  }

  /** Catch up from GET /queue's answer: at load, and after the daemon comes back. */
  async load(queue) {
    if (!queue) return;
    this.sync(queue);
    this.others = new Map(queue.items.filter((j) => j.status === 'processing' && !this.mine.has(j.id))
      .map((j) => [j.id, { step: j.current_step, total: j.total_steps, progress: j.progress }]));
    this.renderOthers();
    const id = this.current;
    if (!id) return;
    let job = queue.items.find((j) => j.id === id);
    try {
      job ??= await api(`/generate/${id}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && this.current === id) this.deleted(id);
      return; // Unreachable: the connection indicator says so.
    }
    if (this.current !== id) return;
    if (job.status === 'processing') {
      if (this.card.dataset.state !== 'running') this.start(id);
      if (job.total_steps) this.progress(id, { step: job.current_step, total: job.total_steps, progress: job.progress });
    } else if (job.status === 'queued') {
      this.showQueued(id, job.position);
    } else if (this.card.dataset.state !== job.status || byId('results').dataset.job !== id) {
      this.finish(id, job.status, { results: job.results, error: job.error });
    }
  }

  /** Every fresh GET /queue: whether it is paused, and where our queued job stands. */
  sync(queue) {
    if (!queue) return;
    this.setPaused(queue.paused);
    const job = queue.items.find((j) => j.id === this.current);
    if (job?.status === 'queued' && this.card.dataset.state === 'queued') this.showQueued(job.id, job.position);
  }

  /** A job this page submitted: show it as queued until it starts. */
  track(job) {
    this.mine.add(job.id);
    this.others.delete(job.id);
    this.renderOthers();
    const early = this.buffered.get(job.id) || [];
    this.buffered.delete(job.id);
    const busy = this.card.dataset.state === 'running' && this.current !== job.id;
    if (!busy && this.current !== job.id) {
      this.showQueued(job.id, job.position);
      // On one-column layouts the output sits below the form; bring it into view.
      if (window.matchMedia('(max-width: 900px)').matches) this.card.scrollIntoView({ behavior: 'smooth', block: 'start' });
    }
    this.save();
    // A short job's events can overtake the answer to its POST: play them now, in order.
    for (const [, data, handle] of early) handle(job.id, data);
  }

  queued(jobId, data) {
    // Queued again (the daemon restarted under it): the card starts over as queued.
    if (jobId === this.current) this.showQueued(jobId, data?.position);
  }

  showQueued(jobId, position) {
    this.current = jobId;
    this.position = Number.isInteger(position) ? position : null;
    this.card.dataset.job = jobId;
    this.setState('queued', 'Queued', this.queuedText());
    this.resetStats();
    byId('live-cancel').hidden = false;
    this.save();
  }

  queuedText() {
    const at = this.position === null ? '' : ` (position ${this.position + 1})`;
    if (this.paused) return `Waiting: the queue is paused${at}.`;
    if (this.position === null) return 'Waiting to start…';
    return this.position ? `Position ${this.position + 1} in the queue` : 'Starting next…';
  }

  start(jobId) {
    // Another of our jobs is running on a second worker: the card keeps the one it shows.
    if (jobId !== this.current && this.card.dataset.state === 'running') return;
    this.current = jobId;
    this.timing = null;
    this.previews = 0;
    this.card.dataset.previews = '0';
    this.card.dataset.job = jobId;
    this.setState('running', 'Generating…', '');
    byId('live-cancel').hidden = false;
    this.resetStats();
    this.save();
    api(`/generate/${jobId}`).then((job) => {
      if (this.current === jobId && this.card.dataset.state === 'running' && job.request) {
        byId('live-sub').textContent = job.request.prompt;
      }
    }).catch(() => {});
  }

  progress(jobId, data) {
    if (this.current !== jobId || this.card.dataset.state !== 'running') this.start(jobId);
    if (this.current !== jobId) return;
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
    // Another of our jobs ended while the card follows one still queued or running.
    if (jobId !== this.current && ACTIVE.includes(this.card.dataset.state)) return;
    this.current = jobId;
    this.card.dataset.job = jobId;
    byId('live-cancel').hidden = true;
    byId('live-eta').textContent = 'ETA –';
    this.save();
    if (status === 'completed') {
      const results = data?.results || [];
      this.setBar(1);
      this.setState('completed', 'Done', plural(results.length, 'image'));
      this.showResults(jobId, results);
      this.onResults?.(jobId, results);
    } else if (status === 'failed') {
      this.setState('failed', 'Failed', data?.error || 'The job failed.');
    } else {
      this.setState('cancelled', 'Cancelled', 'The job was cancelled.');
    }
  }

  /** A job's images were deleted (here or elsewhere): they leave the card too. */
  deleted(jobId) {
    this.buffered.delete(jobId);
    if (!this.mine.delete(jobId)) return;
    if (jobId === this.current) {
      byId('results').replaceChildren();
      byId('results').dataset.job = '';
      byId('live-preview').hidden = true;
      byId('stage-empty').hidden = false;
      byId('live-cancel').hidden = true;
      this.setState('deleted', 'Deleted', 'The image was deleted.');
    }
    this.save();
  }

  /** The daemon stopped answering: a running or queued job's card must not look alive. */
  daemonAway() {
    this.others.clear();
    this.renderOthers();
    if (!ACTIVE.includes(this.card.dataset.state)) return;
    this.setState('offline', 'Daemon unavailable',
      'Waiting for the daemon to come back: the job goes on, or is queued again, when it does.');
    byId('live-cancel').hidden = true;
    this.resetStats();
  }

  setPaused(paused) {
    this.paused = paused;
    byId('live-paused').hidden = !paused;
    const sub = byId('live-sub');
    if (this.card.dataset.state === 'queued' && sub.textContent !== this.queuedText()) sub.textContent = this.queuedText();
  }

  async resume() {
    const button = byId('live-resume');
    button.disabled = true;
    try {
      const res = await api('/queue/resume', { method: 'POST' });
      this.setPaused(Boolean(res?.paused));
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  renderOthers() {
    const line = byId('live-other');
    const [first] = this.others;
    line.hidden = !first;
    if (!first) return;
    const [id, data] = first;
    line.dataset.job = id;
    const pct = Math.round((data.progress ?? (data.total ? data.step / data.total : 0)) * 100);
    line.textContent = this.others.size > 1
      ? `${this.others.size} jobs from elsewhere are running.`
      : `A job from elsewhere is running (${pct}%).`;
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
    // Written only when changed: the two lines are a live region, read out on each change.
    for (const [id, text] of [['live-title', title], ['live-sub', sub]]) {
      if (byId(id).textContent !== text) byId(id).textContent = text;
    }
  }

  resetStats() {
    this.setBar(0);
    byId('live-step').textContent = 'Step –';
    byId('live-eta').textContent = 'ETA –';
  }

  setBar(fraction) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    const bar = byId('live-bar');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.style.setProperty('--value', `${pct}%`);
    byId('live-pct').textContent = `${pct}%`;
  }
}
