import { useState } from 'preact/hooks';
import { Badge, ErrorNote, UsageBar } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';

const ACCOUNTS_EVERY_MS = 5_000;
/** Token endpoints of the providers that take XOAUTH2 (README, "OAuth2 accounts"). */
const TOKEN_URLS = [
  ['Google (Gmail, Workspace)', 'https://oauth2.googleapis.com/token'],
  ['Microsoft 365 (any tenant)', 'https://login.microsoftonline.com/common/oauth2/v2.0/token'],
];

/** What the server taught the engine about the account, in words. */
function learned(h) {
  const parts = [];
  if (h.maxConnections) parts.push(`at most ${h.maxConnections} connection${h.maxConnections === 1 ? '' : 's'} (the server said so)`);
  if (h.recovery) {
    const pace = h.recovery.ratePerSecond ? ` at ${h.recovery.ratePerSecond}/s` : '';
    parts.push(`restarting gently (one connection${pace}) until ${new Date(h.recovery.until).toLocaleTimeString()}`);
  }
  return parts.join(' · ');
}

const MAILBOX_WORDS = { unchecked: 'not read yet', ok: 'reading', failing: 'failing', auth_failed: 'login refused' };

/** How reading the account's mailbox (IMAP) goes: apart from its SMTP health. */
function MailboxLine({ imap }) {
  const { state, reason, checkedAt } = imap.status;
  return html`<p class=${`live-line mailbox ${state === 'ok' || state === 'unchecked' ? '' : 'problem'}`}>
    Mailbox ${imap.username ?? ''} ${imap.mailbox} at ${imap.host}: ${MAILBOX_WORDS[state] ?? state}${reason ? ` (${reason})` : ''}
    ${checkedAt && html`<span class="muted"> · checked ${new Date(checkedAt).toLocaleTimeString()}</span>`}
  </p>`;
}

