import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { runCli, spawnCli } from './helpers/cli.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { apiClient, type ApiClient } from './helpers/mailpilot.ts';
import { freePort, newCluster, spawnMailPilot, stopProcess } from './helpers/processes.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const RECIPIENTS = 60;
// Every command is a new Node process compiling TypeScript on start.
const TIMEOUT_MS = 300_000;

interface Served extends ApiClient {
  pid: number;
  stop(): Promise<number | null>;
}

/** `mailpilot serve` on the embedded database in `dataDir`, as an operator runs it. */
async function serve(env: Record<string, string>): Promise<Served> {
  const port = await freePort();
  const child = spawnCli(['serve'], { ...env, PORT: String(port), HOST: '127.0.0.1' });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${url}/readyz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mailpilot serve did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    api: apiClient(url),
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Rows per table (every table but schema_migrations), and the highest id of the id-keyed ones. */
async function tableCounts(db: Database): Promise<Record<string, number>> {
  const tables = await db.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations' ORDER BY relname`,
  );
  const counts: Record<string, number> = {};
  for (const { name } of tables) counts[name] = (await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(name)}`))[0]!.n;
  return counts;
}

describe('backup, restore and the move to PostgreSQL of the embedded database, after a campaign in flight was stopped', () => {
  let peer: SmtpPeer;
  let dataDir: string;
  let env: Record<string, string>;
  const cluster = newCluster('unused');
  let user: { apiKey: string };
  let campaignId: number;
  let stopped: any;
  let counts: Record<string, number>;
  const backupFile = () => join(dataDir, '..', `${dataDir.split('/').at(-1)}.backup.tar.gz`);

  beforeAll(async () => {
    // Slow replies keep the campaign in flight while it is stopped.
    peer = await startSmtpPeer({ dataDelayMs: 50 });
    dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-backup-'));
    env = { MAILPILOT_DATA_DIR: dataDir, MAILPILOT_ADMIN_KEY: cluster.adminKey, MAILPILOT_SECRET_KEY: cluster.secretKey, DATABASE_URL: '' };
  }, TIMEOUT_MS);
  afterAll(async () => {
    await peer?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(backupFile(), { force: true });
  });

  it('refuses a backup while serve holds the database, and makes one once the campaign and the server are stopped', async () => {
    const s = await serve(env);
    try {
      user = await must(s, cluster.adminKey, 'POST', '/api/v1/users', { name: 'keeper', email: 'keeper@example.test' });
      const serverId = await addServer(s, user.apiKey, peer.port, 1);
      await addAccount(s, user.apiKey, serverId, 'news@keeper.test', { password: 'kept encrypted', username: 'news' });
      const listId = await addList(s, user.apiKey, RECIPIENTS);
      campaignId = await createCampaign(s, user.apiKey, [listId]);
      await must(s, user.apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
      await waitForCampaign(s, user.apiKey, campaignId, (c) => c.sent >= 5);

      const refused = await runCli(['backup', backupFile()], { env });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`open in process ${s.pid}`);
      expect(existsSync(backupFile())).toBe(false);

      await must(s, user.apiKey, 'POST', `/api/v1/campaigns/${campaignId}/stop`);
      stopped = await waitForCampaign(s, user.apiKey, campaignId, (c) => c.status === 'stopped' && c.pending === 0);
      expect(stopped.sent).toBeGreaterThanOrEqual(5);
      expect(stopped.sent).toBeLessThan(RECIPIENTS);
      expect(stopped.sent + stopped.cancelled + stopped.failed).toBe(RECIPIENTS);
    } finally {
      expect(await s.stop()).toBe(0);
    }
    expect(peer.messages.length).toBe(stopped.sent);
    const db = await openDatabase({ dataDir: join(dataDir, 'pglite') });
    counts = await tableCounts(db);
    await db.close();
    expect(counts.messages).toBe(RECIPIENTS);

    const made = await runCli(['backup', backupFile()], { env });
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/Saved the embedded database to .* \(\d+ bytes\)/);
    expect(existsSync(backupFile())).toBe(true);
    expect((await runCli(['backup', backupFile()], { env })).stderr).toContain('already exists');
  }, TIMEOUT_MS);

  it('restores it: what changed after the backup is gone, the campaign reads back as it was', async () => {
    let later: { apiKey: string };
    const s = await serve(env);
    try {
      later = await must(s, cluster.adminKey, 'POST', '/api/v1/users', { name: 'later', email: 'later@example.test' });
      await must(s, user.apiKey, 'POST', '/api/v1/lists', { name: 'after the backup' });
    } finally {
      expect(await s.stop()).toBe(0);
    }
    const restored = await runCli(['restore', backupFile()], { env });
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    const kept = /kept in (\S+):/.exec(restored.stdout)?.[1];
    expect(kept && existsSync(kept)).toBe(true);
    rmSync(kept!, { recursive: true, force: true });

    const db = await openDatabase({ dataDir: join(dataDir, 'pglite') });
    expect(await tableCounts(db)).toEqual(counts);
    await db.close();

    const again = await serve(env);
    try {
      expect(await must(again, user.apiKey, 'GET', `/api/v1/campaigns/${campaignId}`)).toEqual(stopped);
      expect((await again.api('GET', '/api/v1/me', { key: later!.apiKey })).status).toBe(401);
      const lists = await must(again, user.apiKey, 'GET', '/api/v1/lists');
      expect(lists.items.map((l: { name: string }) => l.name)).not.toContain('after the backup');
      // Restore refuses under a live server too.
      const refused = await runCli(['restore', backupFile()], { env });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`open in process ${again.pid}`);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  }, TIMEOUT_MS);

  it.skipIf(!process.env.TEST_DATABASE_URL)(
    'moves it to an empty PostgreSQL database (needs TEST_DATABASE_URL): every row, sequences past the ids, the app reads it back',
    async () => {
      const server = process.env.TEST_DATABASE_URL!;
      const name = `mailpilot_moved_${process.pid}_${Date.now()}`;
      const admin = new pg.Client({ connectionString: server });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      const target = new URL(server);
      target.pathname = `/${name}`;
      try {
        const moved = await runCli(['migrate-to', target.toString()], { env });
        expect(moved.stderr).toBe('');
        expect(moved.code).toBe(0);
        expect(moved.stdout).toContain(`messages\t${RECIPIENTS}`);

        const db = await openDatabase({ url: target.toString() });
        expect(await tableCounts(db)).toEqual(counts);
        await db.close();
        // Into a database that has data: refused, nothing changed.
        const twice = await runCli(['migrate-to', target.toString()], { env });
        expect(twice.code).toBe(1);
        expect(twice.stderr).toContain('already holds data');

        const p = await spawnMailPilot('serve', { ...cluster, databaseUrl: target.toString() });
        try {
          expect(await must(p, user.apiKey, 'GET', `/api/v1/campaigns/${campaignId}`)).toEqual(stopped);
          const page = await must(p, user.apiKey, 'GET', `/api/v1/campaigns/${campaignId}/messages?status=sent&limit=1000`);
          expect(page.items).toHaveLength(stopped.sent);
          // Sequences carry on past the copied ids: new rows get new ids.
          const lists = await must(p, user.apiKey, 'GET', '/api/v1/lists');
          const fresh = await must(p, user.apiKey, 'POST', '/api/v1/lists', { name: 'on PostgreSQL' });
          expect(fresh.id).toBeGreaterThan(Math.max(...lists.items.map((l: { id: number }) => l.id)));
          const account = (await must(p, user.apiKey, 'GET', '/api/v1/smtp-accounts')).items[0];
          expect(account).toMatchObject({ email: 'news@keeper.test', hasPassword: true });
        } finally {
          await stopProcess(p);
        }
      } finally {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      }
    },
    TIMEOUT_MS,
  );
});
