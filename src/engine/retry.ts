/** A message gets at most this many SMTP attempts before it fails. */
export const MAX_ATTEMPTS = 5;
/** Postfix-like schedule: 5 minutes, doubling, with jitter so retries do not arrive in waves. */
const FIRST_RETRY_MS = 5 * 60_000;
const MAX_RETRY_MS = 4 * 60 * 60_000;

export function retryAt(now: Date, attempt: number): Date {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempt - 1));
  const jitter = base * 0.2 * Math.random();
  return new Date(now.getTime() + base + jitter);
}
