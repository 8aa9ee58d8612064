// The full-size image dialog: parameters, "use these settings", "send to img2img", download,
// upscale, delete, prev/next.
import { ApiError, api, fetchBlob, withToken } from './api.js';
import { byId, formatTime, h, toast } from './dom.js';
import { UpscaleAction } from './upscale.js';

/** Opens gallery entries (or any job's image) in a modal dialog. */
export class Viewer {
  constructor({ onUse, onImage, samplers, onQueued }) {
    this.onUse = onUse;
    this.onImage = onImage;
    this.upscale = new UpscaleAction({ onQueued });
    this.samplers = samplers;
    this.gallery = null;
    this.index = -1;
    this.entry = null;
    this.dialog = byId('viewer');
    byId('viewer-close').addEventListener('click', () => this.dialog.close());
    byId('viewer-prev').addEventListener('click', () => this.step(-1));
    byId('viewer-next').addEventListener('click', () => this.step(1));
    byId('viewer-use').addEventListener('click', () => this.use());
    byId('viewer-img2img').addEventListener('click', () => this.sendToImg2img());
    byId('viewer-delete').addEventListener('click', () => this.remove());
    this.dialog.addEventListener('click', (e) => {
      if (e.target === this.dialog) this.dialog.close();
    });
    this.dialog.addEventListener('keydown', (e) => {
      if (e.target.closest('input, textarea')) return;
      if (e.key === 'ArrowLeft') this.step(-1);
      if (e.key === 'ArrowRight') this.step(1);
    });
  }

  /** Show gallery entry number `index`. */
  open(index) {
    const entry = this.gallery?.entries[index];
    if (!entry) return;
    this.index = index;
    this.show(entry);
  }

  /** Show one image of any job (from the live panel); a job gone since is said so. */
  async openJob(jobId, imageIndex) {
    let job;
    try {
      job = await api(`/generate/${jobId}`);
    } catch (err) {
      toast(err instanceof ApiError && err.status === 404
        ? 'That image is no longer there: it was deleted.' : `Could not open the image: ${err.message}`, 'error');
      return;
    }
    const result = job.results.find((r) => r.index === imageIndex) || job.results[0];
    if (!result) {
      toast('That job has no image to show.', 'error');
      return;
    }
    this.index = this.gallery?.entries.findIndex((e) => e.job.id === jobId && e.result.index === result.index) ?? -1;
    this.show({ job, result });
  }

  show(entry) {
    this.entry = entry;
    this.upscale.show(entry);
    const { job, result } = entry;
    const req = job.request || {};
    const img = byId('viewer-img');
    img.src = withToken(result.url);
    img.alt = req.prompt || 'Generated image';
    byId('viewer-title').textContent = formatTime(job.completed_at || job.created_at) || 'Image';
    const download = byId('viewer-download');
    download.href = withToken(result.url);
    download.download = `impasto-${job.id.slice(0, 8)}-${result.seed}.png`;
    const sampler = this.samplers().find((s) => s.id === req.sampler)?.name || req.sampler;
    const rows = [
      ['Prompt', req.prompt], ['Negative prompt', req.negative_prompt], ['Model', req.model], ['VAE', req.vae],
      ['Refiner', req.refiner ? `${req.refiner} (at ${req.refiner_switch ?? 0.8})` : null],
      ['Sampler', req.schedule && req.schedule !== 'default' ? `${sampler} · ${req.schedule}` : sampler],
      ['Size', `${result.width} × ${result.height}`], ['Steps', req.steps], ['CFG scale', req.cfg_scale],
      ['Seed', result.seed], ['Strength', req.init_image ? req.strength : null],
      ['Noise multiplier', req.init_image && (req.noise_multiplier ?? 1) !== 1 ? req.noise_multiplier : null],
      ['Sigma churn', req.s_churn || null],
      ['Schedule sigmas', req.sigma_min != null || req.sigma_max != null
        ? `${req.sigma_max ?? 'top'} → ${req.sigma_min ?? 'lowest'}` : null],
      ['Schedule rho', req.rho ?? null],
      ['LoRAs', (req.loras || []).map((l) => `${l.name} (${l.weight}${l.unet_weight == null ? '' : `, UNet ${l.unet_weight}`})`).join(', ')],
    ];
    byId('viewer-params').replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .flatMap(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { param: k } }, String(v))]));
    byId('viewer-prev').disabled = this.index <= 0;
    // The last thumbnail loaded is not the last image while the gallery has more pages.
    const last = this.index >= (this.gallery?.entries.length ?? 0) - 1;
    byId('viewer-next').disabled = this.index < 0 || (last && !this.gallery?.cursor);
    if (!this.dialog.open) this.dialog.showModal();
  }

  async step(delta) {
    if (this.index < 0 || this.stepping) return;
    const next = this.index + delta;
    if (next >= this.gallery.entries.length && this.gallery.cursor) {
      this.stepping = true;
      try {
        await this.gallery.fetchPage();
      } finally {
        this.stepping = false;
      }
    }
    if (next >= 0 && next < this.gallery.entries.length) this.open(next);
  }

  use() {
    const { job, result } = this.entry;
    this.dialog.close();
    this.onUse({ ...job.request, seed: result.seed });
  }

  /** The image as the init image, with its settings at its own size (A1111's "Send to img2img"). */
  async sendToImg2img() {
    const { job, result } = this.entry;
    let file;
    try {
      const blob = await fetchBlob(result.url);
      file = new File([blob], `impasto-${job.id.slice(0, 8)}-${result.index}.png`, { type: 'image/png' });
    } catch (err) {
      toast(err.message, 'error');
      return;
    }
    this.dialog.close();
    // At the picture's own size, so no hires pass on top (the picture may be one's result).
    const { init_image, mask_image, ...request } = job.request || {};
    const size = { width: result.width, height: result.height };
    this.onImage({ ...request, ...size, seed: result.seed, hires: null }, file);
  }

  async remove() {
    const { job } = this.entry;
    const count = job.results.length;
    const what = count > 1 ? `this job's ${count} images` : 'this image';
    if (!window.confirm(`Delete ${what}? This removes the files from disk.`)) return;
    try {
      await api(`/generate/${job.id}`, { method: 'DELETE' });
      const { index } = this;
      this.gallery?.removeJob(job.id);
      this.dialog.close();
      // The thumbnail that opened the viewer is gone, and focus with it: give it to the one
      // now in its place, so the keyboard goes on from there.
      if (index >= 0) this.gallery?.focusNear(index);
      toast('Deleted.');
    } catch (err) {
      toast(err.message, 'error');
    }
  }
}
