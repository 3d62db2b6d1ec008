import { Command } from 'commander';
import { archiveFinishedCampaigns } from '../campaigns/retention.ts';
import { systemClock } from '../clock.ts';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { RotationError, rotateSecretOfInstall } from './rotateSecret.ts';
import { createLogger } from '../log.ts';
import { startMailPilot, type MailPilot } from '../server.ts';
import { startSink } from '../smtp/sink.ts';
import { loadClientConfig } from './client.ts';
import { describeImport, importListFile } from './listImport.ts';

/** A stop that has not finished by then is given up, so a supervisor's kill never has to come. */
const SHUTDOWN_LIMIT_MS = 9_500;

/**
 * Process lifetime: stop cleanly on SIGTERM/SIGINT: claiming stops, sends in flight finish (or are
 * cut and recorded by how far they got), outcomes are recorded, leases released; exit 0.
 */
function stopOnSignals(mp: MailPilot): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    mp.ctx.log.info({ signal }, 'shutting down');
    setTimeout(() => {
      mp.ctx.log.error('shutdown did not finish in time; exiting anyway');
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS).unref();
    mp.close().then(
      () => process.exit(0),
      (err) => {
        mp.ctx.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const program = new Command()
  .name('mailpilot')
  .description('Multi-user email campaign sender: one worker per SMTP account, exact hourly and daily limits.')
  .showHelpAfterError();

program
  .command('serve')
  .description('migrate the database, then serve the API, the dashboard and the sending engine')
  .action(async () => {
    const config = loadConfig();
    const mp = await startMailPilot({ config, api: true, engine: true });
    const where = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `the embedded database in ${config.dataDir}`;
    mp.ctx.log.info({ url: mp.url }, `MailPilot listening on ${mp.url}, using ${where}`);
    if (mp.ctx.secrets.adminKeyGenerated) {
      // Printed once, on the start that generated it; it is also in the data dir's admin.key file.
      process.stdout.write(`\nAdmin API key (also saved in ${config.dataDir}/admin.key):\n  ${mp.ctx.secrets.adminKey}\n\n`);
    }
    stopOnSignals(mp);
  });

program
  .command('worker')
  .description('run the sending engine alone, against the PostgreSQL server in DATABASE_URL')
  .action(async () => {
    const config = loadConfig();
    if (!config.databaseUrl) {
      program.error('mailpilot worker needs DATABASE_URL: several processes can only share a PostgreSQL server, not the embedded database');
    }
    const mp = await startMailPilot({ config, api: false, engine: true });
    mp.ctx.log.info({ owner: mp.engine!.owner }, 'MailPilot worker running');
    stopOnSignals(mp);
  });

program
  .command('migrate')
  .description('apply database migrations and exit')
  .action(async () => {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite` });
    const applied = await migrate(db);
    await db.close();
    log.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
  });

program
  .command('rotate-secret')
  .description('re-encrypt every stored SMTP password under a new secret key (stop MailPilot first; README: "Rotating the secret key")')
  .action(async () => {
    try {
      const outcome = await rotateSecretOfInstall(loadConfig(), process.env.MAILPILOT_NEW_SECRET_KEY || undefined);
      process.stdout.write(`Re-encrypted ${outcome.reencrypted} SMTP password(s) (${outcome.alreadyNew} already under the new key).\n${outcome.instructions}\n`);
    } catch (err) {
      if (!(err instanceof RotationError)) throw err;
      process.stderr.write(`mailpilot rotate-secret: ${err.message}\n`);
      process.exitCode = 1;
    }
  });

program
  .command('sink')
  .description('run a local SMTP server that accepts and discards every message (to try MailPilot without a mail server)')
  .option('-p, --port <port>', 'port to listen on', '2525')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('-q, --quiet', 'do not print a line per message')
  .action(async (opts: { port: string; host: string; quiet?: boolean }) => {
    const sink = await startSink({
      port: Number(opts.port),
      host: opts.host,
      onMessage: opts.quiet ? undefined : (from, to, bytes) => process.stdout.write(`${from} -> ${to.join(', ')} (${bytes} bytes)\n`),
    });
    process.stdout.write(`SMTP sink listening on ${opts.host}:${sink.port}; Ctrl-C to stop\n`);
    process.on('SIGINT', () => void sink.close().then(() => process.exit(0)));
    process.on('SIGTERM', () => void sink.close().then(() => process.exit(0)));
  });

program
  .command('archive')
  .description(`remove the per-recipient rows of campaigns finished more than MAILPILOT_RETENTION_DAYS (30) days ago; counters stay`)
  .action(async () => {
    const config = loadConfig();
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite` });
    try {
      await migrate(db);
      const result = await archiveFinishedCampaigns(db, systemClock.now(), config.retentionDays);
      process.stdout.write(`archived ${result.campaigns} campaign(s), ${result.messagesDeleted} per-recipient row(s) removed\n`);
    } finally {
      await db.close();
    }
  });

const lists = program.command('lists').description('contact lists (client: talks to MAILPILOT_URL with MAILPILOT_API_KEY)');
lists
  .command('import <file>')
  .description('import a CSV file (header row with an email column; other columns become attributes), with a progress bar')
  .option('--list <id>', 'the list to import into (default: a new list named after the file)')
  .option('--name <name>', 'name of the new list')
  .option('--json', 'print the server reply as JSON')
  .action(async (file: string, opts: { list?: string; name?: string; json?: boolean }) => {
    const list = opts.list === undefined ? undefined : Number(opts.list);
    if (list !== undefined && !(Number.isInteger(list) && list > 0)) program.error(`--list must be a list id, got "${opts.list}"`);
    try {
      const config = loadClientConfig();
      const { listId, result } = await importListFile(config, file, { list, name: opts.name, progress: !opts.json && process.stderr.isTTY });
      process.stdout.write(opts.json ? `${JSON.stringify({ listId, ...result })}\n` : describeImport(listId, result));
    } catch (err) {
      program.error((err as Error).message);
    }
  });

await program.parseAsync(process.argv);
