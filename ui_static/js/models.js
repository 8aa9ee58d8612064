// The Models panel: installed models by type, what the workers hold now, load/unload, remove.
import { api } from './api.js';
import { byId, formatBytes, formatDuration, h, plural, toast } from './dom.js';
import { Installs } from './installs.js';
import { isRefiner } from './refiner.js';

const GROUPS = { checkpoint: 'Checkpoints', lora: 'LoRAs', embedding: 'Embeddings', vae: 'VAEs' };
// What a card's button does with a LoRA or an embedding in the Generate form.
const ADD_LABELS = { lora: 'Add to the LoRAs', embedding: 'Add to the prompt' };
const LOADED_EVERY = 5; // seconds between /models/loaded polls while the panel is open
const WAIT_MS = 20_000; // how long Load/Unload watch for the worker to do it
const listeners = new Set();

/** Call fn(models) with every list the panel fetches: after an install or a removal, and when
 * the panel opens (models copied into the folder by hand show up there). */
export function onModelsChanged(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Where a model came from, without the folders of this machine: hub ids and URLs whole,
 * a local file or folder by its name only. */
export function shownSource(source) {
  if (!/^(\/|~|[A-Za-z]:[\\/]|file:)/.test(source)) return source;
  const name = source.replace(/[\\/]+$/, '').split(/[\\/]/).pop();
  return `local: ${name}`;
}

/** Installed models grouped by type, the install form, and the "Loaded now" list. */
export class ModelsPanel {
  constructor({ events, onUse, onAdd }) {
    this.onUse = onUse;
    // A LoRA or an embedding picked here goes into the Generate form (A1111's extra networks).
    this.onAdd = onAdd;
    this.models = [];
    this.loaded = []; // /models/loaded rows plus `until`, the local time they expire
    this.problems = new Map(); // model id -> why the last remove failed, shown on its card
    this.busy = new Set(); // model ids with a load/unload/remove in flight
    this.installs = new Installs({ events, onInstalled: () => this.changed() });
    events.on('model_removed', () => this.changed());
    events.on('resync', () => this.visible() && this.refresh().catch(() => {}));
    let ticks = 0;
    setInterval(() => {
      if (!this.visible()) return;
      ticks += 1;
      if (ticks % LOADED_EVERY === 0) this.refreshLoaded();
      else this.tickExpiry();
    }, 1000);
  }

  visible() {
    return !byId('panel-models').hidden;
  }

  /** Fetch models, installs and loaded models; returns the models. */
  async refresh() {
    const [models] = await Promise.all([
      api('/models'),
      this.refreshLoaded({ render: false }),
      this.installs.refresh().catch(() => {}),
    ]);
    this.models = models;
    this.render();
    for (const fn of listeners) fn(models);
    return models;
  }

  /** Refetch the list after a change (refresh tells the Generate form). */
  changed() {
    clearTimeout(this.changeTimer);
    // An install's "completed" and a remove's event can come together: one refetch for both.
    this.changeTimer = setTimeout(async () => {
      try {
        await this.refresh();
      } catch (err) {
        toast(`Could not list models: ${err.message}`, 'error');
      }
    }, 50);
  }

  async refreshLoaded({ render = true } = {}) {
    try {
      const now = Date.now();
      const rows = await api('/models/loaded');
      this.loaded = rows.map((m) => ({ ...m, until: m.expires_at ? now + m.expires_in * 1000 : null }));
    } catch {
      this.loaded = [];
    }
    if (render) this.render();
    return this.loaded;
  }

  isLoaded(id) {
    return this.loaded.some((m) => m.model === id);
  }

  render() {
    this.renderLoaded();
    const list = byId('models-list');
    if (!this.models.length) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No models installed.'));
      return;
    }
    const types = [...new Set([...Object.keys(GROUPS), ...this.models.map((m) => m.type)])];
    const groups = types.map((type) => [type, this.models.filter((m) => m.type === type)]).filter(([, ms]) => ms.length);
    list.replaceChildren(...groups.map(([type, models]) => {
      const title = GROUPS[type] || type;
      return h('section', { class: 'model-group', dataset: { type }, 'aria-label': title },
        h('h2', { class: 'group-title' }, title, h('span', { class: 'count' }, String(models.length))),
        h('div', { class: 'models-grid' }, ...models.map((m) => this.card(m))));
    }));
  }

  card(m) {
    const name = m.name || m.id;
    const d = m.defaults;
    const loaded = this.isLoaded(m.id);
    const busy = this.busy.has(m.id);
    // m.problem: the daemon cannot use this model (a truncated UNet, ...); no Use or Load then.
    const problem = m.problem || this.problems.get(m.id);
    const checkpoint = m.type === 'checkpoint' && !m.problem;
    // A refiner only finishes an SDXL model's picture: it is chosen under Refiner, not here.
    const usable = checkpoint && !isRefiner(m);
    return h('article', { class: 'card model', dataset: { model: m.id } },
      h('div', { class: 'model-head' },
        h('h3', {}, name),
        loaded ? h('span', { class: 'pill ok' }, 'Loaded') : null),
      h('div', { class: 'tags' },
        m.family ? h('span', { class: 'tag accent' }, m.family) : null,
        m.precision ? h('span', { class: 'tag' }, m.precision) : null,
        m.inpaint && m.family !== 'inpaint' ? h('span', { class: 'tag accent' }, 'inpaint') : null,
        m.prediction_type && m.prediction_type !== 'epsilon' ? h('span', { class: 'tag' }, m.prediction_type) : null,
        m.read_only ? h('span', { class: 'tag read-only', title: 'Bundled with Impasto; it cannot be removed' }, 'read-only') : null,
        m.active === false ? h('span', { class: 'tag' }, 'inactive') : null,
        m.runs_here === false ? h('span', { class: 'tag not-here', title: m.not_here }, 'cannot run here') : null),
      m.description ? h('p', { class: 'model-desc muted' }, m.description) : null,
      h('dl', { class: 'kv' },
        h('dt', {}, 'Id'), h('dd', {}, h('code', {}, m.id)),
        h('dt', {}, 'Size'), h('dd', { class: 'model-size' }, formatBytes(m.size)),
        d ? [h('dt', {}, 'Defaults'), h('dd', {}, `${d.width}×${d.height}, ${plural(d.steps, 'step')}, CFG ${d.cfg_scale}, ${d.sampler}`)] : null,
        m.source ? [h('dt', {}, 'Source'), h('dd', { class: 'path' }, shownSource(m.source))] : null,
        m.license ? [h('dt', {}, 'License'), h('dd', {}, m.license)] : null,
        m.runs_on?.length ? [h('dt', {}, 'Runs on'), h('dd', { class: 'model-runs-on' }, m.runs_on.join(', '))] : null),
      m.runs_here === false ? h('p', { class: 'form-error model-not-here' }, `Not on this machine: ${m.not_here}`) : null,
      m.runs_note ? h('p', { class: 'muted model-runs-note' }, m.runs_note) : null,
      problem ? h('p', { class: 'form-error model-error', role: 'alert' }, problem) : null,
      h('div', { class: 'model-actions' },
        usable ? h('button', {
          type: 'button', class: 'btn', onclick: () => this.onUse(m), 'aria-label': `Use for generation: ${name}`,
        }, 'Use for generation') : null,
        ADD_LABELS[m.type] && !m.problem ? h('button', {
          type: 'button', class: 'btn', onclick: () => this.onAdd(m), 'aria-label': `${ADD_LABELS[m.type]}: ${name}`,
        }, ADD_LABELS[m.type]) : null,
        isRefiner(m) ? h('p', { class: 'muted model-refiner-note' },
          'An SDXL refiner: choose it under Refiner on the Generate panel with an SDXL model.') : null,
        checkpoint ? h('button', {
          type: 'button', class: 'btn', disabled: busy, 'aria-label': `${loaded ? 'Unload' : 'Load'} ${name}`,
          dataset: { action: loaded ? 'unload' : 'load' },
          onclick: () => (loaded ? this.unload(m) : this.load(m)),
        }, loaded ? 'Unload' : 'Load') : null,
        m.read_only ? null : h('button', {
          type: 'button', class: 'btn danger', disabled: busy, 'aria-label': `Remove ${name}`,
          dataset: { action: 'remove' }, onclick: () => this.remove(m),
        }, 'Remove')));
  }

  renderLoaded() {
    const box = byId('models-loaded');
    if (!this.loaded.length) {
      box.replaceChildren(h('p', { class: 'muted' },
        'Nothing is loaded. A model loads when a job needs it or when you press Load, and stays for the keep-alive time.'));
      return;
    }
    box.replaceChildren(...this.loaded.map((m) => h('div', { class: 'loaded-row', dataset: { model: m.model } },
      h('div', { class: 'loaded-name' },
        h('strong', {}, m.model),
        h('span', { class: 'muted' }, ` ${m.worker}${m.size ? ` · ${formatBytes(m.size)}` : ''}`)),
      h('span', { class: 'loaded-expiry muted', dataset: { until: m.until ?? '' } }, this.expiryText(m.until)),
      h('button', {
        type: 'button', class: 'btn small', 'aria-label': `Unload ${m.model}`,
        onclick: () => this.unload(this.models.find((x) => x.id === m.model) || { id: m.model }),
      }, 'Unload'))));
  }

  expiryText(until) {
    if (!until) return 'stays loaded';
    return `unloads in ${formatDuration(Math.max(0, (until - Date.now()) / 1000))}`;
  }

  tickExpiry() {
    for (const el of document.querySelectorAll('#models-loaded .loaded-expiry')) {
      el.textContent = this.expiryText(Number(el.dataset.until) || null);
    }
  }

  async load(m) {
    await this.whileBusy(m, async () => {
      await api(`/models/${encodeURIComponent(m.id)}/load`, { method: 'POST' });
      // The worker loads in the background; watch /models/loaded until it reports the model.
      if (!(await this.waitLoaded(m.id, true))) toast(`${m.name || m.id} did not load yet.`, 'error');
    });
  }

  async unload(m) {
    await this.whileBusy(m, async () => {
      await api(`/models/${encodeURIComponent(m.id)}/unload`, { method: 'POST' });
      await this.waitLoaded(m.id, false);
    });
  }

  async remove(m) {
    const name = m.name || m.id;
    if (!window.confirm(`Remove ${name}? Its files are deleted from the models folder.`)) return;
    await this.whileBusy(m, async () => {
      await api(`/models/${encodeURIComponent(m.id)}`, { method: 'DELETE' });
      toast(`Removed ${name}.`);
      this.models = this.models.filter((x) => x.id !== m.id);
      this.changed();
    });
  }

  /** Run an action for one model: buttons disabled meanwhile, its error shown on the card. */
  async whileBusy(m, action) {
    this.busy.add(m.id);
    this.problems.delete(m.id);
    this.render();
    try {
      await action();
    } catch (err) {
      // A 409 explains itself ("used by 1 queued job ..."): keep it on the card.
      this.problems.set(m.id, err.message);
    } finally {
      this.busy.delete(m.id);
      this.render();
    }
  }

  async waitLoaded(id, want) {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      await this.refreshLoaded({ render: false });
      if (this.isLoaded(id) === want) return true;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return false;
  }
}
