import { useState } from 'preact/hooks';
import { ErrorNote } from '../components.js';
import { html } from '../html.js';
import { signIn } from '../session.js';

export function SignInPage({ onSignedIn }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(String(f.get('key')).trim()), f.get('remember') === 'on');
    } catch (err) {
      setError(err.status === 401 ? new Error('That API key is not valid.') : err);
      setBusy(false);
    }
  };
  return html`
    <main class="sign-in">
      <form class="panel stack" onSubmit=${submit}>
        <h1>MailPilot</h1>
        <p class="muted">Sign in with your API key, or with the admin key for the system view.</p>
        <label>API key<input name="key" type="password" required autocomplete="current-password" spellcheck="false" /></label>
        <label><input name="remember" type="checkbox" /> Remember me on this device</label>
        <${ErrorNote} error=${error} />
        <button class="primary" type="submit" disabled=${busy}>Sign in</button>
      </form>
    </main>
  `;
}
