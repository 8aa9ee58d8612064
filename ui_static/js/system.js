// The System panel: provider in use and rejected ones, GPUs, memory, queue, workers, version.
import { api } from './api.js';
import { byId, formatBytes, h } from './dom.js';

function meter(label, used, total) {
  const pct = total ? Math.round((used / total) * 100) : 0;
  return h('div', { class: 'meter' },
    h('div', { class: 'meter-label' }, h('span', {}, label),
      h('span', { class: 'muted meter-value' }, `${formatBytes(used)} used of ${formatBytes(total)} (${formatBytes(total - used)} free)`)),
    h('div', { class: 'progress small', role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0',
      'aria-valuemax': '100', 'aria-valuenow': String(pct), style: `--value:${pct}%` }, h('div', { class: 'progress-fill' })));
}

function untilText(expires) {
  if (expires === null || expires === undefined) return 'kept';
  // Seconds since the epoch or an ISO string, whichever the daemon sends.
  const date = new Date(typeof expires === 'number' ? expires * 1000 : expires);
  return Number.isNaN(date.getTime()) ? String(expires) : date.toLocaleTimeString();
}

function card(title, ...children) {
  return h('section', { class: 'card' }, h('h2', { class: 'card-title' }, title), ...children);
}

function table(head, rows) {
  return h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c ?? '–'))))));
}

/** Renders GET /system; refreshes every few seconds while visible. */
export class SystemPanel {
  constructor() {
    this.timer = null;
    byId('system-refresh').addEventListener('click', () => this.refresh());
  }

  show() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (byId('panel-system').hidden || document.hidden) clearInterval(this.timer);
      else this.refresh();
    }, 5000);
  }

  async refresh() {
    try {
      this.render(await api('/system'));
    } catch (err) {
      byId('system-body').replaceChildren(h('p', { class: 'empty' }, err.message));
    }
  }

  render(sys) {
    const provider = sys.provider || {};
    const rejected = provider.rejected || [];
    const mem = sys.memory || {};
    const queue = sys.queue || {};
    byId('system-body').replaceChildren(
      card('Overview', h('dl', { class: 'kv' },
        h('dt', {}, 'Version'), h('dd', { id: 'sys-version' }, sys.version),
        h('dt', {}, 'Provider'), h('dd', { id: 'sys-provider' }, h('strong', {}, provider.name || '–')),
        h('dt', {}, 'Queue'), h('dd', {}, `${queue.processing ?? 0} running, ${queue.queued ?? 0} queued${queue.paused ? ' (paused)' : ''}`),
        h('dt', {}, 'API'), h('dd', {}, h('a', { href: '/schema', target: '_blank', rel: 'noopener' }, 'OpenAPI docs at /schema')))),
      card('Execution providers',
        h('div', { class: 'tags' }, (provider.providers || []).map((p) => h('span', { class: 'tag ok' }, p))),
        rejected.length
          ? h('details', { class: 'rejected' }, h('summary', {}, `Not used (${rejected.length})`),
            table(['Provider', 'Why'], rejected.map((r) => [r.name, r.reason])))
          : h('p', { class: 'muted' }, 'No providers were rejected.')),
      card('Memory',
        mem.total ? meter('System RAM', mem.total - mem.available, mem.total) : h('p', { class: 'muted' }, 'Unknown'),
        ...(sys.gpus || []).map((g) => meter(`GPU ${g.index}: ${g.name}`, g.memory_used, g.memory_total)),
        (sys.gpus || []).length ? null : h('p', { class: 'muted' }, 'No GPU detected; running on the CPU.')),
      card('Loaded models', (sys.loaded_models || []).length
        ? table(['Model', 'Unloads at'], sys.loaded_models.map((m) => [m.model, untilText(m.expires_at)]))
        : h('p', { class: 'muted' }, 'None loaded; the first job loads its model.')),
      card('Workers', table(['Worker', 'PID', 'State', 'Job'],
        (sys.workers || []).map((w) => [w.id, w.pid, w.state, w.job_id ? w.job_id.slice(0, 8) : null]))),
    );
  }
}
