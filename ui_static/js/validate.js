// Client-side checks read from the daemon's own limits (GET /api/v1/limits, the request
// schema's constraints), so the form never restates a range and errors read the same either way.
import { plural } from './dom.js';

const FORM_FIELDS = ['width', 'height', 'steps', 'cfg_scale', 'seed', 'subseed', 'subseed_strength', 'seed_resize_from_width', 'seed_resize_from_height', 'noise_seed_delta', 'eta', 's_churn', 's_tmin', 's_tmax', 's_noise', 'sigma_min', 'sigma_max', 'rho', 's_min_uncond', 'skip_early_cond', 'batch_size', 'priority', 'strength', 'noise_multiplier', 'extra_noise', 'inpaint_mask_weight', 'clip_skip', 'refiner_switch'];

/** field -> [test(value), message, integer?]; empty until setLimits() ran. */
export const RULES = {};
// A browser reads numbers as doubles: an integer past 2**53 (a large seed) is no longer the one
// typed, so it is refused here rather than sent changed.
const UNSAFE = `is larger than a browser can send exactly (${Number.MAX_SAFE_INTEGER}); use the CLI or the API for it`;
let loraWeight = null;
let loraName = null;

function ruleOf(limit) {
  if (limit.type === 'str') {
    if (limit.choices) return [(v) => limit.choices.includes(v), limit.rule];
    const min = limit.min_length ?? 0;
    const max = limit.max_length ?? Infinity;
    return [(v) => typeof v === 'string' && v.trim().length >= min && v.length <= max, limit.rule];
  }
  const test = (v) => Number.isFinite(v)
    && (limit.type !== 'int' || Number.isInteger(v))
    && (limit.minimum == null || v >= limit.minimum)
    && (limit.maximum == null || v <= limit.maximum)
    && (!limit.multiple_of || v % limit.multiple_of === 0);
  return [test, limit.rule, limit.type === 'int'];
}

/** Take the limits the API serves; also sets the inputs' min, max, step and text lengths. */
export function setLimits(limits) {
  for (const key of Object.keys(RULES)) delete RULES[key];
  for (const [field, limit] of Object.entries(limits)) {
    if (field.startsWith('lora_')) continue;
    RULES[field] = ruleOf(limit);
  }
  loraWeight = limits.lora_weight ? ruleOf(limits.lora_weight) : null;
  loraName = limits.lora_name ? ruleOf(limits.lora_name) : null;
  for (const field of FORM_FIELDS) {
    const limit = limits[field];
    if (!limit) continue;
    for (const el of document.querySelectorAll(`#${field}, input[type=range][data-for="${field}"]`)) {
      if (limit.minimum != null) el.min = String(limit.minimum);
      if (limit.maximum != null) el.max = String(limit.maximum);
      if (limit.multiple_of) el.step = String(limit.multiple_of);
    }
  }
  for (const field of ['prompt', 'negative_prompt', 'hires_prompt', 'hires_negative_prompt']) {
    const el = document.getElementById(field);
    if (el && limits[field]?.max_length) el.maxLength = limits[field].max_length;
  }
}

/** Errors in the API's shape: [{field, message}], empty when the request is fine. */
export function validateRequest(req) {
  const errors = [];
  for (const [field, [ok, message, integer]] of Object.entries(RULES)) {
    if (!(field in req) || req[field] === null) continue;
    const value = req[field];
    if (integer && Number.isInteger(value) && !Number.isSafeInteger(value)) errors.push({ field, message: UNSAFE });
    else if (!ok(value)) errors.push({ field, message });
  }
  (req.loras || []).forEach((lora, i) => {
    if (!lora.name || (loraName && !loraName[0](lora.name))) {
      errors.push({ field: `loras[${i}].name`, message: 'must be the name of an installed LoRA' });
    }
    if (loraWeight && !loraWeight[0](lora.weight)) {
      errors.push({ field: `loras[${i}].weight`, message: loraWeight[1] });
    }
    if (loraWeight && lora.unet_weight != null && !loraWeight[0](lora.unet_weight)) {
      errors.push({ field: `loras[${i}].unet_weight`, message: loraWeight[1] });
    }
  });
  return errors;
}

/** What a text field's maxlength is about to cut off ``inserted`` (a paste, a drop), as a
 * message; null when it all fits. The browser cuts silently. */
export function cutMessage(el, inserted) {
  if (el.maxLength < 0 || !inserted) return null;
  const replaced = (el.selectionEnd ?? 0) - (el.selectionStart ?? 0);
  // The browser counts a pasted CRLF as one character, as the field stores it.
  const over = el.value.length - replaced + inserted.replace(/\r\n?/g, '\n').length - el.maxLength;
  if (over <= 0) return null;
  return `The text was cut to fit: this field takes at most ${el.maxLength} characters, `
    + `so the last ${plural(over, 'character')} inserted did not go in.`;
}
