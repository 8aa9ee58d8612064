// The Generate form's request as an AUTOMATIC1111 txt2img or img2img request, for the X/Y/Z
// plot, which runs through /sdapi/v1 (docs/compat.md maps each field). Every setting of the form
// that A1111's API can carry is sent, pinned in override_settings where A1111 would otherwise
// read an option another client may have set; the few it cannot carry are named, not dropped.

const RNG = { pcg64: 'GPU', cpu: 'CPU', nv: 'NV' }; // A1111's GPU source runs on Impasto's own
const RESIZE = { stretch: 0, crop: 1, fill: 2, latent: 3 };
const MASKED_CONTENT = ['fill', 'original', 'latent_noise', 'latent_nothing']; // inpainting_fill
// The native defaults of the fields the form leaves blank, where A1111's differ (UniPC).
const UNIPC = { order: 2, variant: 'bh2' };

/** A1111's name of a hires upscaler id ("latent-bicubic" -> "Latent (bicubic)"), from the names
 * /sdapi/v1 lists; an installed model keeps its own name. */
export function upscalerName(id, names) {
  const key = (name) => name.toLowerCase().replace(/[()]/g, '').trim().replace(/\s+/g, '-');
  return names.find((name) => key(name) === id) || id;
}

/**
 * ``req``: GenerateForm.read(); ``images``: {init, mask} data URLs or null; ``upscalers``: A1111's
 * upscaler names. Returns {path, body, unused}: the route, its body, and the labels of the form's
 * settings A1111's API has no field for (the plot runs without them).
 */
export function toA1111(req, images, upscalers = []) {
  const unused = [];
  // A1111's <lora:name:te:unet> gives the UNet its own weight.
  const tags = (req.loras || [])
    .map((l) => ` <lora:${l.name}:${l.weight ?? 1}${l.unet_weight == null ? '' : `:${l.unet_weight}`}>`).join('');
  const num = (value, fallback) => (Number.isFinite(value) ? value : fallback);
  const options = {
    CLIP_stop_at_last_layers: num(req.clip_skip, 1),
    randn_source: RNG[req.rng] || 'GPU',
    eta_noise_seed_delta: num(req.noise_seed_delta, 0),
    sd_vae_decode_method: req.decoder === 'fast' ? 'TAESD' : 'Full',
    // Blank eta is the sampler's own: A1111's defaults are the same (1, DDIM 0).
    eta_ancestral: num(req.eta, 1),
    eta_ddim: num(req.eta, 0),
    s_churn: num(req.s_churn, 0),
    s_tmin: num(req.s_tmin, 0),
    s_tmax: num(req.s_tmax, 0), // A1111's 0 is no bound
    s_noise: num(req.s_noise, 1),
    sigma_min: num(req.sigma_min, 0), // A1111's 0 is the schedule's own
    sigma_max: num(req.sigma_max, 0),
    rho: num(req.rho, 0),
    s_min_uncond: num(req.s_min_uncond, 0),
    s_min_uncond_all: Boolean(req.s_min_uncond_all),
    skip_early_cond: num(req.skip_early_cond, 0),
    always_discard_next_to_last_sigma: Boolean(req.discard_penultimate_sigma),
    sgm_noise_multiplier: Boolean(req.sgm_noise_multiplier) && !images,
    uni_pc_order: num(req.unipc_order, UNIPC.order),
    uni_pc_variant: req.unipc_variant || UNIPC.variant,
    img2img_extra_noise: num(req.extra_noise, 0),
    inpainting_mask_weight: num(req.inpaint_mask_weight, 1),
  };
  if (req.model) options.sd_model_checkpoint = req.model;
  options.sd_vae = req.vae || 'Automatic'; // pinned: /options may hold another client's VAE
  const body = {
    prompt: `${req.prompt}${tags}`,
    negative_prompt: req.negative_prompt,
    sampler_name: req.sampler || undefined,
    scheduler: req.schedule || undefined,
    batch_size: 1, // one image per cell
    subseed: num(req.subseed, -1),
    subseed_strength: num(req.subseed_strength, 0),
    seed_resize_from_w: req.seed_resize_from_width || -1,
    seed_resize_from_h: req.seed_resize_from_height || -1,
    override_settings: options,
  };
  for (const key of ['width', 'height', 'steps', 'cfg_scale', 'seed', 'eta']) {
    if (Number.isFinite(req[key])) body[key] = req[key];
  }
  if (req.tiling === true) body.tiling = true;
  else if (req.tiling) unused.push(`Tiling wraps ${req.tiling === 'x' ? 'left to right' : 'top to bottom'} only`);
  if (req.refiner) {
    body.refiner_checkpoint = req.refiner;
    body.refiner_switch_at = req.refiner_switch;
  }
  if (req.cache_interval) unused.push('DeepCache');
  if (req.priority) unused.push('Priority');
  if (images) {
    Object.assign(body, {
      init_images: [images.init],
      denoising_strength: req.strength,
      resize_mode: RESIZE[req.resize_mode] ?? 0,
      initial_noise_multiplier: num(req.noise_multiplier, 1),
    });
    options.img2img_color_correction = Boolean(req.color_correction);
    options.img2img_fix_steps = req.img2img_steps === 'exact';
    if (req.img2img_steps === 'strength') unused.push('Steps from an image: steps × strength (A1111 counts one more)');
    if (images.mask) {
      Object.assign(body, {
        mask: images.mask,
        mask_blur: num(req.mask_blur, 0), // the form's mask is sent as painted: A1111 blurs it
        inpaint_full_res: req.inpaint_area === 'masked',
        inpaint_full_res_padding: num(req.inpaint_padding, 32),
        inpainting_fill: Math.max(0, MASKED_CONTENT.indexOf(req.masked_content)),
      });
    }
    if (req.hires) unused.push('Hires fix (A1111 has none for img2img)');
  } else if (req.hires) {
    Object.assign(body, {
      enable_hr: true,
      hr_scale: req.hires.scale,
      hr_upscaler: upscalerName(req.hires.upscaler, upscalers),
      hr_second_pass_steps: num(req.hires.steps, 0),
      denoising_strength: req.hires.strength,
    });
    // The pass's own settings, where the form sets them (left out: the first pass's, as here).
    const own = { sampler: 'hr_sampler_name', schedule: 'hr_scheduler', prompt: 'hr_prompt',
      negative_prompt: 'hr_negative_prompt', cfg_scale: 'hr_cfg', width: 'hr_resize_x', height: 'hr_resize_y' };
    for (const [key, field] of Object.entries(own)) if (req.hires[key] != null) body[field] = req.hires[key];
    // A1111's hires pass runs its steps exactly.
    if (req.img2img_steps !== 'exact') unused.push('Steps from an image for the hires pass (A1111 runs them exactly)');
  }
  return { path: images ? '/img2img' : '/txt2img', body, unused };
}
