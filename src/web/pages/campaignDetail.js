import { useCallback, useEffect, useState } from 'preact/hooks';
import { Badge, CampaignActions, CampaignProgress, ErrorNote, LiveLine, Warnings } from '../components.js';
import { html } from '../html.js';
import { FINAL, useCampaigns, useForecast, useLiveCampaigns, usePolled } from '../hooks.js';
import { formatNumber } from '../lib/format.js';

const FAILED_PAGE = 50;

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

function Counters({ c }) {
  const items = [
    ['Recipients', c.total],
    ['Sent', c.sent],
    ['Failed', c.failed],
    ['Suppressed', c.suppressed],
    ['Cancelled', c.cancelled],
    ['Pending', c.pending],
    // Reports that came back after the messages were accepted (bounced ones are also in Failed).
    ['Bounced', c.bounced ?? 0],
    ['Soft bounces', c.softBounced ?? 0],
    ['Complaints', c.complained ?? 0],
    ['Replies', c.replied ?? 0],
  ];
  return html`<dl class="counters">${items.map(([label, n]) => html`<div><dt>${label}</dt><dd>${formatNumber(n)}</dd></div>`)}</dl>`;
}

/**
 * Sends expected per day under the sending policy, and the finish time (the server's forecast). Last
 * on the page, so its rows coming and going move nothing else.
 */
function ForecastPanel({ c, forecast }) {
  if (FINAL.has(c.status)) return null;
  return html`
    <section class="panel" aria-labelledby="forecast-title">
      <h2 id="forecast-title">Forecast</h2>
      <p>
        ${!forecast
          ? 'Forecasting…'
          : forecast.finishAt
            ? html`Finishes about <strong>${when(forecast.finishAt)}</strong>`
            : 'No account can finish it under the current rules.'}
      </p>
      ${forecast &&
      forecast.days.length > 0 &&
      html`<table class="responsive">
        <thead><tr><th>Day (UTC)</th><th class="num">Sends</th></tr></thead>
        <tbody>
          ${forecast.days.map((d) => html`<tr><td data-label="Day">${d.date}</td><td data-label="Sends" class="num">${formatNumber(d.sends)}</td></tr>`)}
        </tbody>
      </table>`}
    </section>
  `;
}

/** Re-read the account share this often while the campaign runs. */
const SHARE_EVERY_MS = 10_000;

/**
 * Which accounts sent this campaign. Counting it reads the campaign's messages, so it is not read
 * on every progress event: every SHARE_EVERY_MS while running, and when anything changes otherwise
 * (e.g. the sends that were in flight when it was paused).
 */
function AccountShare({ api, c }) {
  const running = c.status === 'running';
  const version = running ? 'running' : `${c.status}:${c.sent + c.failed}`;
  const [shares, error, reload] = usePolled(() => api.get(`/campaigns/${c.id}/accounts`).then((r) => r.items), running ? SHARE_EVERY_MS : 0, [
    api,
    c.id,
    version,
  ]);
  const total = (shares ?? []).reduce((n, s) => n + s.sent + s.failed, 0);
  return html`
    <section class="panel" aria-labelledby="share-title">
      <div class="card-head">
        <h2 id="share-title">Per-account share</h2>
        <button class="link" onClick=${reload}>Refresh</button>
      </div>
      <${ErrorNote} error=${error} />
      ${shares && shares.length === 0 && html`<p class="empty">Nothing sent yet.</p>`}
      ${shares &&
      shares.length > 0 &&
      html`<table class="responsive">
        <thead><tr><th>Account</th><th class="num">Sent</th><th class="num">Failed</th><th class="num">Share</th></tr></thead>
        <tbody>
          ${shares.map(
            (s) => html`<tr>
              <td data-label="Account">${s.email ?? `deleted account ${s.accountId}`}</td>
              <td data-label="Sent" class="num">${formatNumber(s.sent)}</td>
              <td data-label="Failed" class="num">${formatNumber(s.failed)}</td>
              <td data-label="Share" class="num">${total ? Math.round(((s.sent + s.failed) / total) * 100) : 0}%</td>
            </tr>`,
          )}
        </tbody>
      </table>`}
    </section>
  `;
}

