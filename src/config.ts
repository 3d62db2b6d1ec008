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
}

const portSchema = z.coerce.number().int().min(0).max(65535);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = portSchema.safeParse(env.PORT ?? '8080');
  if (!port.success) throw new Error(`PORT must be a TCP port number (0-65535), got "${env.PORT}"`);
  const host = env.HOST || '127.0.0.1';
  const publicUrl = (env.MAILPILOT_PUBLIC_URL || `http://${host}:${port.data}`).replace(/\/+$/, '');
  if (!URL.canParse(publicUrl)) throw new Error(`MAILPILOT_PUBLIC_URL must be an absolute URL, got "${publicUrl}"`);
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
  };
}
