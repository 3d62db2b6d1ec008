import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

// Passwords, keys and OAuth2 secrets never reach a log line, whatever object is logged.
const REDACT = [
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'privateKey',
  '*.privateKey',
  '*.*.privateKey',
  'clientSecret',
  '*.clientSecret',
  '*.*.clientSecret',
  'refreshToken',
  '*.refreshToken',
  '*.*.refreshToken',
  'accessToken',
  '*.accessToken',
];

/** Logs JSON lines to stdout, or to `destination` (tests read what was logged). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' } }, destination);
}