/** Failed recipients with the SMTP reply that failed them, a page at a time. */
function FailedMessages({ api, id, failed }) {
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(
    async (after) => {
      try {
        const page = await api.get(`/campaigns/${id}/messages?status=failed&limit=${FAILED_PAGE}${after ? `&after=${after}` : ''}`);
        setRows((prev) => (after ? [...prev, ...page.items] : page.items));
        setNext(page.next);
        setError(null);
      } catch (err) {
        setError(err);
      }
    },
    [api, id],
  );
  // Read again when the number of failures changes, not on every progress event.
  useEffect(() => void load(null), [load, failed]);
  const [exporting, setExporting] = useState(false);
  const exportCsv = async () => {
    setExporting(true);
    try {
      await api.download(`/campaigns/${id}/messages.csv`, `campaign-${id}-outcomes.csv`);
    } catch (err) {
      setError(err);
    } finally {
      setExporting(false);
    }
  };
  return html`
    <section class="panel" aria-labelledby="failed-title">
      <div class="card-head">
        <h2 id="failed-title">Failed messages</h2>
        <button disabled=${exporting} onClick=${exportCsv}>${exporting ? 'Exporting…' : 'Export outcomes (CSV)'}</button>
      </div>
      <${ErrorNote} error=${error} />
      ${rows.length === 0 && html`<p class="empty">No failed messages.</p>`}
      ${rows.length > 0 &&
      html`<table class="responsive">
        <thead><tr><th>Recipient</th><th class="num">Attempts</th><th>SMTP reply or bounce</th></tr></thead>
        <tbody>
          ${rows.map(
            (m) => html`<tr>
              <td data-label="Recipient">${m.email}</td>
              <td data-label="Attempts" class="num">${m.attempts}</td>
              <td data-label="SMTP reply or bounce" class="reply">${m.lastError ?? '–'}</td>
            </tr>`,
          )}
        </tbody>
      </table>`}
      ${next !== null && html`<button onClick=${() => load(next)}>Show more</button>`}
    </section>
  `;
}

export function CampaignDetailPage({ api, id }) {
  const { campaigns, apply, rateOf } = useCampaigns();
  const [error, setError] = useState(null);
  useEffect(() => {
    const at = performance.now();
    api.get(`/campaigns/${id}`).then((c) => apply(c, at), setError);
  }, [api, id]);
  const c = campaigns.get(id);
  // Followed live until it ends, paused ones included: a resume from elsewhere shows up at once.
  useLiveCampaigns(api, c && !FINAL.has(c.status) ? [id] : [], apply);
  const forecast = useForecast(api, c);

  if (error) return html`<p><a href="#/campaigns">← Campaigns</a></p><${ErrorNote} error=${error} />`;
  if (!c) return html`<p class="muted">Loading…</p>`;
  return html`
    <p><a href="#/campaigns">← Campaigns</a></p>
    <div class="stack">
      <section class="panel" aria-labelledby="campaign-title">
        <div class="card-head">
          <h1 id="campaign-title">${c.name}</h1>
          <${Badge} state=${c.status} />
        </div>
        <p class="muted">Subject: ${c.subject}</p>
        <${CampaignProgress} c=${c} />
        <${LiveLine} c=${c} rate=${rateOf(c.id)} forecast=${forecast} />
        <${Warnings} warnings=${c.warnings} />
        <${CampaignActions} api=${api} c=${c} onChange=${apply} />
      </section>
      <section class="panel" aria-label="Counters">
        <${Counters} c=${c} />
        <p class="hint">Started ${when(c.startedAt)} · ended ${when(c.completedAt)}</p>
      </section>
      <${AccountShare} api=${api} c=${c} />
      <${FailedMessages} api=${api} id=${id} failed=${c.failed} />
      <${ForecastPanel} c=${c} forecast=${forecast} />
    </div>
  `;
}
