import dns from 'node:dns';
import { z } from 'zod';
import { EgressPolicy } from './net/egressPolicy.ts';

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
  /** Where `worker` serves /metrics (MAILPILOT_METRICS_PORT/HOST); unset = nowhere (serve has it on its API port). */
  metrics: { host: string; port: number } | undefined;
  /** What one user may hold at once (QUOTA_VARIABLES). */
  quotas: Quotas;
  /** HTTP time limits (HTTP_TIMEOUT_VARIABLES). */
  http: HttpTimeouts;
  /** Where SMTP connections and OAuth2 token requests may go (MAILPILOT_SMTP_DENY, MAILPILOT_SMTP_ALLOW). */
  smtpEgress: EgressPolicy;
  /** Where a password may go without TLS (MAILPILOT_SMTP_PLAINTEXT_AUTH: loopback or always). */
  smtpPlaintextAuth: PlaintextAuth;
  /** DNS servers that resolve SMTP hosts and OAuth2 token URLs (MAILPILOT_DNS_SERVERS); empty = the system's resolver. */
  dnsServers: string[];
  /** The whole of one test send: its SMTP conversation is cut when it is up (MAILPILOT_TEST_SEND_TIMEOUT_SECONDS). */
  testSendTimeoutMs: number;
}

const portSchema = z.coerce.number().int().min(0).max(65535);
const leaseSchema = z.coerce.number().min(1).max(3600);
const DEFAULT_LEASE_SECONDS = 30;
const daysSchema = z.coerce.number().int().min(1).max(36_500);
const testSendSecondsSchema = z.coerce.number().min(1).max(600);

/**
 * Where an account's password may go over a connection without TLS: `loopback` (this machine only,
 * a local relay) or `always`.
 */
export const PLAINTEXT_AUTH_MODES = ['loopback', 'always'] as const;
export type PlaintextAuth = (typeof PLAINTEXT_AUTH_MODES)[number];
const plaintextAuthSchema = z.enum(PLAINTEXT_AUTH_MODES);

export interface Quotas {
  lists: number;
  /** Campaigns, finished ones included (they are never deleted). */
  campaigns: number;
  /** Contacts in all of the user's lists together. */
  contacts: number;
  /** Event streams (GET .../events) open at once, per process. */
  eventStreams: number;
  /** Live API keys. */
  apiKeys: number;
}

/** Each per-user quota's variable and default. */
export const QUOTA_VARIABLES: Record<keyof Quotas, { variable: string; default: number }> = {
  lists: { variable: 'MAILPILOT_MAX_LISTS_PER_USER', default: 200 },
  campaigns: { variable: 'MAILPILOT_MAX_CAMPAIGNS_PER_USER', default: 10_000 },
  contacts: { variable: 'MAILPILOT_MAX_CONTACTS_PER_USER', default: 5_000_000 },
  eventStreams: { variable: 'MAILPILOT_MAX_EVENT_STREAMS_PER_USER', default: 20 },
  apiKeys: { variable: 'MAILPILOT_MAX_API_KEYS_PER_USER', default: 50 },
};

export interface HttpTimeouts {
  /** A request's headers must all arrive within this long. */
  headersMs: number;
  /** An ordinary request's body must all arrive within this long after its headers. */
  bodyMs: number;
  /** A streamed upload (CSV import) must send at least this many bytes in every uploadWindowMs it is waited on. */
  uploadMinBytes: number;
  uploadWindowMs: number;
}

/** Each HTTP time limit's variable and default (seconds; bytes for the upload rate). */
export const HTTP_TIMEOUT_VARIABLES: Record<keyof HttpTimeouts, { variable: string; default: number }> = {
  headersMs: { variable: 'MAILPILOT_HEADERS_TIMEOUT_SECONDS', default: 10 },
  bodyMs: { variable: 'MAILPILOT_BODY_TIMEOUT_SECONDS', default: 30 },
  uploadMinBytes: { variable: 'MAILPILOT_UPLOAD_MIN_BYTES', default: 16_384 },
  uploadWindowMs: { variable: 'MAILPILOT_UPLOAD_WINDOW_SECONDS', default: 30 },
};

const countSchema = z.coerce.number().int().min(1).max(2 ** 31 - 1);

/** A whole number of at least 1 from `variable`, or its default; the error names the variable. */
function positiveInteger(env: NodeJS.ProcessEnv, variable: string, fallback: number, unit: string): number {
  const parsed = countSchema.safeParse(env[variable] || fallback);
  if (!parsed.success) throw new Error(`${variable} must be a whole number of ${unit} (1 or more), got "${env[variable]}"`);
  return parsed.data;
}

function quotasFrom(env: NodeJS.ProcessEnv): Quotas {
  const entries = Object.entries(QUOTA_VARIABLES).map(([key, q]) => [key, positiveInteger(env, q.variable, q.default, key)]);
  return Object.fromEntries(entries) as Quotas;
}

function httpTimeoutsFrom(env: NodeJS.ProcessEnv): HttpTimeouts {
  const entries = Object.entries(HTTP_TIMEOUT_VARIABLES).map(([key, t]) => {
    const bytes = key === 'uploadMinBytes';
    const value = positiveInteger(env, t.variable, t.default, bytes ? 'bytes' : 'seconds');
    return [key, bytes ? value : value * 1000];
  });
  return Object.fromEntries(entries) as HttpTimeouts;
}

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
  let metrics: Config['metrics'];
  if (env.MAILPILOT_METRICS_PORT) {
    const metricsPort = portSchema.safeParse(env.MAILPILOT_METRICS_PORT);
    if (!metricsPort.success) throw new Error(`MAILPILOT_METRICS_PORT must be a TCP port number (0-65535), got "${env.MAILPILOT_METRICS_PORT}"`);
    metrics = { host: env.MAILPILOT_METRICS_HOST || '127.0.0.1', port: metricsPort.data };
  }
  const plaintextAuth = plaintextAuthSchema.safeParse(env.MAILPILOT_SMTP_PLAINTEXT_AUTH || 'loopback');
  if (!plaintextAuth.success) throw new Error(`MAILPILOT_SMTP_PLAINTEXT_AUTH must be loopback or always, got "${env.MAILPILOT_SMTP_PLAINTEXT_AUTH}"`);
  const testSendSeconds = testSendSecondsSchema.safeParse(env.MAILPILOT_TEST_SEND_TIMEOUT_SECONDS || '30');
  if (!testSendSeconds.success) throw new Error(`MAILPILOT_TEST_SEND_TIMEOUT_SECONDS must be a number of seconds from 1 to 600, got "${env.MAILPILOT_TEST_SEND_TIMEOUT_SECONDS}"`);
  const dnsServers = (env.MAILPILOT_DNS_SERVERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  try {
    new dns.Resolver().setServers(dnsServers);
  } catch {
    throw new Error(`MAILPILOT_DNS_SERVERS must be IP addresses (with :port if not 53), comma-separated, got "${env.MAILPILOT_DNS_SERVERS}"`);
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
    metrics,
    quotas: quotasFrom(env),
    http: httpTimeoutsFrom(env),
    smtpEgress: EgressPolicy.fromEnv(env),
    smtpPlaintextAuth: plaintextAuth.data,
    dnsServers,
    testSendTimeoutMs: testSendSeconds.data * 1000,
  };
}
