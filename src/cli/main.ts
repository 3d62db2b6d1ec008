import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config.ts';
import type { MailPilot } from '../server.ts';
import { registerCampaignCommands } from './client/campaigns.ts';
import { registerContactCommands } from './client/contacts.ts';
import { EXIT } from './client/exitCodes.ts';
import { registerListCommands } from './client/lists.ts';
import { registerSmtpCommands } from './client/smtp.ts';
import { registerUserCommands } from './client/users.ts';
import { registerDemoCommand } from './demo.ts';
import { registerOperationCommands } from './operations.ts';

// The server side (database, engine, SMTP) is loaded only by the commands that run it, so the
// client commands start quickly.
const serverSide = () => import('../server.ts');

/** A stop that has not finished by then is given up, so a supervisor's kill never has to come. */
const SHUTDOWN_LIMIT_MS = 9_500;

/**
 * Process lifetime: stop cleanly on SIGTERM/SIGINT: claiming stops, sends in flight finish (or are
 * cut and recorded by how far they got), outcomes are recorded, leases released; exit 0. Installed
 * before the start: the API answers before the engine has started, and a signal then (a service
 * manager's stop) waits for the start to finish instead of killing the process mid-way.
 */
function stopOnSignals(starting: Promise<MailPilot>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      process.stderr.write('shutdown did not finish in time; exiting anyway\n');
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS).unref();
    starting
      .then((mp) => {
        mp.ctx.log.info({ signal }, 'shutting down');
        return mp.close().catch((err: unknown) => {
          mp.ctx.log.error({ err }, 'shutdown failed');
          process.exit(1);
        });
      })
      // A start that failed reports itself (the command's action rejects).
      .then(() => process.exit(0), () => undefined);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const program = new Command()
  .name('mailpilot')
  .description('Multi-user email campaign sender: one worker per SMTP account, exact hourly and daily limits.')
  .option('--json', 'print machine-readable JSON (errors too, on stderr)')
  .showHelpAfterError()
  // Inherited by every command defined below: a wrong command line exits with EXIT.usage.
  .exitOverride();

program
  .command('serve')
  .description('migrate the database, then serve the API, the dashboard and the sending engine')
  .action(async () => {
    const config = loadConfig();
    const { startMailPilot } = await serverSide();
    const starting = startMailPilot({ config, api: true, engine: true });
    stopOnSignals(starting);
    const mp = await starting;
    const where = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `the embedded database in ${config.dataDir}`;
    mp.ctx.log.info({ url: mp.url }, `MailPilot listening on ${mp.url}, using ${where}`);
    if (mp.ctx.secrets.adminKeyGenerated) {
      // Printed once, on the start that generated it; it is also in the data dir's admin.key file.
      process.stdout.write(`\nAdmin API key (also saved in ${config.dataDir}/admin.key):\n  ${mp.ctx.secrets.adminKey}\n\n`);
    }
  });

program
  .command('worker')
  .description('run the sending engine alone, against the PostgreSQL server in DATABASE_URL')
  .action(async () => {
    const config = loadConfig();
    if (!config.databaseUrl) {
      program.error('mailpilot worker needs DATABASE_URL: several processes can only share a PostgreSQL server, not the embedded database');
    }
    const { startMailPilot } = await serverSide();
    const starting = startMailPilot({ config, api: false, engine: true });
    stopOnSignals(starting);
    const mp = await starting;
    mp.ctx.log.info({ owner: mp.engine!.owner, metrics: mp.metrics && `${mp.metrics.url}/metrics` }, 'MailPilot worker running');
  });

program
  .command('migrate')
  .description('apply database migrations and exit')
  .action(async () => {
    const [{ openDatabase }, { migrate }, { createLogger }] = await Promise.all([
      import('../db/database.ts'),
      import('../db/migrate.ts'),
      import('../log.ts'),
    ]);
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite` });
    const applied = await migrate(db);
    await db.close();
    log.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
  });

program
  .command('rotate-secret')
  .description('re-encrypt every stored secret (SMTP and mailbox passwords, OAuth2 secrets, DKIM keys) under a new secret key (stop MailPilot first; README: "Rotating the secret key")')
  .action(async () => {
    const { RotationError, rotateSecretOfInstall } = await import('./rotateSecret.ts');
    try {
      const outcome = await rotateSecretOfInstall(loadConfig(), process.env.MAILPILOT_NEW_SECRET_KEY || undefined);
      process.stdout.write(`Re-encrypted the secrets of ${outcome.reencrypted} SMTP account(s) (${outcome.alreadyNew} already under the new key).\n${outcome.instructions}\n`);
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
    const { startSink } = await import('../smtp/sink.ts');
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
  .description('remove the per-recipient rows of campaigns finished more than MAILPILOT_RETENTION_DAYS (30) days ago; counters stay')
  .action(async () => {
    const config = loadConfig();
    const [{ openDatabase }, { migrate }, { archiveFinishedCampaigns }, { systemClock }] = await Promise.all([
      import('../db/database.ts'),
      import('../db/migrate.ts'),
      import('../campaigns/retention.ts'),
      import('../clock.ts'),
    ]);
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite` });
    try {
      await migrate(db);
      const result = await archiveFinishedCampaigns(db, systemClock.now(), config.retentionDays);
      process.stdout.write(`archived ${result.campaigns} campaign(s), ${result.messagesDeleted} per-recipient row(s) removed\n`);
    } finally {
      await db.close();
    }
  });

registerUserCommands(program);
registerSmtpCommands(program);
registerListCommands(program);
registerContactCommands(program);
registerCampaignCommands(program);
registerDemoCommand(program);
registerOperationCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  // Help and version are answers, not failures; program.error() keeps its own code.
  const answered = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
  process.exitCode = answered ? EXIT.ok : err.code === 'commander.error' ? err.exitCode : EXIT.usage;
}
