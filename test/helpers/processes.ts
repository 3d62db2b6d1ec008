import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiClient, type ApiClient } from './mailpilot.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const KEEP_OUTPUT_CHARS = 200_000;

/** What the processes of one cluster share: the database, the secrets, a short lease for quick takeovers. */
export interface Cluster {
  databaseUrl: string;
  adminKey: string;
  secretKey: string;
  leaseSeconds: number;
}

export function newCluster(databaseUrl: string, leaseSeconds = 2): Cluster {
  return { databaseUrl, adminKey: `admin-${randomBytes(12).toString('hex')}`, secretKey: randomBytes(32).toString('hex'), leaseSeconds };
}

export interface EngineProcess extends ApiClient {
  kind: 'serve' | 'worker';
  pid: number;
  /** Base URL of the API (serve only). */
  url: string | undefined;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  output(): string;
  kill(signal: NodeJS.Signals): void;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `node bin/mailpilot.js serve|worker` as its own process against the cluster's database, as a user would. */
export async function spawnMailPilot(kind: 'serve' | 'worker', cluster: Cluster, env: Record<string, string> = {}): Promise<EngineProcess> {
  const port = kind === 'serve' ? await freePort() : 0;
  const child = spawn(process.execPath, ['bin/mailpilot.js', kind], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: cluster.databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      MAILPILOT_DATA_DIR: mkdtempSync(join(tmpdir(), 'mailpilot-proc-')),
      MAILPILOT_ADMIN_KEY: cluster.adminKey,
      MAILPILOT_SECRET_KEY: cluster.secretKey,
      MAILPILOT_LEASE_SECONDS: String(cluster.leaseSeconds),
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-KEEP_OUTPUT_CHARS);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exitStatus: number | string | undefined;
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      exitStatus = code ?? signal ?? 'unknown';
      resolve(exitStatus);
    }),
  );
  const url = kind === 'serve' ? `http://127.0.0.1:${port}` : undefined;
  const proc: EngineProcess = {
    kind,
    pid: child.pid!,
    url,
    exited,
    output: () => output,
    kill: (signal) => void child.kill(signal),
    api: url ? apiClient(url) : () => Promise.reject(new Error('a worker process serves no API')),
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exitStatus !== undefined) throw new Error(`mailpilot ${kind} exited (${exitStatus}) before it was ready:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mailpilot ${kind} was not ready within ${READY_TIMEOUT_MS} ms:\n${output}`);
    }
    if (kind === 'worker' && output.includes('MailPilot worker running')) return proc;
    if (url) {
      const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (ok) return proc;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL if it has not gone within `graceMs`. */
export async function stopProcess(p: EngineProcess, graceMs = 15_000): Promise<void> {
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}
