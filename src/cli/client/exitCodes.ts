import { ApiCallError, UnreachableError } from './http.ts';

/**
 * Exit codes scripts can rely on (README "Command line"): 0 means the command did what it says,
 * every other code names one kind of failure.
 */
export const EXIT = {
  ok: 0,
  /** Anything unexpected (a server error, a bug). */
  failed: 1,
  /** Wrong command line: unknown command or option, missing argument. */
  usage: 2,
  /** No server at MAILPILOT_URL. */
  unreachable: 3,
  /** No key, a wrong key, or a key that may not do this (401, 403). */
  unauthorized: 4,
  /** No such resource, or another user's (404). */
  notFound: 5,
  /** Not possible in the current state, e.g. starting a completed campaign (409). */
  conflict: 6,
  /** Invalid input (400, 413, 415, 422). */
  invalid: 7,
  /** `campaigns watch` (and `demo`) saw the campaign end stopped rather than completed. */
  stopped: 8,
  /** Interrupted with Ctrl-C. */
  interrupted: 130,
} as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof UnreachableError) return EXIT.unreachable;
  if (!(err instanceof ApiCallError)) return EXIT.failed;
  if (err.status === 401 || err.status === 403) return EXIT.unauthorized;
  if (err.status === 404) return EXIT.notFound;
  if (err.status === 409) return EXIT.conflict;
  if ([400, 413, 415, 422].includes(err.status)) return EXIT.invalid;
  return EXIT.failed;
}
