import { z } from 'zod';

/** Start-up settings (API.md "Start-up"): environment first, then defaults. Errors name the variable. */
export interface Config {
  databaseUrl: string | undefined;
  dataDir: string;
  port: number;
  host: string;
  adminKey: string | undefined;
  secretKey: string | undefined;
  /** Earlier secret keys, kept after a rotation so old unsubscribe links still verify. */
  previousSecretKeys: string[];
  publicUrl: string;
  logLevel: string;
  /**
   * How long an engine process's hold on an account lasts without a heartbeat: how soon the
   * accounts of a crashed process are taken over, and how long a database outage is survived
   * without handing them over.
   */
  leaseTtlMs: number;
  /** Days a finished campaign keeps its per-recipient rows (MAILPILOT_RETENTION_DAYS). */
  retentionDays: number;
  /** Where `serve` takes bounces, complaints and replies over SMTP (MAILPILOT_INBOUND_PORT/HOST); unset = nowhere. */
  inbound: { host: string; port: number } | undefined;
}

const portSchema = z.coerce.number().int().min(0).max(65535);
const leaseSchema = z.coerce.number().min(1).max(3600);
const DEFAULT_LEASE_SECONDS = 30;
const daysSchema = z.coerce.number().int().min(1).max(36_500);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = portSchema.safeParse(env.PORT ?? '8080');
  if (!port.success) throw new Error(`PORT must be a TCP port number (0-65535), got "${env.PORT}"`);
  const host = env.HOST || '127.0.0.1';
  const publicUrl = (env.MAILPILOT_PUBLIC_URL || `http://${host}:${port.data}`).replace(/\/+$/, '');
  if (!URL.canParse(publicUrl)) throw new Error(`MAILPILOT_PUBLIC_URL must be an absolute URL, got "${publicUrl}"`);
  const lease = leaseSchema.safeParse(env.MAILPILOT_LEASE_SECONDS || DEFAULT_LEASE_SECONDS);
  if (!lease.success) throw new Error(`MAILPILOT_LEASE_SECONDS must be a number of seconds from 1 to 3600, got "${env.MAILPILOT_LEASE_SECONDS}"`);
  const retentionDays = daysSchema.safeParse(env.MAILPILOT_RETENTION_DAYS || '30');
  if (!retentionDays.success) throw new Error(`MAILPILOT_RETENTION_DAYS must be a whole number of days (1 or more), got "${env.MAILPILOT_RETENTION_DAYS}"`);
  let inbound: Config['inbound'];
  if (env.MAILPILOT_INBOUND_PORT) {
    const inboundPort = portSchema.safeParse(env.MAILPILOT_INBOUND_PORT);
    if (!inboundPort.success) throw new Error(`MAILPILOT_INBOUND_PORT must be a TCP port number (0-65535), got "${env.MAILPILOT_INBOUND_PORT}"`);
    inbound = { host: env.MAILPILOT_INBOUND_HOST || '127.0.0.1', port: inboundPort.data };
  }
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.MAILPILOT_DATA_DIR || './data',
    port: port.data,
    host,
    adminKey: env.MAILPILOT_ADMIN_KEY || undefined,
    secretKey: env.MAILPILOT_SECRET_KEY || undefined,
    previousSecretKeys: (env.MAILPILOT_PREVIOUS_SECRET_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean),
    publicUrl,
    logLevel: env.LOG_LEVEL || 'info',
    leaseTtlMs: lease.data * 1000,
    retentionDays: retentionDays.data,
    inbound,
  };
}
