// Rows of LoRA name, weight and the UNet's own weight in the Generate form.
import { h } from './dom.js';

// The fields of a row, in order; each input's id is lora-FIELD-N, so the API's
// "loras[N].FIELD" error finds it.
const FIELDS = ['name', 'weight', 'unet_weight'];

/** An editable list of {name, weight, unet_weight}: unet_weight (A1111's `<lora:name:te:unet>`)
 * gives the UNet its own weight; blank, the weight applies to both. */
export class LoraList {
  constructor(container, addButton, onChange) {
    this.container = container;
    this.onChange = onChange;
    addButton.addEventListener('click', () => {
      this.add({ name: '', weight: 1, unet_weight: null });
      this.container.querySelector('.lora-row:last-child input')?.focus();
      this.onChange();
    });
  }

  add({ name, weight, unet_weight: unetWeight }) {
    const row = h('div', { class: 'lora-row' });
    const remove = h('button', {
      type: 'button', class: 'btn icon', 'aria-label': 'Remove LoRA', title: 'Remove',
      onclick: () => {
        row.remove();
        this.renumber();
        this.onChange();
      },
    }, '✕');
    row.append(
      h('div', { class: 'field grow' }, h('label', {}, 'Name'),
        h('input', { type: 'text', list: 'lora-names', value: name, autocomplete: 'off', placeholder: 'my-style-lora' })),
      h('div', { class: 'field weight' }, h('label', {}, 'Weight'),
        h('input', { type: 'number', step: '0.05', min: '-2', max: '2', value: String(weight), inputmode: 'decimal' })),
      h('div', { class: 'field weight' }, h('label', { title: 'The UNet\'s own weight (A1111\'s <lora:name:te:unet>); blank: the weight' }, 'UNet'),
        h('input', {
          type: 'number', step: '0.05', min: '-2', max: '2', value: unetWeight == null ? '' : String(unetWeight),
          inputmode: 'decimal', placeholder: '= weight',
        })),
      remove,
    );
    this.container.append(row);
    this.renumber();
  }

  renumber() {
    // Ids follow the row index so the API's "loras[1].weight" finds its input.
    [...this.container.children].forEach((row, i) => {
      const inputs = row.querySelectorAll('input');
      const labels = row.querySelectorAll('label');
      FIELDS.forEach((field, j) => {
        inputs[j].id = `lora-${field}-${i}`;
        labels[j].htmlFor = inputs[j].id;
      });
      labels[0].textContent = `LoRA ${i + 1} name`;
      inputs[2].setAttribute('aria-label', `LoRA ${i + 1} UNet weight (blank: the weight)`);
    });
  }

  read() {
    return [...this.container.children].map((row) => {
      const [name, weight, unet] = row.querySelectorAll('input');
      return {
        name: name.value.trim(),
        weight: weight.value === '' ? Number.NaN : Number(weight.value),
        unet_weight: unet.value === '' ? null : Number(unet.value),
      };
    });
  }

  write(loras) {
    this.container.replaceChildren();
    for (const lora of loras) {
      this.add({ name: lora.name || '', weight: lora.weight ?? 1, unet_weight: lora.unet_weight ?? null });
    }
  }
}
