// The viewer's Upscale action: an upscaler (built-in or installed model) by a factor, or
// AUTOMATIC1111's SD upscale (upscale, then img2img over overlapping tiles) as a queued job.
import { API, api, fetchBlob } from './api.js';
import { byId, dataUrl, h, toast } from './dom.js';

// What an SD upscale job takes over from the image's own request.
const KEEP = ['prompt', 'negative_prompt', 'model', 'loras', 'sampler', 'schedule', 'steps',
  'cfg_scale', 'vae', 'clip_skip'];
// An upscaler model runs inside the request, for minutes on a large picture and a CPU.
const UPSCALE_TIMEOUT_MS = 10 * 60_000;

export class UpscaleAction {
  constructor({ onQueued }) {
    this.onQueued = onQueued;
    this.entry = null;
    this.objectUrl = null;
    this.loaded = false;
    byId('upscale-box').addEventListener('toggle', () => this.loadUpscalers());
    byId('upscale-sd').addEventListener('change', (e) => { byId('upscale-sd-fields').hidden = !e.target.checked; });
    byId('upscale-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
  }

  /** A new image in the viewer: clear the last result. */
  show(entry) {
    this.entry = entry;
    byId('upscale-status').textContent = '';
    const link = byId('upscale-download');
    link.hidden = true;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  }

  async loadUpscalers() {
    if (this.loaded || !byId('upscale-box').open) return;
    try {
      const items = await api('/upscalers');
      const select = byId('upscale-upscaler');
      select.replaceChildren(...items.filter((u) => u.kind !== 'none').map((u) => h(
        'option', { value: u.id }, u.scale ? `${u.name} (${u.scale}x model)` : u.name,
      )));
      select.value = 'lanczos';
      this.loaded = true;
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  async run() {
    const { job, result } = this.entry;
    const upscaler = byId('upscale-upscaler').value;
    const scale = Number(byId('upscale-scale').value);
    const status = byId('upscale-status');
    const button = byId('upscale-run');
    button.disabled = true;
    try {
      if (byId('upscale-sd').checked) await this.sdUpscale(job, result, upscaler, scale);
      else await this.upscale(job, result, upscaler, scale);
    } catch (err) {
      status.textContent = err.message;
      toast(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async upscale(job, result, upscaler, scale) {
    byId('upscale-status').textContent = 'Upscaling…';
    const blob = await fetchBlob(`${API}/upscale`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ image: result.url, upscaler, scale }),
    }, UPSCALE_TIMEOUT_MS);
    const bitmap = await createImageBitmap(blob);
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = URL.createObjectURL(blob);
    byId('viewer-img').src = this.objectUrl;
    const link = byId('upscale-download');
    link.href = this.objectUrl;
    link.download = `impasto-${job.id.slice(0, 8)}-${result.seed}-${upscaler}.png`;
    link.hidden = false;
    byId('upscale-status').textContent = `Upscaled to ${bitmap.width} × ${bitmap.height} with ${upscaler}.`;
    bitmap.close();
  }

  async sdUpscale(job, result, upscaler, scale) {
    byId('upscale-status').textContent = 'Queueing SD upscale…';
    const request = job.request || {};
    const image = await dataUrl(await fetchBlob(result.url));
    const req = Object.fromEntries(KEEP.filter((k) => request[k] !== undefined && request[k] !== null)
      .map((k) => [k, request[k]]));
    Object.assign(req, {
      // The tiles are the size the image was generated at.
      width: request.width || result.width,
      height: request.height || result.height,
      seed: result.seed,
      init_image: image,
      strength: Number(byId('upscale-strength').value),
      sd_upscale: { scale, overlap: Number(byId('upscale-overlap').value), upscaler },
    });
    const queued = await api('/generate', {
      method: 'POST', body: req, headers: { 'Idempotency-Key': crypto.randomUUID() },
    });
    this.onQueued?.(queued, req);
    byId('upscale-status').textContent = 'SD upscale queued; it appears in the gallery when done.';
    toast('SD upscale queued.');
  }
}
