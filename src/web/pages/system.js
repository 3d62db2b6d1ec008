import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';
import { formatNumber } from '../lib/format.js';

const STATS_EVERY_MS = 5_000;

function CreateUser({ api }) {
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    try {
      setCreated(await api.post('/users', { name: String(f.get('name')).trim(), email: String(f.get('email')).trim() }));
      setError(null);
      form.reset();
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <section class="panel" aria-labelledby="new-user">
      <h2 id="new-user">New user</h2>
      <form class="grid" onSubmit=${submit}>
        <label>Name<input name="name" required /></label>
        <label>Email<input name="email" type="email" required /></label>
        <div><button class="primary" type="submit">Create user</button></div>
      </form>
      <${ErrorNote} error=${error} />
      ${created &&
      html`<p class="notice" role="status">
        User ${created.id} (${created.name}) created. Their API key, shown only now: <code>${created.apiKey}</code>
      </p>`}
    </section>
  `;
}

/** For the admin key: the whole system's load (GET /stats) and user creation. */
export function SystemPage({ api }) {
  const [stats, error] = usePolled(() => api.get('/stats'), STATS_EVERY_MS, [api]);
  const maxPending = Math.max(1, ...(stats?.perUser ?? []).map((u) => u.pending));
  return html`
    <div class="page-head"><h1>System</h1></div>
    <div class="stack">
      ${error?.status === 404
        ? html`<p class="notice">This server does not offer system statistics (GET /api/v1/stats) yet.</p>`
        : html`<${ErrorNote} error=${error} />`}
      ${stats &&
      html`<section class="panel" aria-label="System totals">
          <dl class="counters">
            <div><dt>Active campaigns</dt><dd>${formatNumber(stats.activeCampaigns)}</dd></div>
            <div><dt>Concurrent users</dt><dd>${formatNumber(stats.concurrentUsers ?? 0)}</dd></div>
            <div><dt>Queue depth</dt><dd>${formatNumber(stats.pending)}</dd></div>
          </dl>
        </section>
        <section class="panel" aria-labelledby="per-user">
          <h2 id="per-user">Load per user</h2>
          ${(stats.perUser ?? []).length === 0
            ? html`<p class="empty">No user is sending.</p>`
            : html`<table class="responsive">
                <thead><tr><th>User</th><th class="num">Active campaigns</th><th class="num">Sent</th><th class="num">Recipients</th><th class="num">Pending</th><th>Share of the queue</th></tr></thead>
                <tbody>
                  ${stats.perUser.map(
                    (u) => html`<tr>
                      <td data-label="User">${u.userId}</td>
                      <td data-label="Active campaigns" class="num">${formatNumber(u.activeCampaigns)}</td>
                      <td data-label="Sent" class="num">${formatNumber(u.sent)}</td>
                      <td data-label="Recipients" class="num">${formatNumber(u.total)}</td>
                      <td data-label="Pending" class="num">${formatNumber(u.pending)}</td>
                      <td data-label="Share of the queue">
                        <div class="bar" role="progressbar" aria-label=${`Pending messages of user ${u.userId}`} aria-valuemin="0"
                          aria-valuemax=${maxPending} aria-valuenow=${u.pending}>
                          <span class="other" style=${{ width: `${(u.pending / maxPending) * 100}%` }}></span>
                        </div>
                      </td>
                    </tr>`,
                  )}
                </tbody>
              </table>`}
        </section>`}
      <${CreateUser} api=${api} />
    </div>
  `;
}
