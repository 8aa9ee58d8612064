// The init image for img2img and a mask painted over it for inpainting (white = repaint).
import { h } from './dom.js';

const STROKE = '#ff3d6e';
const MAX_SIDE = 2048;
// A pixel counts as painted from half opacity: an eraser leaves faint edges behind, and the
// daemon repaints from half grey up, so a mask with none of these is no mask.
const PAINTED_ALPHA = 128;

/** Holds the chosen image and a paintable mask canvas drawn at the image's own resolution. */
export class MaskEditor {
  constructor({ stage, brush, erase, onChange }) {
    this.stage = stage;
    this.brush = brush;
    this.erase = erase;
    this.onChange = onChange;
    this.file = null;
    this.painted = false;
    this.img = h('img', { alt: 'Init image', class: 'mask-image', draggable: 'false' });
    this.canvas = h('canvas', { class: 'mask-canvas', 'aria-label': 'Mask: paint the area to repaint' });
    this.cursor = h('div', { class: 'mask-cursor', 'aria-hidden': 'true' });
    stage.append(this.img, this.canvas, this.cursor);
    this.bindPointer();
  }

  /** The mask canvas's context, made for reading back (isEmpty reads it after each stroke). */
  context() {
    return this.canvas.getContext('2d', { willReadFrequently: true });
  }

  get hasImage() {
    return this.file !== null;
  }

  get hasMask() {
    return this.painted;
  }

  /** Show a File/Blob as the init image and reset the mask to its size. */
  async setImage(file) {
    const url = URL.createObjectURL(file);
    try {
      await new Promise((resolve, reject) => {
        this.img.onload = resolve;
        this.img.onerror = () => reject(new Error('That file is not an image this browser can read.'));
        this.img.src = url;
      });
    } catch (err) {
      URL.revokeObjectURL(url);
      throw err;
    }
    this.file = file;
    const scale = Math.min(1, MAX_SIDE / Math.max(this.img.naturalWidth, this.img.naturalHeight));
    this.canvas.width = Math.round(this.img.naturalWidth * scale);
    this.canvas.height = Math.round(this.img.naturalHeight * scale);
    this.clear();
  }

  removeImage() {
    if (this.img.src) URL.revokeObjectURL(this.img.src);
    this.img.removeAttribute('src');
    this.file = null;
    this.clear();
  }

  clear() {
    this.context().clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.setPainted(false);
  }

  /** Paint where nothing was painted and clear the rest. */
  invert() {
    const copy = h('canvas', { width: this.canvas.width, height: this.canvas.height });
    copy.getContext('2d').drawImage(this.canvas, 0, 0);
    const ctx = this.context();
    ctx.save();
    ctx.globalCompositeOperation = 'copy';
    ctx.fillStyle = STROKE;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.globalCompositeOperation = 'destination-out';
    ctx.drawImage(copy, 0, 0);
    ctx.restore();
    this.setPainted(!this.isEmpty());
  }

  setPainted(value) {
    this.painted = value;
    this.onChange?.();
  }

  /** The mask as a PNG: white where painted, black elsewhere; null when nothing is painted
   * (an all-black mask is none). With `blur` (A1111's mask blur, pixels of the image), the
   * painted part is made black and white, then blurred: a soft seam around what is repainted. */
  async maskBlob(blur = 0) {
    if (!this.painted || this.isEmpty()) return null;
    const { width, height } = this.canvas;
    const white = h('canvas', { width, height });
    const wctx = white.getContext('2d');
    wctx.drawImage(this.canvas, 0, 0);
    wctx.globalCompositeOperation = 'source-in';
    wctx.fillStyle = '#fff';
    wctx.fillRect(0, 0, width, height);
    const out = h('canvas', { width, height });
    const octx = out.getContext('2d', { willReadFrequently: true });
    octx.fillStyle = '#000';
    octx.fillRect(0, 0, width, height);
    octx.drawImage(white, 0, 0);
    if (blur > 0) {
      const pixels = octx.getImageData(0, 0, width, height);
      const grey = new Float32Array(width * height);
      for (let i = 0; i < grey.length; i++) grey[i] = pixels.data[i * 4] >= PAINTED_ALPHA ? 255 : 0;
      const soft = gaussianBlur(grey, width, height, blur);
      for (let i = 0; i < grey.length; i++) {
        const v = Math.round(soft[i]);
        pixels.data.set([v, v, v, 255], i * 4);
      }
      octx.putImageData(pixels, 0, 0);
    }
    return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  }

