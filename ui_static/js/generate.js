// The Generate form: read/write values, validate, persist, submit (Ctrl+Enter), show errors.
import { ApiError, api } from './api.js';
import { byId, h, plural, toast } from './dom.js';
import { LoraList } from './loras.js';
import { FormErrors } from './form-errors.js';
import { InitImage } from './init-image.js';
import { settingsFromPng } from './png-info.js';
import { RefinerField, isRefiner } from './refiner.js';
import { BOUND_FIELDS, CHURN_FIELDS, SamplingFields, UNIPC_FIELDS } from './sampling-fields.js';
import { loadSettings, saveSettings } from './state.js';
import { cutMessage, setLimits, validateRequest } from './validate.js';

const NUMBER_FIELDS = ['width', 'height', 'steps', 'cfg_scale', 'seed', 'subseed', 'subseed_strength', 'seed_resize_from_width', 'seed_resize_from_height', 'noise_seed_delta', 'batch_size', 'priority', 'strength', 'noise_multiplier', 'cache_interval', 'inpaint_padding', 'clip_skip', 's_min_uncond', 'skip_early_cond', 'extra_noise', 'inpaint_mask_weight', 'mask_blur'];
const TEXT_FIELDS = ['prompt', 'negative_prompt', 'model', 'vae', 'sampler', 'schedule', 'rng', 'decoder', 'inpaint_area', 'masked_content', 'img2img_steps', 'resize_mode'];
// A1111's mask blur: how the page blurs the painted mask before sending it (not an API field).
const MASK_BLUR = { min: 0, max: 64, message: 'must be an integer between 0 and 64' };
// Menus of installed models: '' is the default (the daemon's default model, the model's own VAE)
// and is sent as null.
const MODEL_MENUS = { model: ['Model', 'the default model'], vae: ['VAE', "the model's own"] };
// Sent only with a mask: they say how to inpaint.
const INPAINT_FIELDS = ['inpaint_area', 'inpaint_padding', 'masked_content'];
// Sent only with an image: the API refuses them without one.
const IMAGE_FIELDS = ['noise_multiplier', 'resize_mode', 'color_correction'];
// The hires fix card: request field under ``hires`` -> form element id.
const HIRES_FIELDS = { scale: 'hires_scale', upscaler: 'hires_upscaler', steps: 'hires_steps', strength: 'hires_strength' };
// The hires pass's own settings: left blank, not sent, and the pass takes the first pass's.
const HIRES_OWN = {
  width: 'hires_width', height: 'hires_height', sampler: 'hires_sampler', schedule: 'hires_schedule',
  cfg_scale: 'hires_cfg_scale', prompt: 'hires_prompt', negative_prompt: 'hires_negative_prompt',
};
const HIRES_NUMBERS = ['width', 'height', 'cfg_scale'];
const ERROR_FIELDS = [...TEXT_FIELDS, ...NUMBER_FIELDS, 'eta', ...CHURN_FIELDS, ...BOUND_FIELDS, ...UNIPC_FIELDS, 'tiling', 'color_correction', 's_min_uncond_all', 'discard_penultimate_sigma', 'sgm_noise_multiplier', 'refiner', 'refiner_switch', 'hires', ...Object.values(HIRES_FIELDS), ...Object.values(HIRES_OWN)];
// Fields that do not depend on the model; the rest come from the chosen model's defaults.
export const DEFAULTS = {
  prompt: '', negative_prompt: '', model: '', vae: '', seed: -1, subseed: -1, subseed_strength: 0, eta: null,
  seed_resize_from_width: 0, seed_resize_from_height: 0, rng: 'pcg64', noise_seed_delta: 0,
  batch_size: 1, priority: 0,
  strength: 0.75, noise_multiplier: 1, extra_noise: 0, inpaint_mask_weight: 1, resize_mode: 'stretch', color_correction: false, img2img_steps: 'strength', loras: [], cache_interval: 0, decoder: 'full',
  inpaint_area: 'whole', inpaint_padding: 32, mask_blur: 4, masked_content: 'original', clip_skip: 1,
  tiling: false, s_churn: 0, s_tmin: 0, s_tmax: null, s_noise: 1,
  sigma_min: null, sigma_max: null, rho: null, s_min_uncond: 0, s_min_uncond_all: false, skip_early_cond: 0,
  discard_penultimate_sigma: false, sgm_noise_multiplier: false, unipc_order: null, unipc_variant: null,
};
// The tunables a model's defaults (GET /models, from the family table) set.
export const MODEL_DEFAULT_FIELDS = ['width', 'height', 'steps', 'cfg_scale', 'sampler', 'schedule'];

