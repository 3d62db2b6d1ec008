import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logger } from './report.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const log = logger('mailpilot');

class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${path} answered ${status}: ${body.slice(0, 500)}`);
  }
}

export interface Api {
  /** Sends `body` as JSON, or as-is when a content type is given; throws unless the reply is `expect`. */
  call<T>(method: string, path: string, opts?: { body?: unknown; contentType?: string; expect?: number }): Promise<T>;
}

export function apiClient(baseUrl: string, key: string): Api {
  return {
    async call<T>(method: string, path: string, opts: { body?: unknown; contentType?: string; expect?: number } = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      let body: string | undefined;
      if (opts.body !== undefined) {
        headers['content-type'] = opts.contentType ?? 'application/json';
        body = opts.contentType ? String(opts.body) : JSON.stringify(opts.body);
      }
      const res = await fetch(baseUrl + path, { method, headers, body });
      const text = await res.text();
      if (res.status !== (opts.expect ?? 200)) throw new ApiError(method, path, res.status, text);
      return JSON.parse(text) as T;
    },
  };
}

export interface MailPilotServer {
  url: string;
  adminKey: string;
  pid: number;
  /** Peak resident memory of the server process so far (VmHWM), in MiB. */
  peakRssMb(): number;
  stop(): Promise<void>;
}

/**
 * Runs `node bin/mailpilot.js serve` as its own process, as a user would, so the benchmark
 * process's own work never shares its event loop. Its output goes to stderr: stdout carries only
 * the benchmark's result line.
 */
export async function startMailPilot(opts: { databaseUrl: string; port: number; dataDir: string }): Promise<MailPilotServer> {
  const adminKey = randomBytes(24).toString('hex');
  // BENCH_CPU_PROF=DIR writes the server's V8 CPU profile there when it stops (open it in Chrome DevTools).
  const profDir = process.env.BENCH_CPU_PROF;
  const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, 'bin/mailpilot.js', 'serve'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 2, 2],
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      PORT: String(opts.port),
      HOST: '127.0.0.1',
      MAILPILOT_DATA_DIR: opts.dataDir,
      MAILPILOT_ADMIN_KEY: adminKey,
      LOG_LEVEL: 'warn',
    },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn node bin/mailpilot.js serve');
  let exitCode: number | string | null = null;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal;
      resolve();
    }),
  );
  const running = () => exitCode === null;

  const stop = async () => {
    if (!running()) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  const url = `http://127.0.0.1:${opts.port}`;
  // Generous: the server migrates a fresh database before it listens.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!running()) throw new Error(`mailpilot serve exited (${exitCode}) before answering GET /healthz; its output is above`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error('mailpilot serve did not answer GET /healthz within 60 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`serving on ${url} (pid ${pid})`);

  return {
    url,
    adminKey,
    pid,
    peakRssMb() {
      const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (!kb) throw new Error(`no VmHWM in /proc/${pid}/status`);
      return Math.round(Number(kb) / 1024);
    },
    stop,
  };
}
