import { useState } from 'preact/hooks';
import { html } from './html.js';
import { FINAL, useTick } from './hooks.js';
import { estimateFinish, PAUSE_REASON_TEXT } from './lib/eta.js';
import { formatCountdown, formatDuration, formatNumber, formatRate, percentDone } from './lib/format.js';

const STATUS_TEXT = {
  draft: 'Draft',
  scheduled: 'Scheduled',
  running: 'Running',
  paused: 'Paused',
  paused_limits: 'Paused: limits',
  stopped: 'Stopped',
  completed: 'Completed',
  healthy: 'Healthy',
  throttled: 'Throttled',
  exhausted: 'Exhausted',
  disabled: 'Disabled',
};

export function Badge({ state }) {
  return html`<span class="badge ${state}">${STATUS_TEXT[state] ?? state}</span>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message ?? String(error)}</p>`;
}

/** The campaign's recipients as one bar: sent, failed, suppressed or cancelled, and what is left. */
export function CampaignProgress({ c }) {
  const pct = (n) => (c.total > 0 ? (n / c.total) * 100 : 0);
  const done = percentDone(c);
  return html`
    <div>
      <div
        class="bar"
        role="progressbar"
        aria-label=${`Progress of ${c.name}`}
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow=${Math.floor(done)}
        aria-valuetext=${`${formatNumber(c.total - c.pending)} of ${formatNumber(c.total)} recipients done (${Math.floor(done)}%)`}
      >
        <span class="sent" style=${{ width: `${pct(c.sent)}%` }}></span>
        <span class="failed" style=${{ width: `${pct(c.failed)}%` }}></span>
        <span class="other" style=${{ width: `${pct(c.suppressed + c.cancelled)}%` }}></span>
      </div>
      <p class="figures">
        <span class="sent">${formatNumber(c.sent)} sent</span>
        <span class="failed">${formatNumber(c.failed)} failed</span>
        <span class="pending">${formatNumber(c.pending)} pending</span>
        <span class="muted">${Math.floor(done)}% of ${formatNumber(c.total)}</span>
      </p>
      ${(c.bounced > 0 || c.complained > 0 || c.replied > 0) &&
      html`<p class="figures muted">
        <span>${formatNumber(c.bounced)} bounced</span>
        <span>${formatNumber(c.complained)} complaints</span>
        <span>${formatNumber(c.replied)} replies</span>
      </p>`}
    </div>
  `;
}

/** Ticks down to `at`. */
export function Countdown({ at, label }) {
  useTick(1000);
  const left = Date.parse(at) - Date.now();
  const local = new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return html`<span role="timer" aria-label=${label}>${label} <strong class="num">${formatCountdown(left)}</strong> (at ${local})</span>`;
}

/**
 * Rate, ETA and, when the sending policy holds the campaign back, why and the countdown to resumeAt.
 * The ETA is the later of the measured rate and the server's forecast (every rule of the sending
 * policy). The line keeps its height whatever it shows, so cards do not jump as campaigns change state.
 */
export function LiveLine({ c, rate, forecast }) {
  useTick(1000);
  let content = null;
  if (c.status === 'paused_limits' && c.resumeAt) {
    const why = PAUSE_REASON_TEXT[c.pauseReason];
    content = html`<${Countdown} at=${c.resumeAt} label="Resumes in" />${why ? html` <span class="muted">· ${why}</span>` : null}`;
  } else if (c.status === 'paused_limits') {
    // No account will send again by itself: the warnings say which need attention.
    content = html`<span>Waiting until an SMTP account can send</span> <span class="muted">· ${PAUSE_REASON_TEXT[c.pauseReason] ?? ''}</span>`;
  } else if (c.status === 'running') {
    const eta = estimateFinish({ pending: c.pending, perSecond: rate, forecast, now: Date.now() });
    const etaText =
      rate === null && !forecast
        ? 'measuring…'
        : eta
          ? `${formatDuration(eta.at.getTime() - Date.now())}${eta.limitedBy === 'policy' ? ' (the sending policy sets the pace)' : ''}`
          : 'no account can send';
    content = html`<span>Rate <strong>${formatRate(rate)}</strong></span> · <span>ETA <strong>${etaText}</strong></span>`;
  } else if (c.status === 'scheduled' && c.scheduledAt) {
    content = html`<${Countdown} at=${c.scheduledAt} label="Starts in" />`;
  }
  return html`<p class="live-line" aria-live="off">${content}</p>`;
}

export function Warnings({ warnings }) {
  if (!warnings || warnings.length === 0) return null;
  return html`<ul class="warnings" aria-label="Warnings">${warnings.map((w) => html`<li>${w}</li>`)}</ul>`;
}

/** Start, pause, resume and stop, as the campaign's state allows; stop asks once more. */
export function CampaignActions({ api, c, onChange }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [confirmStop, setConfirmStop] = useState(false);
  const act = async (action) => {
    setBusy(true);
    setError(null);
    const at = performance.now();
    try {
      onChange(await api.post(`/campaigns/${c.id}/${action}`), at);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
      setConfirmStop(false);
    }
  };
  const can = {
    start: c.status === 'draft' || c.status === 'scheduled',
    pause: c.status === 'running' || c.status === 'paused_limits',
    resume: c.status === 'paused',
    stop: !FINAL.has(c.status),
  };
  const label = (verb) => `${verb} campaign ${c.name}`;
  return html`
    <div class="actions">
      ${can.start && html`<button class="primary" disabled=${busy} aria-label=${label('Start')} onClick=${() => act('start')}>Start</button>`}
      ${can.pause && html`<button disabled=${busy} aria-label=${label('Pause')} onClick=${() => act('pause')}>Pause</button>`}
      ${can.resume && html`<button class="primary" disabled=${busy} aria-label=${label('Resume')} onClick=${() => act('resume')}>Resume</button>`}
      ${can.stop && !confirmStop && html`<button class="danger" disabled=${busy} aria-label=${label('Stop')} onClick=${() => setConfirmStop(true)}>Stop</button>`}
      ${confirmStop &&
      html`<button class="danger" disabled=${busy} onClick=${() => act('stop')}>Stop for good</button>
        <button disabled=${busy} onClick=${() => setConfirmStop(false)}>Keep it</button>`}
    </div>
    <${ErrorNote} error=${error} />
  `;
}

/** One window of an account's quota: used against its limit, marked when full. */
export function UsageBar({ label, used, limit, account }) {
  const unlimited = limit === 0;
  const full = !unlimited && used >= limit;
  const pct = unlimited ? 0 : Math.min(100, (used / limit) * 100);
  return html`
    <div class="usage ${full ? 'full' : ''}">
      <div class="usage-label">
        <span>${label}</span>
        <span class="num">
          ${formatNumber(used)} / ${unlimited ? 'no limit' : formatNumber(limit)}
          ${full && html` · <strong>at limit</strong>`}
        </span>
      </div>
      <div
        class="bar"
        role="progressbar"
        aria-label=${`${label} usage of ${account}`}
        aria-valuemin="0"
        aria-valuemax=${unlimited ? undefined : limit}
        aria-valuenow=${unlimited ? undefined : used}
        aria-valuetext=${unlimited ? `${used} sent, no limit` : `${used} of ${limit}${full ? ', at limit' : ''}`}
      >
        <span style=${{ width: `${pct}%` }}></span>
      </div>
    </div>
  `;
}
