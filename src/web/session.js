import { AppError, createApi } from './api.js';

/**
 * Who is signed in: the API key, whether it is the admin key, and a name to show. Kept for the
 * browser tab (sessionStorage), or on this device (localStorage) when the user asks to be remembered.
 */

const STORAGE_KEY = 'mailpilot.session';

export function loadSession() {
  for (const store of [sessionStorage, localStorage]) {
    try {
      const saved = JSON.parse(store.getItem(STORAGE_KEY) ?? 'null');
      if (saved?.key) return saved;
    } catch {
      store.removeItem(STORAGE_KEY);
    }
  }
  return null;
}

export function saveSession(session, remember) {
  (remember ? localStorage : sessionStorage).setItem(STORAGE_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(STORAGE_KEY);
  localStorage.removeItem(STORAGE_KEY);
}

/** Checks a key with GET /me: a user key names its user; the admin key is refused there with 403. */
export async function signIn(key) {
  try {
    const me = await createApi(key).get('/me');
    return { key, kind: 'user', name: me.name, userId: me.id };
  } catch (err) {
    if (err instanceof AppError && err.status === 403) return { key, kind: 'admin', name: 'Administrator' };
    throw err;
  }
}