/** The Generate panel's form. `catalog` holds the models and samplers once loaded. */
export class GenerateForm {
  constructor({ onQueued }) {
    this.form = byId('gen-form');
    this.onQueued = onQueued;
    this.catalog = { models: [], samplers: [], schedules: [] };
    this.lastSeed = null;
    // Counts model choices: defaults fetched for an earlier choice (the default model's, asked
    // of /generate/plan at load) must not land over a later one.
    this.modelChoice = 0;
    this.uploads = new WeakMap();
    this.loras = new LoraList(byId('loras'), byId('add-lora'), () => this.changed());
    this.errors = new FormErrors(this.form, (name) => this.fieldElement(name));
    for (const name of ERROR_FIELDS) this.errors.slot(name);
    this.image = new InitImage(this.errors);
    this.mask = this.image.mask;
    this.sampling = new SamplingFields(this.errors);
    this.refiner = new RefinerField();
    // The model defaults the note under the menu describes, as the form showed them.
    this.applied = null;
    this.cut = null; // what a text field's maxlength is cutting off the input under way
    this.bind();
  }

  /** Fill the model and sampler lists; apply the stored or the default model's settings. */
  async setCatalog({ models, samplers, schedules = [], limits }) {
    this.catalog = { models, samplers, schedules };
    Object.assign(this.sampling, { samplers, schedules });
    if (limits) setLimits(limits);
    const upscalers = limits?.hires_upscaler?.choices;
    if (upscalers?.length) {
      byId('hires_upscaler').replaceChildren(...upscalers.map((u) => h('option', { value: u }, u)));
    }
    // Only what a request can name there: a usable checkpoint (no refiner, LoRA, embedding or
    // VAE) in the model menu, a usable VAE in the VAE menu, usable LoRAs as the names' choices.
    const usable = (type) => models.filter((m) => m.type === type && !m.problem);
    const vae = byId('vae');
    const vaeChosen = vae.value;
    byId('model').replaceChildren(h('option', { value: '' }, 'Default model'),
      ...usable('checkpoint').filter((m) => !isRefiner(m))
        .map((m) => h('option', { value: m.id }, m.name || m.id)));
    vae.replaceChildren(h('option', { value: '' }, "Automatic (the model's own)"),
      ...usable('vae').map((m) => h('option', { value: m.id }, m.name || m.id)));
    if ([...vae.options].some((o) => o.value === vaeChosen)) vae.value = vaeChosen;
    this.refiner.setModels(models);
    byId('sampler').replaceChildren(...samplers.map((s) => h('option', { value: s.id }, s.name)));
    byId('hires_sampler').replaceChildren(h('option', { value: '' }, 'Use same sampler'),
      ...samplers.map((s) => h('option', { value: s.id }, s.name)));
    if (schedules.length) {
      byId('schedule').replaceChildren(
        ...schedules.map((s) => h('option', { value: s.id }, s.id === 'default' ? 'Default' : s.name)));
      byId('hires_schedule').replaceChildren(h('option', { value: '' }, 'Use same schedule'),
        ...schedules.map((s) => h('option', { value: s.id }, s.id === 'default' ? 'Default' : s.name)));
    }
    byId('lora-names').replaceChildren(...usable('lora').map((m) => h('option', { value: m.id })));
    const stored = loadSettings();
    if (stored) {
      this.write({ ...DEFAULTS, ...stored }, { save: false });
      const choice = ++this.modelChoice;
      this.modelDefaults(stored.model || '').then((found) => {
        if (choice === this.modelChoice) this.useModel(found.model);
      }, () => {});
      return;
    }
    this.write(DEFAULTS, { save: false });
    await this.applyModel('', { announce: false, save: false });
  }

