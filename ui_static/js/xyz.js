// The X/Y/Z plot card: vary one or two settings of the Generate form over a grid of images.
// It runs A1111's "x/y/z plot" script through /sdapi/v1/txt2img (img2img with an init image),
// so every cell is an ordinary queued job (the Queue tab shows them, Stop interrupts them) and
// the daemon composes the grid.
import { askToken, fetchWithin, TIMEOUT_MS } from './api.js';
import { byId, dataUrl, h } from './dom.js';
import { getToken } from './state.js';
import { toA1111 } from './xyz-request.js';

const SCRIPT = 'x/y/z plot';
const POLL_MS = 700;
// The axis types this card offers (all of them run in Impasto), with a hint for their values.
const AXES = {
  Nothing: '',
  Seed: '1-4 or 10, 20, 30',
  Steps: '10, 20, 30 or 10-30 (+10)',
  'CFG Scale': '3, 5.5, 8 or 2-10 [5]',
  'Prompt S/R': 'first the word in the prompt, then its replacements',
  Sampler: 'Euler a, DPM++ 2M',
  'Schedule type': 'Karras, Exponential',
  'Checkpoint name': 'model ids, comma separated',
  VAE: 'Automatic, VAE ids',
  'Clip skip': '1, 2',
  Size: '512x512, 768x512',
};
// Choices the Fill button writes, read from the form's own lists.
const FILLS = { Sampler: '#sampler', 'Schedule type': '#schedule', 'Checkpoint name': '#model', VAE: '#vae' };
// Menus whose choices are written by id (their labels are names); the VAE menu's '' is Automatic.
const BY_ID = ['model', 'vae'];

/** Call /sdapi/v1; a plot's request waits for all its cells, so it passes timeout null. */
async function sdapi(path, { method = 'GET', body, timeout = TIMEOUT_MS } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  const { res, body: answer } = await fetchWithin(`/sdapi/v1${path}`, init, timeout);
  if (res.status === 401) {
    await askToken(Boolean(token));
    return sdapi(path, { method, body, timeout });
  }
  let data = {};
  try {
    data = JSON.parse(await answer.text());
  } catch {
    // Not JSON: the status says what happened.
  }
  if (!res.ok) {
    // A1111's bodies: {"detail": [{loc, msg}]} for bad fields, {"detail": "..."} otherwise.
    const detail = Array.isArray(data.detail)
      ? data.detail.map((d) => `${d.loc?.at(-1) ?? ''}: ${d.msg}`).join('; ')
      : data.detail || `${res.status} ${res.statusText}`;
    throw new Error(detail);
  }
  return data;
}

export class XyzPlot {
  /** `form`: the GenerateForm whose request (read()) and init image and mask (mask) it plots. */
  constructor({ form }) {
    this.form = form;
    this.upscalers = null;
    this.card = this.build();
    const queueOptions = byId('priority').closest('.card');
    queueOptions.before(this.card);
    this.card.addEventListener('toggle', () => this.card.open && this.showUnused());
    for (const type of ['input', 'change']) byId('gen-form').addEventListener(type, () => this.card.open && this.showUnused());
    for (const name of ['x', 'y']) this.hint(name);
  }

  /** The form's settings the plot cannot send, named on the card. */
  showUnused() {
    const mask = this.form.mask;
    const images = mask.hasImage ? { init: '', mask: mask.hasMask ? '' : null } : null;
    const { unused } = toA1111(this.form.read(), images);
    const note = byId('xyz-unused');
    note.textContent = unused.length ? `Not in the plot (AUTOMATIC1111's API has no field for them): ${unused.join('; ')}.` : '';
    note.hidden = !unused.length;
    return unused;
  }

  /** The form's request for A1111, its init image and mask included. */
  async request() {
    const mask = this.form.mask;
    let images = null;
    if (mask.hasImage) {
      const painted = await mask.maskBlob();
      images = { init: await dataUrl(mask.file), mask: painted ? await dataUrl(painted) : null };
    }
    // A1111's names of the hires upscalers, asked once.
    this.upscalers ??= [...await sdapi('/latent-upscale-modes'), ...await sdapi('/upscalers')].map((u) => u.name);
    return toA1111(this.form.read(), images, this.upscalers);
  }

