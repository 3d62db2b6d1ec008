import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';

const REASONS = { manual: 'Added by hand', unsubscribed: 'Unsubscribed', hard_bounce: 'Hard bounce', complaint: 'Complaint' };

/** Addresses that never receive mail from this user (API.md: GET/POST/DELETE /suppressions). */
export function SuppressionsPage({ api }) {
  const [items, error, reload] = usePolled(() => api.all('/suppressions'), 0, [api]);
  const [actionError, setActionError] = useState(null);
  const act = async (fn) => {
    try {
      await fn();
      setActionError(null);
      await reload();
    } catch (err) {
      setActionError(err);
    }
  };
  const add = (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    return act(async () => {
      await api.post('/suppressions', { email: String(f.get('email')).trim(), reason: f.get('reason') });
      form.reset();
    });
  };
  if (error?.status === 404) {
    return html`<h1>Suppressions</h1><p class="notice">This server does not offer the suppression list yet.</p>`;
  }
  return html`
    <div class="page-head"><h1>Suppressions</h1></div>
    <${ErrorNote} error=${error} />
    <div class="stack">
      <form class="panel grid" onSubmit=${add}>
        <label>Address to suppress<input name="email" type="email" required /></label>
        <label>Reason<select name="reason">${Object.entries(REASONS).map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></label>
        <div><button class="primary" type="submit">Suppress</button></div>
        <div class="wide"><${ErrorNote} error=${actionError} /></div>
      </form>
      ${items && items.length === 0 && html`<p class="empty">No suppressed addresses.</p>`}
      ${items &&
      items.length > 0 &&
      html`<div class="panel"><table class="responsive">
        <thead><tr><th>Address</th><th>Reason</th><th>Since</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>
          ${items.map(
            (s) => html`<tr key=${s.email}>
              <td data-label="Address">${s.email}</td>
              <td data-label="Reason">${REASONS[s.reason] ?? s.reason ?? ''}</td>
              <td data-label="Since">${s.createdAt ? new Date(s.createdAt).toLocaleDateString() : ''}</td>
              <td><button class="link" aria-label=${`Remove ${s.email}`} onClick=${() => act(() => api.del('/suppressions', { email: s.email }))}>Remove</button></td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
    </div>
  `;
}
