// Client-side checks with the API's ranges and wording, so errors read the same either way.

const isInt = (v) => Number.isInteger(v);
const between = (v, lo, hi) => Number.isFinite(v) && v >= lo && v <= hi;

/** field -> [test(value), message]; messages match the daemon's FIELD_RULES. */
export const RULES = {
  prompt: [(v) => typeof v === 'string' && v.trim().length >= 1 && v.length <= 1000, 'must be text of 1 to 1000 characters, not only spaces'],
  negative_prompt: [(v) => typeof v === 'string' && v.length <= 1000, 'must be text of at most 1000 characters'],
  width: [(v) => isInt(v) && between(v, 64, 2048) && v % 8 === 0, 'must be an integer multiple of 8 between 64 and 2048'],
  height: [(v) => isInt(v) && between(v, 64, 2048) && v % 8 === 0, 'must be an integer multiple of 8 between 64 and 2048'],
  steps: [(v) => isInt(v) && between(v, 1, 150), 'must be an integer between 1 and 150'],
  cfg_scale: [(v) => between(v, 1, 30), 'must be a number between 1 and 30'],
  seed: [(v) => isInt(v) && between(v, -1, 4294967295), 'must be -1 (random) or an integer between 0 and 4294967295'],
  batch_size: [(v) => isInt(v) && between(v, 1, 10), 'must be an integer between 1 and 10'],
  priority: [(v) => isInt(v) && between(v, -100, 100), 'must be an integer between -100 and 100'],
  strength: [(v) => between(v, 0, 1), 'must be a number between 0 and 1'],
};

const LORA_WEIGHT = [(v) => between(v, -2, 2), 'must be a number between -2 and 2'];

/** Errors in the API's shape: [{field, message}], empty when the request is fine. */
export function validateRequest(req) {
  const errors = [];
  for (const [field, [ok, message]] of Object.entries(RULES)) {
    if (field in req && !ok(req[field])) errors.push({ field, message });
  }
  (req.loras || []).forEach((lora, i) => {
    if (!lora.name || lora.name.length > 200) {
      errors.push({ field: `loras[${i}].name`, message: 'must be the name of an installed LoRA' });
    }
    if (!LORA_WEIGHT[0](lora.weight)) errors.push({ field: `loras[${i}].weight`, message: LORA_WEIGHT[1] });
  });
  return errors;
}
