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
  /** Where SMTP connections may go (MAILPILOT_SMTP_DENY, MAILPILOT_SMTP_ALLOW). */
  smtpEgress: EgressPolicy;
  /** Where a password may go without TLS (MAILPILOT_SMTP_PLAINTEXT_AUTH: loopback or always). */
  smtpPlaintextAuth: PlaintextAuth;
  /** DNS servers that resolve SMTP host names (MAILPILOT_DNS_SERVERS); empty = the system's resolver. */
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
    smtpEgress: EgressPolicy.fromEnv(env),
    smtpPlaintextAuth: plaintextAuth.data,
    dnsServers,
    testSendTimeoutMs: testSendSeconds.data * 1000,
  };
}