  bindPointer() {
    let last = null;
    const point = (e) => {
      const rect = this.canvas.getBoundingClientRect();
      const scale = this.canvas.width / rect.width;
      return { x: (e.clientX - rect.left) * scale, y: (e.clientY - rect.top) * scale, scale };
    };
    const draw = (p) => {
      const ctx = this.context();
      ctx.globalCompositeOperation = this.erase.checked ? 'destination-out' : 'source-over';
      ctx.strokeStyle = STROKE;
      ctx.fillStyle = STROKE;
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.lineWidth = Number(this.brush.value) * p.scale;
      ctx.beginPath();
      ctx.moveTo(last ? last.x : p.x, last ? last.y : p.y);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
      last = p;
    };
    this.canvas.addEventListener('pointerdown', (e) => {
      if (!this.file) return;
      this.canvas.setPointerCapture(e.pointerId);
      last = null;
      draw(point(e));
    });
    this.canvas.addEventListener('pointermove', (e) => {
      const rect = this.canvas.getBoundingClientRect();
      const size = Number(this.brush.value);
      Object.assign(this.cursor.style, {
        width: `${size}px`, height: `${size}px`,
        transform: `translate(${e.clientX - rect.left - size / 2}px, ${e.clientY - rect.top - size / 2}px)`,
      });
      if (last) draw(point(e));
    });
    const end = () => {
      if (last) this.setPainted(!this.isEmpty());
      last = null;
    };
    this.canvas.addEventListener('pointerup', end);
    this.canvas.addEventListener('pointercancel', end);
  }

  isEmpty() {
    const { data } = this.context().getImageData(0, 0, this.canvas.width, this.canvas.height);
    for (let i = 3; i < data.length; i += 4) if (data[i] >= PAINTED_ALPHA) return false;
    return true;
  }
}

/** ``values`` (a width x height grey picture) blurred with a Gaussian of standard deviation
 * ``sigma`` pixels, as three box blurs across and down (edges repeat the border pixel): the
 * cost does not grow with the blur, and A1111's largest, 64, stays quick on a large picture. */
export function gaussianBlur(values, width, height, sigma) {
  let a = Float32Array.from(values);
  let b = new Float32Array(a.length);
  for (const radius of boxRadii(sigma)) {
    boxBlur(a, b, width, height, width, 1, radius);
    boxBlur(b, a, height, width, 1, width, radius);
  }
  return a;
}

/** The radii of three box blurs whose sum is a Gaussian of ``sigma`` (Kovesi's widths). */
function boxRadii(sigma) {
  const ideal = Math.sqrt((12 * sigma * sigma) / 3 + 1);
  let lower = Math.floor(ideal);
  if (lower % 2 === 0) lower -= 1;
  const lowerCount = Math.round((12 * sigma * sigma - 3 * lower * lower - 12 * lower - 9) / (-4 * lower - 4));
  return [0, 1, 2].map((i) => ((i < lowerCount ? lower : lower + 2) - 1) / 2);
}

/** A running-sum box blur of ``count`` lines of ``length`` samples each, line i starting at
 * i x ``stride`` with samples ``step`` apart, from ``src`` into ``dst``. */
function boxBlur(src, dst, length, count, stride, step, radius) {
  const span = 2 * radius + 1;
  for (let line = 0; line < count; line++) {
    const start = line * stride;
    const at = (k) => src[start + Math.min(length - 1, Math.max(0, k)) * step];
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += at(k);
    for (let x = 0; x < length; x++) {
      dst[start + x * step] = sum / span;
      sum += at(x + radius + 1) - at(x - radius);
    }
  }
}
