import type { FastifyInstance } from 'fastify';
import { logActivity } from './activityLog.ts';
import { buildApp } from './api/app.ts';
import { scheduleDailyRetention } from './campaigns/retention.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { AppContext } from './context.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { Engine } from './engine/engine.ts';
import { bridgeEvents } from './eventBridge.ts';
import { Events } from './events.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { startMetricsServer, type MetricsServer } from './metricsServer.ts';
import type { InboundSmtp } from './reports/inboundSmtp.ts';
import { MailboxReaders } from './reports/mailboxes.ts';
import { loadSecrets } from './secrets.ts';

export interface MailPilot {
  ctx: AppContext;
  engine: Engine | undefined;
  app: FastifyInstance | undefined;
  /** Base URL of the HTTP API when it listens. */
  url: string | undefined;
  /** The inbound SMTP port for bounces, complaints and replies (serve with MAILPILOT_INBOUND_PORT). */
  inbound: InboundSmtp | undefined;
  /** The readers of the accounts' mailboxes (serve). */
  mailboxes: MailboxReaders | undefined;
  /** Where a process without the API serves /metrics (worker with MAILPILOT_METRICS_PORT). */
  metrics: MetricsServer | undefined;
  close(): Promise<void>;
}

const ENGINE_POOL_SIZE = 20;

export interface StartOptions {
  config: Config;
  /** Serve the HTTP API (serve) or not (worker). */
  api: boolean;
  /** Run the sending engine. */
  engine: boolean;
  clock?: Clock;
  db?: Database;
  log?: Logger;
}

/** Opens and migrates the database, then starts the API and/or the engine. */
export async function startMailPilot(opts: StartOptions): Promise<MailPilot> {
  const { config } = opts;
  const log = opts.log ?? createLogger(config.logLevel);
  // The engine's connections: hundreds of accounts' claims, quota steps and outcome writes share them.
  const db =
    opts.db ??
    (await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite`, poolSize: ENGINE_POOL_SIZE }));
  await migrate(db);
  const secrets = loadSecrets(config);
  const ctx: AppContext = { config, db, clock: opts.clock ?? systemClock, secrets, events: new Events(), log };
  const unbridge = await bridgeEvents(ctx.events, db, log);

  // Lease renewals and outcome writes get a connection each (see Engine).
  const ownConnection = () => (opts.engine && !opts.db && config.databaseUrl ? openDatabase({ url: config.databaseUrl, poolSize: 1 }) : db);
  const own = { leases: await ownConnection(), outcomes: await ownConnection() };
  const engine = opts.engine ? new Engine(ctx, own) : undefined;
  const stopActivityLog = logActivity(ctx.events, log, engine?.owner);
  let app: FastifyInstance | undefined;
  let url: string | undefined;
  // On a server the API has connections of its own, so no request queues behind the engine's statements.
  const apiDb = opts.api && engine && !opts.db && config.databaseUrl ? await openDatabase({ url: config.databaseUrl }) : db;
  if (opts.api) {
    app = await buildApp({ ...ctx, db: apiDb });
    url = await app.listen({ port: config.port, host: config.host });
  }
  // Counting starts before the engine does, so its first sends are counted.
  const workerMetrics = !opts.api && config.metrics ? new Metrics(ctx, { role: 'worker', cluster: false }) : undefined;
  const metrics = workerMetrics ? await startMetricsServer(workerMetrics, ctx.secrets.adminKey, config.metrics!) : undefined;
  await engine?.start();
  const retention = opts.api ? scheduleDailyRetention(ctx) : undefined;
  // Reports come in where the API is served: the inbound port and the accounts' mailboxes.
  // Loaded only when the port is configured: a server without it never holds smtp-server.
  const inbound = opts.api && config.inbound ? await (await import('./reports/inboundSmtp.ts')).startInboundSmtp(ctx, config.inbound) : undefined;
  const mailboxes = opts.api ? new MailboxReaders(ctx) : undefined;
  await mailboxes?.start();

  return {
    ctx,
    engine,
    app,
    url,
    inbound,
    mailboxes,
    metrics,
    async close() {
      // The engine's shutdown is bounded (engine.ts SHUTDOWN_*), and need not wait for the API's.
      await Promise.all([app?.close(), retention?.stop(), engine?.stop(), inbound?.close(), mailboxes?.stop(), metrics?.close()]);
      workerMetrics?.close();
      await unbridge();
      stopActivityLog();
      if (apiDb !== db) await apiDb.close();
      for (const conn of [own.leases, own.outcomes]) if (conn !== db) await conn.close();
      if (!opts.db) await db.close();
    },
  };
}
