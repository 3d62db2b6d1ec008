/**
 * Throughput benchmark: MailPilot sending a personalised campaign through 10 accounts to Postfix's
 * smtp-sink on loopback, timed as a user sees it (from the start request to `completed`), against
 * two raw ceilings measured in the same run: nodemailer sending pre-rendered messages of the same
 * size from memory over as many connections, once as one pooled transport with 40 messages in
 * flight (the headline's reference, issue #18) and once as one single-connection transport per
 * connection after a warm-up (as MailPilot runs one per account).
 *
 *   npm run bench:throughput                 # PostgreSQL
 *   npm run bench:throughput -- --pglite     # the embedded database (PGlite), as `npm start` runs
 *
 * Needs root (smtp-sink runs with -u nobody and is installed with apt-get if missing) and, without
 * --pglite, a local PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres).
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
import { measureRawCeiling, type CeilingMode } from './lib/rawCeiling.ts';
import { freePort, startSmtpSink, type SmtpSink } from './lib/smtpSink.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const ACCOUNTS = 10;
/** One connection per account: 10 accounts sharing one server whose maxConnections is 10. */
const CONNECTIONS = ACCOUNTS;
/** The pooled ceiling's messages handed to nodemailer at once (issue #18's reference run). */
const POOLED_IN_FLIGHT = 40;
const TARGET_MSG_PER_SEC = 2500;
/** Of the pooled ceiling, from the start request (issue #18): on PostgreSQL, and on the embedded default. */
const TARGET_RATIO = { postgresql: 0.8, pglite: 0.6 };
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

/**
 * The outcome writes of the run, from the server's /metrics: statements, rows per statement, and
 * the mean time from a worker handing outcomes over to their commit (what the crash bound makes
 * a connection wait on).
 */
async function outcomeWrites(baseUrl: string, adminKey: string) {
  const res = await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${adminKey}` } });
  const text = await res.text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const statements = value('mailpilot_outcome_write_seconds_count');
  return {
    statements,
    rowsPerStatement: Number((value('mailpilot_outcome_rows_written_total') / statements).toFixed(1)),
    meanCommitWaitMs: Number(((value('mailpilot_outcome_write_seconds_sum') * 1000) / statements).toFixed(2)),
  };
}

runBench(async (cleanup) => {
  const messages = intEnv('BENCH_MESSAGES', 50_000);
  const rawMessages = intEnv('BENCH_RAW_MESSAGES', messages);
  const timeoutMs = intEnv('BENCH_TIMEOUT_SECONDS', 600) * 1000;
  const database = process.argv.includes('--pglite') ? 'pglite' : 'postgresql';
  const loadAtStart = loadavg()[0]!;

  const dir = workDir(cleanup);
  const sink: SmtpSink = await startSmtpSink(join(dir, 'sink-counters.txt'));
  cleanup(() => sink.stop());
  let databaseUrl = '';
  if (database === 'postgresql') {
    // Created before the raw runs, so a missing PostgreSQL fails in seconds, not after them.
    const created = await createBenchDatabase();
    cleanup(() => created.drop());
    log(`database ${created.name}`);
    databaseUrl = created.url;
  }

  const ceiling = async (mode: CeilingMode) => {
    log(`raw ceiling (${mode.kind}): ${rawMessages} messages over ${CONNECTIONS} connections`);
    const before = sink.accepted();
    const raw = await measureRawCeiling({ port: sink.port, messages: rawMessages, connections: CONNECTIONS, mode });
    if (raw.failed > 0) throw new Error(`raw ceiling (${mode.kind}): ${raw.failed} messages failed, first: ${raw.firstError}`);
    const { msgPerSec, seconds, warmupMessages } = raw;
    return { raw, figures: { msgPerSec, messages: raw.messages, seconds, warmupMessages, sinkReceived: sink.accepted() - before } };
  };
  const pooled = await ceiling({ kind: 'pooled', inFlight: POOLED_IN_FLIGHT });
  const perConnection = await ceiling({ kind: 'perConnection', warmup: 2000 });

  const server = await startMailPilot({ databaseUrl, port: await freePort(), dataDir: join(dir, 'data') });
  cleanup(() => server.stop());
  const { api, listId } = await setUp(apiClient(server.url, server.adminKey), server.url, sink.port, messages);

  const sinkBefore = sink.accepted();
  const cpuBefore = server.cpuSeconds();
  const run = await runCampaign(api, listId, messages, timeoutMs);
  const cpuSeconds = server.cpuSeconds() - cpuBefore;
  const peakRssMb = server.peakRssMb();
  const window = await sendWindow(api, run.campaign.id).catch((err: unknown) => {
    log(`no send window: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  });
  const mailpilotSink = sink.accepted() - sinkBefore;
  const writes = await outcomeWrites(server.url, server.adminKey);

  const fromStartRequest = (run.completed - run.requested) / 1000;
  const afterStartReply = (run.completed - run.started) / 1000;
  const msgPerSec = Math.round(run.campaign.sent / fromStartRequest);
  const ratioTo = (ceilingMsgPerSec: number) => Number((msgPerSec / ceilingMsgPerSec).toFixed(3));
  const ratio = ratioTo(pooled.raw.msgPerSec);
  const result = {
    bench: 'throughput',
    database,
    messages,
    accounts: ACCOUNTS,
    connections: CONNECTIONS,
    // Mean size of the raw ceilings' messages; MailPilot renders the same templates and contacts.
    messageBytes: pooled.raw.messageBytes,
    mailpilot: {
      // The headline: from the start request (which materialises the queue) to `completed`, as a user sees it.
      msgPerSec,
      secondsFromStartRequest: Number(fromStartRequest.toFixed(3)),
      secondsAfterStartReply: Number(afterStartReply.toFixed(3)),
      msgPerSecAfterStartReply: Math.round(run.campaign.sent / afterStartReply),
      sendWindowSeconds: window ? Number(window.seconds.toFixed(3)) : null,
      msgPerSecInSendWindow: window && window.seconds > 0 ? Math.round(run.campaign.sent / window.seconds) : null,
      accountsUsed: window?.accountsUsed ?? null,
      sent: run.campaign.sent,
      failed: run.campaign.failed,
      sinkReceived: mailpilotSink,
      peakRssMb,
      // The server's CPU time (user + system) over the campaign: per message, a figure other load barely moves.
      cpuSeconds: Number(cpuSeconds.toFixed(2)),
      cpuMicrosPerMessage: Math.round((cpuSeconds * 1e6) / run.campaign.sent),
      outcomeWrites: writes,
    },
    rawCeiling: { pooled: { inFlight: POOLED_IN_FLIGHT, ...pooled.figures }, perConnection: perConnection.figures },
    // MailPilot's headline over each ceiling; `ratio` is over the pooled one (issue #18's target).
    ratio,
    ratioToPerConnection: ratioTo(perConnection.raw.msgPerSec),
    sinkReceived: sink.accepted(),
    target: {
      msgPerSec: TARGET_MSG_PER_SEC,
      ratio: TARGET_RATIO[database],
      met: msgPerSec >= TARGET_MSG_PER_SEC && ratio >= TARGET_RATIO[database],
    },
    // Other work on the machine moves every figure; the load average says whether it was quiet.
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
