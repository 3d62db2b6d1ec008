/**
 * Big-campaign benchmark: one user, BENCH_ACCOUNTS (20) SMTP accounts, and one campaign to a list of
 * BENCH_RECIPIENTS (1,000,000) contacts imported as ONE streamed CSV request (as `mailpilot lists
 * import` sends a file), sent to Postfix's smtp-sink by `mailpilot serve`.
 *
 *   npm run bench:big-campaign
 *   BENCH_RECIPIENTS=50000 npm run bench:big-campaign
 *
 * Reports import rows/s, the start request's time (it materialises the queue), send msg/s, the
 * server's peak RSS after the import and at the end, and the latency of the campaign status endpoint
 * (GET /api/v1/campaigns/:id, polled every 100 ms while the campaign sends, as a dashboard would):
 * samples, p50, p99, max. Exits non-zero unless the campaign completes within BENCH_TIMEOUT_SECONDS
 * (3600) and every recipient received exactly one message (bench/lib/recordingSink.ts).
 *
 * Needs root (smtp-sink runs with -u nobody and is installed with apt-get if missing) and a local
 * PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 * Progress goes to stderr; stdout gets one JSON line.
 */
import { loadavg } from 'node:os';
import { runBench, startRecordedSetup } from './lib/benchRun.ts';
import { createCampaign, createSender, describeCampaign, importList, type Campaign } from './lib/campaignSetup.ts';
import { apiClient, type Api } from './lib/mailpilot.ts';
import { summariseLatencies } from './lib/percentiles.ts';
import { cpuSeconds } from './lib/processStats.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const POLL_MS = 100;
const PROGRESS_EVERY_MS = 10_000;

const log = logger('bench');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));

/**
 * Polls the campaign every POLL_MS until it completes, timing every request. One request at a time:
 * a slow answer delays the next poll instead of piling requests onto a busy server.
 */
async function pollUntilCompleted(api: Api, id: number, timeoutMs: number): Promise<{ campaign: Campaign; latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  const started = performance.now();
  let last = { at: started, sent: 0 };
  for (;;) {
    const before = performance.now();
    const c = await api.call<Campaign>('GET', `/api/v1/campaigns/${id}`);
    const now = performance.now();
    latenciesMs.push(now - before);
    if (c.status === 'completed') return { campaign: c, latenciesMs };
    if (c.status !== 'running') throw new Error(`the campaign went to "${c.status}": ${describeCampaign(c)}`);
    if (now - started > timeoutMs) throw new Error(`not completed within ${timeoutMs / 1000} s (BENCH_TIMEOUT_SECONDS): ${describeCampaign(c)}`);
    if (now - last.at >= PROGRESS_EVERY_MS) {
      log(`${c.sent}/${c.total} sent, ${c.pending} pending, ${Math.round(((c.sent - last.sent) * 1000) / (now - last.at))} msg/s`);
      last = { at: now, sent: c.sent };
    }
    await sleep(Math.max(0, POLL_MS - (performance.now() - before)));
  }
}

runBench(async (cleanup) => {
  const recipients = intEnv('BENCH_RECIPIENTS', 1_000_000);
  const accounts = intEnv('BENCH_ACCOUNTS', 20);
  const timeoutMs = intEnv('BENCH_TIMEOUT_SECONDS', 3600) * 1000;
  const loadAtStart = loadavg()[0]!;

  const { sink, server } = await startRecordedSetup(cleanup, { expected: recipients, maxConnections: accounts + 100 });
  const api = await createSender(apiClient(server.url, server.adminKey), server.url, { name: 'big', sinkPort: sink.port, accounts });

  log(`importing ${recipients} contacts in one request`);
  let logged = 0;
  const importStart = performance.now();
  const listId = await importList(api, 0, recipients, (rows) => {
    if (rows - logged >= recipients / 10) {
      logged = rows;
      log(`${rows} rows uploaded after ${((performance.now() - importStart) / 1000).toFixed(1)} s`);
    }
  });
  const importMs = performance.now() - importStart;
  const rssAfterImportMb = server.peakRssMb();

  const campaign = await createCampaign(api, 'big campaign', [listId]);
  const startRequested = Date.now();
  await api.call('POST', `/api/v1/campaigns/${campaign.id}/start`);
  const startAnswered = Date.now();
  log(`started: the start request took ${seconds(startAnswered - startRequested)} s`);

  const { campaign: done, latenciesMs } = await pollUntilCompleted(api, campaign.id, timeoutMs);
  const sendMs = Date.parse(done.completedAt ?? '') - startAnswered;
  const peakRssMb = server.peakRssMb();
  const delivery = await sink.verdict();

  printResult({
    bench: 'big-campaign',
    recipients,
    accounts,
    import: { seconds: seconds(importMs), rowsPerSec: Math.round(recipients / (importMs / 1000)) },
    // The start request materialises the queue from the list in one transaction; sending follows it.
    startRequestSeconds: seconds(startAnswered - startRequested),
    send: { seconds: seconds(sendMs), msgPerSec: Math.round(done.sent / (sendMs / 1000)), sent: done.sent, failed: done.failed },
    statusLatency: { intervalMs: POLL_MS, ...summariseLatencies(latenciesMs) },
    server: { peakRssMb, peakRssAfterImportMb: rssAfterImportMb, cpuSeconds: server.cpuSeconds() },
    delivery,
    // What measuring cost the machine: the sink writing every message to the pipe, this process reading it.
    measurement: { sinkCpuSeconds: sink.cpuSeconds(), benchCpuSeconds: cpuSeconds(process.pid) },
    machine: machine(loadAtStart),
  });

  if (done.sent !== recipients) log(`FAILED: ${describeCampaign(done)}`);
  if (!delivery.exactlyOnce) log(`FAILED: the sink did not see every recipient exactly once: ${JSON.stringify(delivery)}`);
  return done.sent === recipients && delivery.exactlyOnce ? 0 : 1;
});
