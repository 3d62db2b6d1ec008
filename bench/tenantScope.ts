/**
 * What the tenant wall costs per query: the same data-layer reads run plainly and through
 * tenantScope (a transaction that switches to the tenant role first), on PGlite and on PostgreSQL,
 * next to the latency of whole API requests that use it.
 *
 *   npx tsx bench/tenantScope.ts
 *
 * PostgreSQL from BENCH_DATABASE_URL or TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * BENCH_ROUNDS (2000) sets how many times each read runs. Stdout gets one JSON line per database, with
 * median latencies in microseconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase, type Database, type Queryable } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { getServer } from '../src/db/smtpServers.ts';
import { listAccounts } from '../src/db/smtpAccounts.ts';
import { readAccountUsage as readUsage } from '../src/sendingPolicy/accountUsage.ts';
import { tenantScope } from '../src/db/tenantScope.ts';
import { createLogger } from '../src/log.ts';
import { startMailPilot } from '../src/server.ts';
import { createBenchDatabase } from './lib/postgres.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 2000);
const USERS = 100;
const NOW = new Date('2026-03-02T10:00:00Z');

/**
 * Median latency of each variant in microseconds. The variants take turns, round after round, so a
 * busy machine slows them alike instead of skewing whichever ran during a burst.
 */
async function medianMicros(variants: Record<string, () => Promise<unknown>>): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of Object.entries(variants)) {
      const start = process.hrtime.bigint();
      await fn();
      samples[name]!.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([name, xs]) => [name, Math.round(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!)]),
  );
}

async function run(kind: 'pglite' | 'postgres'): Promise<Record<string, unknown>> {
  const bench = kind === 'postgres' ? await createBenchDatabase() : undefined;
  const db: Database = await openDatabase({ url: bench?.url });
  const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-bench-'));
  try {
    await migrate(db);
    const config = { ...loadConfig({}), port: 0, dataDir, adminKey: 'bench-admin-key' };
    const mp = await startMailPilot({ config, api: true, engine: false, db, clock: new FakeClock(NOW.toISOString()), log: createLogger('warn') });
    const call = async (path: string, key: string, body?: unknown) => {
      const res = await fetch(mp.url + path, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return res.json() as Promise<any>;
    };
    let last = { id: 0, key: '', serverId: 0 };
    for (let u = 0; u < USERS; u++) {
      const user = await call('/api/v1/users', config.adminKey, { name: `u${u}`, email: `u${u}@bench.test` });
      for (let s = 0; s < 3; s++) {
        const server = await call('/api/v1/smtp-servers', user.apiKey, { name: 's', host: 'smtp.bench.test', port: 25, security: 'none' });
        await call('/api/v1/smtp-accounts', user.apiKey, { serverId: server.id, email: `a${s}@u${u}.test`, hourlyLimit: 10, dailyLimit: 100 });
        last = { id: user.id, key: user.apiKey, serverId: server.id };
      }
    }
    const scoped = tenantScope(db, last.id);
    const accountsAndUsage = async (q: Queryable) => {
      const accounts = await listAccounts(q, last.id, 0, 100);
      return readUsage(q, accounts.map((a) => a.id), NOW);
    };
    const result = {
      kind,
      rounds: ROUNDS,
      loadAverage: loadavg()[0]!.toFixed(1),
      medianUs: await medianMicros({
        oneQueryPlain: () => getServer(db, last.id, last.serverId),
        oneQueryScoped: () => getServer(scoped, last.id, last.serverId),
        twoQueriesPlain: () => accountsAndUsage(db),
        twoQueriesScopedEach: () => accountsAndUsage(scoped),
        twoQueriesScopedOnce: () => scoped.transaction((tx) => accountsAndUsage(tx)),
        httpGetServer: () => call(`/api/v1/smtp-servers/${last.serverId}`, last.key),
        httpListAccounts: () => call('/api/v1/smtp-accounts', last.key),
      }),
    };
    await mp.close();
    return result;
  } finally {
    await db.close();
    await bench?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

for (const kind of ['pglite', 'postgres'] as const) {
  process.stdout.write(JSON.stringify(await run(kind)) + '\n');
}
