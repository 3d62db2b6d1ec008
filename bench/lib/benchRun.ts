import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMailPilot } from './mailpilot.ts';
import { createBenchDatabase } from './postgres.ts';
import { startRecordingSink } from './recordingSink.ts';
import { logger } from './report.ts';
import { freePort } from './smtpSink.ts';

const log = logger('bench');

/** What a benchmark started and must undo, last first. */
export type Cleanups = (fn: () => Promise<void> | void) => void;

/**
 * Runs a benchmark's main, then its cleanups, also on Ctrl-C or SIGTERM, so that no sink, server or
 * database is left behind; exits with main's code, or 1 when it throws.
 */
export function runBench(main: (cleanup: Cleanups) => Promise<number>): void {
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanUp = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanUp().then(() => process.exit(130));
    });
  }
  main((fn) => void cleanups.push(fn))
    .finally(cleanUp)
    .then(
      (code) => process.exit(code),
      (err: unknown) => {
        log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
}

/** A scratch directory for the run (MailPilot's data dir, the sink's counters), removed at the end. */
export function workDir(cleanup: Cleanups): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailpilot-bench-'));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * What the recording benchmarks run against: a recording sink that expects `expected` messages on
 * up to `maxConnections` connections, a fresh database, and `mailpilot serve` on it.
 */
export async function startRecordedSetup(cleanup: Cleanups, opts: { expected: number; maxConnections: number }) {
  const dir = workDir(cleanup);
  const sink = await startRecordingSink(opts);
  cleanup(() => sink.stop());
  const database = await createBenchDatabase();
  cleanup(() => database.drop());
  log(`database ${database.name}`);
  const dataDir = join(dir, 'data');
  const server = await startMailPilot({ databaseUrl: database.url, port: await freePort(), dataDir });
  cleanup(() => server.stop());
  return { sink, database, server, dataDir };
}
