// Entry point: tabs, connection indicator, page-wide PNG drop, and wiring between panels.
import { api } from './api.js';
import { byId, toast } from './dom.js';
import { events } from './events.js';
import { FailedList } from './failed.js';
import { Gallery } from './gallery.js';
import { GenerateForm } from './generate.js';
import { ModelsPanel, onModelsChanged } from './models.js';
import { LiveProgress } from './progress.js';
import { QueuePanel } from './queue.js';
import { adoptUrlToken, loadUi, saveUi } from './state.js';
import { SystemPanel } from './system.js';
import { Viewer } from './viewer.js';
import { XyzPlot } from './xyz.js';

const TABS = ['generate', 'queue', 'gallery', 'models', 'system'];
const CONNECTION_TEXT = {
  connecting: 'Connecting…', online: 'Connected', offline: 'Reconnecting…', error: 'Cannot run jobs',
};
const HEALTH_EVERY_MS = 10000;

// Before the first request: a token in the address is the one to send.
adoptUrlToken();
const form = new GenerateForm({ onQueued: (job) => live.track(job) });
/** Say ``done``, and what of the settings the form could not take (a model not installed). */
function toastLoaded(done, missing) {
  if (!missing.length) toast(done);
  else toast(`${done} ${missing.join('; ')}.`, 'error', 8000);
}
new XyzPlot({ form });
const viewer = new Viewer({
  onUse: (request) => {
    const missing = form.write({ vae: '', ...request, model: request.model || '' });
    showTab('generate');
    toastLoaded('Settings loaded into the form.', missing);
  },
  onImage: async (request, file) => {
    const missing = form.write({ vae: '', ...request, model: request.model || '' });
    showTab('generate');
    if (await form.setInitImage(file)) {
      byId('img-card').open = true;
      toastLoaded('Image and settings loaded: set the strength, or paint a mask to inpaint.', missing);
    }
  },
  samplers: () => form.catalog.samplers,
  onQueued: (job) => live.track(job),
});
const live = new LiveProgress({
  events,
  onResults: (_, results) => {
    if (results.length) form.lastSeed = results[0].seed;
  },
  onOpen: (jobId, index) => viewer.openJob(jobId, index),
});
const queue = new QueuePanel({ events });
const failed = new FailedList({ events, onQueued: (job) => live.track(job) });
failed.refresh();
const gallery = new Gallery({ events, viewer });
const models = new ModelsPanel({
  events,
  onUse: (model) => {
    form.applyModel(model.id);
    showTab('generate');
  },
  onAdd: (model) => {
    if (model.type === 'lora') form.addLora(model.id);
    else form.addToPrompt(model.id);
    showTab('generate');
    toast(model.type === 'lora' ? `Added the LoRA ${model.id} at weight 1.` : `Added ${model.id} to the prompt.`);
  },
});
const system = new SystemPanel();
// An install, a removal or a model copied into the folder by hand changes the Generate form's
// menus too: reload them when the Models panel lists something they do not show.
const listed = (list) => JSON.stringify(list.map((m) => [m.id, m.name, m.type, m.family, m.problem]));
onModelsChanged((list) => {
  // None yet: the page's own first load is under way.
  if (form.catalog.models.length && listed(list) !== listed(form.catalog.models)) loadCatalog();
});

function showTab(name, { focus = false } = {}) {
  if (!TABS.includes(name)) name = 'generate';
  for (const tab of TABS) {
    const button = byId(`tab-${tab}`);
    const selected = tab === name;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    byId(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  document.body.dataset.tab = name;
  saveUi({ tab: name });
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  if (name === 'gallery') gallery.show();
  if (name === 'system') system.show();
  if (name === 'models') models.refresh().catch(() => {});
}

function bindTabs() {
  const list = document.querySelector('[role=tablist]');
  list.addEventListener('click', (e) => {
    const tab = e.target.closest('[role=tab]');
    if (tab) showTab(tab.dataset.tab);
  });
  // Arrow keys move between tabs, as the WAI-ARIA tabs pattern expects.
  list.addEventListener('keydown', (e) => {
    const i = TABS.indexOf(document.activeElement?.dataset.tab);
    if (i < 0) return;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (e.key in moves) showTab(TABS[(i + moves[e.key] + TABS.length) % TABS.length], { focus: true });
    else if (e.key === 'Home') showTab(TABS[0], { focus: true });
    else if (e.key === 'End') showTab(TABS[TABS.length - 1], { focus: true });
    else return;
    e.preventDefault();
  });
  window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));
}

function bindConnection() {
  const conn = byId('conn');
  // The event stream says whether the daemon answers; /health says whether it can run jobs
  // (status "error" with a problem when no inference worker can start).
  let problem = null;
  const show = () => {
    const state = events.state === 'online' && problem ? 'error' : events.state || 'connecting';
    conn.dataset.state = state;
    conn.querySelector('.conn-label').textContent = CONNECTION_TEXT[state];
    conn.title = state === 'error' ? problem : '';
  };
  const checkHealth = async () => {
    try {
      const health = await api('/health');
      const now = health.status === 'ok' ? null : (health.problem || `status ${health.status}`);
      if (now && now !== problem) toast(`The daemon cannot run jobs: ${now}`, 'error', 10000);
      problem = now;
      show();
    } catch {
      // Unreachable: the event stream's state already says so.
    }
  };
  events.on('state', (state) => {
    show();
    if (state === 'online') {
      form.daemonBack();
      checkHealth();
      if (!form.catalog.models.length) loadCatalog();
    }
  });
  events.on('failed', () => checkHealth());
  setInterval(checkHealth, HEALTH_EVERY_MS);
}

function bindPageDrop() {
  const overlay = byId('drop-overlay');
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener('dragover', (e) => {
    if (hasFiles(e)) e.preventDefault();
  });
  window.addEventListener('drop', async (e) => {
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const file = e.dataTransfer?.files?.[0];
    if (file) loadPngSettings(file, 'drop it on the Image to image box');
  });
  // The same without dragging: a phone has nothing to drag, a keyboard no mouse to drag with.
  const input = byId('png-file');
  byId('png-open').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const [file] = input.files;
    input.value = ''; // the same file chosen again is a change too
    if (file) loadPngSettings(file, 'choose it in the Image to image card');
  });
}

/** Fill the form from a PNG's settings; says so, or what to do with a file that has none. */
async function loadPngSettings(file, asInitImage) {
  const missing = await form.loadPng(file).catch(() => null);
  if (missing) {
    showTab('generate');
    toastLoaded(`Loaded the settings from ${file.name}.`, missing);
  } else {
    toast(`No generation settings found in that file. To use it as an init image, ${asInitImage}.`, 'error', 6000);
  }
}

async function loadCatalog() {
  try {
    const [modelList, samplers, schedules, limits] = await Promise.all([
      api('/models'), api('/samplers'), api('/schedules'), api('/limits'),
    ]);
    await form.setCatalog({ models: modelList, samplers, schedules, limits });
  } catch (err) {
    toast(`Could not load models: ${err.message}`, 'error');
  }
}

bindTabs();
bindConnection();
bindPageDrop();
showTab(location.hash.slice(1) || loadUi().tab || 'generate');
await loadCatalog();
// One GET /queue feeds both the Queue panel and the live card, now and after reconnects; every
// later one tells the card whether the queue is paused and where its job stands.
queue.onResync = (q) => live.load(q);
queue.onChange = (q) => live.sync(q);
live.load(await queue.refresh());
events.start();
// Tests and curious people can reach the parts from the console.
window.impasto = { events, form, live, queue, failed, gallery, models, system, viewer };
