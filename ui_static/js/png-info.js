// Read generation parameters from a PNG made by Impasto or AUTOMATIC1111 (tEXt/iTXt/zTXt chunks).

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
// A1111's labels of the sigma churn settings -> the request fields.
const CHURN_LABELS = { 'Sigma churn': 's_churn', 'Sigma tmin': 's_tmin', 'Sigma tmax': 's_tmax', 'Sigma noise': 's_noise' };
// A1111's labels of the schedule's ends and rho -> the request fields.
const BOUND_LABELS = { 'Schedule min sigma': 'sigma_min', 'Schedule max sigma': 'sigma_max', 'Schedule rho': 'rho' };
// A1111's labels of the hires fix -> the fields of the request's ``hires`` (the sampler's and
// the schedule's labels are matched to ids, and "Denoising strength" is the pass's, afterwards).
const HIRES_LABELS = {
  'Hires upscale': ['scale', Number.parseFloat], 'Hires steps': ['steps', Number.parseInt],
  'Hires upscaler': ['upscaler', String], 'Hires CFG Scale': ['cfg_scale', Number.parseFloat],
  'Hires prompt': ['prompt', String], 'Hires negative prompt': ['negative_prompt', String],
  'Hires sampler': ['sampler_name', String], 'Hires schedule type': ['schedule_type', String],
};
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** All text chunks of a PNG as {keyword: text}; null when the bytes are not a PNG. */
export async function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(buffer);
  const texts = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    pos += 12 + length;
    if (type === 'IEND') break;
    if (type !== 'tEXt' && type !== 'iTXt' && type !== 'zTXt') continue;
    const nul = data.indexOf(0);
    if (nul < 0) continue;
    const keyword = latin1.decode(data.subarray(0, nul));
    try {
      if (type === 'tEXt') texts[keyword] = latin1.decode(data.subarray(nul + 1));
      else if (type === 'zTXt') texts[keyword] = latin1.decode(await inflate(data.subarray(nul + 2)));
      else {
        // iTXt: keyword \0 flag method language \0 translated keyword \0 text
        const compressed = data[nul + 1] === 1;
        const langEnd = data.indexOf(0, nul + 3);
        const transEnd = data.indexOf(0, langEnd + 1);
        const body = data.subarray(transEnd + 1);
        texts[keyword] = utf8.decode(compressed ? await inflate(body) : body);
      }
    } catch {
      // One unreadable chunk should not hide the others.
    }
  }
  return texts;
}

// AUTOMATIC1111's own pattern for "Key: value, Key: "quoted, value"" (modules/infotext_utils.py).
const PARAM = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
const NEGATIVE = 'Negative prompt:';

function unquote(text) {
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    try {
      const value = JSON.parse(text);
      if (typeof value === 'string') return value;
    } catch { /* not JSON after all */ }
  }
  return text;
}

