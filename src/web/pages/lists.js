import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';
import { formatNumber } from '../lib/format.js';

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** A CSV or .xlsx file into one list, with the upload's progress (the server imports rows as they arrive). */
function ImportCsv({ api, list, onDone }) {
  const [progress, setProgress] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const upload = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const file = form.get('file');
    if (!(file instanceof File) || file.size === 0) return setError(new Error('choose a CSV or .xlsx file first'));
    const type = file.name.toLowerCase().endsWith('.xlsx') ? XLSX_TYPE : 'text/csv';
    const query = form.get('verify') ? '?verify=true' : '';
    setError(null);
    setResult(null);
    setProgress(0);
    try {
      setResult(await api.upload(`/lists/${list.id}/contacts${query}`, file, type, setProgress));
      await onDone();
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
    }
  };
  const pct = progress === null ? 0 : Math.round(progress * 100);
  return html`
    <form onSubmit=${upload}>
      <label>CSV or .xlsx file for ${list.name} <span class="hint">(an email column; other columns become attributes)</span>
        <input name="file" type="file" accept=".csv,text/csv,.xlsx,${XLSX_TYPE}" />
      </label>
      <label class="check"><input name="verify" type="checkbox" /> Verify addresses (mail domain, disposable, role)</label>
      <div class="actions"><button type="submit" disabled=${progress !== null}>Import</button></div>
      <div class="bar" role="progressbar" aria-label=${`Import into ${list.name}`} aria-valuemin="0" aria-valuemax="100" aria-valuenow=${pct}>
        <span class="sent" style=${{ width: `${progress === null && result ? 100 : pct}%` }}></span>
      </div>
      <p class="live-line" aria-live="polite">
        ${progress !== null && `Importing… ${pct}%`}
        ${result &&
        `${formatNumber(result.added)} added, ${formatNumber(result.updated)} updated, ${formatNumber(result.duplicates)} duplicates, ${formatNumber(result.invalid.length)} invalid`}
      </p>
      ${result && result.warnings?.length > 0 && html`<ul class="hint">${result.warnings.map((w) => html`<li>${w}</li>`)}</ul>`}
      ${result && result.invalid.length > 0 &&
      html`<ul class="hint">${result.invalid.slice(0, 10).map((r) => html`<li>row ${r.row}: ${r.email || '(empty)'}: ${r.reason}</li>`)}</ul>`}
      <${ErrorNote} error=${error} />
    </form>
  `;
}

