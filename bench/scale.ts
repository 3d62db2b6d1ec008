/**
 * Scale benchmark: the seed's load on one PostgreSQL. BENCH_USERS (100) users, each with
 * BENCH_ACCOUNTS_PER_USER (10) SMTP accounts, their own list of BENCH_RECIPIENTS_PER_USER (10,000)
 * contacts imported through the API as CSV, and one campaign; all campaigns are started at once and
 * sent to Postfix's smtp-sink, by `mailpilot serve` plus BENCH_WORKERS (0) `mailpilot worker`
 * processes on the same database.
 *
 *   npm run bench:scale
 *   BENCH_USERS=10 BENCH_RECIPIENTS_PER_USER=1000 BENCH_WORKERS=1 npm run bench:scale
 *
 * Reports wall time and msg/s from the start requests to the last campaign's completion, how
 * unevenly the users finished (slowest against median), each process's peak RSS and CPU time, the
 * database's size and bytes per message row, and the sink's count of what every recipient received.
 * Exits non-zero unless every campaign completes within BENCH_TIMEOUT_SECONDS (3600) and every
 * recipient received exactly one message (bench/lib/recordingSink.ts).
 *
 * Needs root (smtp-sink runs with -u nobody and is installed with apt-get if missing) and a local
 * PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 * Progress goes to stderr; stdout gets one JSON line.
 */
import { loadavg } from 'node:os';
import { runBench, startRecordedSetup } from './lib/benchRun.ts';
import { createCampaign, createSender, describeCampaign, importList, type Campaign } from './lib/campaignSetup.ts';
import { apiClient, startWorker, type Api, type MailPilotProcess } from './lib/mailpilot.ts';
import { percentile } from './lib/percentiles.ts';
import { databaseFootprint } from './lib/postgres.ts';
import { cpuSeconds } from './lib/processStats.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

/** Users set up side by side: enough to overlap request latency, few enough not to be a load test of their own. */
const SETUP_CONCURRENCY = 4;
const POLL_MS = 1000;
const PROGRESS_EVERY_MS = 10_000;

const log = logger('bench');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));

/** GET /api/v1/stats with the admin key; the database's sums may arrive as strings. */
interface SystemStats {
  activeCampaigns: number | string;
  pending: number | string;
  perUser: unknown[];
}

/** fn(0) … fn(count-1), at most `concurrency` at a time, results in order. */
async function inParallel<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < count; i = next++) out[i] = await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return out;
}

/** Polls the system's load until no campaign is unfinished; progress on stderr. */
async function waitForAll(admin: Api, users: number, messages: number, timeoutMs: number): Promise<void> {
  const started = performance.now();
  let last = { at: started, pending: messages };
  for (;;) {
    await sleep(POLL_MS);
    const s = await admin.call<SystemStats>('GET', '/api/v1/stats');
    const pending = Number(s.pending);
    if (s.perUser.length === 0) return;
    const now = performance.now();
    if (now - started > timeoutMs) {
      throw new Error(`${s.perUser.length} of ${users} campaigns unfinished after ${timeoutMs / 1000} s (BENCH_TIMEOUT_SECONDS), ${pending} messages pending`);
    }
    if (now - last.at >= PROGRESS_EVERY_MS) {
      const rate = Math.round(((last.pending - pending) * 1000) / (now - last.at));
      log(`${users - s.perUser.length}/${users} users done, ${pending} messages pending, ${Number(s.activeCampaigns)} campaigns active, ${rate} msg/s`);
      last = { at: now, pending };
    }
  }
}

/** Seconds from `t0` to each campaign's completion, and how far the slowest is from the median. */
function fairness(finishSeconds: number[]) {
  const sorted = [...finishSeconds].sort((a, b) => a - b);
  const median = percentile(sorted, 50);
  const slowest = sorted.at(-1)!;
  return {
    fastestSeconds: sorted[0]!,
    medianSeconds: median,
    slowestSeconds: slowest,
    slowestMinusMedianSeconds: Number((slowest - median).toFixed(3)),
    slowestOverMedian: Number((slowest / median).toFixed(3)),
  };
}

