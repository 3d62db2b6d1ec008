import { z } from 'zod';

/** Start-up settings (API.md "Start-up"): environment first, then defaults. Errors name the variable. */
export interface Config {
  databaseUrl: string | undefined;
  dataDir: string;
  port: number;
  host: string;
  adminKey: string | undefined;
  secretKey: string | undefined;
  publicUrl: string;
  logLevel: string;
  /** Days a finished campaign keeps its per-recipient rows (MAILPILOT_RETENTION_DAYS). */
  retentionDays: number;
}

const portSchema = z.coerce.number().int().min(0).max(65535);
const daysSchema = z.coerce.number().int().min(1).max(36_500);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = portSchema.safeParse(env.PORT ?? '8080');
  if (!port.success) throw new Error(`PORT must be a TCP port number (0-65535), got "${env.PORT}"`);
  const host = env.HOST || '127.0.0.1';
  const publicUrl = (env.MAILPILOT_PUBLIC_URL || `http://${host}:${port.data}`).replace(/\/+$/, '');
  if (!URL.canParse(publicUrl)) throw new Error(`MAILPILOT_PUBLIC_URL must be an absolute URL, got "${publicUrl}"`);
  const retentionDays = daysSchema.safeParse(env.MAILPILOT_RETENTION_DAYS || '30');
  if (!retentionDays.success) throw new Error(`MAILPILOT_RETENTION_DAYS must be a whole number of days (1 or more), got "${env.MAILPILOT_RETENTION_DAYS}"`);
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.MAILPILOT_DATA_DIR || './data',
    port: port.data,
    host,
    adminKey: env.MAILPILOT_ADMIN_KEY || undefined,
    secretKey: env.MAILPILOT_SECRET_KEY || undefined,
    publicUrl,
    logLevel: env.LOG_LEVEL || 'info',
    retentionDays: retentionDays.data,
  };
}