/** A1111's "parameters" text -> {prompt, negative_prompt, steps, sampler_name, ...}. */
export function parseA1111(text) {
  const lines = text.trim().split('\n');
  let last = lines.pop() ?? '';
  // As A1111 does: a last line with fewer than three settings belongs to the prompt.
  if ([...last.matchAll(PARAM)].filter((m) => m[0].trim()).length < 3) {
    lines.push(last);
    last = '';
  }
  const prompt = [];
  const negative = [];
  let inNegative = false;
  for (const raw of lines) {
    let line = raw.trim();
    if (line.startsWith(NEGATIVE)) {
      inNegative = true;
      line = line.slice(NEGATIVE.length).trim();
    }
    (inNegative ? negative : prompt).push(line);
  }
  const out = { prompt: prompt.join('\n'), negative_prompt: negative.join('\n') };
  for (const m of last.matchAll(PARAM)) {
    if (!m[0].trim()) continue;
    const key = m[1].trim();
    const value = unquote(m[2].trim());
    if (key === 'Size') {
      const size = widthHeight(value);
      if (size) [out.width, out.height] = size;
    } else if (key === 'Steps') out.steps = Number.parseInt(value, 10);
    else if (key === 'CFG scale') out.cfg_scale = Number.parseFloat(value);
    else if (key === 'Seed') out.seed = Number.parseInt(value, 10);
    else if (key === 'Sampler') out.sampler_name = value;
    else if (key === 'Schedule type') out.schedule_type = value;
    else if (key === 'Model') out.model = value;
    else if (key === 'VAE') out.vae = value;
    else if (key === 'Denoising strength') out.strength = Number.parseFloat(value);
    else if (key === 'Noise multiplier') out.noise_multiplier = Number.parseFloat(value);
    else if (key === 'Extra noise') out.extra_noise = Number.parseFloat(value);
    else if (key === 'Conditional mask weight') out.inpaint_mask_weight = Number.parseFloat(value);
    else if (key === 'Clip skip') out.clip_skip = Number.parseInt(value, 10);
    else if (key === 'Mask blur') out.mask_blur = Number.parseInt(value, 10);
    else if (key === 'Img2img steps') out.img2img_steps = value; // Impasto's: how steps counted
    else if (key === 'Variation seed') out.subseed = Number.parseInt(value, 10);
    else if (key === 'Variation seed strength') out.subseed_strength = Number.parseFloat(value);
    else if (key === 'Eta' || key === 'Eta DDIM') out.eta = Number.parseFloat(value);
    else if (Object.hasOwn(CHURN_LABELS, key)) out[CHURN_LABELS[key]] = Number.parseFloat(value);
    else if (Object.hasOwn(BOUND_LABELS, key)) out[BOUND_LABELS[key]] = Number.parseFloat(value);
    else if (key === 'NGMS') out.s_min_uncond = Number.parseFloat(value);
    else if (key === 'NGMS all steps') out.s_min_uncond_all = value === 'True';
    else if (key === 'Skip Early CFG') out.skip_early_cond = Number.parseFloat(value);
    else if (key === 'Discard penultimate sigma') out.discard_penultimate_sigma = value === 'True';
    else if (key === 'SGM noise multiplier') out.sgm_noise_multiplier = value === 'True';
    else if (key === 'UniPC order') out.unipc_order = Number.parseInt(value, 10);
    else if (key === 'UniPC variant') out.unipc_variant = value;
    else if (key === 'ENSD') out.noise_seed_delta = Number.parseInt(value, 10);
    else if (key === 'RNG') out.rng = value === 'CPU' ? 'cpu' : value === 'NV' ? 'nv' : 'pcg64';
    else if (key === 'Tiling') out.tiling = value === 'True';
    // One axis, as A1111's asymmetric tiling extension writes it.
    else if (key === 'Tile X' && value === 'True') out.tiling = out.tiling === 'y' ? true : 'x';
    else if (key === 'Tile Y' && value === 'True') out.tiling = out.tiling === 'x' ? true : 'y';
    else if (Object.hasOwn(HIRES_LABELS, key)) {
      const [field, read] = HIRES_LABELS[key];
      out.hires = { ...out.hires, [field]: read(value) };
    } else if (key === 'Hires resize') {
      const size = widthHeight(value);
      if (size) out.hires = { ...out.hires, width: size[0], height: size[1] };
    } else if (key === 'Seed resize from') {
      const size = widthHeight(value);
      if (size) [out.seed_resize_from_width, out.seed_resize_from_height] = size;
    }
  }
  return out;
}

/** A1111's "WxH" value as [width, height], or null. */
function widthHeight(value) {
  const size = /^(\d+)x(\d+)$/.exec(value);
  return size ? [Number(size[1]), Number(size[2])] : null;
}

/** Map A1111's sampler label ("DPM++ 2M Karras" or "DPM++ 2M" + "Karras") to our ids.
 *  No schedule, or "Automatic", means what A1111's "Automatic" runs that sampler on. */