function AccountCard({ api, a, server, onChange }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const change = async (body) => {
    setBusy(true);
    setError(null);
    try {
      await api.patch(`/smtp-accounts/${a.id}`, body);
      await onChange();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const toggle = () => change({ active: !a.active });
  // A pause for the bounce or complaint rate is lifted only on purpose (README, "Bounce and complaint rate guard").
  const resume = () => change({ resume: true });
  const h = a.health;
  const rolling = a.limitWindow === 'rolling';
  const warming = a.warmup && a.usage.effectiveDailyLimit !== a.usage.dailyLimit;
  const w = a.sendingWindow;
  const policy = [
    a.preset && `${a.preset} preset`,
    w && `sends ${w.days.join(', ')} ${w.start}–${w.end} (${w.timezone})`,
    a.warmup && `warm-up from ${a.warmup.startPerDay} a day, +${a.warmup.increasePerDay} each sending day`,
    a.minGapSeconds && `${a.minGapSeconds}–${a.maxGapSeconds ?? a.minGapSeconds} s between sends`,
  ]
    .filter(Boolean)
    .join(' · ');
  return html`
    <article class="panel" aria-labelledby=${`account-${a.id}`}>
      <div class="card-head">
        <h2 id=${`account-${a.id}`}>${a.email}</h2>
        <${Badge} state=${h.state} />
      </div>
      <p class="hint">${server ? `${server.name} · ${server.host}:${server.port}` : `server ${a.serverId}`}${a.ratePerSecond ? ` · ${a.ratePerSecond}/s` : ''}${a.auth ? ` · OAuth2 as ${a.auth.user}` : ''}</p>
      <p class="live-line">
        ${h.reason ?? (h.state === 'healthy' ? 'No problems reported' : '')}
        ${h.until && ` until ${new Date(h.until).toLocaleTimeString()}`}
      </p>
      ${a.bounceDomain && html`<p class="hint">Bounces to ${a.bounceDomain}</p>`}
      ${a.imap && html`<${MailboxLine} imap=${a.imap} />`}
      ${learned(h) && html`<p class="hint">${learned(h)}</p>`}
      <${UsageBar} label=${rolling ? 'Last 60 minutes' : 'This hour'} used=${a.usage.sentThisHour} limit=${a.usage.hourlyLimit} account=${a.email} />
      <${UsageBar}
        label=${`${rolling ? 'Last 24 hours' : 'Today'}${warming ? ' (warm-up)' : ''}`}
        used=${a.usage.sentToday}
        limit=${a.usage.effectiveDailyLimit ?? a.usage.dailyLimit}
        account=${a.email}
      />
      ${a.usage.nextSendAt && html`<p class="hint">Next send at ${new Date(a.usage.nextSendAt).toLocaleString()}</p>`}
      ${policy && html`<p class="hint">${policy}</p>`}
      <div class="actions">
        ${h.state === 'paused' &&
        html`<button class="primary" disabled=${busy} aria-label=${`Resume ${a.email}`} onClick=${resume}>Resume</button>`}
        <button class=${a.active ? 'danger' : 'primary'} disabled=${busy} aria-label=${`${a.active ? 'Disable' : 'Enable'} ${a.email}`} onClick=${toggle}>
          ${a.active ? 'Disable' : 'Enable'}
        </button>
      </div>
      <${ErrorNote} error=${error} />
    </article>
  `;
}

function AddServer({ api, onAdded }) {
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    try {
      await api.post('/smtp-servers', {
        name: String(f.get('name')).trim(),
        host: String(f.get('host')).trim(),
        port: Number(f.get('port')),
        security: f.get('security'),
        maxConnections: Number(f.get('maxConnections')),
      });
      form.reset();
      setError(null);
      await onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <details class="panel">
      <summary>Add an SMTP server</summary>
      <form class="grid" onSubmit=${submit}>
        <label>Server name<input name="name" required /></label>
        <label>Host<input name="host" required placeholder="smtp.example.com" /></label>
        <label>Port<input name="port" type="number" min="1" max="65535" required value="587" /></label>
        <label>Security
          <select name="security"><option value="starttls">STARTTLS</option><option value="tls">TLS</option><option value="none">None</option></select>
        </label>
        <label>Max connections<input name="maxConnections" type="number" min="1" max="100" value="10" /></label>
        <div class="wide"><${ErrorNote} error=${error} /></div>
        <div><button class="primary" type="submit">Add server</button></div>
      </form>
    </details>
  `;
}

/** The OAuth2 fields: the client of the user's app registration and the refresh token its consent gave. */
function OAuthFields() {
  return html`
    <label>Client ID<input name="clientId" required autocomplete="off" /></label>
    <label>Client secret<input name="clientSecret" type="password" required autocomplete="off" /></label>
    <label class="wide">Refresh token<input name="refreshToken" type="password" required autocomplete="off" /></label>
    <label class="wide">Token URL
      <input name="tokenUrl" type="url" required list="token-urls" placeholder="https://oauth2.googleapis.com/token" />
      <datalist id="token-urls">${TOKEN_URLS.map(([name, url]) => html`<option value=${url}>${name}</option>`)}</datalist>
    </label>
    <label>Mailbox to log in as <span class="hint">(optional: the sending address)</span><input name="oauthUser" autocomplete="off" /></label>
  `;
}

function AddAccount({ api, servers, onAdded }) {
  const [error, setError] = useState(null);
  const [login, setLogin] = useState('password');
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const body = {
      serverId: Number(f.get('serverId')),
      email: String(f.get('email')).trim(),
      hourlyLimit: Number(f.get('hourlyLimit')),
      dailyLimit: Number(f.get('dailyLimit')),
      timezone: String(f.get('timezone')).trim() || 'UTC',
    };
    if (login === 'oauth2') {
      body.auth = {
        type: 'oauth2',
        clientId: String(f.get('clientId')).trim(),
        clientSecret: String(f.get('clientSecret')),
        refreshToken: String(f.get('refreshToken')).trim(),
        tokenUrl: String(f.get('tokenUrl')).trim(),
      };
      if (String(f.get('oauthUser')).trim()) body.auth.user = String(f.get('oauthUser')).trim();
    } else {
      if (String(f.get('username')).trim()) body.username = String(f.get('username')).trim();
      if (String(f.get('password'))) body.password = String(f.get('password'));
    }
    if (String(f.get('ratePerSecond'))) body.ratePerSecond = Number(f.get('ratePerSecond'));
    try {
      await api.post('/smtp-accounts', body);
      form.reset();
      setLogin('password');
      setError(null);
      await onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <details class="panel">
      <summary>Add an SMTP account</summary>
      ${servers.length === 0
        ? html`<p class="hint">Add a server first.</p>`
        : html`<form class="grid" onSubmit=${submit}>
            <label>Server
              <select name="serverId">${servers.map((s) => html`<option value=${s.id}>${s.name}</option>`)}</select>
            </label>
            <label>Sending address<input name="email" type="email" required /></label>
            <label>Login
              <select name="login" value=${login} onChange=${(e) => setLogin(e.currentTarget.value)}>
                <option value="password">Username and password</option>
                <option value="oauth2">OAuth2 (Gmail, Microsoft 365)</option>
              </select>
            </label>
            ${login === 'oauth2'
              ? html`<${OAuthFields} />`
              : html`<label>Username <span class="hint">(optional)</span><input name="username" autocomplete="off" /></label>
                  <label>Password <span class="hint">(optional)</span><input name="password" type="password" autocomplete="new-password" /></label>`}
            <label>Hourly limit <span class="hint">(0 = none)</span><input name="hourlyLimit" type="number" min="0" required value="100" /></label>
            <label>Daily limit <span class="hint">(0 = none)</span><input name="dailyLimit" type="number" min="0" required value="1000" /></label>
            <label>Sends per second <span class="hint">(optional)</span><input name="ratePerSecond" type="number" min="0.01" step="any" /></label>
            <label>Time zone of its day<input name="timezone" value="UTC" /></label>
            <div class="wide"><${ErrorNote} error=${error} /></div>
            <div><button class="primary" type="submit">Add account</button></div>
          </form>`}
    </details>
  `;
}

export function AccountsPage({ api }) {
  const [data, error, reload] = usePolled(
    async () => {
      const [accounts, servers] = await Promise.all([api.all('/smtp-accounts'), api.all('/smtp-servers')]);
      return { accounts, servers };
    },
    ACCOUNTS_EVERY_MS,
    [api],
  );
  const servers = data?.servers ?? [];
  return html`
    <div class="page-head"><h1>SMTP accounts</h1></div>
    <${ErrorNote} error=${error} />
    <div class="stack">
      <div class="cards">
        <${AddServer} api=${api} onAdded=${reload} />
        <${AddAccount} api=${api} servers=${servers} onAdded=${reload} />
      </div>
      ${data && data.accounts.length === 0 && html`<p class="empty">No SMTP accounts yet.</p>`}
      <div class="cards">
        ${(data?.accounts ?? []).map(
          (a) => html`<${AccountCard} key=${a.id} api=${api} a=${a} server=${servers.find((s) => s.id === a.serverId)} onChange=${reload} />`,
        )}
      </div>
    </div>
  `;
}
