/** The JSON API as the dashboard uses it: every call carries the signed-in API key. */

const BASE = '/api/v1';

export class AppError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(res) {
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  return new AppError(res.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `the server answered ${res.status}`);
}

/** `onUnauthorized` runs when the key stops working (revoked, server reset): the app signs out. */
export function createApi(key, onUnauthorized = () => {}) {
  const authorization = `Bearer ${key}`;

  async function request(method, path, body) {
    const headers = { authorization };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) {
      const err = await failure(res);
      if (res.status === 401) onUnauthorized();
      throw err;
    }
    return res.status === 204 ? undefined : res.json();
  }

  return {
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    patch: (path, body) => request('PATCH', path, body),
    del: (path, body) => request('DELETE', path, body),

    /** Every item of a collection, following `next` for at most `maxPages` pages. */
    async all(path, maxPages = 10) {
      const items = [];
      let after = null;
      for (let i = 0; i < maxPages; i++) {
        const sep = path.includes('?') ? '&' : '?';
        const page = await request('GET', `${path}${sep}limit=1000${after === null ? '' : `&after=${after}`}`);
        items.push(...page.items);
        if (page.next === null || page.next === undefined) break;
        after = page.next;
      }
      return items;
    },

    /** The raw response of a streaming endpoint (Server-Sent Events), for live.js. */
    stream: (path, signal) => fetch(BASE + path, { headers: { authorization, accept: 'text/event-stream' }, signal }),

    /** Downloads a file the API serves (e.g. a CSV export) and saves it under its own name. */
    async download(path, fallbackName) {
      const res = await fetch(BASE + path, { headers: { authorization } });
      if (!res.ok) throw await failure(res);
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
      const url = URL.createObjectURL(await res.blob());
      const a = Object.assign(document.createElement('a'), { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    },

    /**
     * Uploads a file as the request body, reporting progress (fetch cannot report upload progress).
     * The server imports a CSV while it arrives, so upload progress is import progress.
     */
    upload(path, file, contentType, onProgress) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open('POST', BASE + path);
        xhr.setRequestHeader('authorization', authorization);
        xhr.setRequestHeader('content-type', contentType);
        xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
        xhr.onerror = () => reject(new AppError(0, 'network', 'the upload failed: network error'));
        xhr.onload = () => {
          let body;
          try {
            body = JSON.parse(xhr.responseText);
          } catch {
            body = undefined;
          }
          if (xhr.status >= 200 && xhr.status < 300) resolve(body);
          else reject(new AppError(xhr.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `the server answered ${xhr.status}`));
        };
        xhr.send(file);
      });
    },
  };
}
