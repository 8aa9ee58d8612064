// The Generate form's sampler-dependent fields: the schedules a sampler runs, eta and sigma
// churn where it takes them, the schedule's ends and rho where the schedule takes them, the
// sigma options (discarding the next-to-last sigma, the SGM noise multiplier), UniPC's options.
import { byId } from './dom.js';

// Sigma churn: sent only where the sampler takes it (Euler, Heun, DPM2); blank tmax = no bound.
export const CHURN_FIELDS = ['s_churn', 's_tmin', 's_tmax', 's_noise'];
// The schedule's ends and curvature: sent only where the schedule takes them (GET /schedules'
// sigma_range and rho); blank = the schedule's own.
export const BOUND_FIELDS = ['sigma_min', 'sigma_max', 'rho'];
// UniPC's order and variant: sent only for UniPC; blank = its own (2, bh2).
export const UNIPC_FIELDS = ['unipc_order', 'unipc_variant'];
// Schedules that start at the model's top sigma (unusable on zero-terminal-SNR models).
const TOP_SIGMA_SCHEDULES = ['karras', 'exponential'];

export class SamplingFields {
  /** ``errors`` (FormErrors) clears a field's error when the field is switched off. */
  constructor(errors) {
    this.errors = errors;
    this.samplers = [];  // GET /samplers
    this.schedules = [];  // GET /schedules
    this.zeroSnr = false;  // the chosen model was trained to zero terminal SNR
    this.discardChoice = false;  // the user's own "discard the next-to-last sigma" choice
  }

  /** Enable the schedules the sampler runs; ``recommend`` (a sampler picked by hand) also
   *  selects the one it is meant to run on, as A1111's "Automatic" scheduler does. */
  limitSchedules({ recommend = false } = {}) {
    const sampler = this.samplers.find((s) => s.id === byId('sampler').value);
    const allowed = sampler?.schedules || ['default'];
    const schedule = byId('schedule');
    for (const option of schedule.options) option.disabled = !allowed.includes(option.value);
    let recommended = sampler?.recommended_schedule;
    // A zero-terminal-SNR model's top sigma is huge: Karras and Exponential would spend the
    // steps far above any noise level that shapes the picture. Keep the model's own spacing.
    if (this.zeroSnr && TOP_SIGMA_SCHEDULES.includes(recommended)) recommended = 'default';
    if (recommend && recommended && allowed.includes(recommended)) schedule.value = recommended;
    if (!allowed.includes(schedule.value)) schedule.value = allowed[0];
    // Eta only for the samplers that add noise per step; the placeholder is their own value.
    const eta = byId('eta');
    eta.disabled = sampler?.eta == null;
    eta.placeholder = sampler?.eta == null ? 'not used' : String(sampler.eta);
    if (eta.disabled) this.errors.clear('eta');
    for (const name of CHURN_FIELDS) {
      const el = byId(name);
      el.disabled = !sampler?.churn;
      el.placeholder = sampler?.churn ? '' : 'not used';
      if (el.disabled) this.errors.clear(name);  // not sent: nothing to correct
    }
    this.syncDiscard();
    this.limitBounds();
    // UniPC's order and variant: for UniPC only (GET /samplers' unipc).
    for (const name of UNIPC_FIELDS) {
      const el = byId(name);
      el.disabled = !sampler?.unipc;
      if (el.tagName === 'INPUT') el.placeholder = sampler?.unipc ? '2' : 'not used';
      if (el.disabled) this.errors.clear(name);
    }
  }

  /** Discarding the next-to-last sigma: the user's choice where the sampler takes it; DPM2 and
   *  DPM2 a always do (shown checked), the timestep samplers never (GET /samplers). */
  syncDiscard() {
    const own = this.samplers.find((s) => s.id === byId('sampler').value)?.discard_penultimate;
    const discard = byId('discard_penultimate_sigma');
    discard.disabled = own !== false;
    discard.checked = own === true || (own === false && this.discardChoice);
    byId('discard-note').textContent = own === true ? '(always, for this sampler)'
      : own == null ? '(not for this sampler)' : '';
    // The SGM start goes with the same samplers: those that walk sigmas, not timesteps.
    byId('sgm_noise_multiplier').disabled = own == null;
    byId('sgm-note').textContent = own == null ? '(not for this sampler)' : '';
  }

  /** Enable the schedule's ends where the chosen schedule spans a range, rho where it has one
   *  (its default as the placeholder). */
  limitBounds() {
    const schedule = this.schedules.find((s) => s.id === byId('schedule').value);
    const takes = { sigma_min: schedule?.sigma_range, sigma_max: schedule?.sigma_range, rho: schedule?.rho != null };
    for (const name of BOUND_FIELDS) {
      const el = byId(name);
      el.disabled = !takes[name];
      el.placeholder = !takes[name] ? 'not used' : name === 'rho' ? String(schedule.rho) : "the model's";
      if (el.disabled) this.errors.clear(name);
    }
  }
}
