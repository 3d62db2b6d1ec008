/**
 * Crash benchmark: what a `kill -9` of `mailpilot serve` mid-campaign sends twice. Runs a campaign,
 * SIGKILLs the process BENCH_KILLS times at random moments (restarting it on the same database each
 * time), lets the campaign complete, and prints per kill the recipients sent again next to the
 * connections open and the transactions in flight at the kill, as a real SMTP peer saw them. The
 * promise (DESIGN.md 5): per kill, doubled ≤ 2 × the connections open.
 *
 *   npm run bench:crash                 # the embedded database (PGlite)
 *   npm run bench:crash -- --postgres   # PostgreSQL: a fresh database on BENCH_DATABASE_URL,
 *                                       # TEST_DATABASE_URL, DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres
 *
 * Setting DATABASE_URL, TEST_DATABASE_URL or BENCH_DATABASE_URL also selects PostgreSQL.
 * BENCH_KILLS (4), BENCH_ACCOUNTS (4), BENCH_CONNECTIONS per account (2), BENCH_RATE messages a
 * second per account (0: unpaced), BENCH_RECIPIENTS (5000), BENCH_DATA_DELAY_MS the peer's reply
 * delay after the data (10), BENCH_KILL_AFTER_MS the longest wait before a kill (1500) and
 * BENCH_TIMEOUT_SECONDS (300) tune a run. Progress goes to stderr; stdout gets one JSON line.
 * Exits non-zero if a recipient was lost or a kill doubled more than its bound.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runBench, workDir } from './lib/benchRun.ts';
import { runCrashes } from './lib/crashRun.ts';
import { createBenchDatabase } from './lib/postgres.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const log = logger('crash');

runBench(async (cleanup) => {
  const loadAtStart = loadavg()[0]!;
  const postgres =
    process.argv.includes('--postgres') || Boolean(process.env.DATABASE_URL || process.env.TEST_DATABASE_URL || process.env.BENCH_DATABASE_URL);
  let databaseUrl = '';
  if (postgres) {
    const database = await createBenchDatabase(process.env.DATABASE_URL || undefined);
    cleanup(() => database.drop());
    log(`database ${database.name}`);
    databaseUrl = database.url;
  }
  const rate = intEnv('BENCH_RATE', 0, 0);
  const opts = {
    kills: intEnv('BENCH_KILLS', 4),
    accounts: intEnv('BENCH_ACCOUNTS', 4),
    connectionsPerAccount: intEnv('BENCH_CONNECTIONS', 2),
    ratePerSecond: rate === 0 ? null : rate,
    recipients: intEnv('BENCH_RECIPIENTS', 5_000),
    dataDelayMs: intEnv('BENCH_DATA_DELAY_MS', 10, 0),
    killAfterMs: [100, intEnv('BENCH_KILL_AFTER_MS', 1_500, 100)] as const,
    leaseSeconds: 2,
    timeoutMs: intEnv('BENCH_TIMEOUT_SECONDS', 300) * 1000,
  };
  const run = await runCrashes({ ...opts, databaseUrl, dataDir: join(workDir(cleanup), 'data'), log });
  const overBound = run.kills.filter((k) => k.doubled > k.bound).length;
  printResult({
    bench: 'crash',
    database: postgres ? 'postgresql' : 'pglite',
    settings: opts,
    kills: run.kills,
    lost: run.lost,
    doubled: run.doubled,
    doubledWithoutCrash: run.doubledWithoutCrash,
    killsOverBound: overBound,
    campaign: { status: run.campaign.status, sent: run.campaign.sent, failed: run.campaign.failed, total: run.campaign.total },
    elapsedMs: run.elapsedMs,
    machine: machine(loadAtStart),
  });
  if (run.lost > 0 || overBound > 0 || run.doubledWithoutCrash > 0) {
    log(`FAILED: ${run.lost} lost, ${overBound} kills over their bound, ${run.doubledWithoutCrash} doubled without a crash`);
    return 1;
  }
  return 0;
});
