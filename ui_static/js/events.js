// The daemon's event stream over a WebSocket: reconnects by itself and catches up by sequence
// number. A WebSocket, not Server-Sent Events: browsers give a host six HTTP/1.1 connections
// in all, and six tabs each holding an EventSource would leave none for anything else.
import { API, ApiError, api, withToken } from './api.js';

export const EVENT_TYPES = [
  'queued', 'started', 'progress', 'completed', 'failed', 'cancelled', 'queue', 'deleted',
  'install', 'model_removed',
];
const RETRY_MS = [250, 500, 1000, 2000, 4000];
const POLICY_VIOLATION = 1008; // the daemon refused our query (a since it does not take)

/**
 * One shared stream. Listeners: on('event', fn) for every event, on(type, fn) for one type,
 * on('state', fn) with 'connecting' | 'online' | 'offline', on('resync', fn) after a reconnect.
 */
export class EventStream {
  constructor() {
    this.lastSeq = null;
    this.state = 'connecting';
    this.socket = null;
    this.failures = 0;
    this.timer = null;
    this.listeners = new Map();
    this.connectedOnce = false;
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  emit(name, payload) {
    for (const fn of this.listeners.get(name) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`event listener for ${name} failed`, err);
      }
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit('state', state);
  }

  start() {
    this.connect();
    // A laptop waking up or a tab coming back: reconnect at once instead of waiting for backoff.
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.state === 'offline') this.reconnectNow();
    });
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.failures = 0;
    this.connect();
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastSeq === null ? '' : `?since=${this.lastSeq}`;
    return withToken(`${scheme}//${location.host}${API}/ws${since}`);
  }

  connect() {
    const old = this.socket;
    this.socket = null;
    old?.close();
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.failures = 0;
      this.setState('online');
      // Panels refetch their lists: events cover jobs, REST covers anything older than the log.
      if (this.connectedOnce) this.emit('resync', { since: this.lastSeq });
      this.connectedOnce = true;
    };
    socket.onmessage = (msg) => {
      if (this.socket === socket) this.handle(msg.data);
    };
    socket.onclose = (e) => {
      if (this.socket !== socket) return;
      this.socket = null;
      // A since the daemon no longer takes (its log was reset): start from what it has now;
      // the resync after reconnecting refetches the lists.
      if (e.code === POLICY_VIOLATION) this.lastSeq = null;
      this.setState(this.connectedOnce ? 'offline' : 'connecting');
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      // A refused WebSocket says nothing of why; a plain request can report a 401, and asks
      // for the token.
      try {
        await api('/queue?limit=1');
      } catch (err) {
        if (err instanceof ApiError && err.status === 0) return this.scheduleRetry();
      }
      this.connect();
    }, delay);
  }

  handle(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (!EVENT_TYPES.includes(event?.type)) return;
    if (typeof event.seq === 'number') {
      // A replay after reconnecting may overlap what we saw; skip what we already handled.
      if (this.lastSeq !== null && event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
    }
    this.emit('event', event);
    this.emit(event.type, event);
  }
}

/** The page's one stream. */
export const events = new EventStream();
