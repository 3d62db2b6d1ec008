/**
 * Reconnect benchmark (issue 15): how fast a campaign goes when the server answers `421` to every
 * 50th recipient and accepts the rest, against the same server answering none, in the same run.
 * A whole MailPilot in this process (API and engine, the real clock), two accounts on one smtp-server
 * peer with maxConnections 4, BENCH_MESSAGES (3000) recipients per campaign, after a warm-up campaign.
 *
 *   npx tsx bench/reconnects.ts
 *   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/reconnects.ts
 *
 * Runs on PostgreSQL when TEST_DATABASE_URL is set, else on the embedded PGlite. Progress goes to
 * stderr; stdout gets one JSON line. Exits non-zero unless both campaigns complete with every
 * recipient accepted exactly once.
 */
import { loadavg } from 'node:os';
import { systemClock } from '../src/clock.ts';
import { databaseKinds } from '../test/helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from '../test/helpers/mailpilot.ts';
import { startSmtpPeer } from '../test/helpers/smtpPeer.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const EVERY = 50;
const log = logger('bench');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(t: TestMailPilot, key: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await t.api(method, path, { key, body });
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A user with two accounts on one server of the peer, and a list of `messages` contacts. */
async function setUp(t: TestMailPilot, name: string, port: number, messages: number): Promise<{ key: string; listId: number }> {
  const { apiKey: key } = await t.createUser(name);
  const server = await call(t, key, 'POST', '/api/v1/smtp-servers', { name, host: '127.0.0.1', port, security: 'none', maxConnections: 4 });
  for (const a of ['a', 'b']) {
    await call(t, key, 'POST', '/api/v1/smtp-accounts', { serverId: server.id, email: `${a}@${name}.bench`, hourlyLimit: 0, dailyLimit: 0 });
  }
  const list = await call(t, key, 'POST', '/api/v1/lists', { name });
  const contacts = Array.from({ length: messages }, (_, i) => ({ email: `r${i}@${name}.bench` }));
  for (let i = 0; i < messages; i += 5000) await call(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts: contacts.slice(i, i + 5000) });
  return { key, listId: list.id };
}

async function main(): Promise<number> {
  const load = loadavg()[0]!;
  const messages = intEnv('BENCH_MESSAGES', 3000);
  const kind = databaseKinds.at(-1)!;
  const t = await startTestMailPilot(kind, { clock: systemClock });
  const results: Record<string, { seconds: number; msgPerSec: number; refusals: number }> = {};
  try {
    // A warm-up campaign first (JIT, connection pools, caches), not reported.
    for (const [name, refuseEvery] of [['warmup', 0], ['clean', 0], ['every50th421', EVERY]] as const) {
      let recipients = 0;
      let refusals = 0;
      const peer = await startSmtpPeer({
        lean: true,
        onRcpt: () => {
          if (refuseEvery === 0 || ++recipients % refuseEvery !== 0) return undefined;
          refusals++;
          return { code: 421, message: '4.7.0 Try again later, closing connection.' };
        },
      });
      try {
        const { key, listId } = await setUp(t, name.toLowerCase(), peer.port, messages);
        const { id } = await call(t, key, 'POST', '/api/v1/campaigns', { name, listIds: [listId], subject: 'Hi', text: 'Hello' });
        const started = performance.now();
        await call(t, key, 'POST', `/api/v1/campaigns/${id}/start`);
        let done: any;
        while ((done = await call(t, key, 'GET', `/api/v1/campaigns/${id}`)).status !== 'completed') {
          if (performance.now() - started > 30 * 60_000) throw new Error(`${name}: not completed in 30 minutes: ${JSON.stringify(done)}`);
          await sleep(100);
        }
        const seconds = (performance.now() - started) / 1000;
        const accepted = new Set(peer.messages.flatMap((m) => m.rcptTo));
        if (done.sent !== messages || accepted.size !== messages || peer.messages.length !== messages) {
          throw new Error(`${name}: ${done.sent} sent, ${accepted.size} distinct recipients accepted of ${peer.messages.length} messages`);
        }
        if (name === 'warmup') continue;
        results[name] = { seconds: Number(seconds.toFixed(2)), msgPerSec: Math.round(messages / seconds), refusals };
        log(`${name}: ${messages} in ${seconds.toFixed(1)} s (${results[name]!.msgPerSec} msg/s), ${refusals} refusals`);
      } finally {
        await peer.close();
      }
    }
  } finally {
    await t.close();
  }
  printResult({
    bench: 'reconnects',
    database: kind,
    messages,
    ...results,
    ratio: Number((results.every50th421!.msgPerSec / results.clean!.msgPerSec).toFixed(2)),
    machine: machine(load),
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
