// The Gallery panel: history as thumbnails, infinite scroll by cursor, search.
import { api, withToken } from './api.js';
import { byId, h } from './dom.js';

// Tests shrink the page size to exercise the cursor with few images.
const PAGE = window.IMPASTO_GALLERY_PAGE || 40;

/** Completed jobs, newest first, one card per image. */
export class Gallery {
  constructor({ events, viewer }) {
    this.viewer = viewer;
    this.entries = [];
    this.cursor = null;
    this.loading = false;
    this.loaded = false;
    this.query = '';
    this.generation = 0; // counts reloads: a page that answers after one is dropped
    this.pageLoad = null;
    this.grid = byId('gallery-grid');
    viewer.gallery = this;
    byId('gallery-more').addEventListener('click', () => this.loadMore());
    let typing = null;
    byId('gallery-search').addEventListener('input', (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        this.query = e.target.value.trim();
        this.reload();
      }, 250);
    });
    new IntersectionObserver((seen) => {
      if (seen.some((s) => s.isIntersecting)) this.loadMore();
    }, { rootMargin: '600px' }).observe(byId('gallery-sentinel'));
    events.on('completed', (e) => this.added(e.job_id));
    events.on('deleted', (e) => this.removeJob(e.job_id));
    events.on('resync', () => this.loaded && this.reload());
  }

  /** First visit of the panel loads the first page. */
  show() {
    if (!this.loaded) this.reload();
  }

  async reload() {
    this.generation += 1;
    this.entries = [];
    this.cursor = null;
    this.loaded = true;
    this.grid.replaceChildren();
    await this.pageLoad; // a page asked for before is dropped when it comes
    await this.fetchPage();
  }

  async loadMore() {
    if (this.loaded && this.cursor && !byId('panel-gallery').hidden) await this.fetchPage();
  }

  /** Load the next page; a call while one loads waits for that one. */
  fetchPage() {
    if (!this.pageLoad) {
      this.pageLoad = this.loadPage().finally(() => {
        this.pageLoad = null;
      });
    }
    return this.pageLoad;
  }

  async loadPage() {
    this.loading = true;
    const params = new URLSearchParams({ status: 'completed', limit: String(PAGE) });
    if (this.cursor) params.set('cursor', this.cursor);
    if (this.query) params.set('q', this.query);
    let ok = false;
    const generation = this.generation;
    try {
      const page = await api(`/history?${params}`);
      if (generation !== this.generation) return;
      this.cursor = page.next_cursor;
      this.append(page.items);
      ok = true;
    } catch {
      // Left as is; the connection indicator explains, and resync reloads.
    } finally {
      this.loading = false;
      this.updateFooter();
    }
    // The observer fires on changes only: a short page may leave the sentinel in view.
    if (ok && this.cursor && byId('gallery-sentinel').getBoundingClientRect().top < innerHeight + 600) {
      requestAnimationFrame(() => this.loadMore());
    }
  }

  append(jobs, { prepend = false } = {}) {
    const fresh = [];
    for (const job of jobs) {
      for (const result of job.results || []) fresh.push({ job, result });
    }
    const cards = fresh.map((entry) => this.card(entry));
    if (prepend) {
      this.entries.unshift(...fresh);
      this.grid.prepend(...cards);
    } else {
      this.entries.push(...fresh);
      this.grid.append(...cards);
    }
    this.updateFooter();
  }

  card(entry) {
    const { job, result } = entry;
    const prompt = job.request?.prompt || '';
    return h('button', {
      type: 'button', class: 'thumb', dataset: { job: job.id, index: String(result.index) },
      'aria-label': `Open image: ${prompt}`, title: prompt,
      onclick: () => this.viewer.open(this.entries.indexOf(entry)),
    },
    h('img', {
      src: withToken(`${result.url}?thumb=256`), alt: prompt, loading: 'lazy', decoding: 'async',
      width: String(result.width), height: String(result.height),
    }),
    h('span', { class: 'thumb-caption' }, prompt));
  }

  updateFooter() {
    byId('gallery-empty').hidden = this.entries.length > 0 || this.loading;
    byId('gallery-more').hidden = !this.cursor;
  }

  async added(jobId) {
    if (!this.loaded || this.entries.some((e) => e.job.id === jobId)) return;
    try {
      const job = await api(`/generate/${jobId}`);
      if (this.query && !job.request.prompt.toLowerCase().includes(this.query.toLowerCase())) return;
      this.append([job], { prepend: true });
    } catch {
      // It may have been deleted already.
    }
  }

  /** Focus the thumbnail at ``index`` (or the last one, or the search box when none is left). */
  focusNear(index) {
    const thumbs = this.grid.querySelectorAll('.thumb');
    (thumbs[Math.min(index, thumbs.length - 1)] || byId('gallery-search')).focus();
  }

  removeJob(jobId) {
    this.entries = this.entries.filter((e) => e.job.id !== jobId);
    for (const card of this.grid.querySelectorAll(`[data-job="${CSS.escape(jobId || '')}"]`)) card.remove();
    this.updateFooter();
  }
}
