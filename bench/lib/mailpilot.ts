import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, peakRssMb } from './processStats.ts';
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

type CallOptions = {
  /** JSON unless `contentType` is given; a stream is sent as it is read. */
  body?: unknown;
  contentType?: string;
  expect?: number;
};

export interface Api {
  /** Throws unless the reply is `expect` (200). */
  call<T>(method: string, path: string, opts?: CallOptions): Promise<T>;
}

export function apiClient(baseUrl: string, key: string): Api {
  return {
    async call<T>(method: string, path: string, opts: CallOptions = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      let body: string | ReadableStream<Uint8Array> | undefined;
      if (opts.body !== undefined) {
        headers['content-type'] = opts.contentType ?? 'application/json';
        if (opts.body instanceof ReadableStream) body = opts.body;
        else body = opts.contentType ? String(opts.body) : JSON.stringify(opts.body);
      }
      // undici needs half duplex to send a stream as the request body.
      const res = await fetch(baseUrl + path, { method, headers, body, duplex: 'half' } as RequestInit);
      const text = await res.text();
      if (res.status !== (opts.expect ?? 200)) throw new ApiError(method, path, res.status, text);
      return JSON.parse(text) as T;
    },
  };
}

export interface MailPilotProcess {
  command: 'serve' | 'worker';
  pid: number;
  /** Peak resident memory of the process so far (VmHWM), in MiB; throws if it has exited. */
  peakRssMb(): number;
  /** CPU seconds the process has used so far; throws if it has exited. */
  cpuSeconds(): number;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; resolves once the process has gone. */
  kill(): Promise<void>;
}

export interface MailPilotServer extends MailPilotProcess {
  url: string;
  adminKey: string;
  /** Its MAILPILOT_SECRET_KEY, for workers that join it. */
  secretKey: string;
}

/**
 * Runs `node bin/mailpilot.js COMMAND` as its own process, as a user would, so the benchmark
 * process's own work never shares its event loop. Its output goes to stderr: stdout carries only
 * the benchmark's result line.
 */
function spawnMailPilot(command: 'serve' | 'worker', env: Record<string, string>) {
  // BENCH_CPU_PROF=DIR writes each process's V8 CPU profile there when it stops (open it in Chrome DevTools).
  // Otherwise it runs as `npm start` does: through the script's own line, with its heap flags.
  const profDir = process.env.BENCH_CPU_PROF;
  const [file, args] = profDir
    ? [process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, 'bin/mailpilot.js', command]]
    : ['bin/mailpilot.js', [command]];
  const child = spawn(file, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 2, 2],
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn node bin/mailpilot.js ${command}`);
  let exitCode: number | string | null = null;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal;
      resolve();
    }),
  );
  const running = () => exitCode === null;
  const alive = () => {
    if (!running()) throw new Error(`mailpilot ${command} (pid ${pid}) exited (${exitCode}); its output is above`);
    return pid;
  };
  const proc: MailPilotProcess = {
    command,
    pid,
    peakRssMb: () => peakRssMb(alive()),
    cpuSeconds: () => cpuSeconds(alive()),
    async stop() {
      if (!running()) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
    async kill() {
      if (!running()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  return { proc, running };
}

interface ProcessOptions {
  databaseUrl: string;
  dataDir: string;
  /** The server's: every process of a run decrypts the same SMTP passwords and signs the same links. */
  secretKey: string;
}

/**
 * `mailpilot serve`: migrates the database, then serves the API and runs the engine. An empty
 * `databaseUrl` runs it on the embedded database in `dataDir`. `keys` restarts a server on the
 * database of an earlier one; `env` adds settings (MAILPILOT_LEASE_SECONDS, say).
 */
export async function startMailPilot(
  opts: Omit<ProcessOptions, 'secretKey'> & { port: number; keys?: { adminKey: string; secretKey: string }; env?: Record<string, string> },
): Promise<MailPilotServer> {
  const adminKey = opts.keys?.adminKey ?? randomBytes(24).toString('hex');
  const secretKey = opts.keys?.secretKey ?? randomBytes(32).toString('hex');
  const { proc, running } = spawnMailPilot('serve', {
    DATABASE_URL: opts.databaseUrl,
    PORT: String(opts.port),
    HOST: '127.0.0.1',
    MAILPILOT_DATA_DIR: opts.dataDir,
    MAILPILOT_ADMIN_KEY: adminKey,
    MAILPILOT_SECRET_KEY: secretKey,
    ...opts.env,
  });

  const url = `http://127.0.0.1:${opts.port}`;
  // Generous: the server migrates a fresh database before it listens.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!running()) throw new Error('mailpilot serve exited before answering GET /healthz; its output is above');
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error('mailpilot serve did not answer GET /healthz within 60 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`serving on ${url} (pid ${proc.pid})`);
  return { ...proc, url, adminKey, secretKey };
}

/**
 * `mailpilot worker`: the engine alone. Start it once `serve` has migrated the database; the
 * processes then split the accounts between them (Engine: fair share over engine_nodes).
 */
export function startWorker(opts: ProcessOptions): MailPilotProcess {
  const { proc } = spawnMailPilot('worker', {
    DATABASE_URL: opts.databaseUrl,
    MAILPILOT_DATA_DIR: opts.dataDir,
    MAILPILOT_SECRET_KEY: opts.secretKey,
  });
  log(`worker started (pid ${proc.pid})`);
  return proc;
}
