// The install form and the installs list: live progress from "install" events, cancel, errors.
import { ApiError, api } from './api.js';
import { byId, formatBytes, h, toast } from './dom.js';

const ACTIVE = new Set(['queued', 'running']);
const FIELDS = ['source', 'revision', 'subfolder', 'id', 'precision'];
const KEEP_FINISHED = 5; // finished installs still listed under the running ones
const STAGES = {
  queued: 'Waiting', starting: 'Starting', download: 'Downloading', extract: 'Unpacking',
  copy: 'Copying', convert: 'Converting to ONNX', optimize: 'Optimizing', verify: 'Verifying',
  install: 'Installing', completed: 'Installed', failed: 'Failed', cancelled: 'Cancelled',
};

/** The install form and one row per install; onInstalled(modelId) runs when one completes. */
export class Installs {
  constructor({ events, onInstalled }) {
    this.onInstalled = onInstalled;
    this.items = new Map(); // install id -> InstallInfo, newest first
    this.rows = new Map(); // install id -> its row's parts
    this.list = byId('installs');
    byId('install-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    byId('install-form').addEventListener('input', (e) => this.clearError(e.target.id.replace('install-', '')));
    events.on('install', (e) => this.update(e.data));
    events.on('resync', () => this.refresh().catch(() => {}));
  }

  /** The catalog with the build this machine would get; each row can start its install. */
  async refreshCatalog() {
    const list = byId('catalog-list');
    let entries;
    try {
      entries = await api('/models/catalog');
    } catch (err) {
      list.replaceChildren(h('p', { class: 'muted' }, `The catalog is not available: ${err.message}`));
      return;
    }
    list.replaceChildren(...entries.map((e) => {
      const chosen = e.variants.find((v) => v.key === e.chosen);
      const builds = e.variants.map((v) => `${v.key} ${formatBytes(v.size)}${v.convert ? ' (converted here)' : ''}`);
      return h('article', { class: 'catalog-row', dataset: { catalog: e.name, chosen: e.chosen } },
        h('div', { class: 'install-head' },
          h('strong', {}, e.name),
          h('span', { class: 'tag' }, e.license || 'license unknown'),
          chosen ? h('span', { class: 'tag accent' }, `${chosen.key} · ${formatBytes(chosen.size)}`) : null,
          chosen ? h('button', {
            type: 'button', class: 'btn small', 'aria-label': `Install ${e.name}`,
            onclick: () => { byId('install-source').value = e.name; this.submit(); },
          }, 'Install') : null),
        e.description ? h('p', { class: 'muted' }, e.description) : null,
        h('p', { class: 'catalog-builds muted' }, `Builds: ${builds.join(' · ') || 'none'}`),
        h('p', { class: chosen ? 'catalog-summary' : 'catalog-summary field-error' }, e.summary));
    }));
  }

  /** Fetch every install the daemon remembers, so they survive a reload. */
  async refresh() {
    this.refreshCatalog();
    const list = await api('/models/installs');
    // Events that arrived before the list are at least as new; the list fills in the rest.
    const live = this.items;
    this.items = new Map(list.map((i) => [i.id, live.get(i.id) && !ACTIVE.has(live.get(i.id).status) ? live.get(i.id) : i]));
    for (const [id, info] of live) if (!this.items.has(id)) this.items.set(id, info);
    this.render();
  }

  /** An install event or the POST's answer: merge it in and redraw its row. */
  update(info) {
    if (!info?.id) return;
    if (info.event === 'dismissed') {
      this.items.delete(info.id);
      this.render();
      return;
    }
    const known = this.items.get(info.id);
    // A late progress tick must not bring a finished install back to life.
    if (known && !ACTIVE.has(known.status) && ACTIVE.has(info.status) && info.event !== 'resumed') return;
    if (known) this.items.set(info.id, { ...known, ...info });
    else this.items = new Map([[info.id, info], ...this.items]);
    this.render();
    if (info.event === 'completed') {
      toast(`Installed ${info.model_id}.`);
      this.onInstalled(info.model_id);
    } else if (info.event === 'failed') {
      toast(`Installing ${info.model_id} failed.`, 'error');
    }
  }

  render() {
    const all = [...this.items.values()];
    const shown = [
      ...all.filter((i) => ACTIVE.has(i.status)),
      ...all.filter((i) => !ACTIVE.has(i.status)).slice(0, KEEP_FINISHED),
    ];
    const rows = shown.map((info) => this.row(info));
    // Re-inserting nodes would steal focus from a Cancel button; only reorder when needed.
    const current = [...this.list.children];
    if (current.length !== rows.length || rows.some((row, i) => row !== current[i])) this.list.replaceChildren(...rows);
    for (const id of this.rows.keys()) if (!shown.some((i) => i.id === id)) this.rows.delete(id);
  }

  row(info) {
    let parts = this.rows.get(info.id);
    if (!parts) {
      parts = {
        status: h('span', { class: 'pill' }),
        cancel: h('button', {
          type: 'button', class: 'btn small danger', 'aria-label': `Cancel installing ${info.model_id}`,
          onclick: () => this.cancel(info.id),
        }, 'Cancel'),
        dismiss: h('button', {
          type: 'button', class: 'btn small ghost', 'aria-label': `Dismiss ${info.model_id}`,
          onclick: () => this.dismiss(info.id),
        }, 'Dismiss'),
        bar: h('div', {
          class: 'progress', role: 'progressbar', 'aria-label': `Install progress of ${info.model_id}`,
          'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
        }, h('div', { class: 'progress-fill' })),
        bytes: h('p', { class: 'install-bytes muted' }),
        note: h('p', { class: 'install-note muted' }),
        warning: h('p', { class: 'install-warning field-error' }),
        error: h('p', { class: 'field-error', role: 'alert' }),
      };
      parts.row = h('article', { class: 'install', dataset: { install: info.id, model: info.model_id } },
        h('div', { class: 'install-head' }, h('strong', {}, info.model_id), parts.status, parts.cancel, parts.dismiss),
        h('p', { class: 'install-source muted', title: info.source }, info.source),
        parts.bar,
        parts.bytes,
        parts.note,
        parts.warning,
        parts.error);
      this.rows.set(info.id, parts);
    }
    const active = ACTIVE.has(info.status);
    const stage = info.status === 'running' ? info.stage : info.status;
    const total = info.bytes_total || 0;
    const done = info.bytes_done || 0;
    let pct = total ? Math.min(100, Math.round((done / total) * 100)) : 0;
    if (info.status === 'completed') pct = 100;
    parts.row.dataset.status = info.status;
    parts.row.dataset.stage = stage;
    parts.status.dataset.state = info.status;
    parts.status.textContent = STAGES[stage] || stage;
    parts.cancel.hidden = !active;
    parts.dismiss.hidden = active;
    parts.bar.classList.toggle('indeterminate', active && !total);
    parts.bar.style.setProperty('--value', `${pct}%`);
    parts.bar.setAttribute('aria-valuenow', String(pct));
    // Finished installs shrink to one line: the bar only matters while bytes move.
    parts.bar.hidden = !active;
    parts.bytes.textContent = total && info.status !== 'completed'
      ? `${formatBytes(done)} of ${formatBytes(total)} · ${pct}%` : done ? formatBytes(done) : '';
    parts.bytes.hidden = !parts.bytes.textContent;
    parts.note.textContent = info.note || '';
    parts.note.hidden = !info.note;
    parts.warning.textContent = info.warning || '';
    parts.warning.hidden = !info.warning;
    parts.error.textContent = info.error || '';
    parts.error.hidden = !info.error;
    return parts.row;
  }

  async cancel(id) {
    try {
      this.update(await api(`/models/installs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }));
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  /** Remove a finished install's row, here and for every other open page. */
  async dismiss(id) {
    try {
      await api(`/models/installs/${encodeURIComponent(id)}`, { method: 'DELETE' });
      this.update({ id, event: 'dismissed' });
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  async submit() {
    for (const name of FIELDS) this.clearError(name);
    const body = {};
    for (const name of FIELDS) {
      const value = byId(`install-${name}`).value.trim();
      if (value) body[name] = value;
    }
    if (!body.source) {
      this.showError('source', 'Enter a catalog name, a Hugging Face id, a URL or a folder.');
      return;
    }
    const button = byId('install-submit');
    button.disabled = true;
    try {
      const info = await api('/models/install', { method: 'POST', body });
      this.update(info);
      for (const name of FIELDS) byId(`install-${name}`).value = '';
    } catch (err) {
      const fields = err instanceof ApiError ? err.errors : [];
      if (!fields.length) this.showError('source', err.message);
      for (const { field, message } of fields) this.showError(FIELDS.includes(field) ? field : 'source', message);
    } finally {
      button.disabled = false;
    }
  }

  showError(name, message) {
    const slot = byId(`err-install-${name}`);
    slot.textContent = message;
    slot.hidden = false;
    const input = byId(`install-${name}`);
    input.setAttribute('aria-invalid', 'true');
    if (name !== 'source') byId('install-advanced').open = true;
    input.focus();
  }

  clearError(name) {
    if (!FIELDS.includes(name)) return;
    byId(`err-install-${name}`).hidden = true;
    byId(`install-${name}`).removeAttribute('aria-invalid');
  }
}
