/**
 * Backup, restore and move-to-PostgreSQL benchmark of the embedded database: fills a PGlite data
 * dir with one user, BENCH_RECIPIENTS (200,000) contacts and as many sent messages of a finished
 * campaign (SQL, no sending), then times `mailpilot backup`, `mailpilot restore` and `mailpilot
 * migrate-to` as an operator runs them (each a new process), and reports the backup's size.
 *
 *   npx tsx bench/embedded-backup.ts
 *   BENCH_RECIPIENTS=50000 npx tsx bench/embedded-backup.ts
 *
 * Needs a local PostgreSQL for migrate-to (BENCH_DATABASE_URL or TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres): a database of its own is created and dropped.
 * Progress goes to stderr; stdout gets one JSON line.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const log = logger('bench');
const loadAtStart = loadavg()[0]!;
const recipients = intEnv('BENCH_RECIPIENTS', 200_000);
const server = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-bench-backup-'));
const file = join(dataDir, 'backup.tar.gz');
const env = { ...process.env, MAILPILOT_DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' };

function timed(args: string[]): number {
  const started = performance.now();
  execFileSync(process.execPath, ['bin/mailpilot.js', ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return Math.round(performance.now() - started);
}

const db = await openDatabase({ dataDir: join(dataDir, 'pglite') });
await migrate(db);
const at = new Date('2026-03-02T10:00:00Z');
await db.query(`INSERT INTO users (name, email, created_at) VALUES ('bench', 'bench@example.test', $1)`, [at]);
await db.query(`INSERT INTO lists (user_id, name, created_at) VALUES (1, 'bench', $1)`, [at]);
await db.query(
  `INSERT INTO contacts (user_id, list_id, email, name, attributes, created_at)
   SELECT 1, 1, 'r' || i || '@rcpt.test', 'Recipient ' || i, jsonb_build_object('city', 'City' || (i % 7)), $1 FROM generate_series(1, $2) AS i`,
  [at, recipients],
);
await db.query(
  `INSERT INTO campaigns (user_id, name, subject, text, list_ids, status, total, sent, created_at, started_at, completed_at)
   VALUES (1, 'bench', 'Hello', 'Hi', '{1}', 'completed', $2, $2, $1, $1, $1)`,
  [at, recipients],
);
await db.query(
  `INSERT INTO messages (campaign_id, user_id, contact_id, email, status, attempts, sent_at)
   SELECT 1, 1, i, 'r' || i || '@rcpt.test', 'sent', 1, $1 FROM generate_series(1, $2) AS i`,
  [at, recipients],
);
await db.close();
log(`filled ${recipients} contacts and messages`);

const backupMs = timed(['backup', file]);
const backupBytes = statSync(file).size;
log(`backup: ${backupMs} ms, ${backupBytes} bytes`);
const restoreMs = timed(['restore', file]);
log(`restore: ${restoreMs} ms`);

const name = `mailpilot_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const target = new URL(server);
target.pathname = `/${name}`;
let migrateToMs: number;
try {
  migrateToMs = timed(['migrate-to', target.toString()]);
  log(`migrate-to: ${migrateToMs} ms`);
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}

printResult({
  bench: 'embedded-backup',
  machine: machine(loadAtStart),
  recipients,
  backupMs,
  backupBytes,
  restoreMs,
  migrateToMs,
  migrateToRowsPerSecond: Math.round((2 * recipients) / (migrateToMs / 1000)),
});
