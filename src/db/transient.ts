/**
 * Database trouble that goes away by itself: a dropped or refused connection (a restart,
 * pg_terminate_backend), a lock or statement timeout, a serialization failure or a deadlock.
 * The engine retries these with backoff; anything else is a bug and stops the work that hit it.
 */
const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown (pg_terminate_backend)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);
const TRANSIENT_NODE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH']);
const CONNECTION_LOST =
  /Connection terminated|connection error|terminating connection|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i;

export function isTransientDbError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (TRANSIENT_SQLSTATES.has(code) || code.startsWith('08') || TRANSIENT_NODE_CODES.has(code)) return true;
  return typeof e.message === 'string' && CONNECTION_LOST.test(e.message);
}

const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;

/**
 * Runs `fn` until it succeeds, waiting longer after each transient failure (with jitter, so
 * processes that lost the database together do not return in step). Gives up, rethrowing, on a
 * non-transient error or once `giveUp()` says so.
 */
export async function retryTransient<T>(fn: () => Promise<T>, giveUp: () => boolean = () => false): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || giveUp()) throw err;
      const backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempt);
      await new Promise((r) => setTimeout(r, backoff / 2 + Math.random() * (backoff / 2)));
    }
  }
}
