/**
 * Import benchmark: one CSV file of BENCH_IMPORT_ROWS (1,000,000) contacts streamed in a single
 * request to POST /api/v1/lists/:id/contacts of a MailPilot server running on a fresh database of
 * the local PostgreSQL, as a user would send it. The file is generated while it is uploaded, so the
 * benchmark itself holds no copy of it.
 *
 *   npx tsx bench/import.ts
 *
 * Needs a local PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres). Progress goes to stderr; stdout gets one JSON line
 * with rows/s and the server's peak RSS. Exits non-zero when the counts are not exact.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { contact } from './lib/content.ts';
import { apiClient, startMailPilot } from './lib/mailpilot.ts';
import { createBenchDatabase } from './lib/postgres.ts';
import { freePort } from './lib/smtpSink.ts';
import { intEnv, logger } from './lib/report.ts';

const TARGET_ROWS_PER_SEC = 50_000;
/** Rows per chunk of the generated upload. */
const GENERATE_ROWS = 2000;

const log = logger('bench');

/** The CSV file, generated as it is read: header, then `rows` contacts with a name and a city. */
function csvStream(rows: number, onProgress: (row: number) => void): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let next = 0;
  return new ReadableStream({
    pull(controller) {
      if (next === 0) controller.enqueue(encoder.encode('email,name,city\n'));
      if (next >= rows) {
        controller.close();
        return;
      }
      const end = Math.min(next + GENERATE_ROWS, rows);
      let chunk = '';
      for (let i = next; i < end; i++) {
        const c = contact(i);
        chunk += `${c.email},${c.name},${c.city}\n`;
      }
      next = end;
      onProgress(next);
      controller.enqueue(encoder.encode(chunk));
    },
  });
}

/** CPU time (user + system) a process has used, in seconds: its share of the work, whatever else runs. */
function cpuSeconds(pid: number): number {
  // Fields 14 and 15 of /proc/PID/stat, after the command name in parentheses, in clock ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface ImportReply {
  added: number;
  updated: number;
  duplicates: number;
  invalidCount: number;
}

async function main(): Promise<number> {
  const rows = intEnv('BENCH_IMPORT_ROWS', 1_000_000);
  const loadAtStart = loadavg()[0]!;
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
    process.once(signal, () => void cleanUp().then(() => process.exit(130)));
  }

  try {
    const workDir = mkdtempSync(join(tmpdir(), 'mailpilot-bench-'));
    cleanups.push(() => rmSync(workDir, { recursive: true, force: true }));
    const database = await createBenchDatabase();
    cleanups.push(() => database.drop());
    log(`database ${database.name}`);
    const server = await startMailPilot({ databaseUrl: database.url, port: await freePort(), dataDir: join(workDir, 'data') });
    cleanups.push(() => server.stop());

    const admin = apiClient(server.url, server.adminKey);
    const user = await admin.call<{ apiKey: string }>('POST', '/api/v1/users', { body: { name: 'bench', email: 'bench@bench.test' }, expect: 201 });
    const api = apiClient(server.url, user.apiKey);
    const list = await api.call<{ id: number }>('POST', '/api/v1/lists', { body: { name: 'import bench' }, expect: 201 });
    const rssBeforeMb = server.peakRssMb();
    const cpuBefore = cpuSeconds(server.pid);

    log(`importing ${rows} rows`);
    let lastLogged = 0;
    const started = performance.now();
    const res = await fetch(`${server.url}/api/v1/lists/${list.id}/contacts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.apiKey}`, 'content-type': 'text/csv' },
      body: csvStream(rows, (row) => {
        if (row - lastLogged >= rows / 10) {
          lastLogged = row;
          log(`${row} rows uploaded after ${((performance.now() - started) / 1000).toFixed(1)} s`);
        }
      }),
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    const seconds = (performance.now() - started) / 1000;
    const serverCpuSeconds = cpuSeconds(server.pid) - cpuBefore;
    if (res.status !== 200) throw new Error(`import answered ${res.status}: ${text.slice(0, 500)}`);
    const reply = JSON.parse(text) as ImportReply;
    const stored = await api.call<{ contactCount: number }>('GET', `/api/v1/lists/${list.id}`);

    const rowsPerSec = Math.round(rows / seconds);
    const result = {
      bench: 'import',
      rows,
      seconds: Number(seconds.toFixed(3)),
      rowsPerSec,
      added: reply.added,
      updated: reply.updated,
      duplicates: reply.duplicates,
      invalid: reply.invalidCount,
      contactCount: stored.contactCount,
      server: { peakRssMb: server.peakRssMb(), rssBeforeImportMb: rssBeforeMb, cpuSeconds: Number(serverCpuSeconds.toFixed(2)) },
      target: { rowsPerSec: TARGET_ROWS_PER_SEC, met: rowsPerSec >= TARGET_ROWS_PER_SEC },
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, loadAvg1: { start: loadAtStart, end: loadavg()[0]! }, node: process.version },
    };
    process.stdout.write(JSON.stringify(result) + '\n');
    if (reply.added !== rows || stored.contactCount !== rows || reply.invalidCount !== 0) {
      log(`FAILED: ${rows} rows sent, ${reply.added} added, ${stored.contactCount} on the list, ${reply.invalidCount} invalid`);
      return 1;
    }
    return 0;
  } finally {
    await cleanUp();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
