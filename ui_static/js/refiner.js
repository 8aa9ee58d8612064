// The Generate form's SDXL refiner: which installed refiner takes over, and at what fraction of
// the steps (A1111's Refiner checkpoint and Switch at). Shown for SDXL models only.
import { byId, h } from './dom.js';

export const REFINER_FAMILY = 'sdxl-refiner';

/** A model that only refines another's picture: never a model to generate with. */
export const isRefiner = (model) => model?.family === REFINER_FAMILY;

/** A base model a refiner can follow (SDXL, not a refiner itself). */
const takesRefiner = (model) => Boolean(model?.family?.startsWith('sdxl')) && !isRefiner(model);

export class RefinerField {
  constructor() {
    this.field = byId('refiner-field');
    this.select = byId('refiner');
    this.switchAt = byId('refiner_switch');
    this.count = 0;
    this.sync();
    this.select.addEventListener('change', () => this.sync());
  }

  /** The installed refiners become the menu's choices (the one chosen stays if still there). */
  setModels(models) {
    const chosen = this.select.value;
    const refiners = models.filter((m) => isRefiner(m) && !m.problem);
    this.count = refiners.length;
    this.select.replaceChildren(h('option', { value: '' }, 'None'),
      ...refiners.map((m) => h('option', { value: m.id }, m.name || m.id)));
    if (refiners.some((m) => m.id === chosen)) this.select.value = chosen;
    this.sync();
  }

  /** Shown for a model that takes a refiner, when one is installed. */
  useModel(model) {
    this.field.hidden = !(takesRefiner(model) && this.count);
  }

  sync() {
    this.switchAt.disabled = !this.select.value;
  }

  /** Add refiner and refiner_switch to a request when a refiner is chosen for this model. */
  read(req) {
    if (this.field.hidden || !this.select.value) return;
    req.refiner = this.select.value;
    const raw = this.switchAt.value.trim();
    req.refiner_switch = raw === '' ? Number.NaN : Number(raw);
  }

  write(values) {
    if (values.refiner !== undefined) {
      const id = values.refiner || '';
      if (!id || [...this.select.options].some((o) => o.value === id)) this.select.value = id;
    }
    if (values.refiner_switch != null) this.switchAt.value = String(values.refiner_switch);
    this.sync();
  }
}
