import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../bin/mailpilot.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the mailpilot CLI in a child process, as a user or a script would. */
export function runCli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  const child = spawnCli(args, opts.env);
  child.stdin!.end(opts.input ?? '');
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  // LOG_LEVEL and the API variables come only from the test, never from the developer's shell.
  const { MAILPILOT_URL: _u, MAILPILOT_API_KEY: _k, PORT: _p, ...base } = process.env;
  return spawn(process.execPath, [CLI, ...args], { env: { ...base, LOG_LEVEL: 'warn', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
}
