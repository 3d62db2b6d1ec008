import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { usePolled } from '../hooks.js';
import { formatNumber } from '../lib/format.js';
import { navigate } from '../router.js';

/** A draft campaign: lists, subject, bodies. It opens on its own page, ready to start. */
export function NewCampaignPage({ api }) {
  const [lists, listsError] = usePolled(() => api.all('/lists'), 0, [api]);
  const [chosen, setChosen] = useState(new Set());
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const toggle = (id) =>
    setChosen((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const text = (name) => String(form.get(name) ?? '').trim();
    const body = { name: text('name'), listIds: [...chosen], subject: text('subject') };
    for (const [field, value] of [
      ['html', text('html')],
      ['text', text('text')],
      ['fromName', text('fromName')],
      ['replyTo', text('replyTo')],
    ]) {
      if (value) body[field] = value;
    }
    if (text('scheduledAt')) body.scheduledAt = new Date(text('scheduledAt')).toISOString();
    setBusy(true);
    setError(null);
    try {
      const created = await api.post('/campaigns', body);
      navigate(`/campaigns/${created.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return html`
    <p><a href="#/campaigns">← Campaigns</a></p>
    <h1>New campaign</h1>
    <form class="panel grid" onSubmit=${submit}>
      <label>Name<input name="name" required maxlength="200" /></label>
      <label>From name<input name="fromName" maxlength="200" placeholder="Example Shop" /></label>
      <label>Reply-To<input name="replyTo" type="email" placeholder="replies@example.com" /></label>
      <label>Start at <span class="hint">(optional)</span><input name="scheduledAt" type="datetime-local" /></label>
      <fieldset class="wide">
        <legend class="label">Lists</legend>
        <${ErrorNote} error=${listsError} />
        ${lists && lists.length === 0 && html`<p class="hint">No lists yet: <a href="#/lists">create one</a> first.</p>`}
        ${(lists ?? []).map(
          (l) => html`<label key=${l.id}>
            <input type="checkbox" checked=${chosen.has(l.id)} onChange=${() => toggle(l.id)} />
            ${l.name} <span class="hint">(${formatNumber(l.contactCount)} contacts)</span>
          </label>`,
        )}
      </fieldset>
      <label class="wide">Subject<input name="subject" required maxlength="998" placeholder="Hello {{name}}" /></label>
      <label class="wide">HTML body<textarea name="html" placeholder="<p>Hi {{name}} from {{attributes.city}}</p>"></textarea></label>
      <label class="wide">Text body<textarea name="text" placeholder="Hi {{name}}"></textarea></label>
      <p class="wide hint">{{name}}, {{email}} and {{attributes.X}} are replaced for each recipient.</p>
      <div class="wide"><${ErrorNote} error=${error} /></div>
      <div class="wide actions">
        <button class="primary" type="submit" disabled=${busy || chosen.size === 0}>Create campaign</button>
        <a class="button" href="#/campaigns">Cancel</a>
      </div>
    </form>
  `;
}
