import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock, type Clock } from '../../src/clock.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { startMailPilot, type MailPilot } from '../../src/server.ts';
import { freshDatabase, type DatabaseKind } from './db.ts';

export interface ApiReply<T = any> {
  status: number;
  body: T;
}

/** Something that calls a MailPilot HTTP API: an in-process one or another process. */
export interface ApiClient {
  /** Calls the HTTP API; `body` is sent as JSON unless a string is given with a content type. */
  api<T = any>(method: string, path: string, opts?: { key?: string; body?: unknown; contentType?: string }): Promise<ApiReply<T>>;
}

export function apiClient(url: string): ApiClient['api'] {
  return async (method, path, o = {}) => {
    const headers: Record<string, string> = {};
    if (o.key) headers.authorization = `Bearer ${o.key}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['content-type'] = o.contentType ?? 'application/json';
      body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    }
    const res = await fetch(url + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (e.g. an HTML page): keep the text
    }
    return { status: res.status, body: parsed as any };
  };
}

export interface TestMailPilot extends ApiClient {
  mp: MailPilot;
  url: string;
  adminKey: string;
  clock: Clock;
  /** Creates a user through the admin API and returns its id and key. */
  createUser(name?: string): Promise<{ id: number; apiKey: string }>;
  close(): Promise<void>;
}

/** A whole MailPilot (API + engine) on its own fresh database, listening on a free port. */
export async function startTestMailPilot(
  kind: DatabaseKind,
  opts: { clock?: Clock; engine?: boolean; config?: Partial<Config>; log?: Logger } = {},
): Promise<TestMailPilot> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-test-'));
  const database = await freshDatabase(kind);
  const config = { ...loadConfig({}), port: 0, dataDir, adminKey: 'test-admin-key', logLevel: 'warn', ...opts.config };
  const clock = opts.clock ?? new FakeClock('2026-03-02T10:00:00Z');
  const mp = await startMailPilot({
    config,
    api: true,
    engine: opts.engine ?? true,
    clock,
    db: database.db,
    log: opts.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'warn'),
  });
  const url = mp.url!;
  let users = 0;

  const api = apiClient(url);

  return {
    mp,
    url,
    adminKey: config.adminKey,
    clock,
    api,
    async createUser(name = `user${++users}`) {
      const res = await api('POST', '/api/v1/users', { key: config.adminKey, body: { name, email: `${name}@example.test` } });
      if (res.status !== 201) throw new Error(`creating a user failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { id: res.body.id, apiKey: res.body.apiKey };
    },
    async close() {
      await mp.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