export function matchSampler(label, scheduleLabel, samplers, scheduleList = []) {
  const norm = (s) => String(s || '').toLowerCase().replace(/\s+/g, ' ').trim();
  // Every name a sampler goes by (GET /samplers: id, label, A1111 name, aliases).
  const names = (s) => [s.id, s.name, s.a1111_name, ...(s.aliases || [])].map(norm);
  const schedules = [...new Set(samplers.flatMap((s) => s.schedules || []))];
  // Every name a schedule goes by (GET /schedules: id, label, A1111 name) -> its id.
  const scheduleIds = new Map(schedules.map((id) => [id, id]));
  for (const s of scheduleList) {
    for (const n of [s.name, s.a1111_name]) if (n) scheduleIds.set(norm(n), s.id);
  }
  let name = norm(label);
  let schedule = norm(scheduleLabel);
  if (schedule === 'automatic') schedule = '';
  let sampler = samplers.find((s) => names(s).includes(name));
  for (const suffix of scheduleIds.keys()) {
    if (!sampler && name.endsWith(` ${suffix}`)) {
      name = name.slice(0, -suffix.length - 1);
      schedule = schedule || suffix;
      sampler = samplers.find((s) => names(s).includes(name));
    }
  }
  const automatic = !schedule;
  return {
    sampler: sampler?.id,
    schedule: (automatic ? sampler?.a1111_schedule : scheduleIds.get(schedule)) || 'default',
  };
}

/** The ``hires`` of a request from A1111's hires labels: its upscaler's name ("Latent
 *  (bicubic)") as an id ("latent-bicubic"), its sampler and schedule as ids, "Use same ..." as
 *  left out, and the txt2img's "Denoising strength" as the pass's. */
function hiresValues(parsed, samplers, schedules) {
  const { sampler_name: samplerName, schedule_type: scheduleType, ...hires } = parsed.hires;
  if (hires.upscaler) hires.upscaler = hires.upscaler.toLowerCase().replace(/[()]/g, '').trim().replace(/\s+/g, '-');
  if (samplerName && !/^use same/i.test(samplerName)) {
    const same = !scheduleType || /^use same/i.test(scheduleType);
    const match = matchSampler(samplerName, same ? '' : scheduleType, samplers, schedules);
    if (match.sampler) hires.sampler = match.sampler;
    if (!same) hires.schedule = match.schedule;
  }
  if (Number.isFinite(parsed.strength)) hires.strength = parsed.strength;
  return hires;
}

/** A1111's "VAE: name" as an installed VAE's id: A1111 names the file ("x.safetensors"), "None"
 *  or "Automatic" the checkpoint's own ('' here); a VAE not installed keeps its name, so the form
 *  can say so. */
function installedVae(name, models) {
  if (/^(none|automatic)$/i.test(name)) return '';
  const bare = name.replace(/\.(safetensors|ckpt|pt)$/i, '');
  const vae = models.find((m) => m.type === 'vae' && [m.id, m.name].some((n) => n === name || n === bare));
  return vae ? vae.id : bare;
}

/** Form values found in a PNG file, or null when it carries none. */
export async function settingsFromPng(file, { samplers = [], schedules = [], models = [] } = {}) {
  const texts = await readPngText(await file.arrayBuffer());
  if (!texts) return null;
  if (texts.impasto) {
    try {
      const request = JSON.parse(texts.impasto);
      if (request && typeof request.prompt === 'string') return request;
    } catch { /* fall back to the A1111 text */ }
  }
  if (!texts.parameters) return null;
  const parsed = parseA1111(texts.parameters);
  const { sampler, schedule } = matchSampler(parsed.sampler_name, parsed.schedule_type, samplers, schedules);
  const model = models.find((m) => m.id === parsed.model || m.name === parsed.model);
  const values = { ...parsed, schedule };
  if (parsed.vae !== undefined) values.vae = installedVae(parsed.vae, models);
  delete values.sampler_name;
  delete values.schedule_type;
  delete values.model;
  if (sampler) values.sampler = sampler;
  if (model) values.model = model.id;
  if (parsed.hires) values.hires = hiresValues(parsed, samplers, schedules);
  return values;
}
