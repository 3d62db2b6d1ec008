import { expect } from 'vitest';
import type { ApiClient, TestMailPilot } from './mailpilot.ts';

/** Builds a user's sending setup through the public API, failing loudly on any non-2xx. */
export async function must<T = any>(t: ApiClient, key: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await t.api<T>(method, path, { key, body });
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function addServer(t: ApiClient, key: string, port: number, maxConnections?: number): Promise<number> {
  const s = await must(t, key, 'POST', '/api/v1/smtp-servers', { name: `peer ${port}`, host: '127.0.0.1', port, security: 'none', maxConnections });
  return s.id;
}

export async function addAccount(
  t: ApiClient,
  key: string,
  serverId: number,
  email: string,
  limits: { hourlyLimit?: number; dailyLimit?: number; username?: string; password?: string; ratePerSecond?: number } = {},
): Promise<number> {
  const a = await must(t, key, 'POST', '/api/v1/smtp-accounts', { serverId, email, hourlyLimit: 0, dailyLimit: 0, ...limits });
  return a.id;
}

/** A list of `count` contacts named recipient-N with a city attribute. */
export async function addList(t: ApiClient, key: string, count: number, domain = 'rcpt.test', prefix = 'r'): Promise<number> {
  const list = await must(t, key, 'POST', '/api/v1/lists', { name: `list of ${count}` });
  const BATCH = 5000;
  for (let start = 0; start < count; start += BATCH) {
    const contacts = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => ({
      email: `${prefix}${start + i}@${domain}`,
      name: `Recipient ${start + i}`,
      attributes: { city: `City${(start + i) % 7}` },
    }));
    const res = await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts });
    expect(res.added).toBe(contacts.length);
  }
  return list.id;
}

export async function createCampaign(t: ApiClient, key: string, listIds: number[], extra: Record<string, unknown> = {}): Promise<number> {
  const c = await must(t, key, 'POST', '/api/v1/campaigns', {
    name: 'Spring news',
    listIds,
    subject: 'Hello {{name}}',
    html: '<p>Hi {{name}} from {{attributes.city}}</p><p><a href="{{unsubscribeUrl}}">unsubscribe</a></p>',
    text: 'Hi {{name}} from {{attributes.city}}',
    fromName: 'Spring Shop',
    ...extra,
  });
  return c.id;
}

/** Polls (real time) until the campaign satisfies `done`; the engine works asynchronously. */
export async function waitForCampaign(
  t: ApiClient,
  key: string,
  id: number,
  done: (c: any) => boolean,
  timeoutMs = 60_000,
): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await must(t, key, 'GET', `/api/v1/campaigns/${id}`);
    if (done(c)) return c;
    if (Date.now() > deadline) throw new Error(`campaign ${id} did not get there in ${timeoutMs} ms: ${JSON.stringify(c)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the engine has no account worker left running (all exited and released). */
export async function waitForIdleEngine(t: TestMailPilot, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (t.mp.engine!.activeWorkers > 0) {
    if (Date.now() > deadline) throw new Error('engine workers did not exit');
    await new Promise((r) => setTimeout(r, 20));
  }
  await t.mp.engine!.wake();
}
