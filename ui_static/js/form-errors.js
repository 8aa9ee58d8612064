// A form's error display: a slot under each field (aria-describedby), API-shaped errors
// placed next to their fields, and one box for the errors no field owns.
import { byId, h } from './dom.js';

export class FormErrors {
  /** ``fieldElement(name)`` finds the element an API field name ("loras[0].name") belongs to,
   *  or null; errors without one go to the form's own box. */
  constructor(form, fieldElement) {
    this.form = form;
    this.fieldElement = fieldElement;
  }

  slot(field) {
    const id = `err-${field.replace(/[^\w-]/g, '_')}`;
    let slot = document.getElementById(id);
    if (slot) return slot;
    const input = document.getElementById(field === 'init_image' ? 'init-drop' : field);
    const host = input?.closest('.field') || input?.parentElement || byId('form-error').parentElement;
    slot = h('p', { class: 'field-error', id, hidden: true });
    host.append(slot);
    if (input) input.setAttribute('aria-describedby', id);
    return slot;
  }

  /** Show API-shaped errors next to their fields; the first one gets focus. */
  showAll(errors) {
    let first = null;
    for (const { field, message } of errors) {
      const name = String(field || '').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
      const target = this.fieldElement(name);
      if (!target) {
        this.showForm(field ? `${field}: ${message}` : message);
        continue;
      }
      this.show(target.id, message);
      first ??= target;
    }
    if (first) {
      const details = first.closest('details');
      if (details) details.open = true;
      first.focus();
    }
  }

  show(id, message) {
    const el = document.getElementById(id);
    const slot = this.slot(el?.id === 'init-drop' ? 'init_image' : id);
    slot.textContent = message;
    slot.hidden = false;
    el?.setAttribute('aria-invalid', 'true');
  }

  clear(id) {
    const slot = document.getElementById(`err-${id}`);
    if (slot) slot.hidden = true;
    document.getElementById(id)?.removeAttribute('aria-invalid');
  }

  clearAll() {
    for (const slot of this.form.querySelectorAll('.field-error')) slot.hidden = true;
    for (const el of this.form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    byId('form-error').hidden = true;
  }

  showForm(message) {
    const box = byId('form-error');
    box.textContent = message;
    box.hidden = false;
  }
}
