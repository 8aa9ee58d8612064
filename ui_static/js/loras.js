// Rows of LoRA name + weight in the Generate form.
import { h } from './dom.js';

/** An editable list of {name, weight}; ids are lora-name-N / lora-weight-N for error display. */
export class LoraList {
  constructor(container, addButton, onChange) {
    this.container = container;
    this.onChange = onChange;
    addButton.addEventListener('click', () => {
      this.add({ name: '', weight: 1 });
      this.container.querySelector('.lora-row:last-child input')?.focus();
      this.onChange();
    });
  }

  add({ name, weight }) {
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
      remove,
    );
    this.container.append(row);
    this.renumber();
  }

  renumber() {
    // Ids follow the row index so the API's "loras[1].weight" finds its input.
    [...this.container.children].forEach((row, i) => {
      const [name, weight] = row.querySelectorAll('input');
      const [nameLabel, weightLabel] = row.querySelectorAll('label');
      name.id = `lora-name-${i}`;
      weight.id = `lora-weight-${i}`;
      nameLabel.htmlFor = name.id;
      weightLabel.htmlFor = weight.id;
      nameLabel.textContent = `LoRA ${i + 1} name`;
    });
  }

  read() {
    return [...this.container.children].map((row) => {
      const [name, weight] = row.querySelectorAll('input');
      return { name: name.value.trim(), weight: weight.value === '' ? Number.NaN : Number(weight.value) };
    });
  }

  write(loras) {
    this.container.replaceChildren();
    for (const lora of loras) this.add({ name: lora.name || '', weight: lora.weight ?? 1 });
  }
}
