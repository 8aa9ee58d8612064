// The Models panel: installed models, what is loaded, and install when the daemon offers it.
import { ApiError, API, api } from './api.js';
import { byId, formatBytes, h, toast } from './dom.js';
import { getToken } from './state.js';

/** Lists models; the install form appears only if /models/install exists. */
export class ModelsPanel {
  constructor({ events, onUse }) {
    this.onUse = onUse;
    this.models = [];
    this.loaded = new Set();
    byId('install-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.install();
    });
    // Install progress arrives as events; their exact shape belongs to the model manager.
    events.on('event', (e) => {
      if (/install|download/.test(e.type) && typeof e.data?.progress === 'number') this.installProgress(e.data);
    });
  }

  async refresh() {
    const [models, system] = await Promise.all([api('/models'), api('/system').catch(() => null)]);
    this.models = models;
    this.loaded = new Set((system?.loaded_models || []).map((m) => m.model));
    this.render();
    this.probeInstall();
    return models;
  }

  render() {
    const list = byId('models-list');
    if (!this.models.length) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No models installed.'));
      return;
    }
    list.replaceChildren(...this.models.map((m) => {
      const d = m.defaults || {};
      return h('article', { class: 'card model', dataset: { model: m.id } },
        h('div', { class: 'model-head' },
          h('h2', {}, m.name || m.id),
          this.loaded.has(m.id) ? h('span', { class: 'pill ok' }, 'Loaded') : null),
        h('div', { class: 'tags' },
          h('span', { class: 'tag' }, m.family), h('span', { class: 'tag' }, m.type),
          m.inpaint ? h('span', { class: 'tag accent' }, 'inpaint') : null,
          m.prediction_type && m.prediction_type !== 'epsilon' ? h('span', { class: 'tag' }, m.prediction_type) : null,
          m.read_only ? h('span', { class: 'tag' }, 'read-only') : null),
        h('dl', { class: 'kv' },
          h('dt', {}, 'Id'), h('dd', {}, h('code', {}, m.id)),
          h('dt', {}, 'Size'), h('dd', {}, formatBytes(m.size)),
          h('dt', {}, 'Defaults'), h('dd', {}, `${d.width}×${d.height}, ${d.steps} steps, CFG ${d.cfg_scale}, ${d.sampler}`),
          h('dt', {}, 'Path'), h('dd', { class: 'path', title: m.path }, m.path)),
        m.type === 'checkpoint' ? h('button', {
          type: 'button', class: 'btn', onclick: () => this.onUse(m), 'aria-label': `Use ${m.name || m.id} to generate`,
        }, 'Use for generation') : null);
    }));
  }

  async probeInstall() {
    if (this.installKnown) return;
    let exists = false;
    try {
      const token = getToken();
      const res = await fetch(`${API}/models/install`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      exists = res.status !== 404;
    } catch {
      return;
    }
    this.installKnown = true;
    byId('install-card').hidden = !exists;
    byId('install-missing').hidden = exists;
  }

  async install() {
    const input = byId('install-source');
    const error = byId('err-install-source');
    const source = input.value.trim();
    error.hidden = true;
    if (!source) {
      error.textContent = 'Enter a catalog name, a Hugging Face id or a URL.';
      error.hidden = false;
      input.focus();
      return;
    }
    try {
      await api('/models/install', { method: 'POST', body: { source } });
      this.installProgress({ progress: 0, message: `Installing ${source}…` });
    } catch (err) {
      const field = err instanceof ApiError ? err.errors[0] : null;
      error.textContent = field ? field.message : err.message;
      error.hidden = false;
    }
  }

  installProgress(data) {
    const box = byId('install-progress');
    box.hidden = false;
    const pct = Math.round((data.progress || 0) * 100);
    const bar = box.querySelector('.progress');
    bar.style.setProperty('--value', `${pct}%`);
    bar.setAttribute('aria-valuenow', String(pct));
    byId('install-status').textContent = data.message || `${pct}%`;
    if (pct >= 100) {
      toast('Model installed.');
      this.refresh();
    }
  }
}