  /** The defaults of model ``id`` ('' = the daemon's default model, asked from /generate/plan). */
  async modelDefaults(id) {
    const model = this.catalog.models.find((m) => m.id === id);
    if (model?.defaults) return { model, name: model.name || model.id, defaults: model.defaults };
    // The plan of a bare request is exactly what the default model runs.
    const plan = await api('/generate/plan', { method: 'POST', body: { prompt: 'defaults', model: id || null } });
    const { width, height, steps, cfg_scale, sampler, schedule } = plan;
    const known = this.catalog.models.find((m) => m.id === plan.model);
    return { model: known, name: plan.model, defaults: { width, height, steps, cfg_scale, sampler, schedule } };
  }

  /** What the form adapts to the chosen model: its Clip skip limit, its zero-SNR training,
   * the mask weight of an inpainting model. */
  useModel(model) {
    this.sampling.zeroSnr = Boolean(model?.zero_snr);
    this.refiner.useModel(model);
    this.inpaintModel = Boolean(model?.inpaint);
    byId('mask-weight-field').hidden = !this.inpaintModel;
    this.limitClipSkip(model);
  }

  /** Cap the Clip skip field at what the chosen model's text encoders serve (its clip_skip_max). */
  limitClipSkip(model) {
    const field = byId('clip_skip');
    const schemaMax = Number(field.dataset.schemaMax || field.max || Infinity);
    if (!field.dataset.schemaMax && field.max) field.dataset.schemaMax = field.max;
    const most = Math.min(schemaMax, model?.clip_skip_max ?? schemaMax);
    if (Number.isFinite(most)) field.max = String(most);
    const name = model?.name || model?.id;
    byId('clip-skip-limit').textContent = !model ? ''
      : most <= 1 ? `${name}: 1 only (its text encoder was exported without hidden states).`
        : `${name}: 1 to ${most}.`;
  }

  /** Choose a model and put its defaults in the form, saying so; the form shows what will run. */
  async applyModel(id, { announce = true, save = true } = {}) {
    const choice = ++this.modelChoice;
    let found;
    try {
      found = await this.modelDefaults(id);
    } catch {
      return;
    }
    if (choice !== this.modelChoice) return; // another model was chosen while this one loaded
    const values = { model: id };
    for (const name of MODEL_DEFAULT_FIELDS) values[name] = found.defaults[name];
    this.useModel(found.model);
    this.write(values, { save });
    const d = found.defaults;
    const label = this.catalog.samplers.find((s) => s.id === d.sampler)?.name || d.sampler;
    const note = `${found.name}'s defaults: ${d.width}×${d.height}, ${plural(d.steps, 'step')}, `
      + `CFG ${d.cfg_scale}${d.cfg_scale <= 1 ? ' (no guidance)' : ''}, ${label}.`;
    this.applied = { note: announce ? `Applied ${note}` : `Using ${note}`, values: this.defaultsShown() };
    this.syncDefaultsNote();
  }

  defaultsShown() {
    const values = this.read();
    return MODEL_DEFAULT_FIELDS.map((name) => values[name]);
  }

  /** The note says which defaults the form holds, so it goes once one of them is changed. */
  syncDefaultsNote() {
    const now = this.applied ? this.defaultsShown() : [];
    const shown = this.applied?.values.every((v, i) => Object.is(v, now[i]));
    byId('model-defaults-note').textContent = shown ? this.applied.note : '';
  }

