import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const run = promisify(execFile);
const DAY = 24 * 60 * 60 * 1000;

/** Runs `mailpilot ARGS` as a user would, from the project directory. */
function mailpilot(args: string[], env: Record<string, string>) {
  return run(process.execPath, ['bin/mailpilot.js', ...args], {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
}

describe.each(databaseKinds)('mailpilot lists import (%s)', (kind) => {
  let t: TestMailPilot;
  let dir: string;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    dir = mkdtempSync(join(tmpdir(), 'mailpilot-cli-'));
  });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('streams a CSV file to a new or a given list and reports the counts', async () => {
    const { apiKey } = await t.createUser();
    const env = { MAILPILOT_URL: t.url, MAILPILOT_API_KEY: apiKey };
    const file = join(dir, 'customers.csv');
    writeFileSync(file, 'email,name,plan\nann@cli.test,Ann,pro\nbob@cli.test,Bob,free\nANN@cli.test,Dup,x\nnot-an-address,X,y\n');

    const created = await mailpilot(['lists', 'import', file, '--json'], env);
    const reply = JSON.parse(created.stdout);
    expect(reply).toMatchObject({ added: 2, updated: 0, duplicates: 1, invalidCount: 1 });
    const list = await must(t, apiKey, 'GET', `/api/v1/lists/${reply.listId}`);
    expect(list).toMatchObject({ name: 'customers', contactCount: 2 });

    const again = await mailpilot(['lists', 'import', file, '--list', String(reply.listId)], env);
    expect(again.stdout).toBe(`list ${reply.listId}: 0 added, 2 updated, 1 duplicates, 1 invalid\n  row 4: email: not a valid email address (not-an-address)\n`);

    const refused = await mailpilot(['lists', 'import', file, '--list', '999999'], env).catch((err: { stderr: string; code: number }) => err);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringContaining('failed (404): list not found') });
    const noKey = await mailpilot(['lists', 'import', file], { MAILPILOT_URL: t.url, MAILPILOT_API_KEY: '' }).catch((err: { stderr: string }) => err);
    expect(noKey).toMatchObject({ stderr: expect.stringContaining('MAILPILOT_API_KEY must be set') });
  });
});

describe.each(databaseKinds)('mailpilot archive (%s)', (kind) => {
  let dir: string;
  let pg: TestDatabase | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailpilot-cli-'));
    if (kind === 'postgres') pg = await freshDatabase('postgres');
  });
  afterAll(async () => {
    await pg?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The database the command will use: the test server's, or an embedded one in the data dir. */
  const open = async (): Promise<Database> => {
    if (pg) return pg.db;
    const db = await openDatabase({ dataDir: join(dir, 'pglite') });
    await migrate(db);
    return db;
  };
  const close = async (db: Database) => {
    if (!pg) await db.close();
  };

  it('removes the rows of campaigns finished more than MAILPILOT_RETENTION_DAYS ago', async () => {
    let db = await open();
    const now = Date.now();
    await db.exec(`INSERT INTO users (id, name, email, created_at) VALUES (1, 'u', 'u@x.test', now())`);
    for (const [id, finishedDaysAgo] of [
      [1, 40],
      [2, 5],
    ] as const) {
      await db.query(
        `INSERT INTO campaigns (id, user_id, name, subject, text, list_ids, status, completed_at, total, sent, failed, created_at)
         VALUES ($1, 1, 'c', 's', 't', '{}', 'completed', $2, 3, 2, 1, $2)`,
        [id, new Date(now - finishedDaysAgo * DAY)],
      );
      await db.query(
        `INSERT INTO messages (campaign_id, user_id, email, status) VALUES ($1, 1, 'a@x.test', 'sent'), ($1, 1, 'b@x.test', 'sent'), ($1, 1, 'c@x.test', 'failed')`,
        [id],
      );
    }
    await close(db);

    const env: Record<string, string> = pg ? { DATABASE_URL: pg.url! } : { DATABASE_URL: '', MAILPILOT_DATA_DIR: dir };
    const { stdout } = await mailpilot(['archive'], { ...env, MAILPILOT_RETENTION_DAYS: '30' });
    expect(stdout).toBe('archived 1 campaign(s), 2 per-recipient row(s) removed\n');

    db = await open();
    const rows = await db.query<{ campaign_id: number; status: string }>('SELECT campaign_id, status FROM messages ORDER BY campaign_id, id');
    expect(rows).toEqual([
      { campaign_id: 1, status: 'failed' },
      { campaign_id: 2, status: 'sent' },
      { campaign_id: 2, status: 'sent' },
      { campaign_id: 2, status: 'failed' },
    ]);
    const campaigns = await db.query<{ id: number; sent: number; archived: boolean }>('SELECT id, sent, archived_at IS NOT NULL AS archived FROM campaigns ORDER BY id');
    expect(campaigns).toEqual([
      { id: 1, sent: 2, archived: true },
      { id: 2, sent: 2, archived: false },
    ]);
    await close(db);
  });
});