  build() {
    const axis = (name, value) => {
      const select = h('select', { id: `xyz-${name}-type`, onchange: () => this.hint(name) },
        Object.keys(AXES).map((label) => h('option', { value: label, selected: label === value }, label)));
      const fill = h('button', { type: 'button', class: 'btn small ghost', id: `xyz-${name}-fill`, hidden: true,
        onclick: () => this.fill(name) }, 'Fill');
      return h('div', { class: 'grid-2' },
        h('div', { class: 'field' }, h('label', { for: `xyz-${name}-type` }, `${name.toUpperCase()} type`), select),
        h('div', { class: 'field' },
          h('label', { for: `xyz-${name}-values` }, `${name.toUpperCase()} values`),
          h('div', { class: 'input-group' },
            h('input', { id: `xyz-${name}-values`, type: 'text', autocomplete: 'off' }), fill)));
    };
    const card = h('details', { class: 'card', id: 'xyz-card' },
      h('summary', { class: 'card-title' }, 'X/Y/Z plot ', h('span', { class: 'muted', id: 'xyz-summary' })),
      h('p', { class: 'muted' }, 'One image per combination of the values, with this form’s other settings (its image and mask too), in one grid.'),
      h('p', { class: 'muted', id: 'xyz-unused', hidden: true }),
      axis('x', 'Steps'),
      axis('y', 'Nothing'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', id: 'xyz-legend', checked: true }), ' Draw legend'),
      h('div', { class: 'submit-row' },
        h('button', { type: 'button', class: 'btn primary', id: 'xyz-run', onclick: () => this.run() }, 'Run plot'),
        h('button', { type: 'button', class: 'btn danger', id: 'xyz-stop', hidden: true, onclick: () => this.stop() }, 'Stop')),
      h('p', { class: 'form-error', id: 'xyz-error', role: 'alert', hidden: true }),
      h('p', { class: 'muted', id: 'xyz-status', role: 'status', 'aria-live': 'polite' }),
      h('figure', { class: 'xyz-result', id: 'xyz-figure', hidden: true },
        h('img', { id: 'xyz-result', alt: 'X/Y/Z plot grid' }),
        h('figcaption', {}, h('a', { id: 'xyz-download', download: 'xyz-plot.png', href: '#' }, 'Download grid'))));
    return card;
  }

  hint(name) {
    const type = byId(`xyz-${name}-type`).value;
    byId(`xyz-${name}-values`).placeholder = AXES[type] || '';
    byId(`xyz-${name}-values`).disabled = type === 'Nothing';
    byId(`xyz-${name}-fill`).hidden = !(type in FILLS);
  }

  fill(name) {
    const select = document.querySelector(FILLS[byId(`xyz-${name}-type`).value]);
    const values = [...select.options].filter((o) => (o.value || select.id === 'vae') && !o.disabled)
      .map((o) => (BY_ID.includes(select.id) ? o.value || 'Automatic' : o.textContent));
    byId(`xyz-${name}-values`).value = values.join(', ');
  }

  axisArgs(name) {
    const type = byId(`xyz-${name}-type`).value;
    // By its label, which Impasto takes on both tabs (A1111 itself wants the index in the tab's list).
    return [type, type === 'Nothing' ? '' : byId(`xyz-${name}-values`).value, []];
  }

  showError(message) {
    const error = byId('xyz-error');
    error.textContent = message;
    error.hidden = !message;
  }

  async run() {
    this.showError('');
    const status = byId('xyz-status');
    const button = byId('xyz-run');
    try {
      if (!byId('prompt').value.trim()) throw new Error('Write a prompt first.');
      this.showUnused();
      const { path, body } = await this.request();
      const args = [...this.axisArgs('x'), ...this.axisArgs('y'), 0, '', [],
        byId('xyz-legend').checked, false, false, false, 0, true, false];
      button.disabled = true;
      byId('xyz-stop').hidden = false;
      status.textContent = 'Running the plot: its cells are in the queue…';
      this.stopped = false;
      this.poll = setInterval(() => this.showProgress(), POLL_MS);
      const result = await sdapi(path, { method: 'POST', body: { ...body, script_name: SCRIPT, script_args: args }, timeout: null });
      if (!result.images.length) {
        status.textContent = 'Stopped before any image was made.';
        return;
      }
      const url = `data:image/png;base64,${result.images[0]}`;
      byId('xyz-result').src = url;
      byId('xyz-download').href = url;
      byId('xyz-figure').hidden = false;
      status.textContent = this.stopped ? 'Stopped: the cells that did not run are black.' : 'Done.';
      byId('xyz-summary').textContent = '· done';
    } catch (err) {
      status.textContent = '';
      this.showError(err.message);
    } finally {
      clearInterval(this.poll);
      button.disabled = false;
      byId('xyz-stop').hidden = true;
    }
  }

  async showProgress() {
    // job_count is A1111's count of running and queued jobs: the cells still to do.
    const progress = await sdapi('/progress?skip_current_image=true').catch(() => null);
    if (!progress || !byId('xyz-run').disabled) return;
    const left = progress.state.job_count;
    byId('xyz-status').textContent = `Running the plot: ${left} job${left === 1 ? '' : 's'} left…`;
  }

  async stop() {
    this.stopped = true;
    await sdapi('/interrupt', { method: 'POST' }).catch((err) => this.showError(err.message));
  }
}
