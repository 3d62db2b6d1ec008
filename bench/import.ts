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
 *
 * BENCH_IMPORT_VERIFY=1 imports with `?verify=true`, the server's DNS a loopback server answering
 * an MX for the file's domain (every contact is at sink.test: after the first row, the cache answers).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runBench, workDir } from './lib/benchRun.ts';
import { contactsCsvStream } from './lib/content.ts';
import { apiClient, startMailPilot } from './lib/mailpilot.ts';
import { createBenchDatabase } from './lib/postgres.ts';
import { freePort } from './lib/smtpSink.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';
import { startDnsServer } from '../test/helpers/dnsServer.ts';

const TARGET_ROWS_PER_SEC = 50_000;

const log = logger('bench');

interface ImportReply {
  added: number;
  updated: number;
  duplicates: number;
  invalidCount: number;
}

runBench(async (cleanup) => {
  const rows = intEnv('BENCH_IMPORT_ROWS', 1_000_000);
  const loadAtStart = loadavg()[0]!;
  const dir = workDir(cleanup);
  const database = await createBenchDatabase();
  cleanup(() => database.drop());
  log(`database ${database.name}`);
  const verify = process.env.BENCH_IMPORT_VERIFY === '1';
  const env: Record<string, string> = {};
  if (verify) {
    const dns = await startDnsServer();
    cleanup(() => dns.close());
    dns.setMx('sink.test', ['mx.sink.test']);
    env.MAILPILOT_DNS_SERVERS = dns.address;
  }
  const server = await startMailPilot({ databaseUrl: database.url, port: await freePort(), dataDir: join(dir, 'data'), env });
  cleanup(() => server.stop());

  const admin = apiClient(server.url, server.adminKey);
  const user = await admin.call<{ apiKey: string }>('POST', '/api/v1/users', { body: { name: 'bench', email: 'bench@bench.test' }, expect: 201 });
  const api = apiClient(server.url, user.apiKey);
  const list = await api.call<{ id: number }>('POST', '/api/v1/lists', { body: { name: 'import bench' }, expect: 201 });
  const rssBeforeMb = server.peakRssMb();
  const cpuBefore = server.cpuSeconds();

  log(`importing ${rows} rows`);
  let lastLogged = 0;
  const started = performance.now();
  const reply = await api.call<ImportReply>('POST', `/api/v1/lists/${list.id}/contacts${verify ? '?verify=true' : ''}`, {
    contentType: 'text/csv',
    body: contactsCsvStream(0, rows, (row) => {
      if (row - lastLogged >= rows / 10) {
        lastLogged = row;
        log(`${row} rows uploaded after ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
    }),
  });
  const seconds = (performance.now() - started) / 1000;
  const serverCpuSeconds = server.cpuSeconds() - cpuBefore;
  const stored = await api.call<{ contactCount: number }>('GET', `/api/v1/lists/${list.id}`);

  const rowsPerSec = Math.round(rows / seconds);
  const result = {
    bench: 'import',
    verify,
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
    machine: machine(loadAtStart),
  };
  printResult(result);
  if (reply.added !== rows || stored.contactCount !== rows || reply.invalidCount !== 0) {
    log(`FAILED: ${rows} rows sent, ${reply.added} added, ${stored.contactCount} on the list, ${reply.invalidCount} invalid`);
    return 1;
  }
  return 0;
});
