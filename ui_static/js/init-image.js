// The Image to image card's picture: chosen, dropped (or Enter/Space on the drop zone) and
// removed, the mask editor over it, and the card's summary (img2img, or inpaint with a mask).
import { byId } from './dom.js';
import { MaskEditor } from './mask.js';

export class InitImage {
  /** ``errors``: the form's FormErrors, where a file the browser cannot read is reported. */
  constructor(errors) {
    this.errors = errors;
    this.mask = new MaskEditor({
      stage: byId('mask-stage'), brush: byId('mask-brush'), erase: byId('mask-erase'),
      onChange: () => this.summarize(),
    });
    this.bind();
  }

  /** Show a File as the init image (img2img, or inpaint once a mask is painted); false when
   * the browser cannot read it (the error is shown at the drop zone). */
  async set(file) {
    let taken = false;
    try {
      await this.mask.setImage(file);
      byId('mask-editor').hidden = false;
      byId('init-drop').classList.add('has-image');
      this.errors.clear('init_image');
      taken = true;
    } catch (err) {
      this.errors.show('init_image', err.message);
    }
    this.summarize();
    return taken;
  }

  bind() {
    const zone = byId('init-drop');
    const input = byId('init-file');
    const take = (file) => file && this.set(file);
    input.addEventListener('change', () => take(input.files[0]));
    zone.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        input.click();
      }
    });
    zone.addEventListener('dragover', (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      e.stopPropagation();
      zone.classList.remove('over');
      take(e.dataTransfer.files[0]);
    });
    byId('mask-clear').addEventListener('click', () => this.mask.clear());
    byId('mask-invert').addEventListener('click', () => this.mask.invert());
    byId('init-remove').addEventListener('click', () => {
      this.mask.removeImage();
      input.value = '';
      byId('mask-editor').hidden = true;
      zone.classList.remove('has-image');
      this.summarize();
    });
    this.summarize();
  }

  summarize() {
    const text = !this.mask.hasImage ? '' : this.mask.hasMask ? '· inpaint' : '· img2img';
    byId('img-summary').textContent = text;
  }
}
