import type { Queryable } from '../../src/db/database.ts';
import { addAccount, addServer, createCampaign, must } from './fixtures.ts';
import type { TestMailPilot } from './mailpilot.ts';

/** One user with one of everything, made through the API. */
export interface Tenant {
  name: string;
  id: number;
  apiKey: string;
  /** A second key, so one can be revoked. */
  keyId: number;
  serverId: number;
  accountId: number;
  listId: number;
  /** A contact on that list. */
  contactId: number;
  /** Started (so it has queued messages) and paused. */
  campaignId: number;
  /** Never started. */
  draftId: number;
  suppressed: string;
  domainCapId: number;
  throttleId: number;
}

export async function createTenant(t: TestMailPilot, name: string, smtpPort = 2525): Promise<Tenant> {
  const user = await t.createUser(name);
  const key = user.apiKey;
  const extraKey = await must(t, key, 'POST', '/api/v1/me/keys');
  const serverId = await addServer(t, key, smtpPort);
  const accountId = await addAccount(t, key, serverId, `sender@${name}.test`, { username: name, password: `pw-of-${name}` });
  const list = await must(t, key, 'POST', '/api/v1/lists', { name: `${name}'s list` });
  await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, {
    contacts: [1, 2, 3].map((i) => ({ email: `c${i}@${name}-rcpt.test`, name: `Contact ${i}` })),
  });
  const contactId = (await must(t, key, 'GET', `/api/v1/contacts?email=c1@${name}-rcpt.test`)).items[0].id;
  const campaignId = await createCampaign(t, key, [list.id], { name: `${name}'s campaign` });
  await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/start`);
  await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/pause`);
  const draftId = await createCampaign(t, key, [list.id], { name: `${name}'s draft` });
  const cap = await must(t, key, 'POST', '/api/v1/domain-caps', { domain: `${name}.test`, dailyLimit: 5000 });
  const throttle = await must(t, key, 'POST', '/api/v1/recipient-throttles', { domain: `${name}-rcpt.test`, perMinute: 100 });
  const suppressed = `blocked@${name}-rcpt.test`;
  await must(t, key, 'POST', '/api/v1/suppressions', { email: suppressed });
  return {
    name,
    id: user.id,
    apiKey: key,
    keyId: extraKey.id,
    serverId,
    accountId,
    listId: list.id,
    contactId,
    campaignId,
    draftId,
    suppressed,
    domainCapId: cap.id,
    throttleId: throttle.id,
  };
}

/** Each user-owned table, and how to pick one user's rows in it (for the system role). */
export const USER_TABLES: Record<string, string> = {
  users: 'id = $1',
  api_keys: 'user_id = $1',
  smtp_servers: 'user_id = $1',
  smtp_accounts: 'user_id = $1',
  smtp_usage: 'account_id IN (SELECT id FROM smtp_accounts WHERE user_id = $1)',
  send_holds: 'account_id IN (SELECT id FROM smtp_accounts WHERE user_id = $1)',
  send_days: 'account_id IN (SELECT id FROM smtp_accounts WHERE user_id = $1)',
  domain_caps: 'user_id = $1',
  recipient_throttles: 'user_id = $1',
  recipient_minutes: 'user_id = $1',
  lists: 'user_id = $1',
  contacts: 'user_id = $1',
  campaigns: 'user_id = $1',
  messages: 'user_id = $1',
  suppressions: 'user_id = $1',
};

/** A digest of every row a user owns, to prove that nothing of theirs changed. */
export async function fingerprint(db: Queryable, userId: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [table, mine] of Object.entries(USER_TABLES)) {
    const [row] = await db.query<{ digest: string; n: number }>(
      `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest, count(*) AS n FROM ${table} t WHERE ${mine}`,
      [userId],
    );
    out[table] = `${row!.n}:${row!.digest}`;
  }
  return out;
}
