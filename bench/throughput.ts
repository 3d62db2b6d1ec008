/**
 * Throughput benchmark: MailPilot sending a personalised campaign through 10 accounts to Postfix's
 * smtp-sink on loopback, against the raw ceiling measured in the same run (nodemailer pooled
 * transports sending pre-rendered messages of the same size from memory over as many connections).
 *
 *   npm run bench:throughput
 *
 * Needs root (smtp-sink runs with -u nobody and is installed with apt-get if missing) and a local
 * PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 * BENCH_MESSAGES (50000), BENCH_RAW_MESSAGES (as many) and BENCH_TIMEOUT_SECONDS (600) tune a run.
 * Progress goes to stderr; stdout gets one JSON line. Exits non-zero if MailPilot does not start,
 * does not complete the campaign in time, or does not deliver every message exactly once.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runBench, workDir } from './lib/benchRun.ts';
import { createCampaign, createSender, describeCampaign, importList, type Campaign } from './lib/campaignSetup.ts';
import { apiClient, startMailPilot, type Api } from './lib/mailpilot.ts';
import { createBenchDatabase } from './lib/postgres.ts';
import { measureRawCeiling } from './lib/rawCeiling.ts';
import { freePort, startSmtpSink, type SmtpSink } from './lib/smtpSink.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const ACCOUNTS = 10;
/** One connection per account: 10 accounts sharing one server whose maxConnections is 10. */
const CONNECTIONS = ACCOUNTS;
const TARGET_MSG_PER_SEC = 2500;
const TARGET_RATIO = 0.8;
const POLL_MS = 250;

const log = logger('bench');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MessagePage {
  items: { sentAt: string | null; accountId: number | null }[];
  next: string | number | null;
}

/** A user with ACCOUNTS accounts and a list of `messages` contacts: everything a campaign needs, through the public API. */
async function setUp(admin: Api, baseUrl: string, sinkPort: number, messages: number): Promise<{ api: Api; listId: number }> {
  const api = await createSender(admin, baseUrl, { name: 'bench', sinkPort, accounts: ACCOUNTS });
  const importStart = performance.now();
  const listId = await importList(api, 0, messages);
  log(`imported ${messages} contacts in ${((performance.now() - importStart) / 1000).toFixed(1)} s`);
  return { api, listId };
}

/** Starts the campaign and polls it to completion; times run from the start request. */
async function runCampaign(api: Api, listId: number, messages: number, timeoutMs: number) {
  const campaign = await createCampaign(api, 'throughput', [listId]);
  const path = `/api/v1/campaigns/${campaign.id}`;

  const requested = performance.now();
  await api.call('POST', `${path}/start`);
  const started = performance.now();
  log(`campaign ${campaign.id} started (start request took ${((started - requested) / 1000).toFixed(2)} s)`);

  let last = { at: started, sent: 0 };
  for (let polls = 1; ; polls++) {
    await sleep(POLL_MS);
    const c = await api.call<Campaign>('GET', path);
    const now = performance.now();
    if (c.status === 'completed') return { campaign: c, requested, started, completed: now };
    if (c.status === 'stopped' || c.status === 'paused' || c.status === 'paused_limits') {
      throw new Error(`campaign ${c.id} went to "${c.status}": ${describeCampaign(c)}`);
    }
    if (now - started > timeoutMs) {
      throw new Error(`campaign ${c.id} did not complete within ${timeoutMs / 1000} s (BENCH_TIMEOUT_SECONDS): ${describeCampaign(c)}`);
    }
    if (polls % 4 === 0) {
      const rate = Math.round(((c.sent - last.sent) * 1000) / (now - last.at));
      log(`${c.status}: ${c.sent}/${messages} sent, ${c.failed} failed, ${c.pending} pending, ${rate} msg/s in the last second`);
      last = { at: now, sent: c.sent };
    }
  }
}

/**
 * First-to-last sentAt over the campaign's sent messages, and how many accounts sent them: the
 * pure sending window, without queue materialisation or the poll's granularity.
 */