/** One address across every list: its contacts (verify, delete), and the data-protection requests for it. */
function FindContact({ api, onChange }) {
  const [email, setEmail] = useState('');
  const [found, setFound] = useState(null);
  const [note, setNote] = useState(null);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
  };
  const find = (address = email) => run(async () => setFound((await api.get(`/contacts?email=${encodeURIComponent(address)}`)).items));
  const search = (e) => {
    e.preventDefault();
    setNote(null);
    find();
  };
  const verify = (c) => run(async () => {
    const v = (await api.post(`/lists/${c.listId}/contacts/${c.id}/verify`)).verification;
    setNote(`${c.email} in ${c.listName}: ${v.status}${v.reasons.length ? ` (${v.reasons.join(', ')})` : ''}`);
    await find();
  });
  const remove = (c) => run(async () => {
    if (!window.confirm(`Delete ${c.email} from ${c.listName}?`)) return;
    await api.del(`/lists/${c.listId}/contacts/${c.id}`);
    setNote(`${c.email} deleted from ${c.listName}.`);
    await find();
    await onChange();
  });
  const exportData = () => run(() => api.download(`/contacts/export?email=${encodeURIComponent(email)}`, `contact-${email}.json`));
  const erase = () => run(async () => {
    if (!window.confirm(`Erase ${email} everywhere (contacts, messages, bounce details)? It stays suppressed so it is never mailed again.`)) return;
    const r = await api.post('/contacts/erase', { email });
    setNote(`${email}: ${r.erasedContacts} contacts and ${r.erasedMessages} messages erased; suppressed.`);
    await find();
    await onChange();
  });
  return html`
    <section class="panel" aria-labelledby="find-contact">
      <h2 id="find-contact">Find a contact</h2>
      <form class="grid" onSubmit=${search}>
        <label>Email address<input name="email" type="email" required value=${email} onInput=${(e) => setEmail(e.currentTarget.value.trim())} /></label>
        <div class="actions"><button type="submit">Find</button></div>
      </form>
      ${found && found.length === 0 && html`<p class="empty">${email} is on no list.</p>`}
      ${found && found.length > 0 &&
      html`<table>
        <thead><tr><th>List</th><th>Address</th><th>Name</th><th>Verification</th><th></th></tr></thead>
        <tbody>
          ${found.map(
            (c) => html`<tr key=${c.id}>
              <td>${c.listName}</td><td>${c.email}${c.suppressed ? ' (suppressed)' : ''}</td><td>${c.name ?? ''}</td>
              <td>${c.verification ? c.verification.status : 'not verified'}</td>
              <td class="actions">
                <button type="button" aria-label=${`Verify ${c.email} in ${c.listName}`} onClick=${() => verify(c)}>Verify</button>
                <button type="button" class="danger" aria-label=${`Delete ${c.email} from ${c.listName}`} onClick=${() => remove(c)}>Delete</button>
              </td>
            </tr>`,
          )}
        </tbody>
      </table>`}
      ${found &&
      html`<div class="actions">
        <button type="button" onClick=${exportData}>Export all data held about ${email}</button>
        <button type="button" class="danger" onClick=${erase}>Erase ${email} everywhere</button>
      </div>`}
      <p class="live-line" aria-live="polite">${note}</p>
      <${ErrorNote} error=${error} />
    </section>
  `;
}

export function ListsPage({ api }) {
  const [lists, error, reload] = usePolled(() => api.all('/lists'), 0, [api]);
  const [createError, setCreateError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    try {
      await api.post('/lists', { name: String(new FormData(form).get('name')).trim() });
      form.reset();
      setCreateError(null);
      await reload();
    } catch (err) {
      setCreateError(err);
    }
  };
  const [deleteError, setDeleteError] = useState(null);
  const remove = async (l) => {
    if (!window.confirm(`Delete the list ${l.name} and its ${l.contactCount} contacts? Campaigns already started keep their queue.`)) return;
    try {
      await api.del(`/lists/${l.id}`);
      setDeleteError(null);
      await reload();
    } catch (err) {
      setDeleteError(err);
    }
  };
  return html`
    <div class="page-head"><h1>Lists</h1></div>
    <${ErrorNote} error=${error} />
    <div class="stack">
      <form class="panel grid" onSubmit=${create}>
        <label>New list name<input name="name" required maxlength="200" /></label>
        <div><button class="primary" type="submit">Create list</button></div>
        <div class="wide"><${ErrorNote} error=${createError} /></div>
      </form>
      <${FindContact} api=${api} onChange=${reload} />
      <${ErrorNote} error=${deleteError} />
      ${lists && lists.length === 0 && html`<p class="empty">No lists yet.</p>`}
      <div class="cards">
        ${(lists ?? []).map(
          (l) => html`<article key=${l.id} class="panel" aria-labelledby=${`list-${l.id}`}>
            <div class="card-head">
              <h2 id=${`list-${l.id}`}>${l.name}</h2>
              <span class="num">${formatNumber(l.contactCount)} contacts</span>
              <button type="button" class="danger" aria-label=${`Delete list ${l.name}`} onClick=${() => remove(l)}>Delete</button>
            </div>
            <${ImportCsv} api=${api} list=${l} onDone=${reload} />
          </article>`,
        )}
      </div>
    </div>
  `;
}