runBench(async (cleanup) => {
  const users = intEnv('BENCH_USERS', 100);
  const accountsPerUser = intEnv('BENCH_ACCOUNTS_PER_USER', 10);
  const perUser = intEnv('BENCH_RECIPIENTS_PER_USER', 10_000);
  const workerCount = intEnv('BENCH_WORKERS', 0, 0);
  const timeoutMs = intEnv('BENCH_TIMEOUT_SECONDS', 3600) * 1000;
  const messages = users * perUser;
  const loadAtStart = loadavg()[0]!;

  // Every account keeps a pooled connection open; past -m the sink would leave them unanswered.
  const { sink, database, server, dataDir } = await startRecordedSetup(cleanup, { expected: messages, maxConnections: users * accountsPerUser + 100 });
  const processes: MailPilotProcess[] = [server];
  for (let i = 0; i < workerCount; i++) {
    const worker = startWorker({ databaseUrl: database.url, dataDir, secretKey: server.secretKey });
    cleanup(() => worker.stop());
    processes.push(worker);
  }
  const admin = apiClient(server.url, server.adminKey);

  // User u's list is contacts u*perUser … (u+1)*perUser-1: every recipient belongs to one user.
  log(`setting up ${users} users with ${accountsPerUser} accounts and ${perUser} contacts each`);
  const setupStart = performance.now();
  const tenants = await inParallel(users, SETUP_CONCURRENCY, async (u) => {
    const api = await createSender(admin, server.url, { name: `user${u}`, sinkPort: sink.port, accounts: accountsPerUser });
    const listId = await importList(api, u * perUser, (u + 1) * perUser);
    const campaign = await createCampaign(api, `scale ${u}`, [listId]);
    if ((u + 1) % 10 === 0) log(`${u + 1}/${users} users set up`);
    return { api, campaignId: campaign.id };
  });
  const setupMs = performance.now() - setupStart;

  log(`starting ${users} campaigns at once`);
  const t0 = Date.now();
  await Promise.all(tenants.map((t) => t.api.call('POST', `/api/v1/campaigns/${t.campaignId}/start`)));
  const startRequestsMs = Date.now() - t0;
  log(`all start requests answered after ${seconds(startRequestsMs)} s`);

  await waitForAll(admin, users, messages, timeoutMs);
  const campaigns = await Promise.all(tenants.map((t) => t.api.call<Campaign>('GET', `/api/v1/campaigns/${t.campaignId}`)));
  // Read before the processes stop; VmHWM is their peak over the whole run.
  const perProcess = processes.map((p) => ({ command: p.command, pid: p.pid, peakRssMb: p.peakRssMb(), cpuSeconds: p.cpuSeconds() }));
  const footprint = await databaseFootprint(database.url);
  const delivery = await sink.verdict();

  const incomplete = campaigns.filter((c) => c.status !== 'completed' || c.sent !== perUser);
  const finishSeconds = campaigns.map((c) => seconds(Date.parse(c.completedAt ?? '') - t0));
  const wallMs = Math.max(...campaigns.map((c) => Date.parse(c.completedAt ?? ''))) - t0;
  const sent = campaigns.reduce((n, c) => n + c.sent, 0);
  printResult({
    bench: 'scale',
    users,
    accountsPerUser,
    recipientsPerUser: perUser,
    messages,
    workers: workerCount,
    setupSeconds: seconds(setupMs),
    // From the first start request to the last campaign's completedAt; includes queue materialisation.
    seconds: seconds(wallMs),
    startRequestsSeconds: seconds(startRequestsMs),
    msgPerSec: Math.round(sent / (wallMs / 1000)),
    sent,
    failed: campaigns.reduce((n, c) => n + c.failed, 0),
    fairness: fairness(finishSeconds),
    processes: perProcess,
    database: footprint,
    delivery,
    // What measuring cost the machine: the sink writing every message to the pipe, this process reading it.
    measurement: { sinkCpuSeconds: sink.cpuSeconds(), benchCpuSeconds: cpuSeconds(process.pid) },
    machine: machine(loadAtStart),
  });

  for (const c of incomplete.slice(0, 5)) log(`FAILED: ${describeCampaign(c)}`);
  if (!delivery.exactlyOnce) log(`FAILED: the sink did not see every recipient exactly once: ${JSON.stringify(delivery)}`);
  return incomplete.length === 0 && delivery.exactlyOnce ? 0 : 1;
});
