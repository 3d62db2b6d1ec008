import { contactsCsvStream, FROM_NAME, HTML_TEMPLATE, SUBJECT, TEXT_TEMPLATE } from './content.ts';
import { apiClient, type Api } from './mailpilot.ts';

/** GET /api/v1/campaigns/:id, the fields the benchmarks read. */
export interface Campaign {
  id: number;
  status: string;
  total: number;
  sent: number;
  failed: number;
  suppressed: number;
  cancelled: number;
  pending: number;
  startedAt: string | null;
  completedAt: string | null;
}

export function describeCampaign(c: Campaign): string {
  return `campaign ${c.id}: status ${c.status}, total ${c.total}, sent ${c.sent}, failed ${c.failed}, suppressed ${c.suppressed}, cancelled ${c.cancelled}, pending ${c.pending}`;
}

/** The API's ceiling on an SMTP server's maxConnections. */
const MAX_SERVER_CONNECTIONS = 100;

/**
 * A user with one SMTP server (the sink) and `accounts` accounts on it without limits, through the
 * public API. The server's maxConnections equals the account count (up to the API's 100): one
 * connection per account.
 */
export async function createSender(
  admin: Api,
  baseUrl: string,
  opts: { name: string; sinkPort: number; accounts: number },
): Promise<Api> {
  const user = await admin.call<{ apiKey: string }>('POST', '/api/v1/users', {
    body: { name: opts.name, email: `${opts.name}@bench.test` },
    expect: 201,
  });
  const api = apiClient(baseUrl, user.apiKey);
  const server = await api.call<{ id: number }>('POST', '/api/v1/smtp-servers', {
    body: { name: 'smtp-sink', host: '127.0.0.1', port: opts.sinkPort, security: 'none', maxConnections: Math.min(opts.accounts, MAX_SERVER_CONNECTIONS) },
    expect: 201,
  });
  for (let i = 0; i < opts.accounts; i++) {
    await api.call('POST', '/api/v1/smtp-accounts', {
      body: { serverId: server.id, email: `sender${i}@bench.test`, hourlyLimit: 0, dailyLimit: 0 },
      expect: 201,
    });
  }
  return api;
}

/**
 * A new list holding contacts `from` ≤ i < `to`, imported as one streamed CSV request, as
 * `mailpilot lists import` sends a file. Throws unless every row was added.
 */
export async function importList(api: Api, from: number, to: number, onProgress?: (rows: number) => void): Promise<number> {
  const list = await api.call<{ id: number }>('POST', '/api/v1/lists', { body: { name: `contacts ${from}-${to}` }, expect: 201 });
  const res = await api.call<{ added: number; invalidCount: number; invalid: unknown[] }>('POST', `/api/v1/lists/${list.id}/contacts`, {
    body: contactsCsvStream(from, to, onProgress),
    contentType: 'text/csv',
  });
  if (res.added !== to - from || res.invalidCount !== 0) {
    throw new Error(`import of ${to - from} rows added ${res.added}, ${res.invalidCount} invalid: ${JSON.stringify(res.invalid.slice(0, 3))}`);
  }
  return list.id;
}

/** A draft campaign of the bench content (content.ts) to the lists. */
export async function createCampaign(api: Api, name: string, listIds: number[]): Promise<Campaign> {
  return api.call<Campaign>('POST', '/api/v1/campaigns', {
    body: { name, listIds, subject: SUBJECT, html: HTML_TEMPLATE, text: TEXT_TEMPLATE, fromName: FROM_NAME },
    expect: 201,
  });
}
