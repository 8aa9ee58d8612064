// Everything the page remembers between visits lives in localStorage under these keys; what
// one tab remembers across its reloads (its own jobs) in sessionStorage.
const SETTINGS_KEY = 'impasto.settings.v1';
const TOKEN_KEY = 'impasto.token';
const UI_KEY = 'impasto.ui.v1';
const TAB_KEY = 'impasto.tab.v1';

function read(key, fallback, store = localStorage) {
  try {
    const raw = store.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value, store = localStorage) {
  try {
    store.setItem(key, JSON.stringify(value));
  } catch {
    // Private mode or a full quota: the page still works, it just forgets.
  }
}

/** The generation form's last values, or null on a first visit. */
export const loadSettings = () => read(SETTINGS_KEY, null);
/** Remember the generation form's values. */
export const saveSettings = (values) => write(SETTINGS_KEY, values);

/** The API token the user gave, or ''. */
export const getToken = () => read(TOKEN_KEY, '');
/** Remember (or with '' forget) the API token. */
export const setToken = (token) => write(TOKEN_KEY, token);

/** Keep a token the address carries (`/?token=`, the link the tray and `impasto` print) and take
 * it out of the address bar, so that it is not left in the history or a bookmark. */
export function adoptUrlToken() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return;
  if (token.trim()) setToken(token.trim());
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
}

/** Small UI preferences such as the open tab. */
export const loadUi = () => read(UI_KEY, {});
/** Merge a change into the UI preferences. */
export const saveUi = (patch) => write(UI_KEY, { ...loadUi(), ...patch });

/** This tab's own jobs ({mine: [ids], current: id|null, lastSeed}), kept across its reloads. */
export const loadTab = () => read(TAB_KEY, {}, sessionStorage);
/** Remember this tab's own jobs. */
export const saveTab = (value) => write(TAB_KEY, value, sessionStorage);