  bind() {
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    document.addEventListener('keydown', (e) => {
      // Not behind a dialog (the image viewer, the token prompt): the key belongs to it.
      if (document.querySelector('dialog[open]')) return;
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !byId('panel-generate').hidden) {
        e.preventDefault();
        this.submit();
      }
    });
    this.form.addEventListener('input', (e) => {
      const slider = e.target.dataset?.for;
      if (slider) byId(slider).value = e.target.value;
      else this.syncSlider(e.target.id);
      if (e.target.id) this.errors.clear(e.target.id);
      // What maxlength cut off a paste, said after the input cleared the field's error.
      if (this.cut?.id === e.target.id) this.errors.show(this.cut.id, this.cut.message);
      this.cut = null;
      this.changed();
    });
    for (const id of ['prompt', 'negative_prompt']) {
      byId(id).addEventListener('beforeinput', (e) => {
        const message = cutMessage(e.target, e.data ?? e.dataTransfer?.getData('text/plain') ?? '');
        this.cut = message ? { id, message } : null;
      });
    }
    this.form.addEventListener('change', (e) => {
      if (e.target.id === 'sampler') this.sampling.limitSchedules({ recommend: true });
      if (e.target.id === 'schedule') this.sampling.limitBounds();
      if (e.target.id === 'discard_penultimate_sigma') this.sampling.discardChoice = e.target.checked;
      if (e.target.id === 'tiling') this.syncTiling();
      if (e.target.id === 'model') {
        this.applyModel(e.target.value);
        return;
      }
      this.changed();
    });
    this.form.addEventListener('focusout', (e) => {
      // Check a field when leaving it, but only once it holds something.
      const id = e.target.id;
      if (NUMBER_FIELDS.includes(id) && e.target.value !== '') {
        const error = validateRequest({ [id]: Number(e.target.value) })[0];
        if (error) this.errors.show(id, error.message);
      }
    });
    byId('swap-size').addEventListener('click', () => {
      const [w, h2] = [byId('width').value, byId('height').value];
      this.write({ width: Number(h2), height: Number(w) });
    });
    byId('size-preset').addEventListener('change', (e) => {
      const [w, h2] = e.target.value.split('x').map(Number);
      if (w && h2) this.write({ width: w, height: h2 });
      e.target.value = '';
    });
    byId('seed-random').addEventListener('click', () => this.write({ seed: -1 }));
    byId('seed-reuse').addEventListener('click', () => {
      if (this.lastSeed === null) toast('No seed to reuse yet: generate an image first.');
      else this.write({ seed: this.lastSeed });
    });
  }

  /** A LoRA row for ``name`` at weight 1 (a LoRA card's button). */
  addLora(name) {
    this.loras.add({ name, weight: 1, unet_weight: null });
    byId('lora-card').open = true;
    this.changed();
  }

  /** ``word`` (an embedding's name, which the prompt calls it by) at the end of the prompt. */
  addToPrompt(word) {
    const prompt = byId('prompt');
    const text = prompt.value.replace(/[\s,]+$/, '');
    prompt.value = text ? `${text}, ${word}` : word;
    this.changed();
  }

  /** Show a File as the init image; false when the browser cannot read it (InitImage.set). */
  setInitImage(file) {
    return this.image.set(file);
  }

  syncSlider(id) {
    const slider = this.form.querySelector(`input[type=range][data-for="${id}"]`);
    if (slider) slider.value = byId(id).value;
  }

  /** The axes menu means something only with tiling on. */
  syncTiling() {
    byId('tiling_axes').disabled = !byId('tiling').checked;
  }

  /** The request body the form describes (images excluded). */
  read() {
    const req = {};
    for (const name of TEXT_FIELDS) req[name] = byId(name).value;
    for (const name of NUMBER_FIELDS) {
      const raw = byId(name).value.trim();
      req[name] = raw === '' ? Number.NaN : Number(raw);
    }
    for (const name of Object.keys(MODEL_MENUS)) req[name] = req[name] || null;
    // Blank, or a sampler that adds no noise per step: the sampler's own (no eta sent).
    const eta = byId('eta');
    if (eta.value.trim() !== '' && !eta.disabled) req.eta = Number(eta.value);
    for (const name of [...CHURN_FIELDS, ...BOUND_FIELDS]) {
      const el = byId(name);
      if (el.value.trim() !== '' && !el.disabled) req[name] = Number(el.value);
    }
    // Every step below the sigma, not every other: only with a sigma to be below.
    req.s_min_uncond_all = byId('s_min_uncond_all').checked && req.s_min_uncond > 0;
    const discard = byId('discard_penultimate_sigma');
    req.discard_penultimate_sigma = discard.checked && !discard.disabled;
    const sgm = byId('sgm_noise_multiplier');
    req.sgm_noise_multiplier = sgm.checked && !sgm.disabled;
    req.color_correction = byId('color_correction').checked;
    const order = byId('unipc_order');
    if (order.value.trim() !== '' && !order.disabled) req.unipc_order = Number(order.value);
    const variant = byId('unipc_variant');
    if (variant.value !== '' && !variant.disabled) req.unipc_variant = variant.value;
    req.loras = this.loras.read();
    this.refiner.read(req);
    // true wraps both ways (A1111's tiling); "x" or "y" one axis only.
    const axes = byId('tiling_axes').value;
    req.tiling = byId('tiling').checked ? (axes === 'xy' ? true : axes) : false;
    if (byId('hires').checked) {
      req.hires = {};
      for (const [key, id] of Object.entries(HIRES_FIELDS)) {
        const raw = byId(id).value.trim();
        req.hires[key] = key === 'upscaler' ? raw : raw === '' ? Number.NaN : Number(raw);
      }
      for (const [key, id] of Object.entries(HIRES_OWN)) {
        const raw = byId(id).value;
        if (raw.trim() !== '') req.hires[key] = HIRES_NUMBERS.includes(key) ? Number(raw) : raw;
      }
    }
    return req;
  }

  /** Put values into the form; unknown keys are ignored, missing ones left as they are.
   * Returns what the form could not take: a model or VAE that is not installed (its menu is set
   * back to the default, so the form never shows a choice the settings did not make). */
  write(values, { save = true } = {}) {
    const missing = [];
    for (const name of [...TEXT_FIELDS, ...NUMBER_FIELDS]) {
      if (values[name] === undefined || values[name] === null && !(name in MODEL_MENUS)) continue;
      const el = byId(name);
      let value = values[name] ?? '';
      if (el.tagName === 'SELECT' && value !== '' && ![...el.options].some((o) => o.value === String(value))) {
        if (!(name in MODEL_MENUS)) continue;
        const [label, instead] = MODEL_MENUS[name];
        missing.push(`${label} ${value} is not installed (${instead} is chosen)`);
        value = '';
      }
      el.value = String(value);
      this.syncSlider(name);
      this.errors.clear(name);
    }
    this.refiner.write(values);
    if (Array.isArray(values.loras)) {
      this.loras.write(values.loras);
      if (values.loras.length) byId('lora-card').open = true;
    }
    if (values.hires !== undefined) {
      byId('hires').checked = Boolean(values.hires);
      for (const [key, id] of Object.entries(HIRES_FIELDS)) {
        const value = values.hires?.[key];
        if (value == null) continue;
        const el = byId(id);
        if (el.tagName === 'SELECT' && ![...el.options].some((o) => o.value === String(value))) {
          missing.push(`Hires upscaler ${value} is not available (${el.value} is kept)`);
        } else el.value = String(value);
      }
      // A pass's own settings replace the form's; one it leaves out is the first pass's (blank).
      if (values.hires) {
        for (const [key, id] of Object.entries(HIRES_OWN)) {
          const el = byId(id);
          const value = values.hires[key] == null ? '' : String(values.hires[key]);
          el.value = el.tagName === 'SELECT' && ![...el.options].some((o) => o.value === value) ? '' : value;
        }
      }
    }
    if (values.tiling !== undefined) {
      byId('tiling').checked = Boolean(values.tiling);
      if (values.tiling) byId('tiling_axes').value = values.tiling === true ? 'xy' : String(values.tiling);
      this.syncTiling();
    }
    if (values.eta !== undefined) byId('eta').value = values.eta == null ? '' : String(values.eta);
    if (values.s_min_uncond_all !== undefined) byId('s_min_uncond_all').checked = Boolean(values.s_min_uncond_all);
    if (values.sgm_noise_multiplier !== undefined) byId('sgm_noise_multiplier').checked = Boolean(values.sgm_noise_multiplier);
    if (values.color_correction !== undefined) byId('color_correction').checked = Boolean(values.color_correction);
    for (const name of UNIPC_FIELDS) {
      if (values[name] !== undefined) byId(name).value = values[name] == null ? '' : String(values[name]);
    }
    if (values.discard_penultimate_sigma !== undefined) {
      this.sampling.discardChoice = Boolean(values.discard_penultimate_sigma);
      this.sampling.syncDiscard();
    }
    for (const name of [...CHURN_FIELDS, ...BOUND_FIELDS]) {
      if (values[name] !== undefined) byId(name).value = values[name] == null ? '' : String(values[name]);
    }
    if (values.sampler !== undefined) this.sampling.limitSchedules();
    if (values.schedule && !byId('schedule').selectedOptions[0]?.disabled) byId('schedule').value = values.schedule;
    if (values.schedule !== undefined) this.sampling.limitBounds();
    if (save) this.changed();
    return missing;
  }

  changed() {
    const values = this.read();
    for (const name of NUMBER_FIELDS) if (Number.isNaN(values[name])) delete values[name];
    saveSettings({ ...values, model: values.model || '' });
    const count = values.loras.length;
    byId('lora-summary').textContent = count ? `· ${count}` : '';
    this.syncDefaultsNote();
    byId('hires-summary').textContent = values.hires ? `· ${values.hires.scale}x` : '';
  }

  /** Fill the form from a PNG's embedded parameters; returns null when it has none, else what
   * the form could not take (write). */
  async loadPng(file) {
    const values = await settingsFromPng(file, this.catalog);
    if (!values) return null;
    const { init_image, mask_image, ...rest } = values;
    // What the PNG does not mention is off: no hires pass, no refiner, the model's own VAE.
    return this.write({ ...DEFAULTS, model: '', hires: null, refiner: '', ...rest });
  }

  async submit() {
    this.errors.clearAll();
    this.unreachable = false;
    const req = this.read();
    const maskBlur = req.mask_blur;
    delete req.mask_blur;
    if (!this.mask.hasImage) for (const name of [...INPAINT_FIELDS, ...IMAGE_FIELDS]) delete req[name];
    // Extra noise and the step count go with an image or a hires pass, where A1111 uses them.
    if (!this.mask.hasImage && !req.hires) {
      delete req.extra_noise;
      delete req.img2img_steps;
    }
    if (!this.inpaintModel || (!this.mask.hasImage && !req.hires)) delete req.inpaint_mask_weight;
    // The SGM noise multiplier scales a start from pure noise: txt2img only.
    if (this.mask.hasImage) delete req.sgm_noise_multiplier;
    const errors = validateRequest(req);
    const blurOk = Number.isInteger(maskBlur) && maskBlur >= MASK_BLUR.min && maskBlur <= MASK_BLUR.max;
    if (this.mask.hasMask && !blurOk) errors.push({ field: 'mask_blur', message: MASK_BLUR.message });
    if (errors.length) {
      this.errors.showAll(errors);
      return;
    }
    const button = byId('submit');
    button.disabled = true;
    try {
      if (this.mask.hasImage) {
        req.init_image = await this.upload(this.mask.file);
        const mask = await this.mask.maskBlob(maskBlur);
        if (mask) req.mask_image = await this.upload(mask);
      }
      if (!req.mask_image) for (const name of INPAINT_FIELDS) delete req[name];
      const job = await api('/generate', {
        method: 'POST', body: req, headers: { 'Idempotency-Key': crypto.randomUUID() },
      });
      this.onQueued?.(job, req);
    } catch (err) {
      if (err instanceof ApiError && err.errors.length) this.errors.showAll(err.errors);
      else if (err instanceof ApiError && err.status === 429) {
        this.errors.showForm(`${err.message}${err.retryAfter ? ` Try again in ${err.retryAfter}s.` : ''}`);
      } else this.errors.showForm(err.message);
      this.unreachable = err instanceof ApiError && err.status === 0;
    } finally {
      button.disabled = false;
    }
  }

  /** The daemon answers again: a "not reachable" from a submit meanwhile is no longer true. */
  daemonBack() {
    if (this.unreachable) byId('form-error').hidden = true;
    this.unreachable = false;
  }

  async upload(blob) {
    // A file is uploaded once; every later submit reuses its id.
    if (this.uploads.has(blob)) return this.uploads.get(blob);
    const form = new FormData();
    form.append('file', blob, blob.name || 'mask.png');
    const res = await api('/images', { method: 'POST', form });
    const ref = `upload:${res.id}`;
    this.uploads.set(blob, ref);
    return ref;
  }

  fieldElement(name) {
    const lora = /^loras\[(\d+)\]\.(name|weight|unet_weight)$/.exec(name);
    if (lora) return document.getElementById(`lora-${lora[2]}-${lora[1]}`);
    if (name === 'init_image' || name === 'mask_image') return byId('init-drop');
    const hires = /^hires\.(\w+)$/.exec(name);
    // A size left blank comes from the scale: out of range, it is the scale's to fix.
    if (hires && (hires[1] === 'width' || hires[1] === 'height') && !byId(HIRES_OWN[hires[1]]).value) {
      return byId('hires_scale');
    }
    const hiresField = hires && (HIRES_FIELDS[hires[1]] || HIRES_OWN[hires[1]]);
    if (hires) return hiresField ? byId(hiresField) : byId('hires');
    return ERROR_FIELDS.includes(name) ? byId(name) : null;
  }
}
