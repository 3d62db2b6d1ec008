import { must } from './fixtures.ts';
import type { ApiClient } from './mailpilot.ts';
import type { SmtpPeer } from './smtpPeer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every recipient the peer accepted a message for, with how many times. */
export function deliveries(peer: SmtpPeer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of peer.messages) for (const r of m.rcptTo) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Every message of a campaign, as the API pages them. */
export async function allMessages(t: ApiClient, key: string, campaignId: number): Promise<any[]> {
  const items: any[] = [];
  let after = 0;
  for (;;) {
    const page = await must(t, key, 'GET', `/api/v1/campaigns/${campaignId}/messages?limit=500&after=${after}`);
    items.push(...page.items);
    if (page.next === null) return items;
    after = page.next;
  }
}

/** Polls (real time) until `check` returns something other than undefined. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
