import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config.ts';
import type { MailPilot } from '../server.ts';
import type { Sink } from '../smtp/sink.ts';
import { count, positiveInt } from './client/command.ts';
import { EXIT } from './client/exitCodes.ts';
import { ApiClient } from './client/http.ts';
import { summary, watchCampaign } from './client/watch.ts';

const ACCOUNTS = 5;
const HOURLY_LIMIT = 500;
const DAILY_LIMIT = 2_000;
const IMPORT_BATCH = 1_000;
const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Tim'];
const CITIES = ['Paris', 'Oslo', 'Lisbon', 'Kyoto', 'Lagos', 'Lima', 'Perth'];

interface DemoOptions {
  port: number;
  contacts: number;
  rate: number;
  exit?: boolean;
}

/** Builds the demo user's whole setup through the public API, as a real client would. */
async function setUp(admin: ApiClient, baseUrl: string, sink: Sink, opts: DemoOptions) {
  const user = await admin.request('POST', '/api/v1/users', { name: 'Demo user', email: 'demo@example.com' });
  const api = new ApiClient(baseUrl, user.apiKey);
  const server = await api.request('POST', '/api/v1/smtp-servers', { name: 'Local sink', host: '127.0.0.1', port: sink.port, security: 'none' });
  for (let i = 1; i <= ACCOUNTS; i++) {
    await api.request('POST', '/api/v1/smtp-accounts', {
      serverId: server.id,
      email: `news${i}@demo.example`,
      hourlyLimit: HOURLY_LIMIT,
      dailyLimit: DAILY_LIMIT,
      ...(opts.rate > 0 ? { ratePerSecond: opts.rate } : {}),
    });
  }
  const list = await api.request('POST', '/api/v1/lists', { name: 'Demo contacts' });
  for (let start = 0; start < opts.contacts; start += IMPORT_BATCH) {
    const contacts = Array.from({ length: Math.min(IMPORT_BATCH, opts.contacts - start) }, (_, k) => {
      const i = start + k;
      return { email: `person${i + 1}@example.net`, name: FIRST_NAMES[i % FIRST_NAMES.length], attributes: { city: CITIES[i % CITIES.length] } };
    });
    await api.request('POST', `/api/v1/lists/${list.id}/contacts`, { contacts });
  }
  const campaign = await api.request('POST', '/api/v1/campaigns', {
    name: 'Demo campaign',
    listIds: [list.id],
    subject: 'Hello {{name}}',
    html: '<p>Hello {{name}}, greetings to {{attributes.city}}!</p><p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>',
    text: 'Hello {{name}}, greetings to {{attributes.city}}!',
    fromName: 'MailPilot demo',
  });
  return { api, apiKey: user.apiKey as string, campaignId: campaign.id as number };
}

/** `mailpilot demo`: a whole campaign against a local SMTP sink, in memory, then the dashboard to look at it. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(`run a whole campaign against a local SMTP sink: a user, ${ACCOUNTS} accounts with limits, generated contacts, live progress`)
    .option('--port <port>', 'HTTP port for the API and the dashboard (0 = any free port)', count('--port'), Number(process.env.PORT || 8080))
    .option('--contacts <n>', 'how many contacts to generate', positiveInt('--contacts'), 2_000)
    .option('--rate <perSecond>', 'sends per second of each account (0 = as fast as the sink takes them)', count('--rate'), 40)
    .option('--exit', 'exit when the campaign is done instead of serving the dashboard until Ctrl-C')
    .action(async (opts: DemoOptions, command: Command) => {
      const json = Boolean(command.optsWithGlobals().json);
      const say = (text: string) => {
        if (!json) process.stdout.write(text + '\n');
      };
      const [{ openDatabase }, { createLogger }, { startMailPilot }, { startSink }] = await Promise.all([
        import('../db/database.ts'),
        import('../log.ts'),
        import('../server.ts'),
        import('../smtp/sink.ts'),
      ]);
      const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-demo-'));
      const sink = await startSink({ port: 0, host: '127.0.0.1' });
      const db = await openDatabase({});
      let mp: MailPilot | undefined;
      const shutdown = async () => {
        await mp?.close();
        await db.close();
        await sink.close();
        rmSync(dataDir, { recursive: true, force: true });
      };
      try {
        // Keys of its own, generated in its temporary data dir: the demo prints them, so never the real ones.
        const config = { ...loadConfig(), databaseUrl: undefined, dataDir, adminKey: undefined, secretKey: undefined, host: '127.0.0.1', port: opts.port };
        // Quiet logs: the progress bar owns the terminal.
        mp = await startMailPilot({ config, api: true, engine: true, db, log: createLogger(process.env.LOG_LEVEL || 'warn') });
        const baseUrl = mp.url!;
        say(`MailPilot demo: SMTP sink on 127.0.0.1:${sink.port}, API and dashboard on ${baseUrl}/ (data in memory)`);
        const admin = new ApiClient(baseUrl, mp.ctx.secrets.adminKey);
        const demo = await setUp(admin, baseUrl, sink, opts);
        const dashboard = `${baseUrl}/#/campaigns/${demo.campaignId}`;
        const whereToLook = [
          `See it in the dashboard: ${dashboard}`,
          `Sign in with the demo user's API key: ${demo.apiKey}`,
          `(The admin key, for the system view and /metrics: ${mp.ctx.secrets.adminKey})`,
        ].join('\n');
        say(`Created a user, ${ACCOUNTS} SMTP accounts (${HOURLY_LIMIT}/hour, ${DAILY_LIMIT}/day each), a list of ${opts.contacts} contacts and campaign ${demo.campaignId}.`);
        say(`${whereToLook}\n\nStarting the campaign.`);
        await demo.api.request('POST', `/api/v1/campaigns/${demo.campaignId}/start`);
        const final = await watchCampaign(demo.api, demo.campaignId, { json, out: process.stdout });
        const delivered = final.status === 'completed' && sink.received === final.sent;
        if (json) {
          const report = { dashboard, url: baseUrl, apiKey: demo.apiKey, adminKey: mp.ctx.secrets.adminKey, sinkReceived: sink.received, campaign: final };
          process.stdout.write(JSON.stringify(report) + '\n');
        }
        say(summary(final));
        say(`The sink received ${sink.received} messages.`);
        say(`\n${whereToLook}`);
        if (opts.exit) {
          await shutdown();
          process.exitCode = delivered ? EXIT.ok : final.status === 'stopped' ? EXIT.stopped : EXIT.failed;
          return;
        }
        say('Press Ctrl-C to stop; the demo keeps nothing once it ends.');
        const stop = () => void shutdown().then(() => process.exit(EXIT.ok));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        await shutdown().catch(() => undefined);
        const code = (err as { code?: string }).code;
        const message =
          code === 'EADDRINUSE' ? `port ${opts.port} is in use: pass --port with a free one (or --port 0)` : (err as Error).message;
        process.stderr.write(json ? JSON.stringify({ error: { code: code ?? 'error', message } }) + '\n' : `mailpilot demo: ${message}\n`);
        process.exitCode = EXIT.failed;
      }
    });
}