async function sendWindow(api: Api, campaignId: number): Promise<{ seconds: number; accountsUsed: number } | null> {
  let first = Infinity;
  let lastAt = -Infinity;
  const accounts = new Set<number>();
  let after: string | number | null = null;
  do {
    const query: string = `status=sent&limit=1000${after === null ? '' : `&after=${encodeURIComponent(String(after))}`}`;
    const page: MessagePage = await api.call<MessagePage>('GET', `/api/v1/campaigns/${campaignId}/messages?${query}`);
    for (const m of page.items) {
      if (m.sentAt) {
        const t = Date.parse(m.sentAt);
        first = Math.min(first, t);
        lastAt = Math.max(lastAt, t);
      }
      if (m.accountId !== null) accounts.add(m.accountId);
    }
    after = page.items.length > 0 ? page.next : null;
  } while (after !== null);
  return Number.isFinite(first) ? { seconds: (lastAt - first) / 1000, accountsUsed: accounts.size } : null;
}

runBench(async (cleanup) => {
  const messages = intEnv('BENCH_MESSAGES', 50_000);
  const rawMessages = intEnv('BENCH_RAW_MESSAGES', messages);
  const timeoutMs = intEnv('BENCH_TIMEOUT_SECONDS', 600) * 1000;
  const loadAtStart = loadavg()[0]!;

  const dir = workDir(cleanup);
  const sink: SmtpSink = await startSmtpSink(join(dir, 'sink-counters.txt'));
  cleanup(() => sink.stop());
  // Created before the raw run, so a missing PostgreSQL fails in seconds, not after it.
  const database = await createBenchDatabase();
  cleanup(() => database.drop());
  log(`database ${database.name}`);

  log(`raw ceiling: ${rawMessages} messages over ${CONNECTIONS} connections`);
  const raw = await measureRawCeiling({ port: sink.port, messages: rawMessages, connections: CONNECTIONS, warmup: 2000 });
  const rawSink = sink.accepted();
  if (raw.failed > 0) throw new Error(`raw ceiling: ${raw.failed} messages failed, first: ${raw.firstError}`);

  const server = await startMailPilot({ databaseUrl: database.url, port: await freePort(), dataDir: join(dir, 'data') });
  cleanup(() => server.stop());
  const { api, listId } = await setUp(apiClient(server.url, server.adminKey), server.url, sink.port, messages);

  const sinkBefore = sink.accepted();
  const run = await runCampaign(api, listId, messages, timeoutMs);
  const peakRssMb = server.peakRssMb();
  const window = await sendWindow(api, run.campaign.id).catch((err: unknown) => {
    log(`no send window: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  });
  const mailpilotSink = sink.accepted() - sinkBefore;

  const seconds = (run.completed - run.started) / 1000;
  const msgPerSec = Math.round(run.campaign.sent / seconds);
  const ratio = Number((msgPerSec / raw.msgPerSec).toFixed(3));
  const result = {
    bench: 'throughput',
    messages,
    accounts: ACCOUNTS,
    connections: CONNECTIONS,
    // Mean size of the raw ceiling's messages; MailPilot renders the same templates and contacts.
    messageBytes: raw.messageBytes,
    mailpilot: {
      msgPerSec,
      seconds: Number(seconds.toFixed(3)),
      // Includes the start request, which materialises the queue from the list.
      secondsFromStartRequest: Number(((run.completed - run.requested) / 1000).toFixed(3)),
      sendWindowSeconds: window ? Number(window.seconds.toFixed(3)) : null,
      msgPerSecInSendWindow: window && window.seconds > 0 ? Math.round(run.campaign.sent / window.seconds) : null,
      accountsUsed: window?.accountsUsed ?? null,
      sent: run.campaign.sent,
      failed: run.campaign.failed,
      sinkReceived: mailpilotSink,
      peakRssMb,
    },
    rawCeiling: {
      msgPerSec: raw.msgPerSec,
      messages: raw.messages,
      seconds: raw.seconds,
      warmupMessages: raw.warmupMessages,
      sinkReceived: rawSink,
    },
    ratio,
    sinkReceived: sink.accepted(),
    target: { msgPerSec: TARGET_MSG_PER_SEC, ratio: TARGET_RATIO, met: msgPerSec >= TARGET_MSG_PER_SEC && ratio >= TARGET_RATIO },
    // Other work on the machine moves both figures; the load average says whether it was quiet.
    machine: machine(loadAtStart),
  };
  printResult(result);

  // Fewer means lost or failed mail, more means double sends: either way not a valid throughput.
  if (run.campaign.sent !== messages || mailpilotSink !== messages) {
    log(`FAILED: campaign sent ${run.campaign.sent} and the sink received ${mailpilotSink} of ${messages} messages`);
    return 1;
  }
  return 0;
});
