import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';
import { formatNumber } from '../lib/format.js';

/** A CSV file into one list, with the upload's progress (the server imports rows as they arrive). */
function ImportCsv({ api, list, onDone }) {
  const [progress, setProgress] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const upload = async (e) => {
    e.preventDefault();
    const file = new FormData(e.currentTarget).get('file');
    if (!(file instanceof File) || file.size === 0) return setError(new Error('choose a CSV file first'));
    setError(null);
    setResult(null);
    setProgress(0);
    try {
      setResult(await api.upload(`/lists/${list.id}/contacts`, file, 'text/csv', setProgress));
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
      <label>CSV file for ${list.name} <span class="hint">(an email column; other columns become attributes)</span>
        <input name="file" type="file" accept=".csv,text/csv" />
      </label>
      <div class="actions"><button type="submit" disabled=${progress !== null}>Import</button></div>
      <div class="bar" role="progressbar" aria-label=${`Import into ${list.name}`} aria-valuemin="0" aria-valuemax="100" aria-valuenow=${pct}>
        <span class="sent" style=${{ width: `${progress === null && result ? 100 : pct}%` }}></span>
      </div>
      <p class="live-line" aria-live="polite">
        ${progress !== null && `Importing… ${pct}%`}
        ${result &&
        `${formatNumber(result.added)} added, ${formatNumber(result.updated)} updated, ${formatNumber(result.duplicates)} duplicates, ${formatNumber(result.invalid.length)} invalid`}
      </p>
      ${result && result.invalid.length > 0 &&
      html`<ul class="hint">${result.invalid.slice(0, 10).map((r) => html`<li>row ${r.row}: ${r.email || '(empty)'}: ${r.reason}</li>`)}</ul>`}
      <${ErrorNote} error=${error} />
    </form>
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
  return html`
    <div class="page-head"><h1>Lists</h1></div>
    <${ErrorNote} error=${error} />
    <div class="stack">
      <form class="panel grid" onSubmit=${create}>
        <label>New list name<input name="name" required maxlength="200" /></label>
        <div><button class="primary" type="submit">Create list</button></div>
        <div class="wide"><${ErrorNote} error=${createError} /></div>
      </form>
      ${lists && lists.length === 0 && html`<p class="empty">No lists yet.</p>`}
      <div class="cards">
        ${(lists ?? []).map(
          (l) => html`<article key=${l.id} class="panel" aria-labelledby=${`list-${l.id}`}>
            <div class="card-head">
              <h2 id=${`list-${l.id}`}>${l.name}</h2>
              <span class="num">${formatNumber(l.contactCount)} contacts</span>
            </div>
            <${ImportCsv} api=${api} list=${l} onDone=${reload} />
          </article>`,
        )}
      </div>
    </div>
  `;
}
