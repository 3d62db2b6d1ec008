import { useCallback, useEffect, useState } from 'preact/hooks';
import { Badge, CampaignActions, CampaignProgress, ErrorNote, LiveLine, Warnings } from '../components.js';
import { html } from '../html.js';
import { LIVE_STATES, useCampaigns, useForecast, useLiveCampaigns } from '../hooks.js';

/** The list is read again this often, to show campaigns created or changed elsewhere. */
const LIST_EVERY_MS = 10_000;
/** Campaigns beyond this many running at once are updated by the list reads only. */
const MAX_LIVE = 20;

export function CampaignCard({ api, c, rate, onChange }) {
  const forecast = useForecast(api, c);
  return html`
    <article class="panel" aria-labelledby=${`campaign-${c.id}`}>
      <div class="card-head">
        <h2 id=${`campaign-${c.id}`}><a href=${`#/campaigns/${c.id}`}>${c.name}</a></h2>
        <${Badge} state=${c.status} />
      </div>
      <${CampaignProgress} c=${c} />
      <${LiveLine} c=${c} rate=${rate} forecast=${forecast} />
      <${Warnings} warnings=${c.warnings} />
      <${CampaignActions} api=${api} c=${c} onChange=${onChange} />
    </article>
  `;
}

export function CampaignsPage({ api }) {
  const { campaigns, apply, rateOf } = useCampaigns();
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState(null);

  const readList = useCallback(async () => {
    const at = performance.now();
    try {
      for (const c of await api.all('/campaigns')) apply(c, at);
      setLoaded(true);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [api, apply]);
  useEffect(() => {
    void readList();
    const timer = setInterval(() => void readList(), LIST_EVERY_MS);
    return () => clearInterval(timer);
  }, [readList]);

  const newestFirst = [...campaigns.values()].sort((a, b) => b.id - a.id);
  const live = newestFirst.filter((c) => LIVE_STATES.has(c.status)).slice(0, MAX_LIVE).map((c) => c.id);
  useLiveCampaigns(api, live, apply);

  return html`
    <div class="page-head">
      <h1>Campaigns</h1>
      <a class="button primary" href="#/campaigns/new">New campaign</a>
    </div>
    <${ErrorNote} error=${error} />
    ${loaded && newestFirst.length === 0 && html`<p class="empty">No campaigns yet. Create one to send to your lists.</p>`}
    <div class="cards">
      ${newestFirst.map(
        (c) => html`<${CampaignCard} key=${c.id} api=${api} c=${c} rate=${rateOf(c.id)} onChange=${apply} />`,
      )}
    </div>
  `;
}
