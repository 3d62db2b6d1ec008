import { InvalidArgumentError, type Command } from 'commander';
import { exitCodeFor } from './exitCodes.ts';
import { ApiCallError, ApiClient, UnreachableError } from './http.ts';

export interface ClientRun {
  client: ApiClient;
  /** --json: machine-readable output on stdout. */
  json: boolean;
  /** Prints the reply as JSON with --json, else the human-readable text. */
  print(value: unknown, human: string): void;
}

/**
 * Wraps a client command's action: builds the client from the environment, and turns any error
 * into a message on stderr (JSON with --json) and its exit code.
 */
export function clientAction<A extends unknown[]>(fn: (run: ClientRun, ...args: A) => Promise<number | void>) {
  return async (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const json = Boolean(command.optsWithGlobals().json);
    const print = (value: unknown, human: string) => process.stdout.write(json ? JSON.stringify(value) + '\n' : human + '\n');
    try {
      const code = await fn({ client: ApiClient.fromEnv(), json, print }, ...(args.slice(0, -1) as A));
      process.exitCode = code ?? 0;
    } catch (err) {
      const code = err instanceof ApiCallError ? err.code : err instanceof UnreachableError ? 'unreachable' : 'error';
      const message = (err as Error).message;
      process.stderr.write(json ? JSON.stringify({ error: { code, message } }) + '\n' : `mailpilot: ${message}\n`);
      process.exitCode = exitCodeFor(err);
    }
  };
}

/** Parses a positive integer option or argument, failing as a usage error. */
export function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return Number(value);
  };
}

/** Parses a limit: 0 (no limit) or more. */
export function count(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number (0 = no limit), got "${value}"`);
    return Number(value);
  };
}
