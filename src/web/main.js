import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { createApi } from './api.js';
import { html } from './html.js';
import { AccountsPage } from './pages/accounts.js';
import { CampaignDetailPage } from './pages/campaignDetail.js';
import { CampaignsPage } from './pages/campaigns.js';
import { ListsPage } from './pages/lists.js';
import { NewCampaignPage } from './pages/newCampaign.js';
import { SignInPage } from './pages/signIn.js';
import { SuppressionsPage } from './pages/suppressions.js';
import { SystemPage } from './pages/system.js';
import { match, navigate, useRoute } from './router.js';
import { clearSession, loadSession, saveSession } from './session.js';

const USER_NAV = [
  ['/campaigns', 'Campaigns'],
  ['/accounts', 'SMTP accounts'],
  ['/lists', 'Lists'],
  ['/suppressions', 'Suppressions'],
];
const ADMIN_NAV = [['/system', 'System']];

function page(path, api, session) {
  if (session.kind === 'admin') return html`<${SystemPage} api=${api} />`;
  if (path === '/campaigns/new') return html`<${NewCampaignPage} api=${api} />`;
  const detail = match('/campaigns/:id', path);
  if (detail && /^\d+$/.test(detail.id)) return html`<${CampaignDetailPage} key=${detail.id} api=${api} id=${Number(detail.id)} />`;
  if (path === '/accounts') return html`<${AccountsPage} api=${api} />`;
  if (path === '/lists') return html`<${ListsPage} api=${api} />`;
  if (path === '/suppressions') return html`<${SuppressionsPage} api=${api} />`;
  return html`<${CampaignsPage} api=${api} />`;
}

function App() {
  const [session, setSession] = useState(loadSession);
  const path = useRoute();
  const signOut = useCallback(() => {
    clearSession();
    setSession(null);
  }, []);
  const api = useMemo(() => (session ? createApi(session.key, signOut) : null), [session, signOut]);
  const home = session?.kind === 'admin' ? '/system' : '/campaigns';
  useEffect(() => {
    if (session && (path === '/' || (session.kind === 'admin') !== path.startsWith('/system'))) navigate(home);
  }, [session, path]);
  useEffect(() => {
    const section = [...USER_NAV, ...ADMIN_NAV].find(([p]) => path.startsWith(p));
    document.title = section ? `${section[1]} · MailPilot` : 'MailPilot';
  }, [path]);

  if (!session) {
    return html`<${SignInPage}
      onSignedIn=${(s, remember) => {
        saveSession(s, remember);
        setSession(s);
      }}
    />`;
  }
  const nav = session.kind === 'admin' ? ADMIN_NAV : USER_NAV;
  return html`
    <header class="top">
      <a class="brand" href=${`#${home}`}>MailPilot</a>
      <nav aria-label="Main">
        <ul>
          ${nav.map(([p, label]) => html`<li><a href=${`#${p}`} aria-current=${path.startsWith(p) ? 'page' : undefined}>${label}</a></li>`)}
        </ul>
      </nav>
      <div class="who">
        <span>${session.name}</span>
        <button onClick=${signOut}>Sign out</button>
      </div>
    </header>
    <main>${page(path, api, session)}</main>
  `;
}

const root = document.getElementById('app');
root.replaceChildren();
render(html`<${App} />`, root);
