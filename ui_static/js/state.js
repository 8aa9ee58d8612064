// Everything the page remembers between visits lives in localStorage under these keys.
const SETTINGS_KEY = 'impasto.settings.v1';
const TOKEN_KEY = 'impasto.token';
const UI_KEY = 'impasto.ui.v1';

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
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

/** Small UI preferences such as the open tab. */
export const loadUi = () => read(UI_KEY, {});
/** Merge a change into the UI preferences. */
export const saveUi = (patch) => write(UI_KEY, { ...loadUi(), ...patch });
